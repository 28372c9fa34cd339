"""Round 7 of fresh bad inputs, training (audit cases in brackets):

A  late checks: train.optimizer / scheduler / amp / device words and loss parameter values (wing w)
   are checked when the config loads, the loss's naming train.loss_params [T09 T95 T53 G01 G03 G09];
   a device this machine lacks (train.device cuda on a CPU) is refused by `train` before the data
   is read and before the run folder is made [G02].
B  no run ends without a validated epoch: the last epoch is validated whatever stops the run (time
   limit, epochs), patience counts from the first validation [T56 T57]; data without a labelled
   point (data.val, data.train, a part of the split, a test file) is refused, naming the file and
   the part [T82 T83 T98].
C  the plateau scheduler steps on validation losses only, never on a training loss [T86].
D  --resume with a weights-only checkpoint as last.pt says so, before the data is read [T60 T61].
E  metrics.csv and config.json are written atomically [T91].
K  a labels-only CSV as data.train is named as such [T99].
L  WORLD_SIZE / RANK / LOCAL_RANK that are no numbers are named [T69]; data.schema is blamed for an
   unknown schema [T101]; --config '~/...' is expanded [T77].
M  settings that would be ignored are refused, naming both fields (distill_weight or
   teacher_max_disagreement without a teacher, step_size / gamma with a scheduler that does not use
   them, data.split imm with data.val); at their defaults they stay accepted [T23 T24 T74 T42].
N  a data.val that holds data.train's faces (a byte-identical copy, or some rows) is refused [T89].
Also: --overwrite with data that is refused keeps the old run.
"""
import csv
import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch

from facekeypoints.data import KeypointData, write_kaggle_csv
from facekeypoints.data.pipeline import load_splits
from facekeypoints.models.device import DeviceError
from facekeypoints.train import loop
from facekeypoints.train.config import ConfigError, TrainConfig, load_config
from facekeypoints.train.loop import TrainState, _stop_reason, fit
from fakes import make_faces, mean_face_checkpoint, run_cli, tiny_config

_cfg = tiny_config


def _cli_train(capsys, csv_path, out, *extra):
    """`facekeypoints train` with a tiny config file (the default recipe would add its ytf68 files)."""
    config = out.parent / "tiny.yaml"
    config.write_text(f"data: {{train: {csv_path}, split: [0.75, 0.25]}}\nmodel: {{name: fcnn}}\n"
                      "train: {epochs: 1, batch_size: 8, num_threads: 1, device: cpu}\n")
    return run_cli(["train", "--config", config, "--quiet", "--out", out, *[a for s in extra for a in ("--set", s)]],
                   capsys)


def _no_data(monkeypatch):
    """Reading the data fails the test: what is checked must be checked before it."""
    def read(*args, **kwargs):
        raise AssertionError("the data was read before the check")
    monkeypatch.setattr(loop, "load_parts", read)


def _unlabelled(n=8, seed=4) -> KeypointData:
    faces = make_faces(n, seed=seed)
    faces.keypoints[:] = np.nan
    return faces


# ---- A. words and values checked when the config loads -------------------------------------------
@pytest.mark.parametrize("item, words", [
    ("train.optimizer=sgd", ["train.optimizer", "'sgd'", "adam, adamw"]),
    ("train.optimizer=AdamW", ["train.optimizer", "'AdamW'"]),
    ("train.scheduler=Cosine", ["train.scheduler", "'Cosine'"]),
    ("train.amp=bf17", ["train.amp", "'bf17'"]),
    ("train.device=gpu", ["train.device", "'gpu'"]),
    ("train.device=cuda:x", ["train.device"]),
])
def test_unknown_words_fail_when_the_config_loads(item, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, [item])
    assert all(w in str(err.value) for w in words), err.value


@pytest.mark.parametrize("loss, params", [("wing", "{w: -1}"), ("wing", "{epsilon: 0}"), ("wing", "{w: .nan}"),
                                          ("smooth_l1", "{beta: -1}"), ("cgd", "{alpha: -0.5}"),
                                          ("cgd", "{alpha: .inf}")])
def test_loss_parameter_values_fail_when_the_config_loads_naming_train_loss_params(loss, params):
    with pytest.raises(ConfigError, match=r"^train.loss_params: "):
        load_config(None, [f"train.loss={loss}", f"train.loss_params={params}"])


def test_good_loss_values_and_devices_load():
    assert load_config(None, ["train.loss=smooth_l1", "train.loss_params={beta: 0}"]).train.loss_params == {"beta": 0}
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):  # a config may be written for another machine
        assert load_config(None, [f"train.device={device}"]).train.device == device
    # checked once every override is laid over: the device may be set after the precision
    assert load_config(None, ["train.amp=fp16", "train.device=auto"]).train.amp == "fp16"
    with pytest.raises(ConfigError, match="train.amp fp16 .* train.device is cpu"):
        load_config(None, ["train.device=cpu", "train.amp=fp16"])


def test_cuda_on_a_machine_without_it_is_refused_before_the_data_and_the_run_folder(tiny_csv, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_data(monkeypatch)
    out = tmp_path / "run"
    with pytest.raises(DeviceError, match=r"device 'cuda' was asked for \(train.device\)"):
        fit(_cfg(tiny_csv, out, "train.device=cuda"), progress=False)
    with pytest.raises(DeviceError, match="train.amp fp16 needs a GPU"):
        fit(_cfg(tiny_csv, out, "train.device=auto", "train.amp=fp16"), progress=False)
    assert not out.exists()


def test_a_bad_word_on_the_command_line_leaves_no_run_folder(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _cli_train(capsys, tiny_csv, out, "train.optimizer=sgd")
    assert code == 2 and "train.optimizer" in err and not out.exists(), err


# ---- B. every run ends validated; data without labels is refused --------------------------------
def test_patience_counts_from_the_first_validation_and_the_last_epoch_is_validated(tiny_csv, tmp_path):
    out = tmp_path / "run"
    summary = fit(_cfg(tiny_csv, out, "train.epochs=3", "train.patience=1", "train.log_every=2"), progress=False)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert summary["epochs"] >= 2 and rows[0]["val_rmse"] == ""  # epoch 1 is not validated, so no patience yet
    assert rows[-1]["val_rmse"] != "" and summary["best_epoch"] is not None and (out / "best.pt").is_file()


def test_stop_reason_judges_patience_on_validated_epochs_only():
    t = TrainConfig(epochs=10, patience=1, log_every=2)
    state = TrainState(epoch=1, history=[{"epoch": 1, "train_loss": 1.0}])
    assert _stop_reason(t, state) is None  # before any validation: nothing to be patient about
    state = TrainState(epoch=3, history=[{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 1.0,
                                         "val_rmse": 5.0}, {"epoch": 3, "train_loss": 1.0}],
                       best={"epoch": 2, "val_rmse": 5.0})
    assert _stop_reason(t, state) is None  # epoch 3 was not validated: no judgement on it
    state.history.append({"epoch": 4, "train_loss": 1.0, "val_rmse": 6.0})
    state.epoch = 4
    assert _stop_reason(t, state) == "early_stopping"
    # validated, but never finite: counted from the first validation, not from epoch 0
    state = TrainState(epoch=2, history=[{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 1.0,
                                                                              "val_rmse": math.nan}])
    assert _stop_reason(TrainConfig(epochs=10, patience=1, log_every=2), state) is None


def test_a_time_limit_before_the_first_due_validation_still_validates_the_last_epoch(tiny_csv, tmp_path):
    out = tmp_path / "run"
    summary = fit(_cfg(tiny_csv, out, "train.epochs=50", "train.log_every=10", "train.time_limit_min=0.0001"),
                  progress=False)
    assert summary["stop_reason"] == "time_limit" and summary["epochs"] == 1
    assert summary["best_epoch"] == 1 and (out / "best.pt").is_file()


def test_a_run_whose_validation_is_never_finite_exits_1(tiny_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loop, "_validate", lambda run: {"val_loss": math.nan, "val_rmse": math.nan,
                                                        "val_mae": math.nan})
    out = tmp_path / "run"
    code, _, err = _cli_train(capsys, tiny_csv, out)
    assert code == 1 and "no validated epoch gave a finite RMSE" in err and not (out / "best.pt").exists(), err


def test_data_without_a_labelled_point_is_refused_naming_the_file_and_the_part(tiny_csv, tmp_path):
    empty = write_kaggle_csv(_unlabelled(), tmp_path / "unlabelled.csv")
    with pytest.raises(ValueError, match=r"unlabelled.csv \(data.val\): has no labelled points .* validate on"):
        fit(_cfg(tiny_csv, tmp_path / "a", f"data.val={empty}", "data.split=[0.8, 0.2]"), progress=False)
    with pytest.raises(ValueError, match=r"unlabelled.csv \(data.train\): has no labelled points .* learn from"):
        fit(_cfg(empty, tmp_path / "b"), progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    one = _unlabelled(8)
    one.keypoints[0] = make_faces(1).keypoints[0]  # one labelled face: one part of the split has none
    path = write_kaggle_csv(one, tmp_path / "one.csv")
    with pytest.raises(ValueError, match=r"one.csv \(data.train\): no labelled point in the (training|validation) "
                                         r"part of its split"):
        load_splits(load_config(None, [f"data.train={path}", "data.split=[0.5, 0.5]"]).data, 96,
                    need_labels=("train", "val"))
    load_splits(load_config(None, [f"data.train={path}", "data.split=[0.5, 0.5]"]).data, 96)  # evaluate asks none


def test_a_teacher_may_train_on_unlabelled_faces_but_validation_needs_labels(tmp_path):
    teacher = mean_face_checkpoint(tmp_path / "teacher.pt")
    empty = write_kaggle_csv(_unlabelled(16), tmp_path / "unlabelled.csv")
    labelled = write_kaggle_csv(make_faces(8, seed=1), tmp_path / "val.csv")
    summary = fit(_cfg(empty, tmp_path / "a", f"data.val={labelled}", "data.split=[0.8, 0.2]",
                       f"train.teacher={teacher}", "train.teacher_max_disagreement=50"), progress=False)
    assert summary["best_epoch"] == 1
    with pytest.raises(ValueError, match=r"unlabelled.csv \(data.train\): no labelled point in the validation part"):
        fit(_cfg(empty, tmp_path / "b", f"train.teacher={teacher}"), progress=False)


# ---- C. plateau on validation losses only ---------------------------------------------------------
def test_plateau_steps_only_on_validated_epochs(tiny_csv, tmp_path, monkeypatch):
    seen = []
    step = torch.optim.lr_scheduler.ReduceLROnPlateau.step

    def record(self, metrics, *args, **kwargs):
        seen.append(float(metrics))
        return step(self, metrics, *args, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step", record)
    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out, "train.scheduler=plateau", "train.epochs=4", "train.log_every=2"), progress=False)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert seen == [float(rows[1]["val_loss"]), float(rows[3]["val_loss"])]


# ---- D. weights-only checkpoints are not resumed --------------------------------------------------
def test_resume_from_a_weights_only_checkpoint_says_so_before_the_data(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out), progress=False)
    slim = torch.load(out / "last.pt", weights_only=True)
    for key in ("optimizer", "scheduler", "train_state", "scaler"):
        slim.pop(key)
    torch.save(slim, out / "last.pt")  # as `export --format pt` writes it
    _no_data(monkeypatch)
    with pytest.raises(ValueError, match=r"last.pt: holds weights only \(no optimizer or training state.*cannot be "
                                         r"resumed"):
        fit(_cfg(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)
    mean_face_checkpoint(out / "last.pt")  # a plain model checkpoint
    with pytest.raises(ValueError, match="holds weights only"):
        fit(_cfg(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)


# ---- E. atomic metrics.csv and config.json ------------------------------------------------------
def test_a_write_cut_short_keeps_the_previous_metrics_and_config(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out, "train.epochs=2"), progress=False)
    metrics = (out / "metrics.csv").read_text()
    real = csv.DictWriter.writerows

    def dying(self, rows):
        real(self, list(rows)[:1])
        raise KeyboardInterrupt  # a second Ctrl-C mid-write

    monkeypatch.setattr(csv.DictWriter, "writerows", dying)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(tiny_csv, out, "train.epochs=3"), resume=True, progress=False)
    assert (out / "metrics.csv").read_text() == metrics
    monkeypatch.setattr(csv.DictWriter, "writerows", real)
    config = (out / "config.json").read_text()
    write_text = type(out).write_text

    def half(self, text, *args, **kwargs):
        write_text(self, text[:20], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(out), "write_text", half)
    with pytest.raises(OSError):
        fit(_cfg(tiny_csv, out, "train.epochs=3"), resume=True, progress=False)
    monkeypatch.undo()
    assert (out / "config.json").read_text() == config
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv", "tensorboard"]


# ---- K. labels only ---------------------------------------------------------------------------------
def test_a_labels_only_csv_is_named_as_such(tmp_path):
    faces = make_faces(8)
    labels = write_kaggle_csv(KeypointData.from_arrays("kaggle15", faces.keypoints), tmp_path / "labels.csv")
    with pytest.raises(ValueError, match=r"labels.csv \(data.train\): has no images \(labels only\); training needs "
                                         "the Image column"):
        fit(_cfg(labels, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


# ---- L. wording ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("WORLD_SIZE", "abc"), ("WORLD_SIZE", "0"), ("RANK", "x"),
                                         ("LOCAL_RANK", "-1")])
def test_torchrun_variables_that_are_no_numbers_are_named(tiny_csv, tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    _no_data(monkeypatch)
    with pytest.raises(ValueError, match=f"environment variable {name}="):
        fit(_cfg(tiny_csv, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def test_an_unknown_schema_blames_data_schema():
    with pytest.raises(ConfigError, match=r"^data.schema: unknown schema 'bogus'"):
        load_config(None, ["data.schema=bogus"])


def test_config_path_with_a_tilde_is_expanded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "exp.yaml").write_text("train: {optimizer: sgd}\n")
    code, _, err = run_cli(["train", "--config", "~/exp.yaml", "--out", tmp_path / "run"], capsys)
    assert code == 2 and f"{tmp_path / 'exp.yaml'}: train.optimizer" in err, err


# ---- M. settings that would be ignored ------------------------------------------------------------------
@pytest.mark.parametrize("items, fields", [
    (["train.distill_weight=5"], ["train.distill_weight", "train.teacher"]),
    (["train.teacher_max_disagreement=0.5"], ["train.teacher_max_disagreement", "train.teacher"]),
    (["train.step_size=3"], ["train.step_size", "train.scheduler"]),
    (["train.scheduler=plateau", "train.step_size=3"], ["train.step_size", "train.scheduler"]),
    (["train.gamma=0.5"], ["train.gamma", "train.scheduler"]),
    (["train.scheduler=none", "train.gamma=0.5"], ["train.gamma", "train.scheduler"]),
    (["data.val=v.csv", "data.split=imm"], ["data.split", "data.val"]),
])
def test_settings_that_would_be_ignored_are_refused_naming_both(items, fields):
    with pytest.raises(ConfigError) as err:
        load_config(None, items)
    assert all(f in str(err.value) for f in fields), err.value


def test_the_same_settings_at_their_defaults_or_where_used_are_accepted():
    defaults = TrainConfig()
    for items in (["train.distill_weight=1.0", "train.teacher_max_disagreement=2.0"],  # the defaults, spelt out
                  [f"train.step_size={defaults.step_size}", f"train.gamma={defaults.gamma}"],
                  ["train.teacher=t.pt", "train.distill_weight=5", "train.teacher_max_disagreement=0.5"],
                  ["train.scheduler=step", "train.step_size=3", "train.gamma=0.5"],
                  ["train.scheduler=plateau", "train.gamma=0.5"], ["data.val=v.csv"]):
        load_config(None, items)
    with warnings.catch_warnings(record=True) as caught:  # ratios with data.val: said, not refused
        warnings.simplefilter("always")
        load_config(None, ["data.split=[0.7, 0.3]", "data.val=v.csv"])
    assert any("data.split [0.7, 0.3] not used" in str(w.message) for w in caught)


# ---- N. data.val that holds data.train's faces ----------------------------------------------------------
def test_a_copy_of_data_train_as_data_val_is_refused(tiny_csv, tmp_path):
    copy = shutil.copy(tiny_csv, tmp_path / "copy.csv")
    with pytest.raises(ValueError, match=r"copy.csv \(data.val\): all 32 of its faces are in data.train"):
        fit(_cfg(tiny_csv, tmp_path / "run", f"data.val={copy}", "data.split=[0.8, 0.2]"), progress=False)
    assert not (tmp_path / "run").exists()
    some = make_faces(8, seed=9)
    some.images[[2, 5]] = make_faces(32).images[[0, 7]]  # two of data.train's faces among others
    path = write_kaggle_csv(some, tmp_path / "some.csv")
    with pytest.raises(ValueError, match=r"some.csv \(data.val\): 2 of its 8 faces are also in data.train .* "
                                         r"e.g. 3, 6\)"):
        load_splits(load_config(None, [f"data.train={tiny_csv}", f"data.val={path}"]).data, 96)
    other = write_kaggle_csv(make_faces(8, seed=9), tmp_path / "other.csv")
    train, val, _ = load_splits(load_config(None, [f"data.train={tiny_csv}", f"data.val={other}"]).data, 96)
    assert (len(train), len(val)) == (32, 8)


# ---- --overwrite with refused data -------------------------------------------------------------------
def test_overwrite_with_data_that_is_refused_keeps_the_old_run(tiny_csv, tmp_path):
    out = tmp_path / "run"
    fit(_cfg(tiny_csv, out), progress=False)
    before = sorted(p.name for p in out.iterdir())
    empty = write_kaggle_csv(_unlabelled(), tmp_path / "unlabelled.csv")
    with pytest.raises(ValueError, match="has no labelled points"):
        fit(_cfg(empty, out), overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before
    assert json.loads((out / "config.json").read_text())["config"]["data"]["train"] == str(tiny_csv)
