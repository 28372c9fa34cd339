"""Does data-parallel training give the same model? One process against two (torchrun, gloo), same recipe.

Trains ``--config`` for ``--epochs`` with each of ``--seeds``, once in one process and once in two
processes of one thread each, and prints the validation RMSE of each run with the mean and spread
per setting. Same global batch: two processes take half of it each. The run folders under ``--out`` belong to this
benchmark: each run starts afresh there (``train --overwrite``), so the command can be run again.

Usage:
  python benchmarks/bench_ddp.py --config configs/default.yaml --epochs 12 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from facekeypoints.cli import at_least


def _train(args, seed: int, processes: int) -> dict:
    out = Path(args.out) / f"{processes}proc_seed{seed}"
    sets = [f"train.epochs={args.epochs}", f"train.seed={seed}", "train.num_threads=1", "train.device=cpu"]
    cli = ["-m", "facekeypoints.cli", "train", "--config", args.config, "--out", str(out), "--overwrite", "--quiet",
           *sum((["--set", s] for s in sets), [])]
    launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *launcher, *cli], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{processes}-process run, seed {seed} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--epochs", type=at_least(1), default=12)
    parser.add_argument("--seeds", type=at_least(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench_ddp", help="its run folders, replaced on each run")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < len(args.seeds):  # the second run of a seed would replace the first
        parser.error(f"argument --seeds: each seed once, got {' '.join(map(str, args.seeds))}")
    results = {}
    for processes in (1, 2):
        rmse = []
        for seed in args.seeds:
            summary = _train(args, seed, processes)
            rmse.append(summary["best_val_rmse"])
            print(f"{processes} process(es), seed {seed}: best val RMSE {rmse[-1]:.3f} after {summary['epochs']} epochs, "
                  f"{summary['minutes']:.1f} min", flush=True)
        spread = statistics.stdev(rmse) if len(rmse) > 1 else 0.0
        results[processes] = (statistics.mean(rmse), spread)
        print(f"{processes} process(es): val RMSE {results[processes][0]:.3f} +- {spread:.3f} (mean +- std over seeds "
              f"{args.seeds})", flush=True)
    (m1, s1), (m2, s2) = results[1], results[2]
    print(f"difference (2 - 1 processes): {m2 - m1:+.3f} px; spread between seeds: {max(s1, s2):.3f} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
