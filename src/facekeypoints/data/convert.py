"""Turn a landmark dataset into the Kaggle task: 96 x 96 grayscale faces framed like Kaggle's.

Each face is framed by :mod:`facekeypoints.data.framing`, as inference frames faces: a
least-squares similarity transform (rotation, uniform scale, shift) maps its Kaggle-15 anchor
points onto the mean Kaggle face; the image is warped with that transform and the keypoints are
mapped with the same matrix, so pixels and labels stay together.

Examples
--------
>>> from facekeypoints.data import read, to_kaggle_task
>>> faces, report = to_kaggle_task(read("../shared/data/ytf68/train.csv"), "kaggle15")  # doctest: +SKIP
>>> faces.images.shape  # doctest: +SKIP
(3045, 96, 96)
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from facekeypoints.data import framing
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats.checks import check_flags
from facekeypoints.schema import SchemaError

__all__ = ["ConversionReport", "check_output_outside", "complete_labels", "face_photo", "resize_faces",
           "to_kaggle_task"]


def check_output_outside(source: str | Path, output: str | Path) -> None:
    """ValueError naming both when ``output`` would be written inside the folder ``source`` that is
    read: the CSV would then be part of that folder, which could no longer be read as one format
    (``data info DIR``: several annotation formats) and the next conversion would read it too."""
    src, out = Path(source), Path(output)
    try:
        if not src.is_dir():
            return
        inside = out.resolve().is_relative_to(src.resolve())
    except OSError:  # cannot be looked at: the read or the write names the problem
        return
    if inside:
        raise ValueError(f"{output}: is inside {source}, the folder being read, which would then hold two formats "
                         "(and the output would be read as input next time); write it outside that folder")


LISTED = 20  # left-out faces of each kind the summary names; a longer list goes to a report file


@dataclass
class ConversionReport:
    """What a conversion did; ``str(report)`` is the summary the CLI prints."""

    faces_in: int
    faces_out: int
    size: int
    target: str
    not_aligned: list[str] = field(default_factory=list)  # ids with fewer than 2 distinct anchor points
    misshaped: list[str] = field(default_factory=list)  # ids whose fit collapsed (_collapsed)
    read_skipped: list[str] = field(default_factory=list)  # bad input a skip_bad read left out
    outside: int = 0  # labelled keypoints outside [0, size - 1] after warping (kept, not clipped)
    labelled: int = 0
    rows_with_outside: int = 0
    fit_rms: float = float("nan")  # mean RMS distance (px) of the anchors from the mean face
    eye_centres: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan))  # mean left, right
    kept: list[int] = field(default_factory=list)  # index in the data read of each face converted, in order

    def __str__(self) -> str:
        lines = [
            f"converted {self.faces_out} of {self.faces_in} faces to {self.target} at {self.size}x{self.size}",
            f"keypoints outside the image (kept, not clipped): {self.outside} of {self.labelled} labelled, "
            f"in {self.rows_with_outside} faces",
            f"alignment RMS to the Kaggle mean face: {self.fit_rms:.2f} px",
        ]
        if np.isfinite(self.eye_centres).all():
            (lx, ly), (rx, ry) = self.eye_centres
            lines.append(f"mean eye centres: left ({lx:.2f}, {ly:.2f}), right ({rx:.2f}, {ry:.2f})")
        # every left-out face named, one per line, up to LISTED of each kind; the rest counted (unlisted)
        if self.read_skipped:
            lines.append(f"left out when reading (skip_bad): {len(self.read_skipped)}:")
            lines += [f"  {message}" for message in self.read_skipped[:LISTED]]
        if self.not_aligned:
            lines.append(f"not converted (fewer than 2 distinct alignment points): {len(self.not_aligned)}: "
                         f"{self.not_aligned[:LISTED]}")
        if self.misshaped:
            lines.append(f"not converted (labels do not fit a face; misplaced points?): {len(self.misshaped)}: "
                         f"{self.misshaped[:LISTED]}")
        if self.unlisted:
            lines.append(f"... and {self.unlisted} more left out, not shown (the first {LISTED} of each kind are)")
        return "\n".join(lines)

    @property
    def unlisted(self) -> int:
        """Left-out faces that ``str(report)`` does not name (over LISTED of a kind)."""
        return sum(max(0, len(kind) - LISTED) for kind in (self.read_skipped, self.not_aligned, self.misshaped))


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _why_not_aligned(anchors: np.ndarray, schema: str) -> str:
    """Why a face's (15, 2) Kaggle anchor points give no similarity transform."""
    labelled = int(np.isfinite(anchors).all(axis=-1).sum())
    if labelled < 2:
        return (f"only {labelled} of its {len(anchors)} kaggle15 alignment points can be derived from its {schema} "
                "keypoints; aligning needs 2")
    return f"its {labelled} kaggle15 alignment points all lie at one spot; no scale or rotation can be fitted"


MIN_SIZE, MAX_SIZE = 8, 1024  # to_kaggle_task's crop side, in pixels


def to_kaggle_task(data: KeypointData, target: str = "kaggle15", *, size: int = 96, skip_bad: bool = False
                   ) -> tuple[KeypointData, ConversionReport]:
    """Warp every face to a ``size`` x ``size`` grayscale crop framed like the Kaggle faces.

    Returns (faces, report): faces.images (M, size, size) uint8, faces.keypoints (M, K_target, 2)
    in ``target``'s schema, mapped with the same transform as the pixels. Keypoints that land
    outside the crop are kept and counted in the report. Faces with fewer than two distinct
    alignment points cannot be placed, nor can faces whose fit collapsed (``_collapsed``: misplaced
    labels); they are left out and listed in ``report.not_aligned``
    or ``report.misshaped`` and, with the reason, in ``faces.skipped``. M = N - len(report.not_aligned)
    - len(report.misshaped); DataFormatError (naming
    ``data.source``) when M would be 0.

    Labels read with ``load_images=False`` are converted too: each face's photo is then read from
    ``data.paths`` when its turn comes and dropped after, so a folder of large photos is never all in
    memory, and its labels are checked against its size as the readers check them. A photo that cannot
    be used is an error; with ``skip_bad`` the face is left out and listed with the read's skipped rows.
    """
    if not isinstance(data, KeypointData):
        raise TypeError(f"to_kaggle_task needs KeypointData (from read()), got {type(data).__name__}")
    check_flags(skip_bad=skip_bad)
    # the crops are held as one (N, size, size) array: 10**5 would take 10 GB a face, and under 8
    # pixels no face is left to see; models here take 32..256
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int (crop side in pixels), got {type(size).__name__} {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be in {MIN_SIZE}..{MAX_SIZE} pixels, got {size}")
    size = int(size)
    if data.images is None and not any(data.paths):  # e.g. a Kaggle CSV without its Image column
        raise ValueError(f"{data.source or 'data'} holds labels only: no images and no photos beside them, "
                         "so no faces to crop")
    where = data.source or "data"
    try:
        anchors = framing.anchor_points(data.schema, data.keypoints)
    except SchemaError as err:
        raise DataFormatError(where, str(err)) from None
    if target == "kaggle15" and "kaggle15" not in data.schema.derive:
        labels = anchors  # e.g. IMM: its five Kaggle points (eye centres, nose tip, mouth corners); the rest missing
    else:
        try:
            labels = data.to_schema(target).keypoints.astype(np.float64)
        except SchemaError as err:
            raise DataFormatError(where, str(err)) from None
    report = ConversionReport(faces_in=len(data) + data.skipped_count, faces_out=0, size=size, target=target,
                              read_skipped=list(data.skipped))
    frames, shape_error = framing.frames_from_keypoints(data.keypoints, data.schema, size)
    placeable = np.isfinite(frames).all(axis=(1, 2))  # NaN: no transform fits
    misshaped = _collapsed(frames, anchors, shape_error, size, data.keypoints)
    unusable, off_photo = [], np.zeros(len(data), bool)
    for i in np.flatnonzero(misshaped):
        try:  # a point off its photo is named as the readers name it (its file's line), not as a misshape
            _check_labels_on_header(data, i)
        except (DataFormatError, OSError) as err:
            if not skip_bad:
                raise
            off_photo[i], misshaped[i] = True, False
            unusable.append(str(err))
    keep = np.flatnonzero(placeable & ~misshaped & ~off_photo).tolist()
    report.not_aligned = [data.ids[i] for i in np.flatnonzero(~placeable)]
    report.misshaped = [data.ids[i] for i in np.flatnonzero(misshaped)]
    why = [(data.ids[i], _why_not_aligned(anchors[i], data.schema.name)) for i in np.flatnonzero(~placeable)]
    why += [(data.ids[i], f"its labels do not fit a face: aligned to the Kaggle mean face, its kaggle15 alignment "
                          f"points lie {shape_error[i]:.2f} eye distances from it (RMS) and its points would span "
                          f"under {MIN_FACE_SIZE:g} of a face's size, the face a few pixels across: are some "
                          "points misplaced?")
            for i in np.flatnonzero(misshaped)]
    if not keep and unusable and not why:  # skip_bad left every face out for a point off its photo
        raise DataFormatError(where, f"none of its {len(data)} faces has a usable photo; e.g. {unusable[0]}")
    if not keep:
        raise DataFormatError(data.source or "data", _nothing_aligned(data, why))
    images = np.empty((len(keep), size, size), np.uint8)  # filled in place: a list then a copy held them twice
    converted, last = [], {}
    for i in keep:
        try:
            photo = face_photo(data, i, last)
            _check_face_in_photo(data, i, photo.shape[:2])
        except (DataFormatError, OSError) as err:
            if not skip_bad:
                raise
            unusable.append(str(err))
            continue
        images[len(converted)] = framing.warp_crops(_gray(photo), frames[i][None], size, antialias=False)[0]
        converted.append(i)
        del photo  # before the next one is read: one photo in memory at a time
    report.read_skipped += unusable
    if not converted:
        raise DataFormatError(where, f"none of its {len(keep)} faces that can be aligned has a usable photo; "
                              f"e.g. {unusable[0]}")
    keep = report.kept = converted
    kp = np.array([framing.to_crop(frames[i], labels[i]) for i in keep], np.float32)
    faces = KeypointData.from_arrays(
        target, kp, images=images[:len(keep)],
        ids=[data.ids[i] for i in keep], person=[data.person[i] for i in keep], source=data.source,
        skipped=list(data.skipped) + unusable + [f"{data.source or 'data'}: face {face!r} not converted: {reason}"
                                      for face, reason in why], skipped_unlisted=data.skipped_unlisted,
    )
    placed = np.array([framing.to_crop(frames[i], anchors[i]) for i in keep])
    _summarise(report, faces, placed, framing.template(size))
    return faces, report


def face_photo(data: KeypointData, i: int, last: dict | None = None) -> np.ndarray:
    """Face i's image: ``data.image(i)``, or, for labels read alone, its photo read now from
    ``data.paths`` and the face's points checked against its size as the readers check them when they
    load images (``checks.check_face``). A DataFormatError (or OSError) when it cannot be used.
    ``last``: a dict the caller keeps across faces; it holds the last photo read, so the faces of one
    group photo (listed one after another) decode it once, and never more than one photo is held."""
    if data.images is not None:
        return data.image(i)
    from facekeypoints.data.formats.landmarks import check_face
    from facekeypoints.data.formats.landmarks import IMAGE_SUFFIXES, labels_file

    where = data.source or "data"
    if not data.paths[i]:
        raise DataFormatError(where, f"face {data.ids[i]!r}: no photo found beside its labels "
                              f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    if last is not None and last.get("path") == data.paths[i]:
        image = last["image"]
    else:
        image = _read_photo(data.paths[i])
        if last is not None:
            last.update(path=data.paths[i], image=image)
    check_face(lambda: labels_file(data.source, data.ids[i]), data.ids[i], data.keypoints[i], image.shape[:2])
    return image


def _read_photo(path) -> np.ndarray:
    from facekeypoints.data.images import read_image

    try:
        return read_image(path)
    except DataFormatError as err:
        if not (err.hint and "--max-pixels" in err.hint):
            raise
        # neither a conversion nor an evaluation has a pixel-limit option: advice naming predict's would not work
        raise DataFormatError(err.path, err.reason, err.row, err.field) from None


# A fit that is not quite face-shaped (over half of framing.MAX_SHAPE_ERROR: a least-squares fit over
# 4 or 5 anchors spreads one wild point's error, so a collapsed IMM face scores 0.44) whose aligned
# points span under MIN_FACE_SIZE of what the mean face's same anchors span is a collapsed face.
# Span: the 10th-90th percentile range of the face's labelled points, sqrt(width x height), so a
# few wild points do not count as face. True label sets here: ytf68, fkd15-ytf and kaggle-fkd 0.76
# at least, AFLW2000 1.08, 300-W 1.07, IMM 1.30, AFLW2000 turned to full profile 1.04 (its eyes
# and mouth corners meet, its face stays full size); collapsed faces 0.08..0.47.
MIN_FACE_SIZE = 0.6


def _span(points: np.ndarray) -> float:
    low, high = np.percentile(points, [10, 90], axis=0)
    return float(np.sqrt(np.prod(np.maximum(high - low, 0.0))))


def _collapsed(frames: np.ndarray, anchors: np.ndarray, shape_error: np.ndarray, size: int,
               keypoints: np.ndarray) -> np.ndarray:
    """(N,) bool: faces whose fit collapsed: not face-shaped (over half ``framing.MAX_SHAPE_ERROR``)
    and, aligned, under ``MIN_FACE_SIZE`` of the mean face's size: a few wild points pulled the
    least-squares fit until the rest of the face is a few pixels wide, which, written as a labelled
    row, would teach a collapsed face. keypoints: (N, K, 2) in the data's own schema."""
    target = framing.template(size)
    out = np.zeros(len(frames), bool)
    for i in np.flatnonzero(np.isfinite(frames).all(axis=(1, 2)) & (shape_error > framing.MAX_SHAPE_ERROR / 2)):
        points = framing.to_crop(frames[i], np.asarray(keypoints[i], np.float64))
        points = points[np.isfinite(points).all(axis=1)]
        mean_face = target[np.isfinite(anchors[i]).all(axis=1)]
        out[i] = _span(points) < MIN_FACE_SIZE * _span(mean_face)
    return out


def _check_labels_on_header(data: KeypointData, i: int) -> None:
    """``checks.check_face`` for face i of labels read alone, against its photo's size from the header
    (decoded only when the header gives no size); nothing when its photo is not there."""
    from facekeypoints.data.formats.landmarks import check_face, labels_file
    from facekeypoints.data.images import image_size

    path = data.paths[i] if data.images is None and data.paths else None
    found = bool(path) and Path(path).is_file()
    try:
        width, height = image_size(path) if found else (0, 0)
    except (OSError, ValueError):
        return
    if width and height:
        check_face(lambda: labels_file(data.source, data.ids[i]), data.ids[i], data.keypoints[i], (height, width))
    elif found:  # no size in its header: decoding it tells (a damaged photo is named so)
        face_photo(data, i)


def _check_face_in_photo(data: KeypointData, i: int, shape: tuple[int, int]) -> None:
    """DataFormatError when most of face i's labelled points lie outside its photo: the readers allow
    points up to one image size past the edge, but such a face's crop would be the photo's border
    repeated (the warp's padding), written as a labelled face. A few points past the edge (a jaw
    cut off by the frame) are kept."""
    kp = data.keypoints[i]
    labelled = ~np.isnan(kp).any(axis=1)
    height, width = shape
    outside = labelled & ((kp[:, 0] < 0) | (kp[:, 0] > width - 1) | (kp[:, 1] < 0) | (kp[:, 1] > height - 1))
    if outside.sum() * 2 <= labelled.sum():
        return
    from facekeypoints.data.images import QUARTER_TURNS, image_orientation

    path = data.paths[i] if data.paths else None
    orientation = image_orientation(path) if path else 1
    why = (f"the photo has EXIF orientation {orientation} (shown turned 90°): labels are read in the turned picture"
           if orientation in QUARTER_TURNS else "are the labels for another image?")
    raise DataFormatError(data.source or "data", f"face {data.ids[i]!r}: {int(outside.sum())} of its "
                          f"{int(labelled.sum())} labelled points lie outside its {width} x {height} (width x "
                          f"height) photo, so its crop would be border padding, not the face; {why}")


def _nothing_aligned(data: KeypointData, why: list[tuple[str, str]]) -> str:
    """The message for a conversion that would place no face at all."""
    if not len(data):
        return "holds no faces to convert"
    face, reason = why[0]
    if reason.startswith("its labels do not fit"):
        return f"none of its {len(data)} faces can be converted; e.g. face {face!r}: {reason}"
    return (f"none of its {len(data)} faces can be converted: no face has 2 distinct kaggle15 alignment "
            f"points (eye centres, nose tip, mouth corners, ...) to align it to the Kaggle face; "
            f"e.g. face {face!r}: {reason}")


def _summarise(report: ConversionReport, faces: KeypointData, placed: np.ndarray, template: np.ndarray) -> None:
    """Fill the report: keypoints outside the crop, fit residual, where the eyes landed.

    placed: (M, 15, 2) the Kaggle anchor points after warping; template: (15, 2).
    """
    kp, size = faces.keypoints, report.size
    labelled = ~np.isnan(kp).any(axis=-1)
    outside = labelled & ((kp < 0) | (kp > size - 1)).any(axis=-1)
    report.faces_out = len(faces)
    report.labelled, report.outside = int(labelled.sum()), int(outside.sum())
    report.rows_with_outside = int(outside.any(axis=1).sum())
    if len(placed):
        # all-NaN anchor columns (partial schemas, eyes unlabelled on every face) average to NaN, as printed
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_face = np.sqrt(np.nanmean(((placed - template) ** 2).sum(axis=-1), axis=1))
            report.fit_rms = float(per_face.mean())
            report.eye_centres = np.nanmean(placed[:, :2], axis=0)


def complete_labels(data: KeypointData, source: KeypointData, *, tolerance: float = 0.05
                    ) -> tuple[KeypointData, dict]:
    """Fill ``data``'s missing Kaggle labels from a fully labelled source of the SAME faces.

    fkd15-ytf's training rows are ytf68's rows, each warped by a similarity transform into the
    Kaggle framing, with labels hidden in Kaggle's missing pattern. For each row the transform is
    recovered from the labelled points (eye centres and nose tip are always there) and the hidden
    points are mapped through it. A row whose labelled points do not fit within ``tolerance`` px
    means the files do not correspond row for row: that is an error, never a silent fill.

    data: kaggle15 (N, 15, 2) with NaN; source: any schema that derives kaggle15, N rows.
    Returns (completed data, report with rows, values filled and the worst fit residual in px).
    """
    if len(source) != len(data):
        raise ValueError(f"{source.source}: {len(source)} rows, but {data.source} has {len(data)}; "
                         "label completion needs the same faces row for row")
    if data.schema.name != "kaggle15":
        raise SchemaError(f"label completion fills kaggle15 labels, not {data.schema.name!r}")
    anchors = framing.anchor_points(source.schema, source.keypoints)
    out = data.keypoints.astype(np.float64).copy()
    filled, worst = 0, 0.0
    for i in range(len(data)):
        have = ~np.isnan(out[i]).any(axis=1)
        if have.all():
            continue
        m = framing.fit_similarity(anchors[i], out[i])
        residual = float(np.abs(framing.to_crop(m, anchors[i][have]) - out[i][have]).max())
        if not residual <= tolerance:
            raise ValueError(f"{data.source}, row {i + 1}: labelled points are {residual:.3f} px from the "
                             f"transformed {source.source} row {i + 1} (tolerance {tolerance} px): "
                             "the files do not hold the same faces in the same order")
        worst = max(worst, residual)
        hidden = ~have & ~np.isnan(anchors[i]).any(axis=1)
        out[i][hidden] = framing.to_crop(m, anchors[i][hidden])
        filled += int(hidden.sum())
    report = {"rows": len(data), "keypoints_filled": filled, "max_residual_px": round(worst, 5),
              "source": str(source.source)}
    return replace(data, keypoints=out.astype(np.float32)), report


def resize_faces(data: KeypointData, size: int) -> KeypointData:
    """Resize whole images to ``size`` x ``size`` grayscale and scale keypoints with them (seed 003
    shrank the IMM photos this way). Aspect ratio is not kept: x and y scale separately."""
    if data.images is None:  # the advice only where the photos are there to load
        raise ValueError(f"{data.source or 'data'} holds no images" + ("; read it with load_images=True"
                                                                      if any(data.paths) else " (labels only)"))
    images, keypoints = [], data.keypoints.astype(np.float64).copy()
    for i in range(len(data)):
        images.append(framing.resize_image(_gray(data.image(i)), size))
        keypoints[i] = framing.to_crop(framing.resize_frame(data.image_size(i), size), keypoints[i])
    return replace(data, images=np.stack(images).astype(np.uint8), keypoints=keypoints.astype(np.float32))
