"""Score the whole pipeline on labelled photos: frame each face (from its labels or a detector),
predict with refinement, and compare with the labels (``facekeypoints evaluate PHOTOS``).

Unlike ``evaluate.runner`` (faces already framed like the training crops, e.g. a Kaggle CSV), this
takes any dataset we read whose images are whole photos: ytf68's CSV, .pts folders, IMM, dlib
XML, COCO, AFLW2000-3D. Scores are in the model's schema: the labels are converted to it (ibug68 ->
kaggle15 derives the 15 points; IMM's 58 points give the points both share), so a point the data
cannot give is left out, not guessed.

The pipeline comes in as an object (a ``facekeypoints.KeypointDetector``, built by the caller):
``evaluate`` sits below ``infer`` in the package's layers, so it scores a predictor without
importing one.
"""
from __future__ import annotations


import numpy as np

from facekeypoints.data import KeypointData, framing
from facekeypoints.data.formats.landmarks import IMAGE_SUFFIXES
from facekeypoints.data.convert import face_photo
from facekeypoints.evaluate.metrics import ced, mean_error, nme, normalised_errors, summarize
from facekeypoints.models.weights import SHIPPED

__all__ = ["evaluate_photos", "model_for", "left_out", "REGIONS", "YAW_BINS", "yaw_proxy", "region_nme"]

# Face regions by keypoint name (schemas name their points after them); "eyebrow" before "eye".
REGIONS = (("jaw", "jaw"), ("brows", "eyebrow"), ("nose", "nose"), ("eyes", "eye"), ("mouth", "mouth"))
# |yaw proxy| bins: frontal, turned, strongly turned (about 0.3 at 30 degrees of yaw on ytf68)
YAW_BINS = ((0.0, 0.15), (0.15, 0.3), (0.3, np.inf))


def yaw_proxy(kaggle15: np.ndarray) -> np.ndarray:
    """(N,) head turn from 2-D kaggle15 points: the nose tip's offset from the eyes' midpoint
    along the eye line, over half the inter-ocular distance (0 frontal, about +-1 in profile)."""
    left, right, nose = kaggle15[:, 0], kaggle15[:, 1], kaggle15[:, 10]
    axis = left - right
    iod = np.linalg.norm(axis, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("nd,nd->n", nose - (left + right) / 2, axis) / (iod ** 2 / 2)


def region_nme(pred: np.ndarray, truth: np.ndarray, schema) -> dict[str, float]:
    """Mean NME over the keypoints of each face region the schema has (``REGIONS``), normalised
    as the whole face's."""
    errors = normalised_errors(pred, truth, schema)
    out = {}
    for region, word in REGIONS:
        taken = [i for i, name in enumerate(schema.keypoints)
                 if word in name and not (word == "eye" and "eyebrow" in name)]
        if taken and np.isfinite(errors[:, taken]).any():
            out[region] = float(np.nanmean(errors[:, taken]))
    return out


def model_for(schema_name: str) -> str:
    """The shipped model that scores data of this schema: its own, else the 15-point one."""
    return schema_name if schema_name in SHIPPED else "kaggle15"


def _labels_box(data: KeypointData, i: int, labelled: np.ndarray) -> np.ndarray | None:
    """Face i's box as its 68 labelled points would draw it (what ``BOX_FRAMES["landmarks"]`` is calibrated
    for), from its labelled points' box ``labelled``. Where some points are unlabelled (a jaw at v=0) that
    box is only part of the face: the whole one is estimated from the labelled points, aligned to the
    template. None when too few anchor points are labelled to align them."""
    if np.isfinite(data.keypoints[i]).all():
        return labelled
    frame = framing.frames_from_keypoints(data.keypoints[i:i + 1], data.schema, 96)[0][0]
    if not np.isfinite(frame).all():
        return None
    return framing.box_from_frame(frame, 96, framing.BOX_FRAMES["landmarks"])


def _holds(box: np.ndarray, points: np.ndarray, margin: float = 0.1) -> bool:
    """Whether every point lies in ``box`` grown by ``margin`` of its size on each side (a tight
    bbox may cut the jaw's points)."""
    grow = margin * (box[2:] - box[:2])
    return bool(((points >= box[:2] - grow) & (points <= box[2:] + grow)).all())


def _face_boxes(data: KeypointData, i: int, labelled: np.ndarray, points: np.ndarray) -> list[np.ndarray]:
    """Face i's whole boxes to match a detection against, in order: the data's own (COCO's bbox) where it
    holds the face's labelled ``points`` (one that does not is drawn for something else), then
    ``_labels_box`` (a data box that holds the points may still be wrong: x2, y2 given as width, height),
    else (too few points to estimate it) the labelled points' box."""
    whole = _labels_box(data, i, labelled)
    own = [data.boxes[i]] if np.isfinite(data.boxes[i]).all() and _holds(data.boxes[i], points) else []
    return own + [labelled if whole is None else whole]


def evaluate_photos(data: KeypointData, detector, *, boxes: str = "labels", limit: int = 0,
                    details: dict | None = None) -> dict:
    """Every metric of ``summarize`` plus auc_8, per-region NME, NME by head turn, and how many faces
    ``detector`` (a ``KeypointDetector``) missed. ``boxes="labels"``: each face is framed from the
    bounding box of its own labelled points, the whole face's estimated where some are unlabelled (build
    the detector with ``detector=None, box_frame="landmarks"``; see ``_labels_box``); else the detector's
    box of the face (IoU >= 0.4 with the face's box in ``data.boxes``, or with its labelled points' box;
    see ``_face_boxes``) is used; a face not found is listed by its id. ``details``, when given,
    receives the scored rows, their predictions, labels and NME (for a report)."""
    labels = boxes == "labels"
    data_path = data.source
    schema = detector.schema
    if not schema.normalization and schema.num_keypoints < 2:  # refused before any face is predicted
        raise ValueError(f"{getattr(detector.runner, 'source', 'the model')}: a {schema.name} model predicts "
                         f"{schema.num_keypoints} point, and NME divides by the distance between two (the eyes, or "
                         f"the labelled points' box), so it cannot be scored on photos; `evaluate --model MODEL "
                         f"--split val` gives its RMSE on its run's own validation faces")
    if not labels and getattr(detector, "framing", "kaggle") == "resize":  # its whole photo is no detector's box
        raise ValueError(f"--boxes {boxes} applies to finding faces with a detector; "
                         f"{getattr(detector.runner, 'source', 'the model')} (a {schema.name} model trained on whole "
                         "photos) frames each whole image as one face and uses no face detector; leave --boxes out")
    try:
        truth = (framing.anchor_points(data.schema, data.keypoints) if schema.name == "kaggle15"  # IMM: 5 of 15
                 else data.schema.convert(data.keypoints, schema.name))
    except ValueError as err:
        raise ValueError(f"{data_path}: its {data.schema.name} labels cannot be compared with a "
                         f"{schema.name} model ({err})") from None
    rows = range(len(data)) if not limit else range(min(limit, len(data)))
    pred = np.full((len(data), schema.num_keypoints, 2), np.nan)
    missed, unlabelled, unusable = [], 0, []
    last_photo: dict = {}  # the faces of one group photo decode it once (face_photo)
    for i in rows:
        points = data.keypoints[i][np.isfinite(data.keypoints[i]).all(-1)]
        if len(points) < 2 or not np.isfinite(truth[i]).any():  # e.g. a dlib XML box without parts
            unlabelled += 1
            continue
        path = data.paths[i] if data.paths is not None else None
        name = str(path) if path else (f"{data.source}/{data.ids[i]}" if data.ids is not None else f"row {i + 1}")
        if data.images is None and not path:
            unusable.append(f"{name}: no photo found beside its labels (looked for {', '.join(IMAGE_SUFFIXES)})")
            continue
        try:  # photos are read one at a time (a set of large photos is never all in memory), labels checked on them
            image = face_photo(data, i, last_photo)
        except (ValueError, OSError, TypeError) as err:
            unusable.append(str(err) if str(err).startswith((name, str(data_path))) else f"{name}: {err}")
            continue
        labelled = np.r_[points.min(0), points.max(0) + 1]
        if labels:
            whole = _labels_box(data, i, labelled)
            if whole is None:  # its partial points' box would frame a crop of part of the face: a wrong score
                unusable.append(f"{name}: too few of its points are labelled to frame the whole face from them "
                                "(--boxes haar or dlib frames it by a detector)")
                continue
            try:
                pred[i] = detector(image, boxes=[whole]).keypoints[0]
            except ValueError as err:  # e.g. labels that put the face's box outside its photo
                unusable.append(f"{name}: {str(err).split(': ', 1)[-1]}")
            continue
        result = detector(image)
        for face_box in _face_boxes(data, i, labelled, points):
            hits = [j for j, face in enumerate(result) if framing.box_iou(face.box, face_box) >= 0.4]
            if hits:
                break
        if not hits:
            missed.append(data.ids[i])  # the face, not its photo: a photo may hold several
            continue
        best = max(hits, key=lambda j: framing.box_iou(result[j].box, face_box))
        pred[i] = result.keypoints[best]
    scored = np.array([i for i in rows if np.isfinite(pred[i]).all()], int)
    if not len(scored):
        why = f"{unlabelled} faces without labelled points" + ("" if labels else f", {len(missed)} not found by "
                                                                   f"the {boxes} detector")
        why += f", {len(unusable)} unusable (the first: {unusable[0]})" if unusable else ""
        raise ValueError(f"{data_path}: no face could be scored ({why})")
    p, t = pred[scored], truth[scored]
    per_row = nme(p, t, schema)
    if details is not None:
        details.update(rows=scored, pred=p, truth=t, nme=per_row)
    report = summarize(p, t, schema)
    report.pop("ced")
    report["auc_8"] = ced(per_row, 0.08)[2]
    report["regions"] = region_nme(p, t, schema)
    report["mean_error_xy"] = list(mean_error(p, t))
    report["by_turn"] = {}
    try:  # the eyes and nose tip that give the turn: kaggle15's, derived, or IMM's (framing knows them)
        yaw = np.abs(yaw_proxy(framing.anchor_points(schema, t)))
    except ValueError:  # a schema without them: no breakdown by turn
        yaw = None
    for lo, hi in YAW_BINS if yaw is not None else ():
        inside = (yaw >= lo) & (yaw < hi) & np.isfinite(per_row)
        key = f"|yaw| {lo:g}-{hi:g}" if np.isfinite(hi) else f"|yaw| >= {lo:g}"
        report["by_turn"][key] = {"faces": int(inside.sum()),
                                  "nme": float(per_row[inside].mean()) if inside.any() else None,
                                  "fr_10": float((per_row[inside] > 0.10).mean()) if inside.any() else None}
    report.update(data=str(data_path), model=str(detector.runner.source), schema=schema.name, boxes=boxes, faces=len(rows),
                  scored=int(len(scored)), unlabelled=unlabelled, missed=len(missed), missed_files=missed[:20],
                  unusable=unusable, unusable_count=len(unusable),
                  mirror_tta=bool(getattr(detector, "mirror_tta", False)),
                  rotate_tta=float(getattr(detector, "rotate_tta", 0.0)))
    return report



def left_out(report: dict) -> list[str]:
    """Each face an ``evaluate_photos`` report (with the read's ``skipped`` rows added) leaves out of
    its figures, with why: the screen shows the first ``LISTED``, --json and the --report page all."""
    return ([f"unusable: {message}" for message in report["unusable"]]
            + [f"skipped as bad: {message}" for message in report.get("skipped", [])])
