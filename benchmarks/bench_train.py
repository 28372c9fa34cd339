"""Accuracy per CPU minute: train recipes on fkd15-ytf (person-disjoint split) and print validation
RMSE against training minutes, so recipes compare on this machine's clock.

    python benchmarks/bench_train.py                                   # default recipe vs seed 000 simple CNN
    python benchmarks/bench_train.py --configs configs/default.yaml --minutes 30 --json bench_train.json

Each run is a normal `facekeypoints train` run (runs/bench_<name>/), capped by --minutes of training.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fkd15-ytf" / "training.zip"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["configs/default.yaml", "configs/seeds/000_simple_cnn.yaml"])
    ap.add_argument("--minutes", type=float, default=30.0, help="training time cap per run")
    ap.add_argument("--set", action="append", default=[], help="extra override for every run")
    ap.add_argument("--json", help="write the curves here")
    args = ap.parse_args()
    if not DATA.is_file():
        print(f"skipped: {DATA} is absent (the benchmark needs ../shared/data)")
        return 0
    import torch

    from facekeypoints.train.config import load_config
    from facekeypoints.train.loop import fit

    results = []
    for path in args.configs:
        cfg = load_config(ROOT / path, [*args.set, f"train.time_limit_min={args.minutes}"])
        cfg.out_dir = str(ROOT / "runs" / f"bench_{cfg.name or Path(path).stem}")
        start = time.perf_counter()
        summary = fit(cfg, progress=False)
        wall = (time.perf_counter() - start) / 60
        with open(Path(cfg.out_dir) / "metrics.csv") as f:
            history = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
        print(f"\n{path}: model {cfg.model.name}, {summary['epochs']} epochs, stop: {summary['stop_reason']}, "
              f"{wall:.1f} min wall, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
        print(f"  {'minutes':>8s} {'epoch':>5s} {'val RMSE':>9s}")
        for h in history:
            print(f"  {h['minutes']:8.2f} {int(h['epoch']):5d} {h.get('val_rmse', float('nan')):9.3f}")
        print(f"  best validation RMSE {summary['best_val_rmse']:.3f} at epoch {summary['best_epoch']}")
        results.append({"config": path, "model": cfg.model.name, "summary": summary, "curve": history,
                        "wall_minutes": wall})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
