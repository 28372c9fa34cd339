"""CLI and service findings of fuzz round 13: reports and outputs that would replace a file of the
data read, multipart parameter names in any case, repeated Content-Encoding headers, option parts
sent as files, the trailing slash, models ambiguous by case, the page's notes, clearer CLI errors
(a data sub-mode's typo, an input after an option, a config's relative data, a model path holding
=, --out against --set out_dir), and a run with standard error closed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from fakes import grace_hopper_copy, run_cli
from facekeypoints.serve.app import create_app
from test_serve_browser import _wait, browser, server  # noqa: F401 (fixtures)

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
URL = "/v1/keypoints"
CLI = [sys.executable, "-m", "facekeypoints.cli"]


def _pts(path: Path, n: int = 68) -> Path:
    """A 68-point .pts file: a ring of points around Grace Hopper's face (inside the 512x600 photo)."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    points = np.stack([256 + 80 * np.cos(angles), 260 + 100 * np.sin(angles)], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"version: 1\nn_points: {n}\n{{\n" + "".join(f"{x:.3f} {y:.3f}\n" for x, y in points) + "}\n")
    return path


# ---- data 1: --report / -o never replace a photo the data lists ---------------------------------------------
@pytest.mark.parametrize("argv", [
    ["data", "convert", "{d}/face.pts", "-o", "{d}/../out.csv", "--report", "{d}/face.jpg"],
    ["data", "info", "{d}/face.pts", "--skip-bad", "--report", "{d}/face.jpg"],
    ["data", "convert", "{d}/face.pts", "-o", "{d}/face.jpg.csv", "--report", "{d}/link.jpg"],
])
def test_a_report_is_never_written_over_a_photo_of_the_data(tmp_path, capsys, argv):
    folder = tmp_path / "q"
    photo = grace_hopper_copy(folder / "face.jpg")
    _pts(folder / "face.pts")
    (folder / "link.jpg").symlink_to(photo)  # another name of the photo: refused as well
    before = photo.read_bytes()
    code, _, err = run_cli([a.format(d=folder) for a in argv], capsys)
    assert code == 2 and "is a file of the data being read" in err, err
    assert photo.read_bytes() == before


# ---- data 2: evaluate --report DIR never replaces a dataset's file (a linked photo, a skipped face's) --------
def test_evaluate_refuses_a_report_folder_holding_a_linked_photo(tmp_path, capsys):
    plain = grace_hopper_copy(tmp_path / "plain" / "face.jpg")
    _pts(tmp_path / "r1" / "best_1.pts")
    (tmp_path / "r1" / "best_1.jpg").symlink_to(plain)
    for report in (tmp_path / "r1", tmp_path / "plain"):  # the link's folder and its target's
        code, _, err = run_cli(["evaluate", tmp_path / "r1", "--report", report], capsys)
        assert code == 2 and "is a folder of the data being read" in err, err
    assert plain.read_bytes() == PHOTO


def test_evaluate_refuses_a_report_folder_holding_a_skipped_faces_photo(tmp_path, capsys):
    grace_hopper_copy(tmp_path / "r2" / "s1" / "a.jpg")
    _pts(tmp_path / "r2" / "s1" / "a.pts")
    skipped = grace_hopper_copy(tmp_path / "r2" / "s2" / "best_1.jpg")
    (tmp_path / "r2" / "s2" / "best_1.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n")  # bad: skipped
    code, _, err = run_cli(["evaluate", tmp_path / "r2", "--skip-bad", "--report", tmp_path / "r2" / "s2"], capsys)
    assert code == 2 and "is a folder of the data being read" in err, err
    assert skipped.read_bytes() == PHOTO


def test_a_report_outside_the_data_is_still_written(tmp_path, capsys):
    grace_hopper_copy(tmp_path / "d" / "a.jpg")
    _pts(tmp_path / "d" / "a.pts")
    (tmp_path / "d" / "b.pts").write_text("not a pts file\n")
    code, _, err = run_cli(["data", "info", tmp_path / "d", "--skip-bad", "--report", tmp_path / "skipped.txt"], capsys)
    assert code == 1 and "b.pts" in (tmp_path / "skipped.txt").read_text(), err


# ---- serve 3: multipart parameter names are case-insensitive ----------------------------------------------
@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(workers=1))


@pytest.mark.parametrize("kind, disposition, preamble", [
    ("multipart/form-data; BOUNDARY=BND", 'form-data; name="file"', False),
    ("multipart/form-data; Boundary=BND", 'form-data; name="file"; filename="a.jpg"', True),
    ("multipart/form-data; boundary=BND", 'form-data; NAME="file"', False),
])
def test_multipart_parameter_names_in_any_case(client, kind, disposition, preamble):
    body = (b"a preamble\r\n" if preamble else b"") + \
        f"--BND\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + PHOTO + b"\r\n--BND--\r\n"
    answer = client.post(URL, content=body, headers={"content-type": kind})
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1, answer.text


# ---- serve 6: a second Content-Encoding, options sent as files, a trailing slash, names ambiguous by case ---
def test_a_second_content_encoding_header_counts(client):
    headers = [("content-type", "image/jpeg"), ("content-encoding", "identity"), ("content-encoding", "gzip")]
    answer = client.post(URL, content=PHOTO, headers=headers)
    assert answer.status_code == 415 and "gzip" in answer.json()["error"], answer.text


@pytest.mark.parametrize("name, words", [("model", "form field 'model' is a file"),
                                         ("image", "unknown form field 'image'")])
def test_a_second_file_part_is_named(client, name, words):
    files = [("file", ("a.jpg", PHOTO, "image/jpeg")), (name, ("m.txt", b"ibug68", "text/plain"))]
    answer = client.post(URL, files=files)
    assert answer.status_code == 422 and words in answer.json()["error"], answer.text


def test_a_trailing_slash_gets_a_one_line_error_not_an_empty_redirect(client):
    answer = client.post(URL + "/", content=PHOTO, headers={"content-type": "image/jpeg"}, follow_redirects=False)
    assert answer.status_code == 404 and "POST /v1/keypoints" in answer.json()["error"], answer.text


def test_a_model_name_ambiguous_by_case_is_said_to_be():
    app = TestClient(create_app({"k": "kaggle15", "K": "kaggle15"}, workers=1))
    answer = app.post(URL + "?model=k", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200
    error = app.post(URL + "?model=kk", content=PHOTO, headers={"content-type": "image/jpeg"}).json()["error"]
    assert error.startswith("unknown model 'kk'")
    app = TestClient(create_app({"ibug68": "ibug68", "IBUG68": "ibug68"}, workers=1))
    error = app.post(URL + "?model=Ibug68", content=PHOTO, headers={"content-type": "image/jpeg"}).json()["error"]
    assert "is ambiguous" in error and "differ only in case" in error


# ---- serve 4: the page shows the service's notes ----------------------------------------------------------
def test_the_page_shows_the_notes(server, browser, tmp_path):  # noqa: F811
    from PIL import Image
    from selenium.webdriver.common.by import By

    face = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    gif = tmp_path / "two.gif"  # an animation: the service reads its first frame and says so in a note
    face.save(gif, save_all=True, append_images=[face.transpose(Image.FLIP_LEFT_RIGHT)])
    browser.get(server)
    browser.find_element(By.ID, "file").send_keys(str(gif))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    status = browser.find_element(By.ID, "status").text
    assert "1 face(s)" in status and "note: upload: has 2 frames; only the first is used" in status, status


# ---- serve 5: clearer CLI errors --------------------------------------------------------------------------
def test_a_data_sub_modes_typo_gets_a_suggestion(tmp_path, capsys):
    code, _, err = run_cli(["data", "info", tmp_path, "--jsn"], capsys)
    assert code == 2 and "facekeypoints data info: error" in err and "did you mean --json?" in err, err


def test_an_input_after_an_option_is_said_to_be_one(tmp_path, capsys):
    photo = grace_hopper_copy(tmp_path / "a.jpg")
    code, _, err = run_cli(["predict", photo, "--mirror-tta", tmp_path, "-o", "-"], capsys)
    assert code == 2 and "an input after an option: give every input first" in err, err


def test_a_configs_missing_relative_data_is_named_with_its_key(tmp_path, capsys, monkeypatch):
    config = tmp_path / "cfg" / "c.yaml"
    config.parent.mkdir()
    (tmp_path / "cfg" / "data.csv").write_text("x\n")
    config.write_text("data:\n  train: data.csv\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "--config", config, "--out", tmp_path / "run"], capsys)
    assert code == 2 and "data.train data.csv (relative to the working folder" in err, err
    assert "it is in the config's folder" in err


def test_out_and_set_out_dir_together_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing to train on here, should the clash go unseen
    code, _, err = run_cli(["train", "--out", "a", "--set", "out_dir=b"], capsys)
    assert code == 2 and "--out a and --set out_dir=b both name the run folder" in err, err


def test_a_served_model_path_holding_an_equals_sign_is_a_path(tmp_path, capsys, monkeypatch):
    import facekeypoints.serve.app as app_module
    import facekeypoints.serve.server as server_module

    model = tmp_path / "lr=0.01" / "best.pt"
    model.parent.mkdir()
    model.write_bytes(b"x")
    seen = {}

    def create_app(models, **kwargs):
        seen.update(models)
        raise ValueError("stop here")

    monkeypatch.setattr(server_module, "bind", lambda host, port: __import__("socket").socket())
    monkeypatch.setattr(app_module, "create_app", create_app)
    code, _, err = run_cli(["serve", "--model", model], capsys)
    assert code == 2 and seen == {str(model): str(model)}, (seen, err)


def test_detector_none_names_every_photo_detector(tmp_path, capsys):
    photo = grace_hopper_copy(tmp_path / "a.jpg")
    code, _, err = run_cli(["predict", photo, "--detector", "none", "-o", "-"], capsys)
    assert code == 2 and "(haar, cnn or dlib)" in err, err


# ---- predict 5, 9: standard error closed; warnings name files escaped -------------------------------------
def test_predict_runs_with_standard_error_closed(tmp_path):
    (tmp_path / "in").mkdir()
    image = cv2.imread(str(grace_hopper_copy(tmp_path / "a.jpg")))
    cv2.imwrite(str(tmp_path / "in" / "b.png"), image)  # a PNG: its decoder's messages are caught from stderr
    command = " ".join(CLI) + f" predict {tmp_path / 'in'} -o {tmp_path / 'out'}/ 2>&-"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout
    assert (tmp_path / "out" / "predictions.jsonl").read_text().count("\n") == 1


def test_a_warning_names_a_file_escaped():
    from facekeypoints.cli import _one_line_warning

    text = _one_line_warning(UserWarning("escv/x y\x1b[2Jz.avi: frames not evenly spaced"), UserWarning, "f.py", 1)
    assert "\x1b" not in text and "\\x1b[2J" in text and text.count("\n") == 1
