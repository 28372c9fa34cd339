"""Round-5 bad inputs to training and configs (the auditor's /tmp/fuzz5-train/repro_0*.sh): each case
once trained on regardless, lost a finished run, or failed late or without naming what was wrong;
each now trains correctly or ends, exit 2, in one line naming the field or file."""
from __future__ import annotations

import json
import math
import re
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import write_kaggle_csv
from facekeypoints.data.formats.landmarks import write_pts
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.train.config import load_config
from fakes import make_faces, overrides, run_cli

# as tests/test_train.py: the default recipe, cut down to seconds on one CPU thread
TINY = ["model.name=keypoint_net", "train.epochs=2", "train.batch_size=8", "train.lr=0.003",
        "train.num_threads=1", "data.split=[0.75, 0.25]", "data.persons=null", "data.complete_labels=null"]
LR0 = 0.003


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    return write_kaggle_csv(make_faces(), tmp_path / "training.csv")


@pytest.fixture
def no_data(monkeypatch):
    """Fail the command (exit 1, not 2) if training gets as far as reading its data."""
    import facekeypoints.train.loop as loop

    def refuse(*args, **kwargs):
        raise AssertionError("the training data was read")

    monkeypatch.setattr(loop, "load_parts", refuse)


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys)


def train(capsys, csv, out, *sets, flags=()) -> tuple[int, str, str]:
    """``facekeypoints train --quiet`` of the tiny recipe on ``csv`` into ``out``, with more --set items."""
    argv = ["train", "--quiet", *flags]
    if out is not None:
        argv += ["--out", out]
    for item in overrides([f"data.train={csv}", *TINY], sets):
        argv += ["--set", item]
    return run(argv, capsys)


def metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


# ---- 1. a run folder is not replaced without --overwrite -----------------------------------------
def test_training_into_a_run_folder_needs_resume_or_overwrite(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = train(capsys, tiny_csv, out)
    assert code == 0, err
    before = {name: (out / name).read_bytes() for name in ("metrics.csv", "last.pt", "best.pt")}

    code, _, err = train(capsys, tiny_csv, out, "train.epochs=1", "model.name=fcnn")
    assert code == 2
    assert "--resume" in err and "--overwrite" in err and str(out) in err
    assert {name: (out / name).read_bytes() for name in before} == before  # the finished run is intact

    code, _, err = train(capsys, tiny_csv, out, "train.epochs=1", flags=["--resume", "--overwrite"])
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert {name: (out / name).read_bytes() for name in before} == before

    code, stdout, err = train(capsys, tiny_csv, out, "train.epochs=1", flags=["--overwrite"])
    assert code == 0, err
    assert json.loads(stdout)["epochs"] == 1
    assert len(metrics(out)) == 1  # started over: one epoch, not the old two plus one
    assert (out / "last.pt").read_bytes() != before["last.pt"]


# ---- 2. --out empty ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", " "], ids=["empty", "blank"])
def test_empty_out_is_refused_and_creates_nothing(tiny_csv, tmp_path, monkeypatch, capsys, value):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = sorted(tmp_path.rglob("*"))
    code, _, err = train(capsys, tiny_csv, value)
    assert code == 2 and "--out is empty" in err
    assert sorted(tmp_path.rglob("*")) == before
    assert not list(cwd.iterdir())  # neither a folder named " " nor the recipe's runs/default


# ---- 3. a cosine schedule resumed with more epochs is stretched ----------------------------------
def test_resumed_cosine_schedule_follows_the_new_length(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = train(capsys, tiny_csv, out, "train.scheduler=cosine", "train.epochs=2")
    assert code == 0, err
    code, _, err = train(capsys, tiny_csv, out, "train.scheduler=cosine", "train.epochs=6", flags=["--resume"])
    assert code == 0, err
    rows = metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    lrs = [float(r["lr"]) for r in rows]
    # the lr column is the rate the epoch trained at (logged before scheduler.step):
    # epochs 1-2 on the 2-epoch cosine, epochs 3-6 where the 6-epoch cosine stands
    assert lrs[0] == pytest.approx(LR0, abs=1e-12)
    assert lrs[1] == pytest.approx(LR0 * (1 + math.cos(math.pi * 1 / 2)) / 2, abs=1e-9)
    assert abs(lrs[2] - LR0 * (1 + math.cos(math.pi * 2 / 6)) / 2) < 1e-9
    for e in range(2, 6):
        assert abs(lrs[e] - LR0 * (1 + math.cos(math.pi * e / 6)) / 2) < 1e-9, (e + 1, lrs)
    assert all(lr > 0 for lr in lrs)  # never 0 before the last epoch (the old schedule's end)
    assert lrs[1] < lrs[2] < LR0  # epoch 3 between epoch 2 and the initial rate
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))  # then falling smoothly, no climb back up


# ---- 4. resume / evaluate --split val on a changed data file -------------------------------------
def test_resume_and_val_split_refuse_data_that_changed(tmp_path, capsys):
    faces = make_faces(48, seed=3)
    csv = write_kaggle_csv(faces.subset(list(range(32))), tmp_path / "grow.csv")
    out = tmp_path / "run"
    code, _, err = train(capsys, csv, out)
    assert code == 0, err
    code, stdout, err = run(["evaluate", "--model", out / "best.pt", "--split", "val", "--json"], capsys)
    assert code == 0, err
    val_rows = json.loads(stdout)["rows"]

    write_kaggle_csv(faces, csv)  # 16 rows appended to the training file
    last = (out / "last.pt").read_bytes()
    code, _, err = train(capsys, csv, out, "train.epochs=3", flags=["--resume"])
    assert code == 2 and "the data changed since this run started" in err
    assert (out / "last.pt").read_bytes() == last and len(metrics(out)) == 2

    code, _, err = run(["evaluate", "--model", out / "best.pt", "--split", "val"], capsys)
    assert code == 2 and str(csv) in err
    found = re.search(r"now has (\d+) faces where the model was validated on (\d+)", err)
    assert found, err
    assert int(found.group(2)) == val_rows and int(found.group(1)) != val_rows


# ---- 10. augment ranges bounded above ------------------------------------------------------------
@pytest.mark.parametrize("item", ["augment.shift=8", "augment.scale=[1, 50]", "augment.rotate_deg=500",
                                  "augment.noise_std=1e308"])
def test_augment_values_out_of_range_are_refused_before_the_data(tiny_csv, tmp_path, capsys, no_data, item):
    code, _, err = train(capsys, tiny_csv, tmp_path / "run", item)
    assert code == 2 and item.split("=")[0] in err, err


# ---- 11. resume after best.pt was deleted --------------------------------------------------------
def test_resume_after_best_pt_was_deleted_says_so_and_writes_a_new_one(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = train(capsys, tiny_csv, out)
    assert code == 0, err
    (out / "best.pt").unlink()
    code, stdout, err = train(capsys, tiny_csv, out, "train.epochs=3", flags=["--resume"])
    assert code == 0, err
    assert "warning" in err and "best.pt is gone" in err
    assert (out / "best.pt").is_file()
    summary = json.loads(stdout)
    assert summary["best_epoch"] == 3  # the one epoch trained after the resume
    assert load_checkpoint(out / "best.pt").card.metrics["epoch"] == 3
    code, _, err = run(["evaluate", "--model", out / "best.pt", "--split", "val"], capsys)
    assert code == 0, err


# ---- 13. config YAML -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, says", [("train: {epochs: 1}\n1: 2\n", "key 1 is not a name"),
                                        ("train: {epochs: 1, true: 3}\n", "key True is not a name"),
                                        ("train: {epochs: 1}\n? [a, b]\n: 3\n", "is not a name"),
                                        ("train: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply")],
                         ids=["int-key", "bool-key", "list-key", "deep"])
def test_config_yaml_that_is_no_config_is_named(tmp_path, capsys, no_data, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = run(["train", "--quiet", "--config", path, "--out", tmp_path / "run"], capsys)
    assert code == 2 and str(path) in err and says in err, err
    assert not (tmp_path / "run").exists()


def test_a_folder_as_config_is_named(tmp_path, capsys, no_data):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    code, _, err = run(["train", "--quiet", "--config", folder, "--out", tmp_path / "run"], capsys)
    assert code == 2 and str(folder) in err and "folder" in err


def test_yaml_merge_keys_are_read_and_duplicates_still_refused(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("train: {epochs: 1}\naugment: {<<: {flip_prob: 0.0}, shift: 0.0}\n")
    cfg = load_config(path)
    assert cfg.augment.flip_prob == 0.0 and cfg.augment.shift == 0.0 and cfg.train.epochs == 1
    dup = tmp_path / "dup.yaml"
    dup.write_text("train: {epochs: 1, epochs: 2}\n")
    with pytest.raises(ValueError, match=r"dup\.yaml.*epochs.*twice"):
        load_config(dup)


# ---- 14/15. threads and seeds bounded ------------------------------------------------------------
@pytest.mark.parametrize("item", ["train.num_threads=100000", "train.seed=1e23", f"train.seed={10**23}",
                                  "train.seed=-1", "data.split_seed=-3"])
def test_thread_and_seed_values_out_of_range_are_refused_before_the_data(tiny_csv, tmp_path, capsys, no_data, item):
    code, _, err = train(capsys, tiny_csv, tmp_path / "run", item)
    assert code == 2 and item.split("=")[0] in err, err


# ---- 16. empty data paths ------------------------------------------------------------------------
@pytest.mark.parametrize("item, field", [("data.train=''", "data.train"), ("data.val=' '", "data.val")])
def test_empty_data_paths_are_named(tiny_csv, tmp_path, capsys, no_data, item, field):
    code, _, err = train(capsys, tiny_csv, tmp_path / "run", item)
    assert code == 2 and f"{field} is empty" in err, err


# ---- 17. a schema that does not fit the data -----------------------------------------------------
def test_a_schema_that_does_not_fit_the_data_names_field_and_file(tiny_csv, tmp_path, capsys):
    code, _, err = train(capsys, tiny_csv, tmp_path / "run", "data.schema=ibug68")
    assert code == 2 and "data.schema" in err and str(tiny_csv) in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


# ---- 18. whole photos with data.frame none -------------------------------------------------------
def test_whole_photos_without_framing_name_the_data_and_suggest_a_frame(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(150, 200), (240, 180), (160, 160), (200, 260)]):
        cv2.imwrite(str(photos / f"p{i}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        write_pts(rng.uniform(20, min(h, w) - 20, (68, 2)), photos / f"p{i}.pts")
    code, _, err = train(capsys, photos, tmp_path / "run", "data.schema=ibug68", "data.frame=none")
    assert code == 2 and str(photos) in err, err
    assert "data.frame: kaggle" in err and "resize" in err


# ---- 19. pretrained weights offline --------------------------------------------------------------
def test_pretrained_download_offline_fails_first_and_suggests_a_local_file(tiny_csv, tmp_path, monkeypatch, capsys,
                                                                           no_data):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    config = tmp_path / "tl.yaml"
    config.write_text(f"data: {{train: {tiny_csv}, split: [0.75, 0.25]}}\n"
                      "model: {name: resnet50_tl, pretrained: true}\n"
                      "train: {epochs: 1, batch_size: 8, num_threads: 1}\n")
    code, _, err = run(["train", "--quiet", "--config", config, "--out", tmp_path / "run"], capsys)
    assert code == 2 and "model.pretrained" in err and "local" in err and "no network" in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


# ---- 20/21. out_dir: ~ expanded, a file refused --------------------------------------------------
def test_out_dir_with_tilde_is_expanded(tiny_csv, tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    code, stdout, err = train(capsys, tiny_csv, None, "out_dir=~/x", "train.epochs=1")
    assert code == 0, err
    assert (home / "x" / "last.pt").is_file() and (home / "x" / "best.pt").is_file()
    assert not list(cwd.iterdir())  # no literal '~' folder
    assert "~" not in json.dumps(json.loads(stdout))


def test_out_dir_that_is_a_file_is_refused_before_the_data(tiny_csv, tmp_path, capsys, no_data):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    code, _, err = train(capsys, tiny_csv, afile)
    assert code == 2 and str(afile) in err and "exists and is not a folder" in err
    assert afile.read_text() == "keep me\n"


# ---- 22. data.val is data.train ------------------------------------------------------------------
def test_val_equal_to_train_is_refused(tiny_csv, tmp_path, capsys, no_data):
    code, _, err = train(capsys, tiny_csv, tmp_path / "run", f"data.val={tiny_csv}")
    assert code == 2 and "data.val" in err and "data.train" in err, err
    (tmp_path / "sub").mkdir()
    code, _, err = train(capsys, tiny_csv, tmp_path / "run", f"data.val={tmp_path / 'sub' / '..' / tiny_csv.name}")
    assert code == 2 and "data.val" in err and "data.train" in err, err


# ---- 25. evaluate on our own ONNX export ----------------------------------------------------------
def test_evaluate_val_split_of_an_onnx_export_matches_its_checkpoint(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = train(capsys, tiny_csv, out, "train.epochs=1")
    assert code == 0, err
    onnx = tmp_path / "run.onnx"
    code, _, err = run(["export", "--model", out / "best.pt", "-o", onnx], capsys)
    assert code == 0 and onnx.is_file(), err
    scores = {}
    for model in (out / "best.pt", onnx):
        code, stdout, err = run(["evaluate", "--model", model, "--split", "val", "--json"], capsys)
        assert code == 0, err
        scores[model.suffix] = json.loads(stdout)
    assert scores[".onnx"]["rows"] == scores[".pt"]["rows"] > 0
    assert abs(scores[".onnx"]["rmse"] - scores[".pt"]["rmse"]) < 1e-3
