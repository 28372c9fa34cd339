"""A new user's first hour: the front door, clear errors, outputs that do not collide (issue 10)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook

from facekeypoints import KeypointDetector, __version__
from facekeypoints.cli import main
from facekeypoints.data import write_kaggle_csv
from facekeypoints.infer.results import Face, Result
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import CheckpointError, card_for, load_model, save_checkpoint
from facekeypoints.schema import load_schema
from facekeypoints.train.config import ConfigError, load_config
from facekeypoints.train.loop import fit
from fakes import make_faces, mean_face_checkpoint, png_bomb

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt")


def test_version_and_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "facekeypoints", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"facekeypoints {__version__}"


def test_mistyped_modes_and_options_get_suggestions(capsys):
    with pytest.raises(SystemExit):
        main(["predcit", "x.jpg"])
    assert "did you mean predict?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "x.jpg", "--devcie", "cpu"])
    assert "--devcie (did you mean --device?)" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    import facekeypoints.cli as cli

    def broken(args):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(cli, "_cmd_schemas", broken)
    assert main(["schemas"]) == 1
    err = capsys.readouterr().err
    assert err == "error: RuntimeError: something inside broke (run with --debug for the traceback)\n"
    with pytest.raises(RuntimeError, match="something inside broke"):
        main(["--debug", "schemas"])


def test_models_finds_a_family_by_a_word(capsys):
    assert main(["models", "resnet2"]) == 0
    out = capsys.readouterr().out
    assert "resnet26" in out and "resnet18" not in out
    assert main(["models", "nosuchnet"]) == 2
    assert "no model matches 'nosuchnet'" in capsys.readouterr().err


def test_export_refuses_a_misspelt_suffix(model, tmp_path, capsys):
    assert main(["export", "--model", str(model), "-o", str(tmp_path / "m.onxx")]) == 2
    assert "--format onnx writes a .onnx file" in capsys.readouterr().err
    assert not (tmp_path / "m.onxx").exists()


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "train.epochs must be a finite number > 0"),
    ("train.batch_size=0", "train.batch_size must be a finite number > 0"),
    ("train.lr=0", "train.lr must be a finite number > 0"), ("train.gamma=1.5", "train.gamma must be in"),
])
def test_training_settings_that_train_nothing_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_choosing_another_model_drops_the_old_model_s_options():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "default.yaml", ["model.name=simple_cnn"])
    assert cfg.model.name == "simple_cnn" and cfg.model.options == {}
    same = load_config(Path(__file__).parents[1] / "configs" / "default.yaml", ["model.options={head_channels: 16}"])
    assert same.model.options["head_channels"] == 16 and same.model.options["channels"] == (8, 16, 32, 64)


def test_resuming_with_another_recipe_is_refused(tmp_path):
    csv_path = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    base = [f"data.train={csv_path}", f"out_dir={tmp_path / 'run'}", "train.epochs=1", "train.batch_size=8",
            "train.num_threads=1", "data.split=[0.75, 0.25]", "model.name=keypoint_net"]
    fit(load_config(None, base), progress=False)
    longer = [item for item in base if item != "train.epochs=1"] + ["train.epochs=2"]  # a setting is given once
    for change, named in (("train.lr=0.01", "train.lr"), ("model.options={head_channels: 8}", "model.options.head_channels")):
        with pytest.raises(ValueError, match=f"cannot resume with a different recipe .*{named}"):
            fit(load_config(None, longer + [change]), resume=True, progress=False)
    assert fit(load_config(None, longer), resume=True, progress=False)["epochs"] == 2


def test_a_full_disk_is_a_clear_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    net = create_model("simple_cnn", schema="nose1")

    def no_space(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match="m.pt: could not write the checkpoint .*disk full"):
        save_checkpoint(tmp_path / "m.pt", net, card_for(net))
    assert list(tmp_path.iterdir()) == []


def test_weights_of_another_shape_are_a_checkpoint_error(tmp_path):
    net = create_model("keypoint_net", schema="kaggle15")
    path = tmp_path / "m.pt"
    save_checkpoint(path, net, card_for(net))
    raw = torch.load(path, weights_only=True)
    raw["card"]["options"]["head_channels"] = 8  # the card no longer fits the weights
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="m.pt: weights do not fit model 'keypoint_net'"):
        load_model(path)


def test_nan_keypoints_are_null_in_strict_json():
    schema = load_schema("nose1")
    face = Face(box=np.array([0, 0, 10, 10.0]), box_score=1.0, keypoints=np.array([[np.nan, 3.0]]),
                scores=np.ones(1), schema=schema)
    text = Result(image_size=(20, 20), faces=[face], schema=schema).to_json()
    assert json.loads(text)["faces"][0]["keypoints"]["nose_tip"] == {"x": None, "y": 3.0, "score": 1.0}
    assert "NaN" not in text


def test_a_box_outside_the_image_is_refused(model):
    det = KeypointDetector(model, detector=None)
    with pytest.raises(ValueError, match=r"row 0 \[500.0, 500.0, 600.0, 600.0\] lies outside the 100x80 image"):
        det(np.zeros((80, 100, 3), np.uint8), boxes=[[500, 500, 600, 600]])


def test_drawing_a_bgr_frame_keeps_the_colours(model):
    rgb = np.zeros((120, 160, 3), np.uint8)
    det = KeypointDetector(model, detector=None)
    box = [[30, 20, 110, 100]]
    drawn_rgb = det(rgb, boxes=box).draw(rgb)
    drawn_bgr = det(rgb[..., ::-1].copy(), boxes=box, color="bgr").draw(rgb[..., ::-1].copy())
    np.testing.assert_array_equal(drawn_bgr[..., ::-1], drawn_rgb)


def test_two_inputs_with_one_name_keep_both_drawings(model, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(GRACE_HOPPER, tmp_path / folder / "x.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg"), "-o", str(out),
                 "--model", str(model), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl", "x-2.jpg", "x.jpg"]


@pytest.mark.parametrize("name", ["out.json", "out.jsonl", "out.csv"])
def test_output_files_chosen_by_their_suffix(model, tmp_path, name):
    target = tmp_path / name
    assert main(["predict", str(GRACE_HOPPER), "-o", str(target), "--model", str(model), "--quiet"]) == 0
    assert target.is_file() and sorted(p.name for p in tmp_path.iterdir()) == [name]
    text = target.read_text()
    if name.endswith(".json"):
        assert [len(r["faces"]) for r in json.loads(text)] == [1]
    elif name.endswith(".jsonl"):
        assert [len(json.loads(line)["faces"]) for line in text.splitlines()] == [1]
    else:
        rows = list(csv.reader(text.splitlines()))
        assert rows[0][:7] == ["source", "face", "x1", "y1", "x2", "y2", "box_score"] and len(rows) == 2
        assert len(rows[1]) == 7 + 30


def test_output_to_stdout_and_a_file_where_a_folder_belongs(model, tmp_path, capsys):
    assert main(["predict", str(GRACE_HOPPER), "-o", "-", "--model", str(model), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["faces"]) == 1 and "results: standard output" in captured.err
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    assert main(["predict", str(GRACE_HOPPER), "-o", str(existing), "--model", str(model), "--quiet"]) == 2
    assert "notes.txt: exists and is not a folder" in capsys.readouterr().err and existing.read_text() == "keep me"


def test_a_bomb_and_a_gif_among_good_photos_lose_nothing(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "a.jpg")
    png_bomb(folder / "bomb.png")
    from PIL import Image

    Image.open(GRACE_HOPPER).convert("P").save(folder / "c.gif")  # OpenCV can read GIFs but not write them
    out = tmp_path / "out"
    code = main(["predict", str(folder / "a.jpg"), str(folder / "bomb.png"), str(folder / "c.gif"), "-o", str(out),
                 "--model", str(model), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "bomb.png" in err and "over the limit" in err
    sources = [Path(json.loads(line)["source"]).name for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sources == ["a.jpg", "c.gif"]
    assert (out / "a.jpg").is_file() and (out / "c.gif.png").is_file()  # drawn as PNG: GIF cannot be written


def test_train_without_a_config_trains_the_default_recipe(tmp_path):
    csv_path = write_kaggle_csv(make_faces(), tmp_path / "training.csv")
    out = tmp_path / "run"
    sets = [f"data.train={csv_path}", "data.persons=null", "data.complete_labels=null", "train.epochs=1",
            "train.num_threads=1", "data.split=[0.75, 0.25]", "train.batch_size=8"]
    assert main(["train", "--quiet", "--out", str(out), *sum((["--set", s] for s in sets), [])]) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["name"] == "default" and config["model"]["options"]["channels"] == [8, 16, 32, 64]
    assert config["train"]["loss"] == "smooth_l1" and config["train"]["mirror_tta"] is True


def test_a_broken_video_among_photos_is_reported_and_the_photos_are_written(model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "a.jpg")
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))  # a header, then nothing
    out = tmp_path / "out"
    code = main(["predict", str(folder), "-o", str(out), "--model", str(model), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "clip.mp4" in err
    assert (out / "a.jpg").is_file() and len((out / "predictions.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["predict", "{photo}", "--batch-size", "0"], "--batch-size: must be 1 or more, got 0"),
    (["predict", "{photo}", "--max-pixels", "-5"], "--max-pixels: must be 0 or more, got -5"),
    (["predict", "{photo}", "-o", "{tmp}/out.txt"], ".txt is not an output format"),
    (["predict", "{tmp}/test.csv", "-o", "{tmp}/out.json"], "written as a .csv file"),
    (["predict", "{tmp}/short.csv", "-o", "{tmp}/k.csv"], "no row could be read (1 bad rows; the first: "),
    (["train", "--set", "data.split=[2, -1]"], "data.split must be 2 or 3 positive ratios"),
    (["grid", "{tmp}/nowhere"], "nowhere: no such folder of configs"),
    (["evaluate", "--split", "val", "--model", "{tmp}/random.pt"], "random.pt: not a readable facekeypoints checkpoint "
                                                                    "(not a PyTorch file of plain data)"),
])
def test_what_an_independent_audit_found_is_a_clear_message(argv, message, tmp_path, capsys):
    """Cases from a run of about 100 fresh bad inputs through the command line (issue 10)."""
    images = np.zeros((1, 96, 96), np.uint8)
    from facekeypoints.data import KeypointData
    test_csv = write_kaggle_csv(KeypointData.from_arrays("kaggle15", np.full((1, 15, 2), np.nan, np.float32),
                                                         images=images), tmp_path / "test.csv")
    lines = test_csv.read_text().splitlines()
    (tmp_path / "short.csv").write_text(lines[0] + "\n" + lines[1][:200] + "\n")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(500))
    argv = [part.format(tmp=tmp_path, photo=GRACE_HOPPER) for part in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own checks of a value
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.txt").exists()


def test_predicting_with_onnx_runtime_never_imports_torch(model, tmp_path):
    """torch costs ~0.6 GB of memory and seconds of start-up; once a checkpoint's ONNX export is
    cached, `predict` runs without it (the first run exports, which needs torch)."""
    script = ("import sys; from facekeypoints.cli import main; code = main(sys.argv[1:]); "
              "print('torch' in sys.modules); sys.exit(code)")
    env = {**__import__("os").environ, "FACEKEYPOINTS_CACHE": str(tmp_path / "cache")}
    imported = []
    for run in range(2):
        done = subprocess.run([sys.executable, "-c", script, "predict", str(GRACE_HOPPER), "--model", str(model),
                               "-o", str(tmp_path / f"out{run}.jsonl"), "--quiet"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        imported.append(done.stdout.strip().splitlines()[-1])
    assert imported == ["True", "False"]
    first, second = (json.loads((tmp_path / f"out{run}.jsonl").read_text()) for run in range(2))
    assert [f["keypoints"] for f in first["faces"]] == [f["keypoints"] for f in second["faces"]]
