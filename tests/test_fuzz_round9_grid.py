"""Round-9 ``grid`` fixes (auditor's g1, g2, g4, g5): two grids on one results file keep each other's
rows; a run is not thrown away when only its name, reference.* or a resumable setting changed; hidden
.yaml files are no configs. Tiny data, one or two epochs; training is faked where only the grid's
bookkeeping is under test."""
import fcntl
import json
import threading
import time

import pytest

from facekeypoints.data import write_kaggle_csv
from facekeypoints.train import grid
from facekeypoints.train.config import load_config
from facekeypoints.train.grid import config_digest, config_files, run_grid
from facekeypoints.train.loop import fit
from fakes import make_faces

CONFIG = """data: {{train: {csv}, split: [0.75, 0.25]}}
model: {{name: fcnn}}
train: {{epochs: {epochs}, batch_size: 8, num_threads: 1, device: cpu}}
out_dir: {out}
reference: {{differs: text v1}}
"""


def quiet(*_):
    pass


@pytest.fixture
def folder(tmp_path):
    """configs/a.yaml and configs/b.yaml (no name: given), runs/ and training.csv beside them."""
    csv = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    (tmp_path / "configs").mkdir()
    for name in ("a", "b"):
        (tmp_path / "configs" / f"{name}.yaml").write_text(CONFIG.format(csv=csv, epochs=1, out=tmp_path / "runs" / name))
    return tmp_path / "configs"


def edit(path, old, new):
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def fake_row(name, digest, rmse=1.0):
    return {"config": name, "digest": digest, "finished": "2025-01-01 00:00", "rmse": rmse, "mae": rmse, "nme": 0.1,
            "minutes": 0.1}


def digest_of(path):
    cfg = load_config(path)
    cfg.name = cfg.name or path.stem
    return config_digest(cfg)


# ---- 1: two grids on one results file ------------------------------------------------------------
def test_9_1_a_row_another_grid_wrote_meanwhile_is_kept(folder, tmp_path, monkeypatch):
    results = tmp_path / "res.json"
    ran = []

    def run_one(cfg, progress, echo, failed_before=None):  # while "a" trains, another grid records "x"
        ran.append(cfg.name)
        rows = json.loads(results.read_text()) if results.exists() else []
        results.write_text(json.dumps(rows + [fake_row(f"x{len(ran)}", "0" * 12)]))
        return fake_row(cfg.name, config_digest(cfg))

    monkeypatch.setattr(grid, "_run_one", run_one)
    rows = run_grid(config_files(folder), results, progress=False, echo=quiet)
    assert ran == ["a", "b"]
    on_disk = [r["config"] for r in json.loads(results.read_text())]
    assert sorted(on_disk) == ["a", "b", "x1", "x2"] and sorted(r["config"] for r in rows) == sorted(on_disk)
    assert "`x1`" in results.with_suffix(".md").read_text()


def test_9_1_a_config_another_grid_finished_meanwhile_is_not_run_again(folder, tmp_path, monkeypatch):
    results = tmp_path / "res.json"
    ran = []

    def run_one(cfg, progress, echo, failed_before=None):  # while "a" trains, another grid finishes "b"
        ran.append(cfg.name)
        results.write_text(json.dumps([fake_row("b", digest_of(folder / "b.yaml"), rmse=7.0)]))
        return fake_row(cfg.name, config_digest(cfg))

    monkeypatch.setattr(grid, "_run_one", run_one)
    lines = []
    rows = run_grid(config_files(folder), results, progress=False, echo=lines.append)
    assert ran == ["a"] and "b: done (2025-01-01 00:00), RMSE 7.000" in lines
    assert {r["config"]: r["rmse"] for r in rows} == {"a": 1.0, "b": 7.0}


def test_9_1_a_grid_waits_for_the_results_lock_before_writing(folder, tmp_path, monkeypatch):
    results = tmp_path / "res.json"
    monkeypatch.setattr(grid, "_run_one", lambda cfg, *a, **k: fake_row(cfg.name, config_digest(cfg)))
    with open(tmp_path / "res.json.lock", "a") as lock:  # another grid is writing
        fcntl.flock(lock, fcntl.LOCK_EX)
        worker = threading.Thread(target=run_grid, args=([folder / "a.yaml"], results),
                                  kwargs={"progress": False, "echo": quiet})
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive() and not results.exists()
    worker.join(30)
    assert not worker.is_alive() and [r["config"] for r in json.loads(results.read_text())] == ["a"]


# ---- 2: harmless changes keep the run ------------------------------------------------------------
def test_9_2_a_run_trained_without_a_name_is_resumed_not_moved_aside(folder, tmp_path):
    cfg = load_config(folder / "a.yaml")  # `facekeypoints train --config configs/a.yaml`: no name
    assert not cfg.name
    fit(cfg, progress=False)
    lines = []
    rows = run_grid([folder / "a.yaml"], tmp_path / "res.json", progress=False, echo=lines.append)
    assert not any("different config" in line for line in lines), lines
    assert any("resuming" in line for line in lines) and rows[0]["epochs"] == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]  # no a.stale-*
    assert len((tmp_path / "runs" / "a" / "metrics.csv").read_text().splitlines()) == 2  # its one epoch, not two


def test_9_2_a_reference_edit_refreshes_the_row_without_training(folder, tmp_path, monkeypatch):
    results = tmp_path / "res.json"
    first = run_grid([folder / "a.yaml"], results, progress=False, echo=quiet)[0]

    def no_training(*args, **kwargs):
        raise AssertionError("a row whose run differs only in reference.* must not train again")

    monkeypatch.setattr(grid, "fit", no_training)
    for before, text in (("text v1", "text v2"), ("text v2", "text v3")):  # a refreshed row is refreshed again
        edit(folder / "a.yaml", before, text)
        lines = []
        row = run_grid([folder / "a.yaml"], results, progress=False, echo=lines.append)[0]
        assert row["differs"] == text and row["digest"] == digest_of(folder / "a.yaml")
        assert (row["rmse"], row["finished"]) == (first["rmse"], first["finished"])
        assert any("row refreshed, not retrained" in line for line in lines), lines
        assert run_grid([folder / "a.yaml"], results, progress=False, echo=quiet)[0] == row  # now simply done
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]
    # what changes the training is no refresh
    edit(folder / "a.yaml", "batch_size: 8", "batch_size: 4")
    with pytest.raises(AssertionError, match="must not train again"):
        run_grid([folder / "a.yaml"], results, progress=False, echo=quiet)


def test_9_2_more_epochs_resume_a_finished_run_fewer_move_it_aside(folder, tmp_path):
    results = tmp_path / "res.json"
    run_grid([folder / "a.yaml"], results, progress=False, echo=quiet)
    metrics = tmp_path / "runs" / "a" / "metrics.csv"
    epoch_1 = metrics.read_text().splitlines()[1]
    edit(folder / "a.yaml", "epochs: 1,", "epochs: 2,")
    lines = []
    row = run_grid([folder / "a.yaml"], results, progress=False, echo=lines.append)[0]
    assert any("resuming" in line and "train.epochs 1 -> 2" in line for line in lines), lines
    assert row["epochs"] == 2 and metrics.read_text().splitlines()[1] == epoch_1  # epoch 1 kept, epoch 2 added
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]
    # a run already past the epochs now asked for cannot be cut back: trained afresh, the old one kept
    edit(folder / "a.yaml", "epochs: 2,", "epochs: 1,")
    lines = []
    row = run_grid([folder / "a.yaml"], results, progress=False, echo=lines.append)[0]
    assert any("held a run of a different config (train.epochs 2 -> 1)" in line for line in lines), lines
    assert row["epochs"] == 1 and len([p for p in (tmp_path / "runs").iterdir() if ".stale-" in p.name]) == 1


# ---- 3: hidden files are no configs --------------------------------------------------------------
def test_9_3_hidden_yaml_files_are_not_listed_as_configs(folder):
    (folder / ".hidden.yaml").write_text((folder / "a.yaml").read_text())
    (folder / "._a.yaml").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (folder / "c.YML").write_text((folder / "a.yaml").read_text().replace("/a", "/c"))
    (folder / "b.yaml~").write_text("")
    assert [p.name for p in config_files(folder)] == ["a.yaml", "b.yaml", "c.YML"]


def test_9_3_the_cli_grid_skips_hidden_yaml_files(tmp_path, capsys):
    from fakes import run_cli

    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "._a.yaml").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    code, _, err = run_cli(["grid", tmp_path / "cfgs", "--results", tmp_path / "r.json"], capsys)
    assert code == 2 and "no .yaml configs" in err and "._a.yaml" not in err, err
