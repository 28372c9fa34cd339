"""Audit round 21 (issue 10): the bad inputs of a fresh round, each now a result or an error that says
what is wrong; nothing dropped without a word."""
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.cli import main
from fakes import grace_hopper_copy, running

FFMPEG_QUIET = ["-loglevel", "error", "-nostdin", "-y"]


def _ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *FFMPEG_QUIET, *map(str, args)], check=True)


def _dlib_xml(path: Path, boxes: list[str]) -> Path:
    parts = "".join(f"<part name='{i:02d}' x='{100 + i}' y='{120 + i % 20}'/>" for i in range(68))
    body = "".join(f"<image file='img{k}.jpg'><box {extra} top='90' left='94' width='137' height='137'>{parts}</box>"
                   "</image>" for k, extra in enumerate(boxes))
    path.write_text(f"<dataset><images>{body}</images></dataset>")
    return path


# data D1: a dlib XML is refused before parsing when parsing it would take too much memory

def test_a_dlib_xml_too_costly_to_parse_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from facekeypoints.data.formats import landmark_sets
    from facekeypoints.data.formats.landmark_sets import read_dlib_xml, xml_memory

    small, large = _dlib_xml(tmp_path / "s.xml", [""]), _dlib_xml(tmp_path / "l.xml", [""] * 10)
    one = xml_memory(small)
    assert 30_000 < one < 80_000  # a face of 68 points: about 40 KB parsed
    assert xml_memory(large) > 9 * one
    assert len(read_dlib_xml(small, load_images=False)) == 1
    monkeypatch.setattr(landmark_sets, "MAX_JSON_MEMORY", 5 * one)
    with pytest.raises(ValueError, match=r"l.xml: parsing this XML would take about \d+ MB of memory, over the limit"):
        read_dlib_xml(large, load_images=False)


# data D2: boxes dlib marks ignore='1' are left out, and said

def test_boxes_marked_ignore_are_left_out_with_a_warning(tmp_path):
    from facekeypoints.data.formats.landmark_sets import read_dlib_xml

    xml = _dlib_xml(tmp_path / "d.xml", ["ignore='1'", "", "ignore='0'"])
    with pytest.warns(UserWarning, match=r"d.xml: 1 box marked ignore='1' .* left out; 2 faces read"):
        faces = read_dlib_xml(xml, load_images=False)
    assert len(faces) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none ignored: nothing to say
        read_dlib_xml(_dlib_xml(tmp_path / "e.xml", [""]), load_images=False)


# train T1: a " #" in a --set value began a YAML comment and cut the value short

def test_a_set_value_cut_by_a_yaml_comment_is_refused_and_a_quoted_one_kept():
    from facekeypoints.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"override 'name=trial #2': YAML reads the text from '#' on as a comment.*"
                                          r"name=\"trial #2\""):
        load_config(None, ["name=trial #2"])
    assert load_config(None, ['name="trial #2"']).name == "trial #2"
    assert load_config(None, ["name=a#b"]).name == "a#b"  # no space before it: YAML keeps it
    with pytest.raises(ValueError, match="expected str, got date .*; quote it to keep it as text"):
        load_config(None, ["name=2024-05-01"])


# data D3: data verify names a link to a device as one

def test_verify_says_a_link_to_a_device_is_no_regular_file(tmp_path):
    from facekeypoints.data.formats.verify import verify_kaggle_download

    (tmp_path / "training.csv").symlink_to("/dev/null")
    checks = {c.name: c for c in verify_kaggle_download(tmp_path).checks}
    assert "not a regular file (a pipe, socket or device, through a link)" in checks["training.csv"].detail


# compare C1: a log with an epoch repeated or out of order is refused

def test_compare_refuses_a_log_whose_epochs_repeat(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,minutes,lr,train_loss,val_loss,val_rmse,val_mae\n"
                                     "1,0.1,0.002,0.1,0.05,11.5,9.9\n1,0.2,0.002,0.1,0.05,3.0,2.0\n")
    assert main(["compare", str(run)]) != 0
    assert "line 3, column epoch: epoch 1 comes after epoch 1" in capsys.readouterr().err


# evaluate E1: the text summary of a Kaggle CSV says how much of it was scored

def test_evaluate_says_how_many_coordinates_it_scored(tmp_path, capsys):
    from facekeypoints.data import write_kaggle_csv
    from fakes import make_faces

    faces = make_faces(6, missing=False)
    faces.keypoints[1:] = np.nan  # one face labelled, five not
    csv = write_kaggle_csv(faces, tmp_path / "k.csv")
    assert main(["evaluate", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "rows 6" in out and "scored  30 labelled coordinates (15 points) of the 6 rows" in out


# train T2: resuming a finished run rebuilds a removed or damaged metrics.csv from its checkpoint

def test_resuming_a_finished_run_rebuilds_its_log(tmp_path):
    from facekeypoints.data import write_kaggle_csv
    from facekeypoints.train.config import load_config
    from facekeypoints.train.loop import fit
    from fakes import make_faces

    csv = write_kaggle_csv(make_faces(16), tmp_path / "t.csv")
    settings = [f"data.train={csv}", "model.name=fcnn", "train.epochs=2", "train.batch_size=8", "train.num_threads=1",
                f"out_dir={tmp_path / 'r'}"]
    fit(load_config(None, settings), progress=False)
    log = tmp_path / "r" / "metrics.csv"
    first = log.read_text()
    log.write_text("garbage")
    fit(load_config(None, settings), resume=True, progress=False)
    assert log.read_text() == first
    log.unlink()
    fit(load_config(None, settings), resume=True, progress=False)
    assert log.read_text() == first


# data D4: a form feed inside a .pts line is whitespace, not a line end

def test_a_pts_line_with_a_form_feed_reads_as_its_two_numbers(tmp_path):
    from facekeypoints.data.formats.landmarks import read_pts

    points = [f"{100 + i}.5 \x0c{200 + i}.25" if i == 3 else f"{100 + i}.5 {200 + i}.25" for i in range(68)]
    (tmp_path / "a.pts").write_text("version: 1\nn_points: 68\n{\n" + "\n".join(points) + "\n}\n")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((400, 400, 3), np.uint8))
    faces = read_pts(tmp_path)
    assert np.allclose(faces.keypoints[0, 3], [102.5, 202.25])  # .pts is 1-based: 103.5 - 1


# video V1: a sound-only file is called one

def test_a_sound_only_file_is_called_one(tmp_path, capsys):
    for folder, name in (("in", "song.mp4"), ("in2", "song.m4a")):
        (tmp_path / folder).mkdir()
        _ffmpeg("-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac", "-f", "ipod" if name.endswith("m4a") else "mp4",
                tmp_path / folder / name)
    assert main(["predict", str(tmp_path / "in" / "song.mp4"), "-o", str(tmp_path / "o1"), "--quiet"]) == 1
    assert "has sound streams and no video stream (an audio file)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "in2" / "song.m4a"), "-o", str(tmp_path / "o2"), "--quiet"]) == 1
    assert "an MPEG-4 audio file (ftyp M4A): sound only, no image or video" in capsys.readouterr().err


# video V2: Matroska's bare "SAR a:b DAR c:d" is read as the pixel aspect

def test_an_anamorphic_matroska_video_keeps_its_pixel_aspect(tmp_path):
    from facekeypoints.infer.video import pixel_aspect

    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x48:d=0.2", "-vf", "setsar=16/11", "-c:v", "ffv1",
            tmp_path / "wide.mkv")
    assert str(pixel_aspect(tmp_path / "wide.mkv")) == "16/11"


# video V3: a video read through FFmpeg's program keeps each frame's own time, so a frame the decoder
# lost leaves a gap and the frames after it keep their numbers

def test_frames_read_through_ffmpeg_keep_their_own_times(tmp_path):
    from facekeypoints.infer.video import _FfmpegCapture

    photo = grace_hopper_copy(tmp_path / "g.jpg")
    clip = tmp_path / "gap.mp4"  # interlaced, 10 frames at 25 fps, frame 6's time one frame late (5 left out)
    _ffmpeg("-loop", "1", "-i", photo, "-frames:v", "10", "-vf", "scale=128:160,setpts='(N+gte(N\\,5))/25/TB'",
            "-fps_mode", "passthrough", "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264opts", "tff=1",
            "-pix_fmt", "yuv420p", "-video_track_timescale", "25", clip)
    capture = _FfmpegCapture(str(clip), 10)
    times = []
    try:
        while (frame := capture.read())[0]:
            assert frame[1].shape == (160, 128, 3)
            times.append(round(capture.get(cv2.CAP_PROP_POS_MSEC)))
    finally:
        capture.release()
    assert times == [0, 40, 80, 120, 160, 240, 280, 320, 360, 400]


def test_an_ffmpeg_read_video_starts_at_0_and_ends_at_once(tmp_path):
    import time

    from facekeypoints.infer.video import _FfmpegCapture

    photo = grace_hopper_copy(tmp_path / "g.jpg")
    clip = tmp_path / "late.ts"  # MPEG-TS starts its times at 1.4 s; FFmpeg's program counts from the first frame
    _ffmpeg("-loop", "1", "-i", photo, "-frames:v", "5", "-r", "25", "-vf", "scale=64:80", "-c:v", "libx264",
            "-flags", "+ildct+ilme", "-pix_fmt", "yuv420p", clip)
    capture = _FfmpegCapture(str(clip), 40)  # a count declared far above the frames there
    try:
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (64, 80)  # before a read
        times = []
        while capture.read()[0]:
            times.append(round(capture.get(cv2.CAP_PROP_POS_MSEC)))
        assert times == [0, 40, 80, 120, 160]
        start = time.monotonic()
        assert [capture.read()[0] for _ in range(30)] == [False] * 30  # asked on to the declared count: at once
        assert time.monotonic() - start < 1
    finally:
        capture.release()
    (tmp_path / "bad.ts").write_bytes(b"\x47" + bytes(5000))
    with pytest.raises(ValueError, match="bad.ts: FFmpeg cannot read this video"):
        _FfmpegCapture(str(tmp_path / "bad.ts"), 0)


# predict P1 / service S1: an image smaller than any face the detector finds is not told to send a crop

def test_an_image_smaller_than_any_findable_face_is_said_to_be(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from facekeypoints.serve.app import create_app

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "row.png"), np.full((1, 720, 3), 128, np.uint8))
    assert main(["predict", str(tmp_path / "in" / "row.png"), "-o", "-"]) == 0
    err = capsys.readouterr().err
    assert "no face found in 1 image smaller than the smallest face the detector finds (72 px)" in err
    assert "were not searched" not in err
    ok, png = cv2.imencode(".png", np.full((1, 1, 3), 128, np.uint8))
    answer = TestClient(create_app({"kaggle15": "kaggle15"})).post(
        "/v1/keypoints", content=png.tobytes(), headers={"content-type": "image/png"}).json()
    assert any("this 1x1 image is smaller than the smallest face the haar detector finds" in n for n in answer["notes"])
    assert not any("send a crop" in n for n in answer["notes"])


# service S2: a header over h11's limit is a 431 that says so; an absolute-form target is served

def test_the_service_answers_large_headers_and_absolute_targets(tmp_path):
    import socket

    from facekeypoints.serve.app import create_app

    with running(create_app({"kaggle15": "kaggle15"})) as port:
        def ask(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                    if b"\r\n\r\n" in answer and b"connection: close" not in answer.lower():
                        break
                return answer

        # 40 KB of a header still going on: over h11's 16 KB while the headers have not ended (sent whole, the
        # unread rest of a larger one may reset the connection before the answer is read)
        big = ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
        assert big.startswith(b"HTTP/1.1 431 ") and b"headers are too large" in big
        for head in (b"X-Big: " + b"a" * 70_000 + b"\r\n", b"".join(b"X-%d: y\r\n" % i for i in range(4000))):
            assert ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n").startswith(b"HTTP/1.1 431 ")  # one piece
        assert ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 8000 + b"\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        other = ask(b"GET ftp://h/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.startswith(b"HTTP/1.1 400 ") and b"the request target is a ftp: URL" in other
        root = ask(b"GET http://x?a=1 HTTP/1.1\r\nHost: x\r\n\r\n")  # the page at "/", not a path ""
        assert root.startswith(b"HTTP/1.1 200 ") and b"text/html" in root.lower()
        for target in (b"http://x/healthz", b"HTTP://x:8/healthz?a=1"):
            assert ask(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200 ")


# predict P2: the shipped models' ONNX exports ship with them, so a first prediction imports no torch

def test_the_shipped_models_exports_are_shipped_and_match_their_checkpoints(tmp_path):
    from facekeypoints.infer.onnx import OnnxRunner, shipped_export
    from facekeypoints.models.predict import TorchRunner
    from facekeypoints.models.weights import SHIPPED, default_checkpoint

    for name in SHIPPED:
        checkpoint = default_checkpoint(name)
        export = shipped_export(checkpoint)
        assert export is not None, (f"{checkpoint.with_suffix('.onnx')} is missing or was not made from {checkpoint}: "
                                    f"facekeypoints export --model {name} -o {checkpoint.with_suffix('.onnx')}")
        torch_runner, onnx_runner = TorchRunner.load(checkpoint), OnnxRunner(export)
        x = np.random.default_rng(0).random((2, torch_runner.card.in_channels, torch_runner.card.input_size,
                                             torch_runner.card.input_size), dtype=np.float32)
        assert np.allclose(torch_runner(x), onnx_runner(x), atol=1e-4)
    copy = tmp_path / "kaggle15_default.pt"  # the same checkpoint elsewhere: exported to the cache as any other
    copy.write_bytes(default_checkpoint("kaggle15").read_bytes())
    (tmp_path / "kaggle15_default.onnx").write_bytes(shipped_export(default_checkpoint("kaggle15")).read_bytes())
    assert shipped_export(copy) is None


def test_a_first_prediction_with_an_empty_cache_imports_no_torch(tmp_path):
    code = ("import sys, numpy as np; from facekeypoints.infer import KeypointDetector; "
            "KeypointDetector()(np.zeros((120, 160, 3), np.uint8)); print('torch' in sys.modules)")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "FACEKEYPOINTS_CACHE": str(tmp_path / "cache")})
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == "False"
    assert not (tmp_path / "cache" / "onnx").exists()
