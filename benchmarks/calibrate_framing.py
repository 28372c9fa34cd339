"""Measure the box -> Kaggle frame constants (framing.BOX_FRAME) and the face-shape threshold.

For every ytf68 image a box source is run (``--boxes``: the default Haar detector, dlib's HOG
detector, or the bounding box of the labelled landmarks); where it gives exactly one face, the face's
ideal frame comes from its true keypoints (68 points -> kaggle15 -> similarity to the mean Kaggle
face, as the data converter frames training faces). The frame's centre offset from the box centre
and its side, both in box widths, are collected; their medians are BOX_FRAME. The shape error of the
true keypoints (framing.frames_from_keypoints) gives the scale for MAX_SHAPE_ERROR.

    python benchmarks/calibrate_framing.py [--boxes haar|dlib|landmarks] [--data ../shared/data/ytf68/train.csv] [--limit N (0: all)]

Takes a few minutes on 2 cores (3045 images).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facekeypoints.cli import at_least
from facekeypoints.data import read_ytf68_csv
from facekeypoints.data import framing
from facekeypoints.infer.detectors import make_detector
from facekeypoints.schema import load_schema

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ytf68" / "train.csv"


def _landmark_box(keypoints: np.ndarray) -> np.ndarray:
    """(1, 5) the bounding box of a face's labelled points, score 1."""
    points = keypoints[np.isfinite(keypoints).all(-1)]
    return np.r_[points.min(0), points.max(0) + 1, 1.0][None]


def calibrate(data_path: Path, limit: int | None = None, boxes_from: str = "haar") -> dict:
    data = read_ytf68_csv(data_path)
    n = min(len(data), limit or len(data))
    kaggle = data.schema.convert(data.keypoints[:n].astype(np.float64), "kaggle15")
    frames, shape_error = framing.frames_from_keypoints(kaggle, load_schema("kaggle15"), 96)
    detector = None if boxes_from == "landmarks" else make_detector(boxes_from)
    counts, rows = [], []
    for i in range(n):
        boxes = _landmark_box(data.keypoints[i]) if detector is None else detector.detect(data.image(i))
        counts.append(len(boxes))
        if len(boxes) != 1:
            continue
        x1, y1, x2, y2, _ = boxes[0]
        w = 0.5 * ((x2 - x1) + (y2 - y1))  # the box size framing.frame_from_box uses
        cx, cy = framing.to_image(frames[i], np.array([[47.5, 47.5]]))[0]
        side = 96 / np.hypot(frames[i][0, 0], frames[i][1, 0])
        rows.append(((cx - (x1 + x2) / 2) / w, (cy - (y1 + y2) / 2) / w, side / w))
    rows, counts = np.array(rows), np.array(counts)
    return {
        "boxes": boxes_from, "images": n, "no_face": int((counts == 0).sum()), "one_face": int((counts == 1).sum()),
        "several_faces": int((counts > 1).sum()),
        "box_frame_median": np.median(rows, 0).round(4).tolist(),
        "box_frame_p10": np.percentile(rows, 10, 0).round(3).tolist(),
        "box_frame_p90": np.percentile(rows, 90, 0).round(3).tolist(),
        "shape_error_true_keypoints": {q: float(np.percentile(shape_error, q).round(3)) for q in (50, 99, 99.9, 100)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=at_least(0), default=0, help="use only the first N images (0: all)")
    parser.add_argument("--boxes", default="haar", choices=["haar", "dlib", "landmarks"], help="where boxes come from")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found (the ytf68 data lives in ../shared/data)")
    print(json.dumps(calibrate(args.data, args.limit, args.boxes), indent=2))


if __name__ == "__main__":
    main()
