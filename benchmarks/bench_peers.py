"""Our 68 points beside dlib's shape predictor: the same faces, the same boxes, one run.

    python benchmarks/bench_peers.py                                 # every set below that is present
    python benchmarks/bench_peers.py --data ytf68-val 300w --json peers.json

Each photo goes through dlib's HOG face detector once (upsampled once, as dlib's own examples do);
a labelled face counts when a dlib box meets the bounding box of its labelled points at IoU >= 0.4
(the others are "not found" for both tools alike). dlib's predictor (shape_predictor_68_face_
landmarks.dat, from the face-recognition-models package) and ours (the shipped ibug68 model, or
``--model``, framed from that same dlib box, with refinement) then mark the face. Printed per set: NME (outer
eye corners; IMM: its 5 points shared with Kaggle's, normalised by the eye centres), FR@8/10,
AUC@8, and the same NME with each tool's mean signed offset per point removed (the labelling
convention it learnt, measured on these faces), and ms per face for each.

Sets: ytf68-val (our model's own validation people, from its card, in none of its training
photos; dlib never saw them), 300w and aflw (the samples in ../shared/data/samples), imm (240
photos, 40 people). dlib's predictor was trained on iBUG 300-W, which overlaps the 300w samples,
so that row favours dlib.

Needs ``pip install 'facekeypoints[peers]'`` (dlib-bin and face-recognition-models); skips with
the reason when they or ../shared/data are absent.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = {"ytf68-val": DATA / "ytf68" / "train.csv", "300w": DATA / "samples" / "300w-pts",
        "aflw": DATA / "samples" / "aflw2000-3d", "imm": DATA / "imm" / "imm_face_db"}


def _predictor_file() -> Path | None:
    """dlib's 68-point model inside face-recognition-models, found without importing the package
    (its __init__ needs pkg_resources, which setuptools >= 81 no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return path if path.is_file() else None


def _faces(name: str, limit: int, card):
    """(KeypointData of the set, the row indices to score); ``card``: our model's card."""
    from facekeypoints.data import read
    from facekeypoints.data.splits import split_indices

    data = read(SETS[name], load_images=False)
    rows = np.arange(len(data))
    if name == "ytf68-val":  # the people our model was validated on, rebuilt from its card
        trained_on = card.trained_on
        if trained_on is None or trained_on.split is None:
            raise SystemExit(f"{name}: the model's card names no training split, so its validation people are unknown")
        rows = np.asarray(split_indices(data, trained_on.split, seed=trained_on.split_seed)[1])
    return data, rows[:limit] if limit else rows


def _truth_schema(data):
    """Labels in the schema both tools are scored on: ibug68, or kaggle15 (IMM's 5 anchor points)."""
    from facekeypoints.data import framing
    from facekeypoints.schema import load_schema

    if data.schema.name == "ibug68":
        return data.keypoints.astype(np.float64), load_schema("ibug68")
    return framing.anchor_points(data.schema, data.keypoints), load_schema("kaggle15")


def _scores(pred: np.ndarray, truth: np.ndarray, schema) -> dict:
    from facekeypoints.evaluate.metrics import ced, nme

    def block(p):
        per = nme(p, truth, schema)
        per = per[np.isfinite(per)]
        return {"nme": float(per.mean()), "fr_8": float((per > 0.08).mean()), "fr_10": float((per > 0.10).mean()),
                "auc_8": float(ced(per, 0.08)[2])}

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # IMM: the Kaggle points it lacks are all NaN
        offset = np.nanmean(pred - truth, axis=0)  # the tool's mean signed error per point on these faces
    return {**block(pred), "nme_offset_removed": block(pred - offset)["nme"]}


def run_set(name: str, dlib_detector, dlib_predictor, ours, limit: int) -> dict:
    import dlib

    from facekeypoints.data import framing
    from facekeypoints.data.images import read_image

    data, rows = _faces(name, limit, ours.card)
    truth_all, schema = _truth_schema(data)
    to_truth = (lambda p: p) if schema.name == "ibug68" else (lambda p: framing.anchor_points(ours.schema, p))
    ours_pts, dlib_pts, truth, ms = [], [], [], {"ours": 0.0, "dlib": 0.0}
    missed = 0
    for i in rows:
        points = data.keypoints[i][np.isfinite(data.keypoints[i]).all(-1)]
        image = read_image(data.paths[i])
        boxes = dlib_detector.detect(image)
        labelled = np.r_[points.min(0), points.max(0) + 1]
        hits = [b for b in boxes if framing.box_iou(b[:4], labelled) >= 0.4]
        if not hits:
            missed += 1
            continue
        box = max(hits, key=lambda b: framing.box_iou(b[:4], labelled))
        start = time.perf_counter()
        shape = dlib_predictor(image, dlib.rectangle(*(int(round(v)) for v in box[:4])))
        ms["dlib"] += (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        result = ours(image, boxes=[box[:4]])
        ms["ours"] += (time.perf_counter() - start) * 1000
        dlib_pts.append(np.array([[p.x, p.y] for p in shape.parts()], np.float64))
        ours_pts.append(result.keypoints[0])
        truth.append(truth_all[i])
    n = len(truth)
    if not n:
        return {"set": name, "faces": len(rows), "scored": 0, "missed_by_dlib_detector": missed}
    truth = np.array(truth)
    ours_arr, dlib_arr = to_truth(np.array(ours_pts)), to_truth(np.array(dlib_pts))
    return {"set": name, "faces": len(rows), "scored": n, "missed_by_dlib_detector": missed,
            "points": "68" if schema.name == "ibug68" else "5 (IMM's Kaggle points)",
            "ours": {**_scores(ours_arr, truth, schema), "ms_per_face": ms["ours"] / n},
            "dlib": {**_scores(dlib_arr, truth, schema), "ms_per_face": ms["dlib"] / n}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", choices=list(SETS), default=list(SETS))
    ap.add_argument("--limit", type=int, default=0, help="the first N faces of each set (0: all)")
    ap.add_argument("--threads", type=int, default=1, help="our backend's threads (dlib runs on one)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--model", default="ibug68", help="our 68-point model: a shipped name or a checkpoint (.pt)")
    args = ap.parse_args()
    if args.limit < 0 or args.threads < 1:
        ap.error("--limit must be >= 0 and --threads >= 1")
    if args.json is not None and not args.json.strip():  # "" named no file: the figures went nowhere
        ap.error("--json is empty; give a value")
    if args.json:  # checked before the run, not after it
        from facekeypoints.atomic import check_target

        try:
            check_target(args.json)
        except ValueError as err:
            ap.error(str(err))
    try:
        import dlib
    except ImportError:
        print("skipped: dlib is not installed (pip install 'facekeypoints[peers]')")
        return 0
    model_file = _predictor_file()
    if model_file is None:
        print("skipped: dlib's 68-point model is absent (pip install 'facekeypoints[peers]' installs "
              "face-recognition-models, which holds it)")
        return 0
    from facekeypoints import KeypointDetector
    from facekeypoints.infer.detectors import DlibDetector

    try:
        ours = KeypointDetector(args.model, detector=None, box_frame="dlib", threads=args.threads)
    except (FileNotFoundError, ValueError) as err:
        ap.error(f"--model: {err}")
    if ours.schema.name != "ibug68":  # scored beside dlib's 68 points
        ap.error(f"--model {args.model}: a model of schema {ours.schema.name} ({ours.schema.num_keypoints} "
                 "points); this benchmark scores ibug68 (68-point) models")
    dlib_detector, dlib_predictor = DlibDetector(upsample=1), dlib.shape_predictor(str(model_file))
    rows = []
    print(f"{'set':10s} {'faces':>5s} {'scored':>6s} {'tool':5s} {'NME':>7s} {'FR@8':>6s} {'FR@10':>6s} "
          f"{'AUC@8':>6s} {'NME, offset removed':>20s} {'ms/face':>8s}")
    for name in args.data:
        if not SETS[name].exists():
            print(f"{name}: skipped, {SETS[name]} is absent")
            continue
        row = run_set(name, dlib_detector, dlib_predictor, ours, args.limit)
        rows.append(row)
        for tool in ("ours", "dlib"):
            if tool not in row:
                continue
            r = row[tool]
            print(f"{name:10s} {row['faces']:5d} {row['scored']:6d} {tool:5s} {100 * r['nme']:6.2f}% "
                  f"{100 * r['fr_8']:5.1f}% {100 * r['fr_10']:5.1f}% {r['auc_8']:6.3f} "
                  f"{100 * r['nme_offset_removed']:19.2f}% {r['ms_per_face']:8.2f}")
        if "ours" in row:
            print(f"{'':10s} ms per face, ours / dlib: {row['ours']['ms_per_face'] / row['dlib']['ms_per_face']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
