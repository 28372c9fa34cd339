"""Round-8 training audit (/tmp/fuzz8-train) fixes.

F1 a teacher with NaN/inf weights is refused before data is read [T025]; Teacher.targets treats
   non-finite predictions as unsure.
F2 a run claims its folder (.training.lock with its pid); a second training is refused, a stale
   lock (dead pid, e.g. after SIGKILL) is taken over, the lock goes at the end [R027 R026 G024].
F3 repeated rows of data.train that land in both split parts are refused [T071].
F5 preprocess.size > 1024, clahe_grid > size and models of > 500M parameters are refused at load
   [T009 T010 Y056].
F6 RANK / LOCAL_RANK >= WORLD_SIZE are refused [T063].
F8 a FIFO or a symlink-loop --config is one line [G022 G015 G023].
Minor: split errors name data.split and data.train [T004]; an empty section is defaults [Y005];
   --set train=3 [Y025]; no doubled prefix [Y037]; empty model.pretrained [Y053]; --out f/run [R013].
"""
import os

import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.train.folder_claim import LOCK
from facekeypoints.train.config import ConfigError, load_config
from facekeypoints.train.distill import _check_finite
from facekeypoints.train.loop import check_machine, fit
from fakes import make_faces, tiny_config

_cfg = tiny_config


def test_nan_teacher_weights_refused():
    with pytest.raises(ValueError, match=r"t.pt: 1 of 2 weight tensors hold NaN"):
        _check_finite({"a": torch.ones(2), "b": torch.tensor([float("nan")])}, "t.pt")


def test_lock_refuses_live_and_takes_over_stale(tmp_path, tiny_csv):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(f"{os.getppid()}\n")  # a live process
    with pytest.raises(ValueError, match=r"in use by another training \(pid"):
        fit(_cfg(tiny_csv, out), progress=False)
    (out / LOCK).write_text("999999999\n")  # dead
    assert fit(_cfg(tiny_csv, out), progress=False)["stop_reason"] == "epochs"
    assert not (out / LOCK).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".training")]


def test_refused_run_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Exception):
        fit(_cfg(tmp_path / "missing.csv", out), progress=False)
    assert not out.exists()


def test_repeated_rows_across_split_refused(tmp_path):
    faces = make_faces(16)
    path = write_kaggle_csv(faces, tmp_path / "dup.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + lines[1:] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"dup.csv \(data.train\): repeats faces \(the same pixels in several rows"):
        fit(_cfg(path, tmp_path / "run"), progress=False)


@pytest.mark.parametrize("override, message", [
    ("preprocess.size=100000", "preprocess.size 100000 is more than 1024"),
    ("preprocess.clahe_grid=1000", "clahe_grid must be at most 64"),  # Preprocess bounds it first (round 10)
    ("model.options={channels: [8, 16, 32, 100000]}", "model.options"),
    ("train=3", "train: expected a mapping of settings"),
    ("augment.padding=reflect", r"^augment\.padding must"),
    ("model.pretrained=''", "model.pretrained: empty"),
])
def test_bounds_at_load(override, message):
    extra = ["model.name=keypoint_net"] if "channels" in override else []
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*extra, override])


def test_empty_section_is_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\naugment:\n")
    assert load_config(path).train.epochs == 2


def test_fifo_and_symlink_loop_config(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)
    loop_link = tmp_path / "loop.yaml"
    loop_link.symlink_to(loop_link)
    with pytest.raises(ConfigError, match="symbolic link loop"):
        load_config(loop_link)


def test_rank_beyond_world(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5 is not below WORLD_SIZE=2"):
        check_machine(load_config(None, ["train.device=cpu"]).train)


def test_split_error_names_fields(tmp_path, tiny_csv):
    with pytest.raises(ValueError, match=r"data.split \[0.99, 0.01\] of data.train .*training.csv"):
        fit(_cfg(tiny_csv, tmp_path / "run", "data.split=[0.99, 0.01]"), progress=False)


def test_out_under_a_file(tmp_path, tiny_csv):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        fit(_cfg(tiny_csv, tmp_path / "f" / "run"), progress=False)
