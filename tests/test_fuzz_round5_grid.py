"""Round-5 bad inputs for ``grid``, ``compare`` and ``train-detector`` (auditor's repro_05, 10, 11):
each test names the item it keeps fixed. Tiny data, one epoch at most; training is faked where only
the grid's bookkeeping is under test."""

import cv2
import numpy as np
import pytest

from facekeypoints.cli import main
from facekeypoints.data import write_kaggle_csv, write_pts
from facekeypoints.evaluate.compare import read_run
from facekeypoints.train import grid
from facekeypoints.train.detector import FacePool, check_run
from facekeypoints.train.grid import run_grid
from facekeypoints.train.loop import fit
from facekeypoints.train.config import load_config
from fakes import make_faces, mean_face_checkpoint

CONFIG = """data: {{train: {csv}, split: [0.75, 0.25]}}
model: {{name: fcnn}}
train: {{epochs: 1, batch_size: 8, num_threads: 1, device: cpu}}
out_dir: {out}
{extra}"""


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "--debug" not in err, err
    return code, out, err


@pytest.fixture
def csv(tmp_path):
    return write_kaggle_csv(make_faces(), tmp_path / "training.csv")


def add(folder, name, extra="", out=None):
    """Write config ``name`` into ``folder`` (beside it: training.csv, and runs/NAME unless ``out``)."""
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(csv=folder.parent / "training.csv", out=out or folder.parent / "runs" / name,
                                  extra=extra))
    return path


@pytest.fixture
def folder(tmp_path, csv):
    """A folder holding config a.yaml."""
    (tmp_path / "configs").mkdir()
    add(tmp_path / "configs", "a")
    return tmp_path / "configs"


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing may train when the grid's inputs are bad")

    monkeypatch.setattr(grid, "fit", refuse)


# ---- grid ----------------------------------------------------------------------------------------
def test_5_an_interrupted_grid_exits_130(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grid, "fit", lambda *a, **k: {"stop_reason": "interrupted"})
    code, out, _ = run(["grid", folder, "--results", tmp_path / "res.json", "--quiet"], capsys)
    assert code == 130 and "a: interrupted; run the same command again to resume" in out
    assert not (tmp_path / "res.json").exists()


def test_6_a_results_path_that_is_not_json_is_refused(folder, tmp_path, no_training, capsys):
    (tmp_path / "res.md").write_text("[]")
    code, _, err = run(["grid", folder, "--results", tmp_path / "res.md"], capsys)
    assert code == 2 and "res.md" in err and "*.json" in err
    assert (tmp_path / "res.md").read_text() == "[]"


def test_7_two_configs_with_one_name_are_refused_naming_both(folder, no_training):
    add(folder, "b", "name: a")
    with pytest.raises(ValueError, match=r"a\.yaml and .*b\.yaml have the same name 'a'"):
        run_grid(sorted(folder.glob("*.yaml")), folder.parent / "res.json", echo=lambda *_: None)


def test_7_two_configs_with_one_run_folder_are_refused(folder, tmp_path, no_training):
    add(folder, "b", out=tmp_path / "runs" / "a")
    with pytest.raises(ValueError, match=r"a\.yaml and .*b\.yaml have the same run folder"):
        run_grid(sorted(folder.glob("*.yaml")), tmp_path / "res.json", echo=lambda *_: None)


def test_8_a_broken_config_fails_before_any_config_trains(folder, tmp_path, no_training):
    (folder / "b.yaml").write_text("train: {epochs: 1, batchsize: 8}\n")
    with pytest.raises(ValueError, match=r"b\.yaml: unknown key 'train\.batchsize'"):
        run_grid(sorted(folder.glob("*.yaml")), tmp_path / "res.json", echo=lambda *_: None)


def test_8_a_missing_data_file_fails_before_any_config_trains(folder, tmp_path, no_training):
    add(folder, "b").write_text((folder / "b.yaml").read_text().replace("training.csv", "gone.csv"))
    with pytest.raises(ValueError, match=r"b\.yaml: data\.train .*gone\.csv: no such file"):
        run_grid(sorted(folder.glob("*.yaml")), tmp_path / "res.json", echo=lambda *_: None)


def test_9_the_table_says_random_rows_when_the_split_was_not_by_person(folder, tmp_path):
    # make_faces has no persons, so the run's data report says by_person: false
    rows = run_grid([folder / "a.yaml"], tmp_path / "res.json", progress=False, echo=lambda *_: None)
    assert rows[0]["data"] == "75/25 random rows, mask"
    assert "| `a` | fcnn | 75/25 random rows, mask |" in (tmp_path / "res.md").read_text()


@pytest.mark.parametrize("content, problem", [
    ("{bad", "not JSON"), ('{"a": 1}', "expected a list of rows"), ('[{"config": "a"}]', "row 1 has no valid 'digest'"),
    ('[{"config": "a", "digest": 5, "finished": "x", "rmse": 1, "mae": 1, "nme": "?"}]', "'digest', 'nme'"),
    ("\udcff", "not JSON")])
def test_22_a_damaged_results_file_is_named_and_kept(folder, tmp_path, no_training, content, problem):
    results = tmp_path / "res.json"
    results.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match="move it aside") as err:
        run_grid([folder / "a.yaml"], results, echo=lambda *_: None)
    assert str(results) in str(err.value) and problem in str(err.value)
    assert results.read_bytes() == content.encode("utf-8", "surrogateescape")


def test_22_a_results_path_that_is_a_folder_fails_before_training(folder, tmp_path, no_training):
    (tmp_path / "res.json").mkdir()
    with pytest.raises(ValueError, match=r"res\.json: is a folder"):
        run_grid([folder / "a.yaml"], tmp_path / "res.json", echo=lambda *_: None)


@pytest.mark.parametrize("content", ["{bad", "[1, 2]", '{"config": 3}'])
def test_22_a_damaged_config_json_of_a_stopped_run_is_named(folder, tmp_path, no_training, content):
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    (run_dir / "last.pt").write_bytes(b"stopped")
    (run_dir / "config.json").write_text(content)
    with pytest.raises(ValueError, match=r"runs/a/config\.json: damaged.*move it aside"):
        run_grid([folder / "a.yaml"], tmp_path / "res.json", echo=lambda *_: None)


def test_22_full_with_negative_reference_epochs_is_a_named_error(folder, tmp_path, no_training):
    path = add(folder, "n", "reference: {epochs: -5}")
    for full in (True, False):
        with pytest.raises(ValueError, match=r"n\.yaml: reference\.epochs must be 0 .* got -5"):
            run_grid([path], tmp_path / "res.json", full=full, echo=lambda *_: None)


# ---- compare -------------------------------------------------------------------------------------
def _run_folder(tmp_path, name="run", metrics="epoch,minutes,train_loss,val_rmse\n1,0.1,0.5,4.0\n",
                config='{"config": {"model": {"name": "fcnn"}}}'):
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_bytes(metrics.encode("utf-8", "surrogateescape"))
    (run_dir / "config.json").write_text(config)
    return run_dir


def test_12_compare_ignores_nan_epochs_when_choosing_the_best(tmp_path):
    run_dir = _run_folder(tmp_path, metrics="epoch,minutes,train_loss,val_rmse\n1,0.1,nan,nan\n2,0.2,0.5,4.0\n"
                                            "3,0.3,0.4,inf\n")
    assert read_run(run_dir)["best"]["epoch"] == 2


@pytest.mark.parametrize("file, content, problem", [
    ("metrics.csv", "epoch,minutes\nabc,0.1\n", "line 2, column epoch: 'abc' is not a number"),
    ("metrics.csv", "epoch,minutes\n1,fast\n", "line 2, column minutes: 'fast' is not a number"),
    ("metrics.csv", "foo,bar\n1,2\n", "no 'epoch' column"),
    ("metrics.csv", "epoch,minutes\n1,\udcff\n", "not UTF-8"),
    ("metrics.csv", "epoch,minutes\n1,2,3\n", "more values than the header"),
    ("config.json", "{bad", "damaged, not JSON"),
    ("config.json", "[1, 2]", "damaged, expected"),
    ("config.json", '{"config": {"model": [1]}}', "damaged, expected")])
def test_23_compare_names_the_run_and_file_of_a_damaged_run(tmp_path, capsys, file, content, problem):
    good, bad = _run_folder(tmp_path, "good"), _run_folder(tmp_path, "bad")
    (bad / file).write_bytes(content.encode("utf-8", "surrogateescape"))
    code, out, err = run(["compare", good, bad], capsys)  # the bad run named, the good one compared
    assert code == 1 and f"skipped: {bad / file}: " in err and problem in err and "good" in out, err


def test_24_compare_report_leaves_out_the_figures_of_a_run_whose_data_is_gone(tmp_path, capsys):
    data = write_kaggle_csv(make_faces(), tmp_path / "gone.csv")
    cfg = load_config(None, [f"data.train={data}", f"out_dir={tmp_path / 'gone'}", "model.name=fcnn",
                             "train.epochs=1", "train.batch_size=8", "train.num_threads=1", "data.split=[0.75, 0.25]"])
    fit(cfg, progress=False)
    data.unlink()
    other = _run_folder(tmp_path, "other")
    code, out, err = run(["compare", tmp_path / "gone", other, "--report", tmp_path / "rep"], capsys)
    assert code == 1 and f"{tmp_path / 'gone'}: " in err and "gone.csv: no such file" in err, err
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "left out:" in page and "gone.csv" in page and "other" in page
    assert (tmp_path / "rep" / "table.json").is_file() and not (tmp_path / "rep" / "gone_best_worst.png").exists()


def test_compare_report_into_an_existing_file_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep")
    code, _, err = run(["compare", _run_folder(tmp_path), "--report", tmp_path / "afile"], capsys)
    assert code == 2 and "afile: exists and is not a folder" in err
    assert (tmp_path / "afile").read_text() == "keep"


# ---- train-detector ------------------------------------------------------------------------------
def test_26_a_keypoint_runs_last_pt_in_out_is_named(tmp_path):
    mean_face_checkpoint(tmp_path / "last.pt")
    with pytest.raises(ValueError, match=r"last\.pt: not a face-detector run's last\.pt .*move it aside"):
        check_run(tmp_path)


def test_26_a_damaged_last_pt_is_named(tmp_path):
    mean_face_checkpoint(tmp_path / "whole.pt")
    (tmp_path / "last.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:500])
    with pytest.raises(ValueError, match=r"last\.pt: cannot be read .*move it aside"):
        check_run(tmp_path)


@pytest.mark.parametrize("option, value", [("--threads", 100000), ("--batch-size", 100000)])
def test_26_absurd_threads_and_batch_size_are_refused_before_reading_photos(tmp_path, capsys, option, value):
    code, _, err = run(["train-detector", "--ytf68", tmp_path, "--imm", tmp_path, "--out", tmp_path / "out",
                        option, value], capsys)
    assert code == 2 and f"{option} must be 1.." in err and str(value) in err


def test_26_an_imm_folder_that_is_not_imm_gets_a_hint_for_this_command(tmp_path):
    faces = tmp_path / "pts"
    faces.mkdir()
    for i in range(2):
        cv2.imwrite(str(faces / f"face{i}.png"), np.full((120, 120, 3), 90, np.uint8))
        write_pts(np.random.default_rng(i).uniform(20, 100, (68, 2)), faces / f"face{i}.pts")
    with pytest.raises(ValueError, match="--imm takes the IMM face database folder") as err:
        FacePool.from_datasets(None, faces)
    assert "fraction split" not in str(err.value)
