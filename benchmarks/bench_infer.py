"""Inference benchmarks: speed (``facekeypoints bench``) and the keypoint error with and without refinement.

    python benchmarks/bench_infer.py speed  [--model M | --random keypoint_net] [--threads 2] [--json OUT]
    python benchmarks/bench_infer.py refine --model M [--data imm|300w|ytf68] [--persons held.json] [--json OUT]

``refine`` runs the Haar detector and the model (kaggle15, or any schema that derives the Kaggle-15
points, such as ibug68) on photos with known keypoints and reports the
normalised mean error (mean point distance / true inter-ocular distance, NME %) and the mean error
in pixels of one keypoint pass per face, of the re-framed second pass alone, of their average, and
of refinement until each face's frame settles (what ``KeypointDetector(refine=True)`` returns). A face is scored when exactly one detector box
holds the centre of its true keypoints (the count is printed). Sets:
- ``imm``: ../shared/data/imm (240 faces, 640x480); 5 comparable points (eye centres, nose tip,
  mouth corners), as ``facekeypoints.data.convert`` derives them from the 58 IMM points;
- ``300w``: ../shared/data/samples/300w-pts (17 faces), all 15 points from the 68;
- ``ytf68``: ../shared/data/ytf68/train.csv; the default model trains on these faces (in another
  framing), so pass ``--persons`` (a JSON list of held-out person names) for a fair figure.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.cli import at_least
from facekeypoints.models.threads import max_threads
from facekeypoints.data import read, read_ytf68_csv
from facekeypoints.data import framing
from facekeypoints.infer.bench import run_bench
from facekeypoints.infer.predictor import KeypointDetector

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"imm": SHARED / "imm" / "imm_face_db", "300w": SHARED / "samples" / "300w-pts",
        "ytf68": SHARED / "ytf68" / "train.csv"}


def _load(name: str, persons: Path | None):
    data = read_ytf68_csv(SETS[name]) if name == "ytf68" else read(SETS[name])
    if persons is not None:
        keep = set(json.loads(persons.read_text()))
        data = data.subset([i for i, p in enumerate(data.person) if p in keep])
    return data, framing.anchor_points(data.schema, data.keypoints)


def _match(boxes: np.ndarray, truth: np.ndarray) -> int:
    """Index of the one box holding the true face's centre, else -1 (none, or several)."""
    cx, cy = np.nanmean(truth, axis=0)
    inside = np.flatnonzero((boxes[:, 0] <= cx) & (cx <= boxes[:, 2]) & (boxes[:, 1] <= cy) & (cy <= boxes[:, 3]))
    return int(inside[0]) if len(inside) == 1 else -1


def refine_error(det: KeypointDetector, name: str, persons: Path | None = None) -> dict:
    """NME (% of inter-ocular distance) and mean px error of one pass, of the second (re-framed)
    pass alone, of their average, and of refinement until the frame settles (what ``refine=True``
    returns), on one data set; also the mean signed (x, y) error in % of inter-ocular distance,
    which shows a systematic offset."""
    data, truth = _load(name, persons)
    errors: dict[str, list] = {"single_pass": [], "second_pass": [], "two_passes_averaged": [], "refined": []}
    signed: dict[str, list] = {key: [] for key in errors}  # mean (x, y) offset per face, / inter-ocular distance
    iods = []
    for i in range(len(data)):
        rgb = data.image(i)
        boxes = det.find_faces(rgb)
        j = _match(boxes, truth[i]) if len(boxes) else -1
        if j < 0:
            continue
        owner = np.zeros(1, int)
        first = det.locate([rgb], owner, framing.frame_from_box(boxes[j], det.input_size)[None], refine=False)
        frames, _ = framing.frames_from_keypoints(first, det.schema, det.input_size)
        second = det.locate([rgb], owner, frames, refine=False)
        refined = det.locate([rgb], owner, framing.frame_from_box(boxes[j], det.input_size)[None], refine=True)
        iods.append(np.linalg.norm(truth[i, 0] - truth[i, 1]))
        for key, kp in zip(errors, (first, second, (first + second) / 2, refined)):
            if det.schema.name != "kaggle15":  # e.g. the 68-point model: score its Kaggle-15 points
                kp = det.schema.convert(kp, "kaggle15")
            errors[key].append(np.nanmean(np.linalg.norm(kp[0] - truth[i], axis=-1)))
            signed[key].append(np.nanmean(kp[0] - truth[i], axis=0) / iods[-1])
    report = {"data": name, "faces": len(data), "scored": len(iods)}
    for key, values in errors.items():
        report[key] = {"nme_percent": float(np.mean(np.array(values) / iods) * 100),
                       "mean_error_px": float(np.mean(values)),
                       "mean_signed_error_xy_percent": (np.mean(signed[key], axis=0) * 100).round(3).tolist()}
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--model")
    p.add_argument("--random", help="a registered architecture with random weights, e.g. keypoint_net")
    p.add_argument("--threads", type=at_least(1, max_threads()), default=2)
    p.add_argument("--repeats", type=at_least(1), default=50)
    p.add_argument("--json")
    p = sub.add_parser("refine")
    p.add_argument("--model", required=True)
    p.add_argument("--data", choices=sorted(SETS), default="imm")
    p.add_argument("--persons", type=Path, help="JSON list of person names to keep (ytf68)")
    p.add_argument("--json")
    args = parser.parse_args(argv)
    try:  # a bad --json or model is one line before the work, not a traceback after it
        if args.json:
            check_target(args.json)
        if args.mode == "speed":  # loads the model before timing it
            report = run_bench(args.model, random_model=args.random, threads=args.threads, repeats=args.repeats)
        else:
            det = KeypointDetector(args.model, refine=False)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if args.mode == "refine":
        report = refine_error(det, args.data, args.persons)
        print(json.dumps(report, indent=2))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
