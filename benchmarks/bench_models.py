"""Training throughput of registry models on the CPU, against the CPU's measured matmul peak.

For each model: parameters, forward MACs per image (FlopCounterMode), images/s of full training
steps (forward + backward + Adam, masked MSE), and achieved GFLOP/s counting a training image as
3x its forward FLOPs, as a fraction of the peak float32 GFLOP/s of a large matmul measured in the
same run. ``--onnx`` adds ONNX Runtime inference latency (ms per face at batch 1 and 32).
A model may carry options (``resnet18:stem_stride=2``); ``--amp bf16`` runs the forward pass under
bfloat16 autocast, as ``train.amp: bf16`` does. The last column is each model's speed as a ratio to
the first one listed, measured in the same run.

Usage:
  python benchmarks/bench_models.py --models keypoint_net,simple_cnn --out bench.json
  python benchmarks/bench_models.py --models simple_cnn,resnet18,resnet18:stem_stride=2 --batch 256
  python benchmarks/bench_models.py --models simple_cnn,resnet18 --amp bf16
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import yaml

from facekeypoints.atomic import atomic_path, check_target
from facekeypoints.cli import at_least
from facekeypoints.models import count_macs, create_model, list_models
from facekeypoints.models.threads import max_threads
from facekeypoints.train.losses import make_loss


def parse_spec(spec: str) -> tuple[str, dict]:
    """``name[:key=value[:key=value]]`` -> (name, options); values are read as YAML (2, true, [8, 16])."""
    name, *pairs = spec.split(":")
    return name, {k: yaml.safe_load(v) for k, v in (pair.split("=", 1) for pair in pairs)}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n matmul over ``repeats`` runs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def train_throughput(spec: str, batch: int, size: int, schema: str, seconds: float, warmup: int,
                     amp: str = "none") -> dict:
    """images/s of training steps on random data for at least ``seconds`` (and at least 3 steps)."""
    torch.manual_seed(0)
    name, options = parse_spec(spec)
    model = create_model(name, schema=schema, input_size=size, **options)
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, (1, 1, size, size))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = make_loss("mse")
    x = torch.randn(batch, 1, size, size)
    y = torch.rand(batch, model(x[:1]).shape[1], 2) * 2 - 1

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            out = model(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    ips = batch * steps / elapsed
    return {"model": spec, "amp": amp, "params": params, "macs": macs, "images_per_s": ips, "steps": steps,
            "train_gflops": 3 * 2 * macs * ips / 1e9}


def onnx_latency(name: str, size: int, schema: str, threads: int) -> dict:
    """ONNX Runtime ms per face at batch 1 and 32 (median of repeated runs)."""
    import numpy as np
    import onnxruntime as ort

    model = create_model(name, schema=schema, input_size=size).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        torch.onnx.export(model, (torch.zeros(1, 1, size, size),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["keypoints"], dynamic_axes={"image": {0: "batch"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = {}
    for batch in (1, 32):
        x = np.random.rand(batch, 1, size, size).astype(np.float32)
        for _ in range(5):
            session.run(None, {"image": x})
        times = []
        for _ in range(max(10, 200 // batch)):
            start = time.perf_counter()
            session.run(None, {"image": x})
            times.append(time.perf_counter() - start)
        out[f"onnx_ms_per_face_b{batch}"] = 1e3 * float(np.median(times)) / batch
    return out


def _positive_seconds(text: str) -> float:
    """--seconds: a finite number above 0 (0 or less still timed every model, NaN never stopped)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="*", help="comma-separated names or one glob pattern (default: all)")
    parser.add_argument("--batch", type=at_least(1), default=64)
    parser.add_argument("--size", type=at_least(1), default=96)
    parser.add_argument("--schema", default="kaggle15")
    parser.add_argument("--threads", type=at_least(1, max_threads()), default=2)
    parser.add_argument("--seconds", type=_positive_seconds, default=10.0, help="minimum timed seconds per model")
    parser.add_argument("--warmup", type=at_least(0), default=2)
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime inference")
    parser.add_argument("--amp", choices=["none", "bf16", "both"], default="none",
                        help="bf16: forward under CPU autocast; both: each model in float32, then in bf16")
    parser.add_argument("--out", type=Path, help="write results as JSON here")
    args = parser.parse_args(argv)
    if args.out:  # before minutes of timing, not after
        try:
            check_target(args.out)
        except ValueError as err:
            parser.error(str(err))
    torch.set_num_threads(args.threads)
    names = list_models(args.models) if "," not in args.models and "*" in args.models else args.models.split(",")
    unknown = [n for n in names if parse_spec(n)[0] not in list_models()]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {list_models()}")
    peak = matmul_peak_gflops()
    rows = []
    print(f"CPU float32 matmul peak: {peak:.1f} GFLOP/s with {args.threads} threads "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"batch {args.batch}, amp {args.amp}")
    print(f"{'model':24s} {'params':>11s} {'MMACs':>8s} {'img/s':>8s} {'GFLOP/s':>8s} {'of peak':>8s} {'x first':>8s}")
    modes = ["none", "bf16"] if args.amp == "both" else [args.amp]
    for name, amp in [(n, a) for n in names for a in modes]:
        row = train_throughput(name, args.batch, args.size, args.schema, args.seconds, args.warmup, amp)
        row["fraction_of_peak"] = row["train_gflops"] / peak
        row["ratio_to_first"] = row["images_per_s"] / (rows[0]["images_per_s"] if rows else row["images_per_s"])
        if args.onnx:
            row.update(onnx_latency(parse_spec(name)[0], args.size, args.schema, args.threads))
        rows.append(row)
        print(f"{name + ('' if amp == 'none' else ' bf16'):24s} {row['params']:11,d} {row['macs'] / 1e6:8.1f} {row['images_per_s']:8.1f} "
              f"{row['train_gflops']:8.2f} {row['fraction_of_peak']:8.1%} {row['ratio_to_first']:8.2f}"
              + "".join(f"  {k}={v:.3f}" for k, v in row.items() if k.startswith("onnx_")))
    result = {
        # other processes competing for the cores distort every figure: keep the load with them
        "device": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
                   "torch": torch.__version__, "peak_gflops": peak, "load_average_1min": os.getloadavg()[0]},
        "batch": args.batch, "input_size": args.size, "schema": args.schema, "warmup_steps": args.warmup,
        "results": rows,
    }
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
