"""Round 15 of fresh bad inputs, training, grid and train-detector (audit /tmp/fuzz15/train):

1  the grid resumes a stopped run when train.epochs is lowered but still above the epochs it has done.
2  two train-detector runs into one --out: the second is refused (the folder's lock, as `train` takes).
3  train-detector --init with an --out holding a run: said not used; refused when the file does not exist.
4  train-detector --init errors name the option and give a readable reason, no advice to move the file.
5  `train` into a train-detector folder says so, offering neither --resume nor --overwrite.
6  model options written out at their defaults are the same recipe (resume, grid digest).
7  model options that build an empty layer are refused naming the option.
8  train-detector --imm with none of IMM's training people (1-32) is an error naming the folder.
9  a grid config name holding "|" keeps its table row's columns.
"""
import json

import numpy as np
import pytest

from facekeypoints.train import grid
from fakes import tiny_config
from test_fuzz_round13_train import _grid_config  # one tiny grid config for the rounds


def _grid(tmp_path, csv, results, lines=None, **kw):
    return grid.run_grid([_grid_config(tmp_path, csv, **kw)], results, progress=False,
                         echo=(lines.append if lines is not None else lambda *_: None))


# ---- 1. fewer epochs, still more than were done: resumed ----------------------------------------------
def test_a_stopped_run_resumes_with_fewer_epochs_still_above_those_done(tiny_csv, tmp_path):
    results = tmp_path / "r.json"
    # stopped by its time limit after its first of 3 epochs (an allowed change to resume with)
    rows = _grid(tmp_path, tiny_csv, results, epochs=3, extra=", time_limit_min: 0.00001")
    assert rows[0]["epochs"] == 1 and rows[0]["stop_reason"] == "time_limit"
    lines = []
    rows = _grid(tmp_path, tiny_csv, results, lines, epochs=2)
    assert any("resuming" in line for line in lines) and not any("moved to" in line for line in lines), lines
    assert rows[0]["epochs"] == 2 and not [p for p in (tmp_path / "runs").iterdir() if ".stale-" in p.name]


# ---- 2. one training per train-detector folder -------------------------------------------------------
def _pool(n=6):
    from facekeypoints.train.detector import FacePool
    from fakes import make_faces

    faces = make_faces(n, missing=False)
    images = [np.repeat(im[..., None], 3, axis=2) for im in faces.images]
    return FacePool(images, np.array([np.r_[k.min(0), k.max(0) + 1] for k in faces.keypoints]))


def _train_detector(out, **kw):
    from facekeypoints.train.detector import train_detector

    return train_detector(out, _pool(), **{"minutes": 0.003, "batch_size": 2, "progress": False, "workers": 0, **kw})


def test_train_detector_refuses_a_folder_another_training_holds(tmp_path):
    import os

    from facekeypoints.train.detector import check_run
    from facekeypoints.train.folder_claim import LOCK

    out = tmp_path / "det"
    out.mkdir()
    (out / LOCK).write_text(f"{os.getppid()}\n")  # a live process trains there
    for attempt in (lambda: check_run(out), lambda: _train_detector(out)):  # before reading photos, and at the start
        with pytest.raises(ValueError, match=r"det: in use by another training \(pid \d+\); wait for it, or train"):
            attempt()
    assert not (out / "last.pt").exists()
    (out / LOCK).unlink()
    _train_detector(out)  # free again: trains, and gives its claim back
    assert (out / "last.pt").is_file() and not (out / LOCK).exists()


# ---- 3. --init where --out holds a run -----------------------------------------------------------------
def test_init_beside_a_run_to_resume_is_said_not_used_or_refused_when_missing(tmp_path):
    from facekeypoints.train.detector import check_run

    first, second = tmp_path / "first", tmp_path / "second"
    _train_detector(first)
    _train_detector(second)
    with pytest.raises(ValueError, match=r"--init .*nowhere\.pt: no such file"):
        check_run(second, init=tmp_path / "nowhere.pt")
    with pytest.warns(UserWarning, match=r"--init .*first.last\.pt not used: .*second holds a run, which resumes"):
        _train_detector(second, init=first / "last.pt")


# ---- 4. --init errors: the option named, a reason in words, no advice to move the file -------------------
@pytest.mark.parametrize("content, reason", [
    (b"junk\n", r"not a PyTorch checkpoint: damaged, or another kind of file"),
    (b"", r"an empty file"),
])
def test_an_unreadable_init_file_is_named_with_a_reason(tmp_path, content, reason):
    from facekeypoints.train.detector import check_run

    (tmp_path / "init.pt").write_bytes(content)
    with pytest.raises(ValueError, match=rf"^--init .*init\.pt: cannot be read \({reason}\); give the last\.pt of a "
                                         r"train-detector run$"):
        check_run(tmp_path / "new", init=tmp_path / "init.pt")


def test_a_keypoint_checkpoint_as_init_is_named_without_moving_it_aside(tmp_path):
    from facekeypoints.train.detector import check_run
    from fakes import mean_face_checkpoint

    mean_face_checkpoint(tmp_path / "best.pt")
    with pytest.raises(ValueError, match=r"^--init .*best\.pt: not a face-detector run's last\.pt \(.*a keypoint "
                                         r"model's checkpoint\?\); give the last\.pt of a train-detector run$"):
        check_run(tmp_path / "new", init=tmp_path / "best.pt")


# ---- 5. `train` into a train-detector folder ---------------------------------------------------------
@pytest.mark.parametrize("resume, overwrite", [(False, False), (True, False), (False, True)])
def test_train_into_a_detector_folder_says_so_and_keeps_its_last_pt(tiny_csv, tmp_path, resume, overwrite):
    from facekeypoints.train.loop import fit

    out = tmp_path / "det"
    _train_detector(out)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"det: holds a face-detector run \(train-detector's last\.pt, "
                                         r"face_detector\.onnx\).*; train into another --out folder$") as err:
        fit(tiny_config(tiny_csv, out), resume=resume, overwrite=overwrite, progress=False)
    assert "--resume" not in str(err.value) and "--overwrite" not in str(err.value)
    assert (out / "last.pt").read_bytes() == before and not (out / "best.pt").exists()


# ---- 6. a model option written out at its default is the same recipe -----------------------------------
def test_a_model_option_at_its_default_resumes_and_keeps_the_grid_digest(tiny_csv, tmp_path):
    from facekeypoints.models import option_defaults
    from facekeypoints.train.loop import fit

    out = tmp_path / "run"
    fit(tiny_config(tiny_csv, out), progress=False)  # fcnn, options left out
    hidden = option_defaults("fcnn")["hidden"]
    spelt = tiny_config(tiny_csv, out, "train.epochs=2", f"model.options.hidden={hidden}")
    assert fit(spelt, resume=True, progress=False)["epochs"] == 2
    assert grid.config_digest(spelt) == grid.config_digest(tiny_config(tiny_csv, out, "train.epochs=2"))
    other = tiny_config(tiny_csv, out, "train.epochs=3", f"model.options.hidden={hidden + 1}")
    with pytest.raises(ValueError, match=rf"different recipe \(model\.options\.hidden: None -> {hidden + 1}\)"):
        fit(other, resume=True, progress=False)  # another value is still another recipe


def test_the_grid_does_not_retrain_a_row_for_a_default_written_out(tiny_csv, tmp_path):
    from facekeypoints.models import option_defaults

    results = tmp_path / "r.json"
    _grid(tmp_path, tiny_csv, results)
    config = _grid_config(tmp_path, tiny_csv)
    hidden = option_defaults("fcnn")["hidden"]
    config.write_text(config.read_text().replace("{name: fcnn}", f"{{name: fcnn, options: {{hidden: {hidden}}}}}"))
    lines = []
    grid.run_grid([config], results, progress=False, echo=lines.append)
    assert f"hidden: {hidden}" in config.read_text() and lines and lines[0].startswith("a: done"), lines


# ---- 7. options that build an empty layer ----------------------------------------------------------------
@pytest.mark.parametrize("model, option, shown, what", [
    ("keypoint_net", "head_channels=0", "0", "channel counts"),
    ("keypoint_net", "channels=[0,8,16,32]", r"\[0, 8, 16, 32\]", "channel counts"),
    ("keypoint_net", "blocks=[-1,1,1]", r"\[-1, 1, 1\]", "block counts"),
    ("fcnn", "hidden=0", "0", "layer widths"),
])
def test_a_model_option_that_builds_an_empty_layer_is_refused_naming_it(model, option, shown, what):
    from facekeypoints.models import create_model
    from facekeypoints.train.config import ConfigError, load_config

    key = option.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^model\.options\.{key}: {shown}; {what} must be whole numbers >= \d$"):
        load_config(None, [f"model.name={model}", f"model.options.{option}"])
    value = json.loads(option.split("=")[1])
    with pytest.raises(ValueError, match=rf"^model '{model}' option {key}: {shown}; {what}"):
        create_model(model, **{key: tuple(value) if isinstance(value, list) else value})


# ---- 8. --imm of IMM's validation people only ---------------------------------------------------------------
def _imm_folder(folder, people):
    import cv2

    folder.mkdir()
    rel = np.random.default_rng(0).uniform(0.2, 0.8, (58, 2))
    for person in people:
        name = f"{person:02d}-1m"
        lines = ["#", "# number of model points", "#", "58", "", "# model points"]
        lines += [f"0 \t4 \t{x:.8f} \t{y:.8f} \t{i} \t{max(i - 1, 0)} \t{i + 1}" for i, (x, y) in enumerate(rel)]
        (folder / f"{name}.asf").write_text("\n".join(lines + ["", "#", "# host image", "#", f"{name}.jpg"]) + "\n")
        cv2.imwrite(str(folder / f"{name}.jpg"), np.full((48, 64, 3), 90 + person, np.uint8))
    return folder


def test_imm_of_validation_people_only_is_refused_naming_the_folder(tmp_path):
    from facekeypoints.train.detector import FacePool

    with pytest.raises(ValueError, match=r"^--imm .*immv: its 2 photos are all of IMM's validation people \(33, 34; "
                                         r".*the detector trains on people 01-32 only"):
        FacePool.from_datasets(None, _imm_folder(tmp_path / "immv", [33, 34]))
    pool = FacePool.from_datasets(None, _imm_folder(tmp_path / "mixed", [1, 33]))  # person 01 trains
    assert len(pool.images) == 1


# ---- 9. a "|" in a config name --------------------------------------------------------------------------
def test_a_config_name_with_a_bar_keeps_its_row_of_the_table():
    row = {"config": "p|q", "model": "simple_cnn", "data": "75/25 random rows, mask", "epochs": 1, "minutes": 0.1,
           "device": "cpu", "rmse": 1.0, "mae": 1.0, "nme": 0.1, "measured": "", "differs": ""}
    header, _, line = grid.markdown_table([row]).splitlines()
    assert line.count("|") == header.count("|") and "p/q" in line
