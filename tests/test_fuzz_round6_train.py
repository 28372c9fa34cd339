"""Round 6 of fresh bad inputs, training: runs recorded before new settings existed, --overwrite,
changed data of the same size, teachers in odd places."""
import json
import shutil

import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.train.config import ADDED_SETTINGS, load_config
from facekeypoints.train.grid import config_digest
from facekeypoints.train.loop import fit
from fakes import make_faces, overrides

TINY = ["model.name=fcnn", "train.epochs=1", "train.batch_size=8", "train.num_threads=1", "data.split=[0.75, 0.25]"]


@pytest.fixture
def tiny_csv(tmp_path):
    return write_kaggle_csv(make_faces(32), tmp_path / "training.csv")


def _cfg(csv, out, *extra):
    return load_config(None, [f"data.train={csv}", f"out_dir={out}", *overrides(TINY, extra)])


def _strip_added(values: dict) -> dict:
    for section, keys in ADDED_SETTINGS.items():
        for key in keys:
            values[section].pop(key, None)
    return values


def test_a_run_recorded_before_the_new_settings_resumes_and_keeps_its_grid_digest(tiny_csv, tmp_path):
    out = tmp_path / "old"
    fit(_cfg(tiny_csv, out), progress=False)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    _strip_added(ckpt["config"])  # as a checkpoint written before label_offset, ema and teacher existed
    torch.save(ckpt, out / "last.pt")
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "config": _strip_added(saved["config"])}))
    assert fit(_cfg(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)["epochs"] == 2
    cfg = _cfg(tiny_csv, out)
    import hashlib

    old = _strip_added(cfg.to_dict())
    old.pop("out_dir")
    assert config_digest(cfg) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]
    assert config_digest(_cfg(tiny_csv, out, "train.label_offset=true")) != config_digest(cfg)  # a real change counts


def test_resume_and_the_val_split_refuse_other_faces_of_the_same_count(tiny_csv, tmp_path):
    from facekeypoints.evaluate.runner import evaluate

    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out), progress=False)
    write_kaggle_csv(make_faces(32, seed=7), tiny_csv)  # other faces, same number of rows
    with pytest.raises(ValueError, match="the same counts but other faces"):
        fit(_cfg(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)
    with pytest.raises(ValueError, match="not the ones the model was validated on"):
        evaluate(out / "best.pt", None, split="val")


def test_overwrite_clears_the_old_runs_files_and_a_folder_with_only_best_pt_is_a_run(tiny_csv, tmp_path):
    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out, "train.epochs=3"), progress=False)
    (out / "last.pt").unlink()  # best.pt, metrics.csv and config.json still hold a run worth keeping
    with pytest.raises(ValueError, match="holds a training run .*best.pt"):
        fit(_cfg(tiny_csv, out), progress=False)
    fit(_cfg(tiny_csv, out, "model.name=simple_cnn", "train.lr=1e-9"), progress=False, overwrite=True)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2  # the new run's one epoch, not the old three
    assert load_checkpoint(out / "best.pt").card.model == "simple_cnn"


def test_a_teacher_in_the_runs_own_folder_or_under_home_is_handled(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out), progress=False)
    with pytest.raises(ValueError, match="lies in this run's own folder"):
        fit(_cfg(tiny_csv, out, f"train.teacher={out / 'best.pt'}"), progress=False, overwrite=True)
    assert load_checkpoint(out / "best.pt").card.model == "fcnn"  # the would-be teacher is intact
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(out / "best.pt", home / "t.pt")
    monkeypatch.setenv("HOME", str(home))
    summary = fit(_cfg(tiny_csv, tmp_path / "student", "train.teacher=~/t.pt"), progress=False)
    assert summary["epochs"] == 1


def test_label_offset_without_mirroring_and_a_teacher_prepared_otherwise_are_refused(tiny_csv, tmp_path):
    with pytest.raises(ValueError, match="train.label_offset is learnt from mirrored faces"):
        _cfg(tiny_csv, tmp_path / "r", "train.label_offset=true", "augment.flip_prob=0")
    fit(_cfg(tiny_csv, tmp_path / "teacher", "preprocess.scale=centered"), progress=False)
    with pytest.raises(ValueError, match="was trained on inputs prepared otherwise"):
        fit(_cfg(tiny_csv, tmp_path / "student", f"train.teacher={tmp_path / 'teacher' / 'best.pt'}"), progress=False)


def test_grid_names_an_only_that_matches_nothing_and_reads_yml(tmp_path, capsys):
    from facekeypoints.cli import main

    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "a.yml").write_text("train: {epochs: 1}\n")
    assert main(["grid", str(folder), "--only", "zzz", "--results", str(tmp_path / "r.json")]) == 2
    assert "--only zzz: no config" in capsys.readouterr().err
