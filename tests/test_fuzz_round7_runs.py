"""Round 7, runs and the commands around them (auditor's /tmp/fuzz7-train, FAILING.md groups B, F-J):

- B  (G04, G05, G06) a grid run that ends without best.pt (diverged, never validated) is a failed
     row saying why, not "best.pt: no such model file"; the grid goes on, exits 1, and tries the
     config again from scratch next time.
- F  (C01, C15, C16) compare refuses a run given twice, names runs that share a folder name by the
     shortest path ending that tells them apart (and their report figures apart), and says a run
     stopped in its first epoch has no finished epoch yet.
- G  (G07) ``grid --full`` with an out_dir ending in "/" trains beside it (runs/a_full), not inside it.
- H  (V03, V09) the service's start-up errors name the user's file, not its temporary snapshot.
- I  (S41) the service refuses a model with NaN weights at start-up; NaN anywhere in an answer is
     null, never a 500.
- J  (D07, D13) train-detector refuses rows whose landmarks cannot give the face's box, naming the
     file and row.

Tiny synthetic data (tests/fakes.py); training is faked where only the grid's bookkeeping is tested.
"""
import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.data import write_kaggle_csv
from facekeypoints.evaluate.compare import compare_runs
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for, save_checkpoint
from facekeypoints.serve.app import create_app
from facekeypoints.train import grid
from facekeypoints.train.config import load_config
from facekeypoints.train.detector import FacePool
from facekeypoints.train.grid import run_grid
from facekeypoints.train.loop import fit
from fakes import make_faces, mean_face_checkpoint, run_cli

CONFIG = """data: {{train: {csv}, split: [0.75, 0.25]}}
model: {{name: fcnn}}
train: {{epochs: 1, batch_size: 8, num_threads: 1, device: cpu{train}}}
out_dir: {out}
reference: {{epochs: 1}}
"""
PHOTO = cbook.get_sample_data("grace_hopper.jpg").read()


@pytest.fixture
def folder(tmp_path):
    """configs/a.yaml and configs/b.yaml, training runs/a and runs/b on a tiny Kaggle CSV."""
    csv_path = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("a", "b"):
        (configs / f"{name}.yaml").write_text(CONFIG.format(csv=csv_path, train="", out=tmp_path / "runs" / name))
    return configs


def _fake_fit(stop_reason, validated=False):
    """A fit that leaves a run without best.pt (config.json, last.pt, metrics.csv), as ``stop_reason`` does."""
    def fake(cfg, resume=False, progress=True, overwrite=False):
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"config": cfg.to_dict()}, default=str))
        (out / "last.pt").write_bytes(b"weights")
        row = "1,0.01,0.1,nan,nan,nan,nan" if validated else "1,0.01,0.1,0.5,,,"
        (out / "metrics.csv").write_text("epoch,minutes,lr,train_loss,val_loss,val_rmse,val_mae\n" + row + "\n")
        fake.calls.append({"name": cfg.name, "resume": resume, "overwrite": overwrite})
        return {"stop_reason": stop_reason, "epochs": 1, "minutes": 0.01, "device": "cpu", "best_epoch": None,
                "data": {"by_person": False}}
    fake.calls = []
    return fake


# ---- B: grid runs without best.pt ------------------------------------------------------------------
@pytest.mark.parametrize("stop_reason, validated, words", [
    ("diverged", True, "diverged: the training loss became NaN or infinite in epoch 1"),
    ("time_limit", False, "never validated: the run hit train.time_limit_min after 1 epoch before its first"),
    ("early_stopping", False, "never validated: the run stopped early (train.patience)"),
    ("epochs", True, "no finite validation score: the run ran its 1 epoch and its one validation gave a NaN")])
def test_B_a_run_without_best_pt_is_a_failed_row_and_the_grid_goes_on(folder, tmp_path, monkeypatch, capsys,
                                                                       stop_reason, validated, words):
    fake, real = _fake_fit(stop_reason, validated), fit
    monkeypatch.setattr(grid, "fit", lambda cfg, **kw: fake(cfg, **kw) if cfg.name == "a" else real(cfg, **kw))
    results = tmp_path / "res" / "r.json"
    code, out, err = run_cli(["grid", folder, "--results", results, "--quiet"], capsys)
    assert code == 1, err
    assert f"failed: a: {words}" in err and "no such model file" not in err + out
    assert "b: RMSE" in out and "1 finished runs" in out  # the config after it still ran
    rows = json.loads(results.read_text())
    assert [r["config"] for r in rows] == ["a", "b"]
    assert rows[0]["failed"].startswith(words) and rows[0]["rmse"] is None and rows[0]["stop_reason"] == stop_reason
    assert rows[1]["rmse"] > 0 and "failed" not in rows[1]
    table = results.with_suffix(".md").read_text()
    short = words.split(":")[0]
    assert f"| `a` | fcnn | 75/25 random rows, mask | 1 | 0.01 | cpu | failed ({short}) | - | - |" in table

    # the next grid reads the failed row back, skips b and tries a again, from scratch
    fake.calls.clear()
    code, out, err = run_cli(["grid", folder, "--results", results, "--quiet"], capsys)
    assert code == 1 and "b: done" in out and "it failed before (" in out and "starting it afresh" in out, out + err
    assert fake.calls == [{"name": "a", "resume": False, "overwrite": True}]


def test_B_a_failed_row_is_replaced_when_the_config_later_trains(folder, tmp_path, monkeypatch):
    results = tmp_path / "r.json"
    monkeypatch.setattr(grid, "fit", _fake_fit("diverged", validated=True))
    rows = run_grid([folder / "a.yaml"], results, progress=False, echo=lambda *_: None)
    assert rows.failed == [f"a: {rows[0]['failed']}"] and rows[0]["failed"].startswith("diverged")
    monkeypatch.setattr(grid, "fit", fit)  # the real one: its last.pt (b"weights") is not resumed
    rows = run_grid([folder / "a.yaml"], results, progress=False, echo=lambda *_: None)
    assert rows.failed == [] and len(rows) == 1 and rows[0]["rmse"] > 0 and "failed" not in rows[0]
    assert (tmp_path / "runs" / "a" / "best.pt").is_file()


def test_B_a_diverging_config_really_trained(folder, tmp_path, capsys):
    """G06: lr 1e30, trained for real: NaN from the first epoch, no best.pt."""
    path = folder / "a.yaml"
    path.write_text(path.read_text().replace("device: cpu", "device: cpu, lr: 1.0e+30"))
    code, out, err = run_cli(["grid", folder, "--results", tmp_path / "r.json", "--only", "a", "--quiet"], capsys)
    assert code == 1 and "failed: a: " in err and "no best.pt to score" in err, err
    assert ("diverged" in err or "NaN or infinite RMSE" in err) and "no such model file" not in err


# ---- G: grid --full and out_dir/ ----------------------------------------------------------------
@pytest.mark.parametrize("out", ["runs/a/", "runs/a", "runs/a//", "runs/a/b/.."])
def test_G_full_run_folder_is_beside_the_normal_one(folder, tmp_path, out):
    path = folder / "a.yaml"
    path.write_text(path.read_text().replace(f"out_dir: {tmp_path / 'runs' / 'a'}", f"out_dir: {tmp_path / out}"))
    cfg = grid._load_all([path], full=True)[0]
    assert cfg.out_dir == str(tmp_path / "runs" / "a_full") and cfg.name == "a_full"


def test_G_full_of_the_current_folder_takes_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(CONFIG.format(csv="x.csv", train="", out="."))
    assert grid._load_all([tmp_path / "c.yaml"], full=True)[0].out_dir == str(tmp_path.parent / f"{tmp_path.name}_full")


def test_G_grid_digests_of_finished_rows_are_unchanged(folder):
    """The digest is the results file's key: the fixes here must not move it."""
    cfg = load_config(folder / "a.yaml")
    cfg.name = "a"
    before = grid.config_digest(cfg)
    cfg.out_dir = cfg.out_dir + "/"
    assert grid.config_digest(cfg) == before


# ---- F: compare -----------------------------------------------------------------------------------
def _run_folder(path: Path, rmse: float = 4.0) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.csv").write_text(f"epoch,minutes,train_loss,val_rmse\n1,0.1,0.5,{rmse}\n")
    (path / "config.json").write_text('{"config": {"model": {"name": "fcnn"}}}')
    return path


def test_F_a_run_given_twice_is_refused(tmp_path, capsys):
    run = _run_folder(tmp_path / "runs" / "r")
    os.symlink(run, tmp_path / "link")
    for again in (run, tmp_path / "runs" / ".." / "runs" / "r", tmp_path / "link"):
        code, out, err = run_cli(["compare", run, again, "--report", tmp_path / "rep"], capsys)
        assert code == 2 and "the same run is given twice" in err and "give each run once" in err, err
    assert not (tmp_path / "rep").exists()


def test_F_runs_that_share_their_folder_names_get_distinct_names(tmp_path):
    dirs = [_run_folder(tmp_path / "a" / "x" / "r", 3.0), _run_folder(tmp_path / "b" / "x" / "r", 5.0),
            _run_folder(tmp_path / "c" / "y", 6.0)]
    table = compare_runs([str(d) for d in dirs], report_dir=str(tmp_path / "rep")).table
    lines = table.splitlines()
    assert lines[2].startswith("a/x/r ") and " 3.000 " in lines[2]
    assert lines[3].startswith("b/x/r ") and " 5.000 " in lines[3] and lines[4].startswith("y ")
    rows = json.loads((tmp_path / "rep" / "table.json").read_text())
    assert [r["run"] for r in rows] == ["a/x/r", "b/x/r", "y"]
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<section id='a/x/r'>" in page and "<section id='b/x/r'>" in page


def test_F_long_run_names_are_not_cut_to_one(tmp_path):
    dirs = [_run_folder(tmp_path / ("a_very_long_run_name_of_a_seed_" + s)) for s in ("one", "two")]
    lines = compare_runs([str(d) for d in dirs]).table.splitlines()
    assert lines[2].split()[0].endswith("_one") and lines[3].split()[0].endswith("_two")


def test_F_report_figures_of_runs_with_one_folder_name_are_kept_apart(tmp_path):
    """C15: one set of x_r_*.png was shared by both runs' sections."""
    data = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    cfg = load_config(None, [f"data.train={data}", f"out_dir={tmp_path / 'a' / 'x' / 'r'}", "model.name=fcnn",
                             "train.epochs=1", "train.batch_size=8", "train.num_threads=1", "data.split=[0.75, 0.25]"])
    fit(cfg, progress=False)
    (tmp_path / "b" / "x").mkdir(parents=True)
    os.rename(tmp_path / "a" / "x" / "r", tmp_path / "b" / "x" / "r")
    fit(cfg, progress=False)  # a second run of the same config in a/x/r
    (tmp_path / "x_r").mkdir()  # and a folder literally named x_r: its files must not take theirs
    for name in ("metrics.csv", "config.json"):
        (tmp_path / "x_r" / name).write_bytes((tmp_path / "a" / "x" / "r" / name).read_bytes())
    result = compare_runs([str(tmp_path / "a" / "x" / "r"), str(tmp_path / "b" / "x" / "r"), str(tmp_path / "x_r")],
                          report_dir=str(tmp_path / "rep"))
    assert result.notes == []
    rep = tmp_path / "rep"
    for stem in ("a_x_r", "b_x_r"):
        assert (rep / f"{stem}_per_keypoint.png").is_file() and (rep / f"{stem}_best_worst.png").is_file()
    assert not (rep / "x_r_per_keypoint.png").exists()  # x_r has no best.pt: no figures of its own
    page = (rep / "index.html").read_text()
    assert "src='a_x_r_per_keypoint.png'" in page and "src='b_x_r_per_keypoint.png'" in page


def test_F_a_run_stopped_in_its_first_epoch_has_no_finished_epoch_yet(tmp_path, capsys):
    good = _run_folder(tmp_path / "good")
    early = tmp_path / "early"
    early.mkdir()
    (early / "config.json").write_text('{"config": {"model": {"name": "fcnn"}}}')
    (early / "last.pt").write_bytes(b"weights")
    code, _, err = run_cli(["compare", early, good], capsys)
    assert code == 1 and f"{early}: no finished epoch yet" in err and "is this a facekeypoints run" not in err, err
    code, _, err = run_cli(["compare", tmp_path / "gone", good], capsys)
    assert code == 1 and "gone: no such run folder" in err, err
    (tmp_path / "plain").mkdir()
    code, _, err = run_cli(["compare", tmp_path / "plain", good], capsys)
    assert code == 1 and "plain: no metrics.csv; is this a facekeypoints run directory?" in err, err


# ---- H, I: the service's start-up -----------------------------------------------------------------
def test_H_start_up_errors_name_the_users_file(tmp_path):
    fake = tmp_path / "fake.pt"
    fake.write_text("not a checkpoint\n")
    with pytest.raises(ValueError) as err:
        create_app({"a": fake}, workers=1)
    assert str(err.value).startswith(f"model 'a': {fake}: ") and "facekeypoints-serve-" not in str(err.value)
    # an ONNX file that is not a keypoint model (V09): the face detector shipped with the package
    onnx_file = Path(__import__("facekeypoints").__file__).parent / "weights" / "face_detector.onnx"
    with pytest.raises(ValueError) as err:
        create_app({"d": onnx_file}, workers=1)
    assert f"model 'd': {onnx_file}: a face detector" in str(err.value)  # named as what it is (round 15)
    assert "facekeypoints-serve-" not in str(err.value)


def _nan_checkpoint(path: Path) -> Path:
    model = create_model("fcnn", schema="kaggle15")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    save_checkpoint(path, model, card_for(model, metrics={"val_rmse": float("nan")}))
    return path


@pytest.mark.parametrize("backend", ["pt", "onnx"])
def test_I_a_model_with_nan_weights_is_refused_at_start_up(tmp_path, capsys, backend):
    path = _nan_checkpoint(tmp_path / "last.pt")
    if backend == "onnx":
        with pytest.warns(UserWarning, match="weight tensors hold NaN or infinite values"):  # exported, but said
            code, _, err = run_cli(["export", "--model", path, "-o", tmp_path / "nan.onnx"], capsys)
        assert code == 0, err
        path = tmp_path / "nan.onnx"
    with pytest.raises(ValueError, match="NaN or infinite") as err:
        create_app({"nan": path}, workers=1)
    assert str(err.value).startswith(f"model 'nan': {path}: ") and "best.pt" in str(err.value)


def test_I_nan_in_an_answer_is_null_never_a_500(tmp_path, monkeypatch):
    """S41 with the start-up check out of the way (a model whose output is NaN some other way): every
    answer is 200, the NaN keypoints and card's val_rmse null, with a note as `predict` gives."""
    from facekeypoints.serve import app as service

    monkeypatch.setattr(service, "_check_finite_weights", lambda *args: None)
    client = TestClient(create_app({"nan": _nan_checkpoint(tmp_path / "last.pt")}, workers=1),
                        raise_server_exceptions=False)
    answer = client.post("/v1/keypoints?model=nan", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["val_rmse"] is None and body["faces"]
    assert all(v is None for face in body["faces"] for point in face["keypoints"].values() for v in point.values())
    assert any("non-finite keypoints for 1 of 1 faces" in note for note in body["notes"]), body.get("notes")
    drawn = client.post("/v1/keypoints?model=nan&draw=true", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"


def test_I_a_finite_model_still_serves(tmp_path):
    client = TestClient(create_app({"m": mean_face_checkpoint(tmp_path / "m.pt")}, workers=1))
    answer = client.post("/v1/keypoints?model=m", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200 and answer.json()["faces"][0]["keypoints"]["nose_tip"]["x"] is not None
    assert "notes" not in answer.json()


# ---- J: train-detector rows without a face's box ----------------------------------------------------
def _ytf68(tmp_path, blank=()) -> Path:
    """A ytf68 train.csv of 10 faces (5 people), with the landmarks ``blank`` (indices) empty in every row."""
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        name = f"p{i // 2}_{i}.png"
        cv2.imwrite(str(tmp_path / "images" / name), np.full((120, 120, 3), 90, np.uint8))
        points = rng.uniform(20, 100, (68, 2))
        values = [("" if k in blank else f"{points[k, axis]:.2f}") for k in range(68) for axis in (0, 1)]
        rows.append([name, f"p{i // 2}"] + values)
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "person"] + [f"{axis}{k}" for k in range(68) for axis in ("x", "y")])
        w.writerows(rows)
    return path


@pytest.mark.parametrize("blank, words", [
    (range(68), "68 of 68 landmarks missing, among them jaw_00"),  # D07: a row with no points
    (range(5, 68), "63 of 68 landmarks missing, among them jaw_05"),  # D13: five jaw points only
    ([19], "1 of 68 landmarks missing, among them right_eyebrow_2")])
def test_J_rows_whose_points_cannot_give_the_box_are_refused_naming_file_and_row(tmp_path, blank, words):
    path = _ytf68(tmp_path, blank)
    with pytest.raises(ValueError) as err:
        FacePool.from_datasets(path, None)
    message = str(err.value)
    assert message.startswith(f"{path}: --ytf68 row ") and "(p" in message and words in message, message
    assert "more such rows" in message and "zero-size" not in message


def test_J_rows_missing_only_inner_points_keep_the_whole_box(tmp_path):
    path = _ytf68(tmp_path, blank=[30, 62])  # nose and inner lip: inside the jaw line and eyebrows
    pool = FacePool.from_datasets(path, None)
    assert len(pool.images) > 0 and np.isfinite(pool.boxes).all()


def test_J_train_detector_cli_names_the_row(tmp_path, capsys):
    path = _ytf68(tmp_path, blank=range(5, 68))
    code, _, err = run_cli(["train-detector", "--ytf68", path, "--imm", tmp_path / "images", "--out",
                            tmp_path / "out", "--minutes", "0.01", "--quiet"], capsys)
    assert code == 2 and f"error: {path}: --ytf68 row " in err and "jaw_05" in err, err


def test_a_grid_config_asking_for_a_missing_gpu_is_refused_before_any_config_trains(tmp_path, monkeypatch):
    import torch

    from facekeypoints.data import write_kaggle_csv
    from facekeypoints.train.grid import run_grid
    from fakes import make_faces

    import torch._dynamo  # noqa: F401  (loaded before the patch, as in test_device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    csv = write_kaggle_csv(make_faces(16), tmp_path / "t.csv")
    folder = tmp_path / "configs"
    folder.mkdir()
    for name, device in (("a", "cpu"), ("b", "cuda")):
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nout_dir: {tmp_path / 'runs' / name}\ndata: {{train: {csv}, split: [0.75, 0.25]}}\n"
            f"model: {{name: fcnn}}\ntrain: {{epochs: 1, batch_size: 8, num_threads: 1, device: {device}}}\n")
    with pytest.raises(ValueError, match=r"b\.yaml: device 'cuda' was asked for \(train\.device\)"):
        run_grid(sorted(folder.glob("*.yaml")), results=tmp_path / "results" / "seeds.json", progress=False)
    assert not (tmp_path / "runs" / "a").exists()  # config a did not train first
