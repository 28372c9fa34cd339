"""Round 12 of the service and CLI audit: a multipart upload with two 'file' parts, model names that
differ in case, the web page with models served under other names, notes lost or worded wrong,
Content-Encoding, a body without a length, a detector that is not installed; on the command line a
repeated option, serve with stdout closed, bench --json onto an input, predict's exit code when
stderr's reader leaves, a Kaggle CSV's default output, grid --only by a config's name:, evaluate
--skip-bad on a Kaggle CSV, and smaller gaps (models --size, an all-caps mode, data without a
sub-mode, serve's help)."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from fakes import grace_hopper_copy, make_faces, run_cli, running
from facekeypoints.serve.app import create_app
from test_serve_browser import _wait, browser  # noqa: F401 (fixture)

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
JPEG = {"content-type": "image/jpeg"}
URL = "/v1/keypoints"
CLI = [sys.executable, "-m", "facekeypoints.cli"]


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(workers=1))


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return response.json()["error"]


def _multipart(parts, boundary="BND") -> tuple[bytes, dict]:
    body = b"".join(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n" for head, data in parts)
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


# ---- serve 1: two 'file' parts (curl -F 'file=<a.jpg' -F file=@b.png): refused, not one dropped -------
TEXT_PART = 'Content-Disposition: form-data; name="file"'
FILE_PART = 'Content-Disposition: form-data; name="file"; filename="b.jpg"\r\nContent-Type: image/jpeg'


@pytest.mark.parametrize("heads", [(TEXT_PART, FILE_PART), (FILE_PART, TEXT_PART), (TEXT_PART, TEXT_PART)])
def test_two_file_parts_are_refused(client, heads):
    body, headers = _multipart([(head, PHOTO) for head in heads])
    error = _error(client.post(URL, content=body, headers=headers), 400)
    assert "field 'file' is given 2 times; send one image per request" in error


# ---- serve 2: query and form models that differ in case are two models when both are served ----------
def test_models_differing_in_case_clash_between_query_and_form():
    app = TestClient(create_app({"k": "kaggle15", "K": "ibug68"}, workers=1))
    photo = {"file": ("a.jpg", PHOTO, "image/jpeg")}
    for query, form in (("k", "K"), ("K", "k")):
        error = _error(app.post(f"{URL}?model={query}", files=photo, data={"model": form}), 422)
        assert f"option 'model' is given as '{query}' in the query and as '{form}' in the form" in error
    same = app.post(f"{URL}?model=k", files=photo, data={"model": "k"})
    assert same.status_code == 200 and same.json()["model"]["schema"] == "kaggle15"


def test_the_same_model_in_another_case_is_no_clash(client):
    answer = client.post(f"{URL}?model=IBUG68", files={"file": ("a.jpg", PHOTO, "image/jpeg")},
                         data={"model": "ibug68", "detector": "HAAR"})
    assert answer.status_code == 200 and answer.json()["model"]["schema"] == "ibug68"


# ---- serve 3 and 12: the page's choices come from /v1/models, which names the default model -------------
def test_models_lists_the_default_model_and_each_models_points():
    listed = TestClient(create_app({"b": "ibug68", "a": "kaggle15"}, workers=1)).get("/v1/models").json()
    assert listed["models"] == ["a", "b"] and listed["default_model"] == "b"
    assert listed["cards"]["a"]["keypoints"] == 15 and listed["cards"]["b"]["keypoints"] == 68


def test_the_page_does_not_hard_code_the_shipped_model_names(client):
    page = client.get("/").text
    assert "kaggle15" not in page and "ibug68" not in page and "/v1/models" in page


@pytest.fixture(scope="module")
def renamed_server():
    """A live server of ibug68 under the name 'mine', as serve --model mine=run/best.pt."""
    with running(create_app({"mine": "ibug68"}, workers=1)) as port:
        yield f"http://127.0.0.1:{port}/"


def test_the_page_works_with_models_served_under_other_names(renamed_server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(renamed_server)
    _wait(browser, "return document.querySelectorAll('input[name=points]').length === 1")
    assert "mine (68 points)" in browser.find_element(By.ID, "models").text
    browser.find_element(By.ID, "file").send_keys(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    assert browser.execute_script("return document.getElementById('canvas').dataset.points") == "68"


# ---- serve 4: draw=true keeps the non-finite keypoints note, in X-Notes -----------------------------------
def test_a_drawing_says_its_keypoints_were_not_finite(client, monkeypatch):
    from facekeypoints.infer.predictor import KeypointDetector

    real = KeypointDetector.__call__

    def nan_points(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        for face in result.faces:
            face.keypoints[:] = np.nan
        return result

    monkeypatch.setattr(KeypointDetector, "__call__", nan_points)
    drawn = client.post(f"{URL}?draw=true", content=PHOTO, headers=JPEG)
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"
    assert "the model gave non-finite keypoints for 1 of 1 faces (not drawn)" in drawn.headers["x-notes"]
    assert "non-finite keypoints for 1 of 1 faces (null)" in client.post(URL, content=PHOTO, headers=JPEG).json()["notes"][0]


# ---- serve 5: a detector whose extra is not installed is not listed, and is a 501 ------------------------
def test_a_detector_that_is_not_installed_is_not_offered(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # as a plain install without the [dlib] extra
    app = TestClient(create_app(workers=1))
    assert "dlib" not in app.get("/v1/models").json()["detectors"]
    assert "dlib" not in str(app.get("/openapi.json").json()["paths"][URL])
    for answer in (app.post(f"{URL}?detector=dlib", content=PHOTO, headers=JPEG),
                   app.post(URL, files={"file": ("a.jpg", PHOTO, "image/jpeg")}, data={"detector": "dlib"})):
        error = _error(answer, 501)
        assert "detector 'dlib' is not installed on this server" in error and "pip" not in error
    with pytest.raises(ValueError, match="detector 'dlib': the 'dlib' face detector needs dlib"):
        create_app(detector="dlib")


# ---- serve 6: a decoder warning is not told to "send its pages as single images" ------------------------
def test_a_decoder_warning_gets_its_own_advice(client):
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(PHOTO, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
    chunk = b"tEXt" + b"Comment\x00hello"
    bad_crc = png[:33] + struct.pack(">I", len(chunk) - 4) + chunk + b"\x00\x00\x00\x00" + png[33:]
    notes = client.post(URL, content=bad_crc, headers={"content-type": "image/png"}).json()["notes"]
    assert "CRC error" in notes[0] and notes[0].endswith("(the image was read; check it looks right)")
    assert "pages" not in notes[0]


def test_an_animation_is_told_to_send_single_images(client):
    import io

    from PIL import Image

    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    notes = client.post(URL, content=buffer.getvalue(), headers={"content-type": "image/gif"}).json()["notes"]
    assert "only the first is used (send them as single images)" in notes[0]


# ---- serve 7: Content-Encoding is refused, not read as a broken image or ignored ---------------------------
@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_content_encoding_is_refused(client, encoding):
    import gzip

    body = gzip.compress(PHOTO) if encoding == "gzip" else PHOTO
    error = _error(client.post(URL, content=body, headers={**JPEG, "content-encoding": encoding}), 415)
    assert f"Content-Encoding '{encoding}' is not supported; send the image bytes as they are" in error
    assert client.post(URL, content=PHOTO, headers={**JPEG, "content-encoding": "identity"}).status_code == 200


# ---- serve 8: an HTTP/1.0 POST without Content-Length is told why its body was not read --------------------
def test_a_body_without_a_length_is_a_411(renamed_server):
    host, port = renamed_server.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"POST /v1/keypoints HTTP/1.0\r\nContent-Type: image/jpeg\r\n\r\n" + PHOTO)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 411") and b"no Content-Length header" in answer, answer[:300]
    assert b"the body is empty" not in answer


# ---- serve 11: serve starts with stdout closed (it writes nothing there) -----------------------------------
def test_serve_runs_with_stdout_closed(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = " ".join(CLI) + f" serve --port {port} --model kaggle15 >&-"
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    answer = b""
                    while chunk := conn.recv(4096):
                        answer += chunk
                    assert b'{"status":"ok"}' in answer
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read()
                time.sleep(0.1)
        else:
            pytest.fail("the server did not answer")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "standard output is closed" not in err and "error" not in err, err


# ---- serve 9, 10, 12: the CLI's options -------------------------------------------------------------------
def test_models_size_over_1024_is_refused_by_argparse(capsys):
    code, out, err = run_cli(["models", "nose", "--size", "1025"], capsys)
    assert code == 2 and out == "" and "argument --size: must be 1..1024, got 1025" in err


@pytest.mark.parametrize("argv, words", [
    (["predict", "a.jpg", "--model", "ibug68", "--model", "kaggle15"],
     "argument --model: given twice (--model ibug68, then --model kaggle15); give it once"),
    (["predict", "a.jpg", "--detector", "cnn", "--detector", "haar"], "argument --detector: given twice"),
    (["predict", "a.jpg", "--rotate-tta", "4", "--rotate-tta", "8"], "argument --rotate-tta: given twice"),
    (["predict", "a.jpg", "-o", "x/", "--output", "y/"], "argument -o/--output: given twice (-o x/, then --output y/)"),
    (["serve", "--port", "1", "--port", "2"], "argument --port: given twice"),
    (["grid", "--only", "a", "--only", "b"], "argument --only: given twice"),
    (["data", "info", "x.csv", "--report", "a", "--report", "b"], "argument --report: given twice"),
])
def test_a_repeated_single_valued_option_is_refused(capsys, argv, words):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and words in err, err


def test_repeatable_and_flag_options_still_repeat(capsys):
    from facekeypoints.cli import _parse, build_parser

    args = _parse(build_parser(), ["train", "--set", "a=1", "--set", "b=2", "--quiet", "--quiet"])
    assert args.set == ["a=1", "b=2"] and args.quiet
    assert _parse(build_parser(), ["serve", "--model", "a=x.pt", "--model", "b=y.pt"]).model == ["a=x.pt", "b=y.pt"]


@pytest.mark.parametrize("argv, words", [
    (["SERVE"], "did you mean serve?"),
    (["data"], "the following arguments are required: submode"),
])
def test_mode_messages(capsys, argv, words):
    code, out, err = run_cli(argv, capsys, forbidden=("Traceback",))  # the usage line names --debug
    assert code == 2 and words in err and "data_cmd" not in err, err


def test_models_pattern_in_capitals_finds_the_model(capsys):
    code, out, err = run_cli(["models", "KEYPOINT_NET", "--json"], capsys)
    assert code == 0 and '"name": "keypoint_net"' in out, err


def test_serve_help_says_the_limits_defaults_and_zero(capsys):
    code, out, _ = run_cli(["serve", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "(default 50000000); 0: no limit" in text and "(default 20971520, 20 MB)" in text


# ---- predict P2: bench --json refuses an input, a name that is not .json, and a folder ---------------------
@pytest.mark.parametrize("name, words", [
    ("victim.jpg", "the figures are written as JSON; name the file *.json"),
    ("b_dir/", "a folder (it ends with /)"),
    ("m.json", "is also an input, which the output would overwrite"),
])
def test_bench_json_refuses_what_it_would_destroy(tmp_path, capsys, monkeypatch, name, words):
    monkeypatch.chdir(tmp_path)
    Path("victim.jpg").write_bytes(PHOTO)
    Path("m.json").write_text("a model the bench would time")
    code, out, err = run_cli(["bench", "--model", "m.json", "--repeats", "1", "--jitter-frames", "0",
                              "--json", name], capsys)
    assert code == 2 and words in err, err
    assert Path("victim.jpg").read_bytes() == PHOTO and Path("m.json").read_text() == "a model the bench would time"
    assert not Path("b_dir").exists()


def test_bench_json_is_written_atomically(tmp_path, monkeypatch):
    from facekeypoints.infer import bench

    written = []
    real = bench.atomic_path

    def spy(path, **kwargs):
        written.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(bench, "atomic_path", spy)  # the timings themselves are not what is tested here
    monkeypatch.setattr(bench, "KeypointDetector", lambda *a, **k: type("Fake", (), {"runner": None, "framing": "kaggle"})())
    monkeypatch.setattr(bench, "time_runner", lambda *a, **k: 1.0)
    monkeypatch.setattr(bench, "bench_frame", lambda *a, **k: {"faces": 1, "detection_ms": 1.0, "frame_ms": 2.0})
    out = tmp_path / "b.json"
    report = bench.run_bench(json_out=out, jitter_frames=0, repeats=1, batch=2)
    assert written == [out] and json.loads(out.read_text()) == report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


# ---- predict P3: the exit code says files failed, even when stderr's reader has gone -----------------------
def test_predict_exit_code_when_stderr_reader_left(tmp_path, model):
    folder = tmp_path / "in"
    folder.mkdir()
    grace_hopper_copy(folder / "good.jpg")
    for i in range(3):
        (folder / f"bad{i}.jpg").write_bytes(b"not a jpeg")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the run starts: every stderr write meets EPIPE
    try:
        done = subprocess.run([*CLI, "predict", str(folder), "-o", str(tmp_path / "out") + "/", "--model", str(model),
                               "--quiet", "--no-draw"], stdout=subprocess.DEVNULL, stderr=write_end, timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert (tmp_path / "out" / "predictions.jsonl").read_text().count("good.jpg") == 1


def test_a_gone_stderr_reader_does_not_change_data_info_exit_code(tmp_path, capsys, monkeypatch):
    """The same mechanism for every mode: what stderr cannot take is dropped, the exit code stands."""
    from facekeypoints import cli

    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    csv = tmp_path / "k.csv"
    from facekeypoints.data import write_kaggle_csv

    write_kaggle_csv(make_faces(4), csv)
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[0], "x", 1)
    csv.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(sys, "stderr", Gone())
    assert cli.main(["data", "info", str(csv), "--skip-bad"]) == 1
    monkeypatch.undo()


# ---- predict P12: a Kaggle CSV's default output is in predictions/, as -o's help says ----------------------
def test_kaggle_csv_default_output_is_the_predictions_folder(tmp_path, model, capsys, monkeypatch):
    images = make_faces(2).images
    csv = tmp_path / "k_small.csv"
    csv.write_text("ImageId,Image\n" + "".join(f"{i + 1},{' '.join(map(str, im.reshape(-1)))}\n"
                                                for i, im in enumerate(images)))
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    code, out, err = run_cli(["predict", csv, "--model", model], capsys)
    assert code == 0, err
    assert sorted(os.listdir(run)) == ["predictions"]
    assert (run / "predictions" / "k_small_keypoints.csv").read_text().startswith("id,")


# ---- train 6: grid --only finds a config by its name: -----------------------------------------------------
def test_grid_only_matches_a_configs_name(tmp_path, capsys, monkeypatch):
    from facekeypoints.train import grid

    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "b.yaml").write_text("name: g_b\ntrain:\n  epochs: 1\n")
    (tmp_path / "g" / "c.yaml").write_text("train:\n  epochs: 1\n")
    chosen = []

    class Rows(list):
        failed = []

    monkeypatch.setattr(grid, "run_grid", lambda configs, *a, **k: chosen.append([c.name for c in configs]) or Rows())
    for only, expected in (("g_b", ["b.yaml"]), ("g_", ["b.yaml"]), ("b", ["b.yaml"]), ("c", ["c.yaml"])):
        code, out, err = run_cli(["grid", tmp_path / "g", "--only", only, "--results", tmp_path / "r.json"], capsys)
        assert code == 0 and chosen[-1] == expected, (only, err)
    code, out, err = run_cli(["grid", tmp_path / "g", "--only", "zz", "--results", tmp_path / "r.json"], capsys)
    assert code == 2 and "--only zz: no config in" in err and "file name or name:" in err


# ---- data 6: evaluate --skip-bad on a Kaggle CSV scores the good rows, lists the bad, exits 1 --------------
def test_evaluate_split_accepts_test():
    from facekeypoints.cli import _parse, build_parser

    assert _parse(build_parser(), ["evaluate", "--split", "test"]).split == "test"


def test_evaluate_skip_bad_on_a_kaggle_csv(tmp_path, model, capsys):
    from facekeypoints.data import write_kaggle_csv

    csv = write_kaggle_csv(make_faces(8), tmp_path / "mixed_bad.csv")
    lines = csv.read_text().splitlines()
    cells = lines[2].split(",")
    lines[2] = ",".join(["x", *cells[1:]])
    csv.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["evaluate", csv, "--model", model], capsys)
    assert code == 2 and "row 2" in err
    code, out, err = run_cli(["evaluate", csv, "--model", model, "--skip-bad"], capsys)
    assert code == 1 and "rows 7" in out and "partial: 1 bad rows skipped" in err and "row 2" in err, err


def test_evaluate_skip_bad_with_split_is_refused(capsys):
    code, out, err = run_cli(["evaluate", "--split", "val", "--skip-bad"], capsys)
    assert code == 2 and "--skip-bad applies to a data file" in err, err
