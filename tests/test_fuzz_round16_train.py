"""Round 16, training commands (auditor's /tmp/fuzz16/train):

- P1 grid never moves aside a run folder another live training holds: the row fails naming the folder
     and that training's pid, and the folder stays where it is.
- P2 a damaged last.pt in a grid's run folder is not blamed on data.train ("facekeypoints" holds "keypoint").
- P3 a cut-short, empty or text checkpoint is worded (cut short, empty, not a PyTorch checkpoint), not
     torch's "[Errno 22] Invalid argument" or "KeyError: 101"; train-detector shares the wording.
- P4 train-detector refuses faces whose landmarks collapse to a point (a 1-pixel box), naming the rows.
- P5 an unknown model.name is named as model.name, not model.options.
- P6 a failing TensorBoard write is one warning naming the folder; training goes on.
"""
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from facekeypoints.data import write_kaggle_csv
from facekeypoints.models.checkpoint import CheckpointError, load_checkpoint, unreadable_reason
from facekeypoints.train import grid
from facekeypoints.train.config import ConfigError, load_config
from facekeypoints.train.folder_claim import LOCK
from facekeypoints.train.tensorboard_log import TensorBoardLog
from fakes import make_faces, mean_face_checkpoint, ytf68_csv

CONFIG = """data: {{train: {csv}, split: [0.75, 0.25]}}
model: {{name: fcnn}}
train: {{epochs: 1, batch_size: 8, num_threads: 1, device: cpu}}
out_dir: {out}
"""


def _grid_with_run(tmp_path, trained: dict) -> tuple[Path, Path, Path]:
    """A one-config grid whose run folder holds a stopped run (last.pt) trained with ``trained`` changes."""
    csv = write_kaggle_csv(make_faces(), tmp_path / "faces.csv")
    configs, out = tmp_path / "cfgs", tmp_path / "runs" / "a"
    configs.mkdir()
    (configs / "a.yaml").write_text(CONFIG.format(csv=csv, out=out))
    cfg = load_config(configs / "a.yaml")
    saved = cfg.to_dict()
    for key, value in trained.items():
        section, name = key.split(".")
        saved[section][name] = value
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"config": saved}))
    return configs, out, tmp_path / "res" / "r.json"


# ---- P1 ------------------------------------------------------------------------------------------------
def test_P1_grid_leaves_a_folder_a_live_training_holds_where_it_is(tmp_path, monkeypatch):
    configs, out, results = _grid_with_run(tmp_path, {"train.lr": 0.5})  # another recipe: would be moved aside
    (out / "last.pt").write_bytes(b"the live run's")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(f"{live.pid}\n")
        monkeypatch.setattr(grid, "fit", lambda *a, **k: pytest.fail("fit ran in a folder another training holds"))
        rows = grid.run_grid(sorted(configs.iterdir()), results, progress=False, echo=lambda *a: None)
    finally:
        live.kill()
        live.wait()
    assert sorted(p.name for p in out.parent.iterdir()) == ["a"], "the live run's folder was moved"
    assert (out / "last.pt").read_bytes() == b"the live run's"
    why = rows.failed[0]
    assert f"{out}: in use by another training (pid {live.pid})" in why and "data.train" not in why, why


# ---- P2 ------------------------------------------------------------------------------------------------
def test_P2_a_damaged_last_pt_is_not_blamed_on_the_data(tmp_path, monkeypatch):
    configs, out, results = _grid_with_run(tmp_path, {"train.epochs": 5})  # fewer epochs now: reads last.pt
    (out / "last.pt").write_bytes(b"PK\x03\x04" + b"\0" * 96)  # cut short at 100 bytes
    monkeypatch.setattr(grid, "fit", lambda *a, **k: pytest.fail("fit ran on a damaged last.pt"))
    rows = grid.run_grid(sorted(configs.iterdir()), results, progress=False, echo=lambda *a: None)
    why = rows.failed[0]
    assert why.startswith(f"a: {configs / 'a.yaml'}: {out / 'last.pt'}: not a readable facekeypoints checkpoint"), why
    assert "data.train" not in why, why


@pytest.mark.parametrize("text, blamed", [
    ("runs/faces_split/last.pt: not a readable facekeypoints checkpoint", False),
    ("split (0.75, 0.25) of 2 samples leaves part(s) [1] empty", True),
    ("no keypoints labelled in the validation part", True),
])
def test_P2_only_words_about_the_data_name_data_train(tmp_path, text, blamed):
    cfg = load_config(None, [f"data.train={tmp_path / 'd.csv'}", f"out_dir={tmp_path / 'runs' / 'x'}"])
    reason = grid._error_reason(cfg, "c.yaml", ValueError(text))
    assert ("data.train" in reason) == blamed and reason.startswith("c.yaml: "), reason


def test_P2_an_error_about_the_run_folder_names_the_config_only(tmp_path):
    out = tmp_path / "faces" / "split"  # words of the data's content in the folder's own name
    cfg = load_config(None, [f"data.train={tmp_path / 'd.csv'}", f"out_dir={out}"])
    reason = grid._error_reason(cfg, "c.yaml", ValueError(f"{out}: in use by another training (pid 7)"))
    assert reason == f"c.yaml: {out}: in use by another training (pid 7)"


# ---- P3 ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt").read_bytes()


@pytest.mark.parametrize("cut, reason", [
    (5000, "a damaged PyTorch file: cut short or corrupted"),  # torch: "OSError: [Errno 22] Invalid argument"
    (100, "a damaged PyTorch file: cut short or corrupted"),  # torch: a paragraph of miniz
    (0, "an empty file"),  # torch: "EOFError: "
    (None, "not a PyTorch checkpoint: damaged, or another kind of file"),  # text: torch's "KeyError: 101"
])
def test_P3_an_unreadable_checkpoint_is_worded(tmp_path, checkpoint_bytes, cut, reason):
    path = tmp_path / "m.pt"
    path.write_bytes(b"hello\n" if cut is None else checkpoint_bytes[:cut])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path}: not a readable facekeypoints checkpoint ({reason})"


def test_P3_the_file_systems_own_reason_stays(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"x")
    assert unreadable_reason(path, PermissionError(13, "Permission denied")) == "permission denied"


def test_P3_train_detector_words_a_cut_file_alike(tmp_path, checkpoint_bytes):
    from facekeypoints.train.detector import check_run

    (tmp_path / "init.pt").write_bytes(checkpoint_bytes[:5000])
    with pytest.raises(ValueError, match=r"init\.pt: cannot be read \(a damaged PyTorch file: cut short or corrupted\)"):
        check_run(tmp_path / "new", init=tmp_path / "init.pt")


# ---- P4 ------------------------------------------------------------------------------------------------
def _collapse(csv: Path, rows) -> None:
    """Every landmark of ``rows`` (0-based data rows) set to (5, 5)."""
    lines = csv.read_text().splitlines()
    for r in rows:
        image, person, *cells = lines[r + 1].split(",")
        lines[r + 1] = ",".join([image, person] + ["5"] * len(cells))
    csv.write_text("\n".join(lines) + "\n")


def test_P4_faces_whose_landmarks_collapse_to_a_point_are_refused_by_row(tmp_path):
    from facekeypoints.train.detector import FacePool

    csv = ytf68_csv(tmp_path / "good", rows=10)
    assert len(FacePool.from_datasets(csv, None).images) == 8  # the training people's faces
    csv = ytf68_csv(tmp_path / "bad", rows=10)
    _collapse(csv, range(10))
    with pytest.raises(ValueError, match=r"train\.csv: --ytf68 row \d+ \(train/face\d\.png\): its landmarks span 0 x 0 px;"
                                         r".* and 5 more such rows: .* under 8 px a side .*; fix or remove these rows$"):
        FacePool.from_datasets(csv, None)


# ---- P5 ------------------------------------------------------------------------------------------------
def test_P5_an_unknown_model_is_named_as_model_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: simple_cnm}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: model\.name: unknown model 'simple_cnm'; did you mean"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^model\.name: unknown model 'SIMPLE_CNN'; known models"):
        load_config(None, ["model.name=SIMPLE_CNN"])
    with pytest.raises(ConfigError, match=r"^model\.options: "):  # a wrong option is still the options'
        load_config(None, ["model.name=simple_cnn", "model.options={chanels: [8]}"])


# ---- P6 ------------------------------------------------------------------------------------------------
def test_P6_a_removed_tensorboard_folder_is_one_warning_and_no_thread_traceback(tmp_path, monkeypatch):
    import shutil

    hooked = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args))  # "Exception in thread"
    log = TensorBoardLog(tmp_path / "tensorboard")
    log.scalars({"train_loss": 1.0}, 1)
    shutil.rmtree(tmp_path / "tensorboard")  # tidied away while the run trains
    with pytest.warns(UserWarning, match=r"tensorboard: TensorBoard events could not be written \(no such file or "
                                         r"directory\); training goes on") as said:
        for epoch in range(2, 5):
            log.scalars({"train_loss": 1.0}, epoch)
        log.close()
    assert len(said) == 1, [str(w.message) for w in said]  # once, not every epoch
    assert not hooked, [h.exc_value for h in hooked]
    assert threading.excepthook is not log._quiet_writer_thread  # given back


def test_P6_training_goes_on_when_its_events_cannot_be_written(tmp_path, tiny_csv, monkeypatch):
    from facekeypoints.train import loop

    def fails(self, values, step):
        self._fail(OSError(5, "Input/output error"))

    monkeypatch.setattr(TensorBoardLog, "scalars", fails)
    cfg = load_config(None, [f"data.train={tiny_csv}", f"out_dir={tmp_path / 'run'}", "model.name=fcnn",
                             "train.epochs=2", "train.batch_size=8", "train.num_threads=1", "train.device=cpu"])
    with pytest.warns(UserWarning, match=r"could not be written \(input/output error\)"):
        summary = loop.fit(cfg, progress=False)
    assert summary["epochs"] == 2 and summary["stop_reason"] == "epochs"
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 3
