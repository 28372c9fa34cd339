"""How fast ``read_kaggle_csv`` loads fkd15-ytf/training.zip, first time and from the cache, and its memory.

Each measurement runs in a fresh Python process so that its peak RSS belongs to that load alone:
``first`` starts from an empty cache folder (hash + decompress + parse + write the cache entry),
``cached`` reads the entry the first run wrote. Peak RSS is measured above the RSS the process had
after its imports, and compared with the bytes of the decoded arrays (images + keypoints).

    python benchmarks/bench_load.py [--file PATH] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facekeypoints.atomic import atomic_path, check_target

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FILE = SHARED / "fkd15-ytf" / "training.zip"


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so it measures from now; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(path: Path) -> None:
    """One load in this process; prints a JSON line."""
    from facekeypoints.data.formats.kaggle import read_kaggle_csv

    baseline = _rss_mib()
    peak_reset = _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        data = read_kaggle_csv(path)
    except (OSError, ValueError) as err:  # the reader's file/row message is the parent's error line
        sys.exit(f"error: {err}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    decoded = data.keypoints.nbytes + (data.images.nbytes if data.images is not None else 0)
    print(json.dumps({
        "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "rows": len(data),
        "decoded_mib": round(decoded / 2**20, 1), "peak_rss_above_baseline_mib": round(_peak_mib() - baseline, 1),
        "peak_measured_from_load_start": peak_reset,
    }))


def _run(mode: str, path: Path, cache: str) -> dict:
    env = dict(os.environ, FACEKEYPOINTS_CACHE=cache)
    out = subprocess.run([sys.executable, __file__, "--child", "--file", str(path)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:  # its last line says why (captured, it would otherwise be lost)
        lines = out.stderr.strip().splitlines() or [f"the {mode} load stopped with exit status {out.returncode}"]
        sys.exit(lines[-1] if lines[-1].startswith("error: ") else f"error: {lines[-1]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["mode"] = mode
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json:  # before the loads, not after
        try:
            check_target(args.json, inputs=(args.file,))
        except ValueError as err:
            parser.error(str(err))
    if not args.file.is_file():
        print(f"skipped: {args.file} not present (the shared data lives in ../shared/data)")
        return 0
    if args.child:
        _child(args.file)
        return 0
    with tempfile.TemporaryDirectory(prefix="fk-bench-cache-") as cache:
        results = [_run("first", args.file, cache), _run("cached", args.file, cache)]
    load = os.getloadavg()[0]
    print(f"{args.file} on {os.cpu_count()} CPUs (1-minute load average {load:.1f})")
    print(f"{'load':8s} {'seconds':>8s} {'cpu s':>7s} {'peak RSS MiB':>13s} {'decoded MiB':>12s} {'ratio':>6s}")
    for r in results:
        ratio = r["peak_rss_above_baseline_mib"] / r["decoded_mib"]
        print(f"{r['mode']:8s} {r['seconds']:8.3f} {r['cpu_seconds']:7.3f} {r['peak_rss_above_baseline_mib']:13.1f} "
              f"{r['decoded_mib']:12.1f} {ratio:6.2f}")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"file": str(args.file), "cpus": os.cpu_count(), "load_average": load,
                                       "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
