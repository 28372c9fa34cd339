"""Round 12 of fresh bad inputs, training, grid and evaluation (audit /tmp/fuzz12-train problems):

1  RMSE and MAE are in the labelled images' pixels whatever preprocess.size (training's validation,
   best.pt's card, evaluate --split, so the grid's rows and compare), not in the model's input pixels.
2  a grid error before training (a run folder held by another training) neither replaces the config's
   finished row nor makes the next grid start the run afresh: it resumes.
3  --resume refuses a train.teacher file that is not the one the run started with, naming both.
4  a 3-ratio data.split's third part is reported as the held-out test part and scored by evaluate
   --split test; a run without one says so.
5  train-detector's mosaic workers leave SIGINT and SIGTERM to the main process.
7  a renamed config's row is renamed (refreshed), not kept beside a second row of the same run.
8  --resume past train.time_limit_min is refused (it trained one more epoch each time).
Also: evaluate of a model with NaN weights names the model, not "pred".
"""
import json
import os
import signal

import numpy as np
import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.data.pipeline import load_parts
from facekeypoints.evaluate.runner import evaluate
from facekeypoints.models.checkpoint import load_checkpoint, save_checkpoint
from facekeypoints.train import grid
from facekeypoints.train.folder_claim import LOCK
from facekeypoints.train.loop import fit
from fakes import mean_face_checkpoint, tiny_config


# ---- 1. one unit: the labelled images' pixels ------------------------------------------------------
def test_validation_rmse_is_in_image_pixels_when_preprocess_size_differs(tiny_csv, tmp_path):
    out = tmp_path / "run"  # 96-pixel faces into a 64-pixel model
    summary = fit(tiny_config(tiny_csv, out, "preprocess.size=64", "data.frame=resize", "train.epochs=2"),
                  progress=False)
    card = load_checkpoint(out / "best.pt").card
    split = evaluate(out / "best.pt", None, split="val")
    parts, _, _ = load_parts(card.trained_on, 96)  # the same validation faces, as the 96-pixel images
    val_csv = write_kaggle_csv(parts["val"], tmp_path / "val96.csv")
    on_file = evaluate(out / "best.pt", val_csv)
    assert summary["best_val_rmse"] == pytest.approx(on_file["rmse"], rel=1e-4)
    assert split["rmse"] == pytest.approx(on_file["rmse"], rel=1e-4)
    assert split["mae"] == pytest.approx(on_file["mae"], rel=1e-4)
    assert card.metrics["val_rmse"] == pytest.approx(on_file["rmse"], rel=1e-4)


# ---- 4. the held-out test part ---------------------------------------------------------------------
def test_a_third_split_part_is_reported_and_scored_as_test(tiny_csv, tmp_path):
    out = tmp_path / "run"
    summary = fit(tiny_config(tiny_csv, out, "data.split=[0.5, 0.25, 0.25]"), progress=False)
    data = summary["data"]
    assert data["train"] + data["val"] + data["test"] == data["read"] == 32
    assert "held out" in data["test_use"]
    test = evaluate(out / "best.pt", None, split="test")
    assert test["data"] == "test split of the model's run" and np.isfinite(test["rmse"])


def test_split_test_of_a_run_without_a_test_part_is_refused(tiny_csv, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out), progress=False)
    with pytest.raises(ValueError, match=r"split 'test': the model's run has no test part \(its data.split"):
        evaluate(out / "best.pt", None, split="test")


# ---- 3. the teacher's file is fingerprinted --------------------------------------------------------
def test_resume_with_another_teacher_file_is_refused(tiny_csv, tmp_path):
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out, f"train.teacher={teacher}", "train.epochs=1"), progress=False)
    mean_face_checkpoint(teacher, wobble=2.0, seed=3)  # another teacher at the same path
    with pytest.raises(ValueError, match="is another file than this run started with") as err:
        fit(tiny_config(tiny_csv, out, f"train.teacher={teacher}", "train.epochs=2"), resume=True, progress=False)
    assert "sha256" in str(err.value) and "bytes" in str(err.value)


def test_resume_with_the_same_teacher_goes_on(tiny_csv, tmp_path):
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out, f"train.teacher={teacher}", "train.epochs=1"), progress=False)
    summary = fit(tiny_config(tiny_csv, out, f"train.teacher={teacher}", "train.epochs=2"), resume=True,
                  progress=False)
    assert summary["epochs"] == 2


# ---- 8. a time limit already spent ----------------------------------------------------------------
def test_resume_past_the_time_limit_is_refused(tiny_csv, tmp_path):
    out = tmp_path / "run"
    settings = ("train.epochs=5", "train.time_limit_min=0.00001")
    assert fit(tiny_config(tiny_csv, out, *settings), progress=False)["stop_reason"] == "time_limit"
    with pytest.raises(ValueError, match=r"already past train.time_limit_min=1e-05 .*nothing to train"):
        fit(tiny_config(tiny_csv, out, *settings), resume=True, progress=False)
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # still one epoch
    summary = fit(tiny_config(tiny_csv, out, "train.epochs=2", "train.time_limit_min=0"), resume=True,
                  progress=False)
    assert summary["epochs"] == 2


# ---- 2 and 7. the grid's rows ----------------------------------------------------------------------
def _grid_config(tmp_path, csv, name="a", epochs=1):
    config = tmp_path / "cfgs" / "a.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(f"name: {name}\ndata: {{train: {csv}, split: [0.75, 0.25]}}\nmodel: {{name: fcnn}}\n"
                      f"train: {{epochs: {epochs}, batch_size: 8, num_threads: 1}}\nout_dir: {tmp_path / 'runs' / 'a'}\n")
    return config


def test_a_grid_error_before_training_keeps_the_row_and_the_trained_epochs(tiny_csv, tmp_path):
    results = tmp_path / "results.json"
    config = _grid_config(tmp_path, tiny_csv, epochs=1)
    grid.run_grid([config], results, progress=False, echo=lambda *_: None)
    finished = json.loads(results.read_text())
    config = _grid_config(tmp_path, tiny_csv, epochs=2)
    run = tmp_path / "runs" / "a"
    (run / LOCK).write_text(f"{os.getppid()}\n")  # a live process holds the folder
    lines = []
    rows = grid.run_grid([config], results, progress=False, echo=lines.append)
    assert rows.failed and "in use by another training" in rows.failed[0]
    assert json.loads(results.read_text()) == finished, "the finished row was replaced by the error"
    assert any("previous row is kept" in line for line in lines), lines
    (run / LOCK).unlink()
    first_epoch = (run / "metrics.csv").read_text().splitlines()[1]
    lines = []
    grid.run_grid([config], results, progress=False, echo=lines.append)
    assert any(line.strip().startswith(f"resuming {run}") for line in lines), lines
    assert not any("afresh" in line for line in lines), lines
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3 and metrics[1] == first_epoch  # epoch 1 kept, not trained again


def test_an_error_row_does_not_start_the_run_afresh(tiny_csv, tmp_path):
    results = tmp_path / "results.json"
    config = _grid_config(tmp_path, tiny_csv, epochs=1)
    grid.run_grid([config], results, progress=False, echo=lambda *_: None)
    config = _grid_config(tmp_path, tiny_csv, epochs=2)
    cfg = grid._load_all([config], False)[0]
    results.write_text(json.dumps([grid._error_row(cfg, f"{config}: a transient error")]))
    lines = []
    grid.run_grid([config], results, progress=False, echo=lines.append)
    assert not any("afresh" in line for line in lines) and any("resuming" in line for line in lines), lines


def test_a_renamed_config_has_its_row_renamed_not_doubled(tiny_csv, tmp_path):
    results = tmp_path / "results.json"
    grid.run_grid([_grid_config(tmp_path, tiny_csv, name="old")], results, progress=False, echo=lambda *_: None)
    before = json.loads(results.read_text())[0]
    lines = []
    rows = grid.run_grid([_grid_config(tmp_path, tiny_csv, name="new")], results, progress=False,
                         echo=lines.append)
    assert [r["config"] for r in rows] == ["new"], rows
    assert rows[0]["rmse"] == before["rmse"] and "renamed_from" not in rows[0]
    assert any("row refreshed, not retrained" in line for line in lines), lines
    assert "`old`" not in (tmp_path / "results.md").read_text()


# ---- 5. the detector's mosaic workers ---------------------------------------------------------------
def test_detector_workers_leave_stop_signals_to_the_main_process():
    from facekeypoints.train.detector import _leave_signals_to_main

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _leave_signals_to_main(0)
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in old)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ---- minor: NaN weights are named as the model's -----------------------------------------------------
def test_evaluate_of_nan_weights_names_the_model(tiny_csv, tmp_path):
    from facekeypoints.models.checkpoint import load_model

    net, card = load_model(mean_face_checkpoint(tmp_path / "ok.pt"))
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    path = tmp_path / "nan.pt"
    save_checkpoint(path, net, card)
    with pytest.raises(ValueError, match=rf"^{path}: predicts NaN for \d+ of the \d+ labelled points of "):
        evaluate(path, tiny_csv)


def test_a_grid_row_of_a_three_part_split_holds_the_test_scores(tiny_csv, tmp_path):
    config = tmp_path / "a.yaml"
    config.write_text(f"data: {{train: {tiny_csv}, split: [0.5, 0.25, 0.25]}}\nmodel: {{name: fcnn}}\n"
                      f"train: {{epochs: 1, batch_size: 8, num_threads: 1}}\nout_dir: {tmp_path / 'runs' / 'a'}\n")
    row = grid.run_grid([config], tmp_path / "results.json", progress=False, echo=lambda *_: None)[0]
    test = evaluate(tmp_path / "runs" / "a" / "best.pt", None, split="test")
    assert row["test_rmse"] == test["rmse"] and row["rmse"] != row["test_rmse"]
