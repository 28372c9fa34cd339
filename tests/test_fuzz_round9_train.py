"""Round-9 training audit (/tmp/fuzz9-train) fixes.

1 resuming with train.epochs below the epochs done is refused, config.json kept as it was.
2 --set model.name / train.loss that drops the file's model.options / train.loss_params warns, naming them.
3 the service takes a multipart part named 'file' sent without filename= as the image.
4 a refused training leaves none of the folders it made (runs/, deep/er/ for --out deep/er/run).
5 out_dir the filesystem root, the home folder or the working folder itself is refused.
"""
import json
import re
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.serve.app import create_app
from facekeypoints.train.config import load_config
from facekeypoints.train.loop import fit
from fakes import run_cli, tiny_config

_cfg = tiny_config
PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()


# ---- 1. resume with fewer epochs than done ---------------------------------------------------------------
def test_resume_with_fewer_epochs_than_done_is_refused_and_keeps_config_json(tiny_csv, tmp_path):
    out = tmp_path / "r5"
    fit(_cfg(tiny_csv, out, "train.epochs=2"), progress=False)
    config, metrics = (out / "config.json").read_text(), (out / "metrics.csv").read_text()
    with pytest.raises(ValueError, match=r"r5: already past train.epochs=1 \(2 epochs done\); nothing to train"):
        fit(_cfg(tiny_csv, out, "train.epochs=1"), resume=True, progress=False)
    assert (out / "config.json").read_text() == config and (out / "metrics.csv").read_text() == metrics
    assert json.loads(config)["config"]["train"]["epochs"] == 2
    assert fit(_cfg(tiny_csv, out, "train.epochs=2"), resume=True, progress=False)["epochs"] == 2  # done: said so


# ---- 2. options dropped by --set model.name / train.loss ---------------------------------------------------
@pytest.fixture
def options_yaml(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("model: {name: keypoint_net, options: {channels: [4, 8, 8, 8], head_channels: 8}}\n"
                    "train: {loss: wing, loss_params: {w: 0.5}}\n")
    return path


def test_set_model_name_warns_of_the_files_model_options_dropped(options_yaml):
    with pytest.warns(UserWarning, match=r"model.options .*head_channels.* from .*a.yaml dropped: they belong to "
                                         r"model.name 'keypoint_net', and --set model.name chose 'simple_cnn'"):
        cfg = load_config(options_yaml, ["model.name=simple_cnn"])
    assert cfg.model.options == {}


def test_set_train_loss_warns_of_the_files_loss_params_dropped(options_yaml):
    with pytest.warns(UserWarning, match=r"train.loss_params \{'w': 0.5\} from .*a.yaml dropped: they belong to "
                                         r"train.loss 'wing', and --set train.loss chose 'mse'"):
        assert load_config(options_yaml, ["train.loss=mse"]).train.loss_params == {}


def test_the_same_model_or_loss_regiven_or_new_options_given_with_it_warns_of_nothing(options_yaml):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(options_yaml, ["train.loss=wing"]).train.loss_params == {"w": 0.5}
        assert load_config(options_yaml, ["model={name: simple_cnn, options: {}}"]).model.name == "simple_cnn"
        load_config(None, ["model.name=simple_cnn"])  # the defaults' options (none) are nobody's


def test_options_from_an_earlier_set_are_named_as_such(options_yaml):  # the file's loss is wing
    with pytest.warns(UserWarning, match=r"train.loss_params \{'w': 0.5\} from --set train.loss_params dropped"):
        load_config(options_yaml, ["train.loss_params={w: 0.5}", "train.loss=mse"])


def test_the_cli_says_what_was_dropped(options_yaml, tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"model.options .* dropped"):  # the CLI prints it as "warning: ..."
        code, _, err = run_cli(["train", "--config", options_yaml, "--out", tmp_path / "run", "--set",
                                "model.name=simple_cnn", "--set", f"data.train={tmp_path / 'none.csv'}"], capsys)
    assert code == 2 and "none.csv" in err, err


# ---- 3. the service: a 'file' part without filename= ------------------------------------------------------
@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(workers=1, max_body=2_000_000, max_pixels=5_000_000))


def _multipart(head: bytes, data: bytes) -> dict:
    body = b"--zz\r\n" + head + b"\r\n\r\n" + data + b"\r\n--zz--\r\n"
    return dict(content=body, headers={"content-type": "multipart/form-data; boundary=zz"})


def test_a_file_part_without_filename_is_taken_as_the_image(client):
    as_text = client.post("/v1/keypoints", **_multipart(b'Content-Disposition: form-data; name="file"', PHOTO))
    as_file = client.post("/v1/keypoints", files={"file": ("face.jpg", PHOTO, "image/jpeg")})
    assert as_text.status_code == as_file.status_code == 200, as_text.text
    assert as_text.json()["faces"] == as_file.json()["faces"]


def test_a_text_file_part_that_is_no_image_says_so_and_limits_still_apply(client):
    text = client.post("/v1/keypoints", **_multipart(b'Content-Disposition: form-data; name="file"', b"abc"))
    assert text.status_code == 400 and "no file field" not in text.text and "upload" in text.json()["error"]
    big = client.post("/v1/keypoints", **_multipart(b'Content-Disposition: form-data; name="file"', b"x" * 2_100_000))
    assert big.status_code == 413, big.text


# ---- 4. a refused training leaves no folders behind --------------------------------------------------------
def test_a_refused_training_removes_the_parent_folders_it_made(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(f"data: {{train: {tmp_path / 'none.csv'}}}\ntrain: {{epochs: 1}}\n")
    code, _, _ = run_cli(["train", "--config", "a.yaml", "--quiet"], capsys)
    assert code == 2
    code, _, _ = run_cli(["train", "--config", "a.yaml", "--out", tmp_path / "deep" / "er" / "run", "--quiet"], capsys)
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]


def test_a_refused_training_keeps_parents_that_were_there_or_hold_files(tmp_path, capsys):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "keep.txt").write_text("x")
    (tmp_path / "a.yaml").write_text(f"data: {{train: {tmp_path / 'none.csv'}}}\n")
    code, _, _ = run_cli(["train", "--config", tmp_path / "a.yaml", "--out", tmp_path / "deep/er/x/y", "--quiet"], capsys)
    assert code == 2 and (tmp_path / "deep" / "er").is_dir() and not (tmp_path / "deep" / "er" / "x").exists()


# ---- 5. out_dir that is no folder of its own ----------------------------------------------------------------
@pytest.fixture
def no_data(monkeypatch):
    """Fail if training gets as far as reading its data."""
    import facekeypoints.train.loop as loop

    def refuse(*args, **kwargs):
        raise AssertionError("the training data was read")

    monkeypatch.setattr(loop, "load_parts", refuse)


@pytest.mark.parametrize("where, words", [("/", "the filesystem root"), ("home", "your home folder"),
                                          (".", "the working folder"), ("sub/..", "the working folder")])
def test_out_dir_root_home_or_working_folder_is_refused(where, words, tiny_csv, tmp_path, monkeypatch, no_data):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    out = str(home) if where == "home" else where
    with pytest.raises(ValueError, match=re.escape(f"out_dir {out}: is {words}")):
        fit(_cfg(tiny_csv, out), progress=False)
    assert not list(cwd.iterdir()) and not list(home.iterdir())


def test_out_dir_tilde_alone_is_refused_at_the_cli(tiny_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a.yaml").write_text(f"data: {{train: {tiny_csv}}}\n")
    code, _, err = run_cli(["train", "--config", tmp_path / "a.yaml", "--out", "~", "--quiet"], capsys)
    assert code == 2 and "is your home folder" in err, err
