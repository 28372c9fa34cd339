"""Face detection: recall, false detections and time, for every detector setting, in one run.

A labelled face counts as found when a detection overlaps its box with IoU >= 0.4 (the labelled
box where the file has one, dlib XML; else the bounding box of its landmarks). Each detection
matches at most one face. "extra" counts detections that match no labelled face: on dlib-examples
every face is labelled, so they are false detections; the other sets label one face per image
(300-W, AFLW2000-3D, IMM, ytf68), so extra there may be real, unlabelled faces.

Sets (from ../shared/data): dlib-examples (testing.xml + training.xml), the 300-W and AFLW2000-3D
samples, IMM, and ytf68's validation people (the 80/20 person split with seed 0, as the 68-point
model's). Also ms per 640 x 480 frame (grace_hopper letterboxed).

Usage:
  python benchmarks/bench_detect.py                    # every set, every detector setting
  python benchmarks/bench_detect.py --sets dlib-examples aflw2000 --json detect.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.data import read, split_indices
from facekeypoints.data.framing import box_iou
from facekeypoints.data.images import read_image
from facekeypoints.infer.bench import demo_frame
from facekeypoints.infer.detectors import CnnDetector, DlibDetector, HaarDetector

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    "dlib-examples": ["samples/dlib-examples/testing.xml", "samples/dlib-examples/training.xml"],
    "300w": ["samples/300w-pts"],
    "aflw2000": ["samples/aflw2000-3d"],
    "imm": ["imm"],
    "ytf68-val": ["ytf68/train.csv"],
}
# name -> detector; the first is the default. "cnn" settings use --cnn (default: the shipped model).
CNN = {"path": None}
SETTINGS = {
    "haar (default: max_side 240)": lambda: HaarDetector(),
    "haar max_side 480": lambda: HaarDetector(max_side=480),
    "haar min_face 36": lambda: HaarDetector(min_face=36),
    "haar min_face 24": lambda: HaarDetector(min_face=24),
    "dlib hog (upsample 1)": lambda: DlibDetector(upsample=1),
    "dlib hog (upsample 0)": lambda: DlibDetector(upsample=0),
    "cnn (ours: 480 + coarse 240)": lambda: CnnDetector(CNN["path"]),
    "cnn 480, no coarse pass": lambda: CnnDetector(CNN["path"], coarse=None),
    "cnn 320 + coarse 160": lambda: CnnDetector(CNN["path"], max_side=320, coarse=160),
    "cnn 640 + coarse 240": lambda: CnnDetector(CNN["path"], max_side=640),
    "cnn threshold 0.55": lambda: CnnDetector(CNN["path"], threshold=0.55),
}


def labelled_faces(name: str) -> dict[str, list[np.ndarray]]:
    """image path -> (4,) boxes of its labelled faces."""
    faces: dict[str, list[np.ndarray]] = defaultdict(list)
    for rel in SETS[name]:
        data = read(DATA / rel, load_images=False)
        keep = range(len(data))
        if name == "ytf68-val":
            keep = split_indices(data, [0.8, 0.2], seed=0)[1]
        for i in keep:
            box = data.boxes[i] if data.boxes is not None else np.full(4, np.nan)
            if not np.isfinite(box).all():
                points = data.keypoints[i][np.isfinite(data.keypoints[i]).all(-1)]
                box = np.r_[points.min(0), points.max(0)]
            faces[str(data.paths[i])].append(np.asarray(box, np.float64))
    return faces


def match(truth: list[np.ndarray], found: np.ndarray, threshold: float = 0.4) -> tuple[int, int]:
    """(faces found, detections matching no face), greedy by IoU."""
    pairs = sorted(((box_iou(t, d), i, j) for i, t in enumerate(truth) for j, d in enumerate(found)), reverse=True)
    used_t, used_d = set(), set()
    for value, i, j in pairs:
        if value >= threshold and i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
    return len(used_t), len(found) - len(used_d)


def run_set(detector, faces: dict[str, list[np.ndarray]]) -> dict:
    found = extra = 0
    times = []
    for path, truth in faces.items():
        image = read_image(path)
        start = time.perf_counter()
        boxes = detector.detect(image)[:, :4]
        times.append((time.perf_counter() - start) * 1000)
        f, e = match(truth, boxes)
        found, extra = found + f, extra + e
    total = sum(len(t) for t in faces.values())
    return {"faces": total, "found": found, "recall": found / total, "extra": extra, "images": len(faces),
            "ms_per_image": statistics.mean(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--only", nargs="+", help="settings whose name contains one of these words (e.g. haar cnn)")
    parser.add_argument("--cnn", help="face_detector.onnx for the cnn settings (default: the shipped one)")
    args = parser.parse_args()
    CNN["path"] = args.cnn
    _check_args(parser, args)
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the benchmark needs ../shared/data)")
        return 0
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; IoU >= 0.4 counts as found")
    faces = {name: labelled_faces(name) for name in args.sets}
    frame = demo_frame()
    report = {}
    for setting, make in SETTINGS.items():
        if args.only and not any(word in setting for word in args.only):
            continue
        try:
            detector = make()
        except (ImportError, FileNotFoundError) as err:  # an extra or a model that is not here
            print(f"{setting:30s} left out: {err}")
            continue
        detector.detect(frame)  # warm-up
        frame_ms = statistics.median(_time(detector, frame) for _ in range(20))
        report[setting] = {"frame_640x480_ms": frame_ms}
        cells = []
        for name in args.sets:
            result = run_set(detector, faces[name])
            report[setting][name] = result
            cells.append(f"{name} {result['found']}/{result['faces']} (+{result['extra']}) {result['ms_per_image']:.1f} ms")
        print(f"{setting:30s} frame {frame_ms:5.1f} ms | " + " | ".join(cells), flush=True)
    if args.json:  # written whole or not at all
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, before any data is read or measured, what failed only after the run: an --only that matches
    no setting, a --cnn file that is no face detector, a --json place that cannot take the file."""
    if args.only and not any(word in setting for setting in SETTINGS for word in args.only):
        parser.error(f"--only {' '.join(args.only)} matches no setting; settings: {'; '.join(SETTINGS)}")
    cnn_chosen = not args.only or any(word in setting for setting in SETTINGS if "cnn" in setting
                                      for word in args.only)
    if args.cnn and cnn_chosen and Path(args.cnn).is_file():  # a missing file is left out, as before
        try:
            CnnDetector(args.cnn)
        except ValueError as err:
            parser.error(f"--cnn {err}")
    if args.json is not None and not args.json.strip():  # "" named no file: the figures went nowhere
        parser.error("--json is empty; give a value")
    if args.json:
        try:
            check_target(args.json)
        except ValueError as err:
            parser.error(f"--json {err}")


def _time(detector, frame) -> float:
    start = time.perf_counter()
    detector.detect(frame)
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    sys.exit(main())
