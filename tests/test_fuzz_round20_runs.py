"""Round 20: long work that is stopped from outside stops whole, and what it loads stays small."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody has reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_a_killed_bench_train_takes_its_training_workers_with_it(tmp_path):
    """bench_train trains in a process pool; killing the benchmark (kill, timeout) left its workers training
    on unseen, and a second benchmark then trained beside them. Its pool initializer makes them stop too."""
    started = tmp_path / "worker.pid"
    script = tmp_path / "bench.py"
    script.write_text(f"""
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
import bench_train

def work(path):
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(120)

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=bench_train._stop_with,
                             initargs=(os.getpid(),)) as pool:
        pool.submit(work, sys.argv[1]).result()
""")
    bench = subprocess.Popen([sys.executable, str(script), str(started)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert bench.poll() is None and time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        worker = int(started.read_text())
        assert _alive(worker)
        bench.send_signal(signal.SIGKILL)  # no handler of the benchmark's own can run
        bench.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived the killed benchmark"
    finally:
        bench.kill()
        if started.exists() and _alive(pid := int(started.read_text())):
            os.kill(pid, signal.SIGKILL)
