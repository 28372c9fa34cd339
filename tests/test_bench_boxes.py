"""benchmarks/bench_boxes.py: a model that is not there is one line, before any data is read."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_model_is_refused_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_boxes.py"), "--model",
                           str(tmp_path / "absent.pt")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--model:" in done.stderr and "absent.pt" in done.stderr
    assert "Traceback" not in done.stderr
