"""Throughput of ``augment_batch`` on the CPU: augmented images per second.

Run: ``python benchmarks/bench_augment.py [--batch 256 --size 96 --channels 1 --threads 2 --json out.json]``.
Prints one line and, with ``--json``, writes the figures with the settings they were measured under.
Default settings are the training defaults (``Augment()``: mirror, rotation, shift, zoom,
brightness, contrast), plus ``--noise`` for seed 001's Gaussian noise.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.cli import at_least
from facekeypoints.models.threads import max_threads
from facekeypoints.data.augment import Augment, augment_batch
from facekeypoints.schema import load_schema


def measure(batch: int, size: int, channels: int, threads: int, iters: int, warmup: int, cfg: Augment) -> dict:
    """Time ``iters`` calls on one (batch, channels, size, size) batch after ``warmup`` calls."""
    torch.set_num_threads(threads)
    schema = load_schema("kaggle15")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, channels, size, size, generator=g)
    keypoints = size * torch.rand(batch, schema.num_keypoints, 2, generator=g)
    for _ in range(warmup):
        augment_batch(images, keypoints, schema, cfg, g)
    times = []
    cpu_start = time.process_time()
    for _ in range(iters):
        start = time.perf_counter()
        augment_batch(images, keypoints, schema, cfg, g)
        times.append(time.perf_counter() - start)
    cpu_per_batch = (time.process_time() - cpu_start) / iters
    median = sorted(times)[len(times) // 2]
    return {
        "benchmark": "augment_batch", "device": "cpu", "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": threads, "batch": batch, "size": size, "channels": channels,
        "warmup": warmup, "iters": iters, "augment": cfg.to_dict(),
        "median_ms_per_batch": 1000 * median, "images_per_s": batch / median,
        # CPU seconds of this process per batch, summed over threads: less sensitive to a busy machine
        "cpu_ms_per_batch": 1000 * cpu_per_batch, "load_average_1min": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=at_least(1), default=256)
    p.add_argument("--size", type=at_least(1), default=96)
    p.add_argument("--channels", type=at_least(1), default=1)
    p.add_argument("--threads", type=at_least(1, max_threads()), default=2)
    p.add_argument("--iters", type=at_least(1), default=20)
    p.add_argument("--warmup", type=at_least(0), default=3)
    p.add_argument("--noise", action="store_true", help="add noise_std = sqrt(0.1) (seed 001)")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.json:  # before the timing, not after
        try:
            check_target(args.json)
        except ValueError as err:
            p.error(str(err))
    cfg = Augment(noise_std=math.sqrt(0.1) if args.noise else 0.0)
    r = measure(args.batch, args.size, args.channels, args.threads, args.iters, args.warmup, cfg)
    print(f"augment_batch: {r['images_per_s']:.0f} images/s ({r['median_ms_per_batch']:.1f} ms per batch of "
          f"{r['batch']} x {r['channels']}x{r['size']}x{r['size']}, {r['threads']} CPU threads, torch {r['torch']}; "
          f"{r['cpu_ms_per_batch']:.1f} CPU ms per batch, load average {r['load_average_1min']:.1f})")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
