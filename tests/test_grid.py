"""``facekeypoints grid``: every config to the end of its budget, finished rows kept, stopped grids resumed."""
import json
import signal
import subprocess
import sys
import time

import pytest

from facekeypoints.data import write_kaggle_csv
from facekeypoints.train import grid
from facekeypoints.train.config import load_config
from facekeypoints.train.grid import config_digest, run_grid
from fakes import make_faces

TINY = """data: {{train: {csv}, split: [0.75, 0.25]}}
model: {{name: {model}}}
train: {{epochs: {epochs}, batch_size: 8, lr: 0.003, num_threads: 1}}
out_dir: {out}
reference: {{source: seed 999, epochs: 3, measured: RMSE 2.1 px, differs: a tiny test set}}
"""


@pytest.fixture
def configs(tmp_path):
    csv = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    folder = tmp_path / "configs"
    folder.mkdir()
    for name, model, epochs in (("a_simple", "fcnn", 2), ("b_net", "keypoint_net", 1)):
        (folder / f"{name}.yaml").write_text(TINY.format(csv=csv, model=model, epochs=epochs, out=tmp_path / "runs" / name))
    return folder


def test_grid_records_rows_and_skips_finished_ones(configs, tmp_path, monkeypatch):
    results = tmp_path / "results" / "seeds.json"
    rows = run_grid(sorted(configs.glob("*.yaml")), results, progress=False, echo=lambda *_: None)
    assert [r["config"] for r in rows] == ["a_simple", "b_net"]
    first = rows[0]
    assert first["epochs"] == 2 and first["device"] == "cpu" and 0 < first["rmse"] < 50 and first["measured"] == "RMSE 2.1 px"
    assert json.loads(results.read_text()) == rows
    table = results.with_suffix(".md").read_text()
    assert "| `a_simple` | fcnn | 75/25 random rows, mask | 2 |" in table and "a tiny test set" in table

    def no_training(*args, **kwargs):
        raise AssertionError("a finished row must not train again")

    monkeypatch.setattr(grid, "fit", no_training)
    assert run_grid(sorted(configs.glob("*.yaml")), results, progress=False, echo=lambda *_: None) == rows
    # a changed recipe is a new row: the old one does not count for it
    (configs / "b_net.yaml").write_text((configs / "b_net.yaml").read_text().replace("lr: 0.003", "lr: 0.002"))
    with pytest.raises(AssertionError, match="must not train again"):
        run_grid([configs / "b_net.yaml"], results, progress=False, echo=lambda *_: None)


def test_full_trains_the_sources_epoch_counts_into_their_own_folders(configs, tmp_path):
    rows = run_grid([configs / "a_simple.yaml"], tmp_path / "full.json", full=True, progress=False, echo=lambda *_: None)
    assert rows[0]["config"] == "a_simple_full" and rows[0]["epochs"] == 3
    assert (tmp_path / "runs" / "a_simple_full" / "best.pt").is_file()
    cfg = load_config(configs / "a_simple.yaml")
    assert rows[0]["digest"] != config_digest(cfg)


def test_a_stopped_grid_resumes_where_it_stopped(configs, tmp_path):
    (configs / "a_simple.yaml").write_text((configs / "a_simple.yaml").read_text().replace("epochs: 2,", "epochs: 150,"))
    results = tmp_path / "seeds.json"
    cmd = [sys.executable, "-m", "facekeypoints.cli", "grid", str(configs), "--results", str(results), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "a_simple" / "metrics.csv"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "a_simple: interrupted; run the same command again to resume" in out, err
    assert not results.exists()  # nothing finished, nothing recorded
    stopped_at = len(metrics.read_text().splitlines()) - 1
    assert 1 <= stopped_at < 150
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout and "b_net: keypoint_net" in done.stdout
    rows = json.loads(results.read_text())
    assert [r["config"] for r in rows] == ["a_simple", "b_net"] and rows[0]["epochs"] == 150
    # a changed recipe in a stopped run's folder is set aside, not mixed in
    (configs / "a_simple.yaml").write_text((configs / "a_simple.yaml").read_text().replace("epochs: 150,", "epochs: 2,"))
    again = subprocess.run(cmd + ["--only", "a_"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "held a run of a different config" in again.stdout, again.stderr
