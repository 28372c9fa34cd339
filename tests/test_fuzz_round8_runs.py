"""Round 8, runs and the commands around them (auditor's /tmp/fuzz8-train):

- F4 (G001, G002, G021) a config whose data cannot be read or split is a failed row naming its config
     file (and data.train); the grid goes on with the next config and exits 1.
- F7 (C001) report figures of a run with a very long folder name get a shortened name (start + hash)
     within the 255-byte limit; a write that still fails says what the report holds.
- F9 (E001, E003, C022, T072) a run's relative data paths are read against the folder it trained in
     (card.trained_in); cards without it try the current folder, then the repository; otherwise the
     error says where the path comes from. The default recipe's missing data says it is relative to
     the working folder.
- Minor: C012/C013 damaged metrics.csv rows; D011 no empty --out of a refused train-detector; D002
     zero steps refused; D007 --ytf68 given IMM photos; R021 resume refusal shows the EMA default.
"""
import json
import os
from pathlib import Path

import pytest

from facekeypoints.data import write_kaggle_csv
from facekeypoints.data.pipeline import DataConfig
from facekeypoints.evaluate.compare import _short_stem, _unique_names, compare_runs
from facekeypoints.evaluate.runner import run_split, trained_data
from facekeypoints.models import create_model
from facekeypoints.models.card import ModelCard
from facekeypoints.models.checkpoint import card_for
from facekeypoints.train import detector, grid
from facekeypoints.train.config import load_config
from facekeypoints.train.loop import fit
from fakes import make_faces, run_cli

CONFIG = """data: {{train: {csv}, split: [0.75, 0.25]}}
model: {{name: fcnn}}
train: {{epochs: 1, batch_size: 8, num_threads: 1, device: cpu}}
out_dir: {out}
"""


def _fake_summary(cfg):
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.pt").write_bytes(b"x")
    return {"stop_reason": "epochs", "epochs": 1, "minutes": 0.0, "device": "cpu", "best_epoch": 1,
            "data": {"by_person": False}}


def test_F4_a_config_whose_data_fails_is_a_failed_row_and_the_grid_goes_on(tmp_path, monkeypatch, capsys):
    good = write_kaggle_csv(make_faces(), tmp_path / "good.csv")
    two = write_kaggle_csv(make_faces(2), tmp_path / "two.csv")
    configs = tmp_path / "cfgs"
    configs.mkdir()
    for name, data in (("a", good), ("b", two), ("c", good)):
        (configs / f"{name}.yaml").write_text(CONFIG.format(csv=data, out=tmp_path / "runs" / name))

    def fake_fit(cfg, **kw):
        if cfg.name == "b":
            raise ValueError("split (0.75, 0.25) of 2 samples leaves part(s) [1] empty: too few samples")
        return _fake_summary(cfg)

    monkeypatch.setattr(grid, "fit", fake_fit)
    monkeypatch.setattr(grid, "evaluate", lambda *a, **k: {"rmse": 1.0, "mae": 1.0, "nme": 0.1})
    results = tmp_path / "res.json"
    code, out, err = run_cli(["grid", configs, "--results", results, "--quiet"], capsys)
    assert code == 1, err
    rows = {r["config"]: r for r in json.loads(results.read_text())}
    assert set(rows) == {"a", "b", "c"} and rows["c"]["rmse"] == 1.0
    assert rows["b"]["failed"].startswith(f"{configs / 'b.yaml'}: data.train {two}: split"), rows["b"]
    assert f"failed: b: {configs / 'b.yaml'}: data.train" in err
    assert "failed (error)" in results.with_suffix(".md").read_text()
    grid._read_rows(results)  # the failed row reads back


def test_F7_long_run_names_get_short_figure_names(tmp_path):
    stem = _short_stem("y" * 250)
    assert len(os.fsencode(stem + "_per_keypoint.png")) <= 255 and stem.startswith("yyy")
    assert _short_stem("y" * 250) != _short_stem("y" * 249 + "z") and _short_stem("short") == "short"
    names, stems = _unique_names([str(tmp_path / ("y" * 250)), str(tmp_path / "r1")])
    assert names[0] == "y" * 250 and stems[1] == "r1" and len(stems[0]) <= 200


def test_F9_relative_data_paths_are_read_against_the_training_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    write_kaggle_csv(make_faces(), work / "rel.csv")
    monkeypatch.chdir(work)
    card = card_for(create_model("fcnn"), trained_on=DataConfig(train="rel.csv", split=[0.75, 0.25]))
    assert card.trained_in == str(work) and ModelCard.from_dict(card.to_dict()) == card
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert trained_data(card).train == str(work / "rel.csv")
    assert len(run_split(card, "val")) == 8


def test_F9_a_card_without_its_folder_says_where_the_path_comes_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = ModelCard.from_dict({k: v for k, v in card_for(
        create_model("fcnn"), trained_on=DataConfig(train="../nowhere/none.csv")).to_dict().items()
        if k != "trained_in"})
    assert old.trained_in is None
    with pytest.raises(ValueError, match=r"the model's training data \(data.train, relative to the folder it was "
                                         r"trained in\) ../nowhere/none.csv: not found from .*run from the "
                                         r"repository folder or pass a data file"):
        run_split(old, "val")
    shipped = DataConfig(train="src/facekeypoints/__init__.py")  # found in the repository checkout
    repo_card = ModelCard.from_dict({**old.to_dict(), "trained_on": shipped.to_dict()})
    assert Path(trained_data(repo_card).train).is_file()


def test_T072_the_default_recipe_says_its_data_is_relative_to_the_working_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "--quiet", "--out", tmp_path / "run", "--set", "train.epochs=1"], capsys)
    assert code == 2 and "relative to the working folder" in err and "data.train" in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture
def run_folder(tmp_path):
    data = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    cfg = load_config(None, [f"data.train={data}", f"out_dir={tmp_path / 'r1'}", "model.name=fcnn",
                             "train.epochs=1", "train.batch_size=8", "train.num_threads=1", "data.split=[0.75, 0.25]"])
    fit(cfg, progress=False)
    return tmp_path / "r1"


def test_C012_C013_damaged_metrics_rows_are_refused(run_folder, capsys):
    metrics = run_folder / "metrics.csv"
    lines = metrics.read_text().splitlines()
    good = lines[1]
    metrics.write_text("\n".join([lines[0], "-3.7" + good[good.index(","):]]) + "\n")
    code, _, err = run_cli(["compare", run_folder], capsys)
    assert code == 2 and f"{metrics}: line 2, column epoch" in err, err
    metrics.write_text("\n".join([lines[0], good.rsplit(",", 1)[0]]) + "\n")
    code, _, err = run_cli(["compare", run_folder], capsys)
    assert code == 2 and f"{metrics}: line 2 has" in err and "values where the header has" in err, err


def test_C001_report_of_a_long_run_name_is_written(run_folder, tmp_path):
    long = run_folder.rename(tmp_path / ("y" * 250))
    compare_runs([str(long)], report_dir=str(tmp_path / "rep"))
    page = (tmp_path / "rep" / "index.html").read_text()
    shown = [p.name for p in (tmp_path / "rep").glob("*_per_keypoint.png")]
    assert len(shown) == 1 and f"src='{shown[0]}'" in page


def test_R021_resume_refusal_shows_the_old_ema(run_folder, tmp_path, capsys):
    config = json.loads((run_folder / "config.json").read_text())["config"]
    (tmp_path / "same.yaml").write_text(json.dumps(config))
    code, _, err = run_cli(["train", "--config", tmp_path / "same.yaml", "--quiet", "--out", run_folder, "--resume",
                            "--set", "train.ema=0.9", "--set", "train.epochs=2"], capsys)
    assert code == 2 and "train.ema: 0.0 -> 0.9" in err, err


def test_D011_D002_D007_train_detector(tmp_path, monkeypatch, capsys):
    csv_path = write_kaggle_csv(make_faces(), tmp_path / "tiny.csv")
    code, _, err = run_cli(["train-detector", "--ytf68", csv_path, "--imm", tmp_path, "--out", tmp_path / "det",
                            "--minutes", "0.01", "--quiet"], capsys)
    assert code == 2 and "kaggle15 labels, not 68-point ones" in err and "framed crops" not in err, err
    assert not (tmp_path / "det").exists()
    pool = detector.FacePool(images=[], boxes=None)
    with pytest.raises(ValueError, match="before the first training step"):
        detector.train_detector(tmp_path / "det0", pool, minutes=1e-300, progress=False, workers=0)
    assert not (tmp_path / "det0" / "face_detector.onnx").exists()
