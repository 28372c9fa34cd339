"""Test-time augmentation on the validation people of trained runs: RMSE for each way of looking
at a face (single pass, mirrored, turned by +/- a few degrees, both), mean and spread over the
runs given (e.g. the three seeds of bench_train.py), and model time per face as a ratio to the
single pass, measured in the same run.

Usage:
  python benchmarks/bench_tta.py runs/bench_default_offset150_s{0,1,2}/best.pt --json results/bench_tta.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from facekeypoints.data.pipeline import to_scoring_pixels
from facekeypoints.evaluate.metrics import rmse
from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.evaluate.runner import predict_data, run_split
from facekeypoints.models.checkpoint import CheckpointError
from facekeypoints.models.predict import TorchRunner

LOOKS = {  # name -> (mirror, rotate degrees)
    "single pass": (False, 0.0),
    "mirror": (True, 0.0),
    "rotate 4": (False, 4.0),
    "mirror + rotate 3": (True, 3.0),
    "mirror + rotate 4": (True, 4.0),
    "mirror + rotate 6": (True, 6.0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="best.pt of runs whose own validation split is scored")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.json:  # before minutes of predicting, not after
        try:
            check_target(args.json, inputs=tuple(args.checkpoints))
        except ValueError as err:
            parser.error(str(err))
    missing = [c for c in args.checkpoints if not Path(c).is_file()]
    if missing:
        print(f"skipped: no such checkpoint {', '.join(missing)} (train them with benchmarks/bench_train.py)")
        return 0
    try:  # every checkpoint, before any is scored: a bad last one would end the run after minutes
        runners = [TorchRunner.load(path, threads=1) for path in args.checkpoints]
    except CheckpointError as err:
        parser.error(str(err))
    scores: dict[str, list[float]] = {name: [] for name in LOOKS}
    seconds: dict[str, float] = {name: 0.0 for name in LOOKS}
    for path, runner in zip(args.checkpoints, runners):
        val, frames = run_split(runner.card, "val", with_frames=True)  # scored in the labelled images' pixels
        for name, (mirror, rotate) in LOOKS.items():
            start = time.perf_counter()
            predicted = predict_data(runner, val, mirror_tta=mirror, rotate_tta=rotate)
            seconds[name] += time.perf_counter() - start
            scores[name].append(rmse(to_scoring_pixels(frames, predicted), to_scoring_pixels(frames, val.keypoints)))
        print(f"{path}: " + ", ".join(f"{n} {s[-1]:.3f}" for n, s in scores.items()), file=sys.stderr, flush=True)
    report = {"checkpoints": args.checkpoints, "looks": {}}
    print(f"{'looks at each face':22s} {'val RMSE px':>18s}  time vs single pass")
    for name in LOOKS:
        values = scores[name]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        ratio = seconds[name] / seconds["single pass"]
        report["looks"][name] = {"rmse": values, "mean": statistics.mean(values), "sd": spread, "time_ratio": ratio}
        print(f"{name:22s} {statistics.mean(values):8.3f} ± {spread:.3f}   {ratio:5.1f}x")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
