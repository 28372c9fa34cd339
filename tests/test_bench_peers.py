"""benchmarks/bench_peers.py: dlib's 68-point predictor and ours on the same faces and boxes."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_peers_scores_both_tools_on_the_same_faces(shared_data, tmp_path):
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("dlib or face-recognition-models is not installed (pip install 'facekeypoints[peers]')")
    out = tmp_path / "peers.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--data", "300w", "--limit",
                           "4", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())
    assert row["set"] == "300w" and row["faces"] == 4 and 1 <= row["scored"] <= 4
    for tool in ("ours", "dlib"):
        figures = row[tool]
        assert 0 < figures["nme"] < 0.5 and 0 <= figures["fr_10"] <= figures["fr_8"] <= 1
        assert 0 < figures["nme_offset_removed"] < 0.5
        assert figures["ms_per_face"] > 0
    assert "ms per face, ours / dlib" in done.stdout


def test_bench_peers_model_option_scores_the_named_checkpoint_on_its_own_validation_people(shared_data, tmp_path):
    """--model with the shipped checkpoint's path gives the same figures as the default name, on the
    validation people its card names; a checkpoint that is not there is refused."""
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("dlib or face-recognition-models is not installed (pip install 'facekeypoints[peers]')")
    script = str(ROOT / "benchmarks" / "bench_peers.py")
    rows = []
    for model in ("ibug68", str(ROOT / "src" / "facekeypoints" / "weights" / "ibug68_default.pt")):
        out = tmp_path / f"peers_{len(rows)}.json"
        done = subprocess.run([sys.executable, script, "--data", "ytf68-val", "--limit", "3", "--model", model,
                               "--json", str(out)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        rows.append(json.loads(out.read_text())[0])
    assert rows[0]["scored"] == rows[1]["scored"] >= 1
    assert rows[0]["ours"]["nme"] == pytest.approx(rows[1]["ours"]["nme"], abs=1e-9)
    done = subprocess.run([sys.executable, script, "--data", "300w", "--limit", "1", "--model",
                           str(tmp_path / "absent.pt")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "absent.pt" in done.stderr and "Traceback" not in done.stderr
