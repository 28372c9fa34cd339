"""Round 13 of fresh bad inputs, training, grid and evaluation (audits /tmp/fuzz13-train, /tmp/fuzz13-serve):

1  a run begun when scores were in the model input's pixels is not resumed into image-pixel scores
   (best.pt and train.patience would compare two units), unless the framing maps them 1:1.
2  the grid row and compare's figures are scored as training validated (train.mirror_tta).
3  a config renamed and changed at once leaves one row for its run folder, not two.
4  a teacher trained in another framing (data.frame) is refused.
5  train-detector refuses to resume on other faces.
6  a grid error before training keeps a diverged run's failed row, so the next grid starts it afresh.
7  evaluate --split test of a run with a separate data.val says data.split was unused.
serve 2   --set KEY=a --set KEY=b is refused, naming both.
serve 6e  a card says on which basis its val_rmse was measured (val_mirror_tta).
"""
import json
import os

import numpy as np
import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.evaluate import compare
from facekeypoints.evaluate.runner import evaluate
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.train import grid
from facekeypoints.train.config import ConfigError, load_config
from facekeypoints.train.folder_claim import LOCK
from facekeypoints.train.loop import fit
from fakes import make_faces, mean_face_checkpoint, tiny_config


def _as_old_run(last):
    """``last`` as a run of before round 12 wrote it: no record of the unit its scores are in, nor the
    TrainState field round 12 added (``teacher``: round 12 scored in image pixels already)."""
    payload = torch.load(last, map_location="cpu", weights_only=True)
    payload["train_state"].pop("scored_in")
    payload["train_state"].pop("teacher")
    torch.save(payload, last)


# ---- 1. the unit of a run's scores -------------------------------------------------------------------
def test_a_run_records_the_unit_of_its_scores(tiny_csv, tmp_path):
    fit(tiny_config(tiny_csv, tmp_path / "run"), progress=False)
    state = load_checkpoint(tmp_path / "run" / "last.pt").training["train_state"]
    assert state["scored_in"] == "image pixels"


def test_resuming_an_input_pixel_run_of_another_scale_is_refused(tiny_csv, tmp_path):
    out = tmp_path / "run"  # 96-pixel faces into a 64-pixel model: the two units differ
    fit(tiny_config(tiny_csv, out, "preprocess.size=64", "data.frame=resize"), progress=False)
    _as_old_run(out / "last.pt")
    with pytest.raises(ValueError, match=r"scored in the model input's pixels.*start the run over with --overwrite"):
        fit(tiny_config(tiny_csv, out, "preprocess.size=64", "data.frame=resize", "train.epochs=2"), resume=True,
            progress=False)


def test_resuming_an_old_run_whose_units_are_the_same_goes_on(tiny_csv, tmp_path):
    out = tmp_path / "run"  # 96-pixel Kaggle crops at size 96: input pixels are image pixels
    fit(tiny_config(tiny_csv, out), progress=False)
    _as_old_run(out / "last.pt")
    summary = fit(tiny_config(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)
    assert summary["epochs"] == 2
    assert load_checkpoint(out / "last.pt").training["train_state"]["scored_in"] == "image pixels"


# ---- 2. one run, one RMSE ------------------------------------------------------------------------------
def _grid_config(tmp_path, csv, name="a", epochs=1, extra=""):
    config = tmp_path / "cfgs" / "a.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(f"name: {name}\ndata: {{train: {csv}, split: [0.75, 0.25]}}\nmodel: {{name: fcnn}}\n"
                      f"train: {{epochs: {epochs}, batch_size: 8, num_threads: 1{extra}}}\n"
                      f"out_dir: {tmp_path / 'runs' / 'a'}\n")
    return config


def test_a_grid_row_is_scored_with_mirror_tta_as_its_run_validated(tiny_csv, tmp_path):
    config = _grid_config(tmp_path, tiny_csv, extra=", mirror_tta: true")
    row = grid.run_grid([config], tmp_path / "results.json", progress=False, echo=lambda *_: None)[0]
    best = load_checkpoint(tmp_path / "runs" / "a" / "best.pt").card.metrics
    assert row["rmse"] == pytest.approx(best["val_rmse"], rel=1e-5)
    assert row["mae"] == pytest.approx(best["val_mae"], rel=1e-5)
    assert row["mirror_tta"] is True


def test_compare_figures_are_scored_with_the_runs_mirror_tta(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out, "train.mirror_tta=true"), progress=False)
    asked = []
    real = compare.predict_data
    monkeypatch.setattr(compare, "predict_data", lambda *a, **k: asked.append(k) or real(*a, **k))
    compare.compare_runs([str(out)], str(tmp_path / "report"))
    assert asked == [{"mirror_tta": True}]


def test_compare_reads_an_older_runs_mirror_tta_from_its_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"config": {"train": {"mirror_tta": True}}}))
    card = load_checkpoint(mean_face_checkpoint(tmp_path / "m.pt")).card  # no val_mirror_tta on it
    assert compare._validated_with_mirror({"dir": str(tmp_path)}, card) is True


# ---- 3. one row per run folder -------------------------------------------------------------------------
def test_a_config_renamed_and_changed_leaves_one_row(tiny_csv, tmp_path):
    results = tmp_path / "results.json"
    grid.run_grid([_grid_config(tmp_path, tiny_csv, name="a")], results, progress=False, echo=lambda *_: None)
    lines = []
    rows = grid.run_grid([_grid_config(tmp_path, tiny_csv, name="a3", epochs=2)], results, progress=False,
                         echo=lines.append)
    assert any("resuming" in line for line in lines), lines
    assert [r["config"] for r in rows] == ["a3"] and rows[0]["epochs"] == 2
    assert [r["config"] for r in json.loads(results.read_text())] == ["a3"]
    assert "`a`" not in (tmp_path / "results.md").read_text()


def test_a_rename_keeps_another_runs_row_of_the_old_name(tiny_csv, tmp_path):
    results = tmp_path / "results.json"
    grid.run_grid([_grid_config(tmp_path, tiny_csv, name="a")], results, progress=False, echo=lambda *_: None)
    other = dict(json.loads(results.read_text())[0], digest="0123456789ab", run_digest="0123456789ab")
    results.write_text(json.dumps([other]))  # a row named "a" of another run (another grid's config)
    rows = grid.run_grid([_grid_config(tmp_path, tiny_csv, name="a3", epochs=2)], results, progress=False,
                         echo=lambda *_: None)
    assert sorted(r["config"] for r in rows) == ["a", "a3"]


# ---- 4. the teacher's framing --------------------------------------------------------------------------
def test_a_teacher_of_another_framing_is_refused(tiny_csv, tmp_path):
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")  # framing kaggle
    with pytest.raises(ValueError, match=r"train.teacher .*framed 'kaggle', the student's are framed 'resize'"):
        fit(tiny_config(tiny_csv, tmp_path / "run", f"train.teacher={teacher}", "data.frame=resize"), progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


# ---- 5. train-detector resumes on its own faces only -------------------------------------------------
def test_train_detector_refuses_to_resume_on_other_faces(tmp_path):
    from facekeypoints.train.detector import FacePool, train_detector

    faces = make_faces(6, missing=False)
    images = [np.repeat(im[..., None], 3, axis=2) for im in faces.images]
    boxes = np.array([np.r_[k.min(0), k.max(0) + 1] for k in faces.keypoints])
    train_detector(tmp_path, FacePool(images, boxes), minutes=0.005, batch_size=2, progress=False, workers=0)
    with pytest.raises(ValueError, match=r"last.pt: was trained on 6 faces, now 5: the data changed"):
        train_detector(tmp_path, FacePool(images[:5], boxes[:5]), minutes=1, batch_size=2, progress=False, workers=0)


# ---- 6. a diverged run's row is not lost behind an error row ------------------------------------------
def test_a_grid_error_keeps_a_diverged_row_so_the_run_starts_afresh(tiny_csv, tmp_path):
    results = tmp_path / "results.json"
    config = _grid_config(tmp_path, tiny_csv)
    grid.run_grid([config], results, progress=False, echo=lambda *_: None)
    cfg = grid._load_all([config], False)[0]
    diverged = {**grid._error_row(cfg, "diverged: the training loss became NaN"), "stop_reason": "diverged"}
    results.write_text(json.dumps([diverged]))
    run = tmp_path / "runs" / "a"
    (run / LOCK).write_text(f"{os.getppid()}\n")  # a live process holds the folder
    rows = grid.run_grid([config], results, progress=False, echo=lambda *_: None)
    assert rows.failed and json.loads(results.read_text()) == [diverged]
    (run / LOCK).unlink()
    lines = []
    grid.run_grid([config], results, progress=False, echo=lines.append)
    assert any("starting it afresh" in line for line in lines), lines


# ---- 7. --split test with data.val ---------------------------------------------------------------------
def test_split_test_with_a_separate_val_says_the_split_was_unused(tiny_csv, tmp_path):
    val = write_kaggle_csv(make_faces(8, seed=7), tmp_path / "val.csv")
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out, f"data.val={val}", "data.split=[0.5, 0.25, 0.25]"), progress=False)
    with pytest.raises(ValueError, match=r"separate data.val .* made its data.split \[0.5, 0.25, 0.25\] unused"):
        evaluate(out / "best.pt", None, split="test")


# ---- serve 2. an override given twice ------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [["train.epochs=1", "train.epochs=2"], ["train.epochs=1", "train={epochs: 2}"],
                                       ["train.epochs=1", " train.epochs =3"]])
def test_a_setting_overridden_twice_with_different_values_is_refused(overrides):
    with pytest.raises(ConfigError, match=r"--set train.epochs is given twice, as 1 .* and as \d"):
        load_config(None, overrides)


def test_a_setting_overridden_twice_alike_is_accepted():
    assert load_config(None, ["train.epochs=2", "train={epochs: 2}"]).train.epochs == 2


# ---- serve 6e. the basis of a card's val_rmse ----------------------------------------------------------
@pytest.mark.parametrize("mirror", [True, False])
def test_a_card_says_whether_its_val_rmse_used_mirror_tta(tiny_csv, tmp_path, mirror):
    fit(tiny_config(tiny_csv, tmp_path / "run", f"train.mirror_tta={str(mirror).lower()}"), progress=False)
    summary = load_checkpoint(tmp_path / "run" / "best.pt").card.summary()
    assert summary["val_mirror_tta"] is mirror and summary["val_rmse"] is not None


def test_an_older_card_does_not_say(tmp_path):
    assert load_checkpoint(mean_face_checkpoint(tmp_path / "m.pt")).card.summary()["val_mirror_tta"] is None
