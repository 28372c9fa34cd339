"""Does the 68-point result depend on where the face box came from? NME from each box source.

For ytf68's validation people (80/20 person split, seed 0; or ``--limit`` of them) the shipped
ibug68 model (or ``--model``) is framed from: the Haar detector's box, dlib's HOG box (when the dlib extra is
installed), and the bounding box of the labelled points; each as given and jittered (shift and
size by up to +-10%, seeded). Each source uses its own calibrated framing
(``facekeypoints.data.framing.BOX_FRAMES``), with keypoint refinement. NME: mean point error over
the outer-eye-corner distance, in %, on the faces every source found.

Usage:
  python benchmarks/bench_boxes.py --limit 300
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facekeypoints import KeypointDetector
from facekeypoints.data import read, split_indices
from facekeypoints.data.framing import box_iou
from facekeypoints.infer.detectors import DETECTORS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ytf68" / "train.csv"


def _sources() -> dict:
    sources = {"haar": DETECTORS["haar"]()}
    try:
        sources["dlib"] = DETECTORS["dlib"]()
    except ImportError as err:
        print(f"dlib left out: {err}")
    return sources


def _matching_box(boxes: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(1, 4): the box with the highest IoU with ``labelled`` if it is at least 0.4, else (0, 4)."""
    scores = [box_iou(b, labelled) for b in boxes]
    if not scores or max(scores) < 0.4:
        return np.zeros((0, 4))
    return boxes[int(np.argmax(scores))][None]


def _jitter(box: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    dx, dy = rng.uniform(-amount, amount, 2) * [w, h]
    s = 1 + rng.uniform(-amount, amount)
    cx, cy = (box[0] + box[2]) / 2 + dx, (box[1] + box[3]) / 2 + dy
    return np.array([cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2])


def _fraction(text: str) -> float:
    """--jitter: a fraction in [0, 1); a negative or NaN one failed in numpy, 1 or more made empty boxes."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction of the box in [0, 1), got {text}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="the first N validation faces (0: all)")
    parser.add_argument("--jitter", type=_fraction, default=0.10,
                        help="shift and size change of the jittered boxes, a fraction of the box in [0, 1)")
    parser.add_argument("--model", default="ibug68", help="a 68-point model: a shipped name or a checkpoint trained "
                        "on ytf68's 80/20 person split with seed 0 (its validation people are scored)")
    args = parser.parse_args()
    if args.limit < 0:  # val[:-1] scored all faces but the last
        parser.error(f"--limit must be >= 0 (0: all), got {args.limit}")
    try:  # checked before the data is read: a mistyped model is one line, at once
        schema = KeypointDetector(args.model, detector=None).schema
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"--model: {err}")
    if schema.name != "ibug68":  # scored against ytf68's 68 labelled points
        parser.error(f"--model {args.model}: a model of schema {schema.name} ({schema.num_keypoints} points); "
                     "this benchmark scores ibug68 (68-point) models")
    if not DATA.is_file():
        print(f"skipped: {DATA} is absent")
        return 0
    data = read(DATA)
    val = split_indices(data, [0.8, 0.2], seed=0)[1]
    val = val[:args.limit] if args.limit else val
    sources = _sources()
    models = {name: KeypointDetector(args.model, detector=None, box_frame=name) for name in [*sources, "landmarks"]}
    passes = {"count": 0}  # model passes, one face per call: refinement's cost
    for det in models.values():
        det._predict_frames = _counting(det._predict_frames, passes)
    rng = np.random.default_rng(0)
    errors: dict[str, list[float]] = {f"{n}{j}": [] for n in models for j in ("", " jittered")}
    per_face: list[int] = []
    for i in val:
        image, truth = data.image(i), data.keypoints[i]
        points = truth[np.isfinite(truth).all(-1)]
        labelled = np.r_[points.min(0), points.max(0) + 1]
        # each detector's box of this face (IoU >= 0.4 with its points' box, as bench_detect counts a
        # face found), not its first box, which may be another face or a false detection
        boxes = {name: _matching_box(det.detect(image)[:, :4], labelled) for name, det in sources.items()}
        boxes["landmarks"] = labelled[None]
        if any(len(b) == 0 for b in boxes.values()):
            continue  # score only faces every source found
        iod = np.linalg.norm(truth[36] - truth[45])
        for name, box in boxes.items():
            for suffix, b in (("", box[0]), (" jittered", _jitter(box[0], rng, args.jitter))):
                before = passes["count"]
                predicted = models[name](image, boxes=[b]).keypoints[0]
                per_face.append(passes["count"] - before)
                errors[name + suffix].append(float(np.nanmean(np.linalg.norm(predicted - truth, axis=-1)) / iod))
    n = len(errors["haar"])
    print(f"{args.model}, {n} ytf68 validation faces found by every source, refinement on")
    best = min(np.mean(e) for e in errors.values())
    for name, e in errors.items():
        print(f"  {name:22s} NME {100 * np.mean(e):.2f}%  ({100 * (np.mean(e) - best):+.2f} points from the best)")
    print(f"model passes per face (refinement until settled): mean {np.mean(per_face):.2f}, max {max(per_face)}")
    return 0


def _counting(predict_frames, passes: dict):
    def counted(*args, **kwargs):
        passes["count"] += 1
        return predict_frames(*args, **kwargs)
    return counted


if __name__ == "__main__":
    sys.exit(main())
