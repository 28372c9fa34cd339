"""Round 15 of the bad-input audit: the service, demo and predict's command line.

Uploads in flight are bounded (503 beyond ``max_uploads``, 408 for a stalled body); the card says how
its val_rmse was measured; a too tall drawing is said to be too tall; the multipart boundary is read
as a parameter; ``demo -o`` replaces only its own outputs; predict refuses face-search options for a
whole-photo model; a video whose drawing fails is reported with its .jsonl written.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from facekeypoints.cli import build_parser, main
from facekeypoints.models.card import ModelCard
from facekeypoints.serve.app import create_app
from fakes import grace_hopper_copy, mean_face_checkpoint, running, still_clip

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "facekeypoints" / "weights"


@pytest.fixture(scope="module")
def small_app():
    return create_app({"kaggle15": "kaggle15"}, workers=1, max_body=2_000_000, max_uploads=2, upload_timeout=1)


@pytest.fixture(scope="module")
def client(small_app) -> TestClient:
    return TestClient(small_app)


def _photo() -> bytes:
    from matplotlib import cbook

    return cbook.get_sample_data("grace_hopper.jpg").read()


# P1: uploads held open or queued: at most max_uploads, a 503 beyond them, a 408 for one that stalls

def _stalled_upload(port: int) -> socket.socket:
    """A raw-body upload declaring 1 MB that sends 1 KB and stops."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/keypoints HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                 b"Content-Length: 1000000\r\n\r\n" + b"\0" * 1024)
    return sock


def _answer(sock: socket.socket, timeout: float = 10) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of the one answer on ``sock``, read until the server closes it."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_uploads_beyond_max_uploads_are_a_json_503_and_stalled_ones_a_408(small_app):
    with running(small_app) as port:
        stalled = [_stalled_upload(port) for _ in range(2)]
        time.sleep(0.3)  # both are in the app, reading their bodies
        try:
            status, headers, body = _answer(_stalled_upload(port))
            assert status == 503 and headers["connection"] == "close" and "retry-after" in headers
            assert "busy" in body["error"] and "--max-uploads" in body["error"]
            health = socket.create_connection(("127.0.0.1", port))  # GET routes are not counted
            health.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _answer(health)[0] == 200
            start = time.monotonic()
            for sock in stalled:  # upload_timeout=1: no bytes for a second, then a 408 and the connection closed
                status, headers, body = _answer(sock)
                assert status == 408 and headers["connection"] == "close" and "stalled" in body["error"]
            assert time.monotonic() - start < 5
            ok = socket.create_connection(("127.0.0.1", port))  # the slots are free again
            photo = _photo()
            ok.sendall(b"POST /v1/keypoints HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(photo), photo))
            assert _answer(ok)[0] == 200
        finally:
            for sock in stalled:
                sock.close()


def test_serve_takes_the_bounds_as_options():
    args = build_parser().parse_args(["serve", "--max-uploads", "4", "--upload-timeout", "5"])
    assert (args.max_uploads, args.upload_timeout) == (4, 5)
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.max_uploads, defaults.upload_timeout) == (16, 30)
    with pytest.raises(ValueError, match="max_uploads"):
        create_app({"kaggle15": "kaggle15"}, max_uploads=0)


# P3: a card whose metrics do not say how val_rmse was measured takes it from the run's config

def test_the_card_takes_val_mirror_tta_from_the_runs_config():
    for name, mirrored in (("kaggle15", True), ("ibug68", False)):
        saved = torch.load(WEIGHTS / f"{name}_default.pt", weights_only=True)
        assert saved["config"]["train"]["mirror_tta"] is mirrored
        assert ModelCard.from_dict(saved["card"], config=saved["config"]).summary()["val_mirror_tta"] is mirrored
        # a card written before cards recorded it (as the shipped ones were until 2026-12-01): from the config
        older = {**saved["card"], "metrics": {k: v for k, v in saved["card"]["metrics"].items() if k != "val_mirror_tta"}}
        card = ModelCard.from_dict(older, config=saved["config"])
        assert card.summary()["val_mirror_tta"] is mirrored
    said = ModelCard.from_dict({**saved["card"], "metrics": {"val_rmse": 2.0, "val_mirror_tta": True}},
                               config={"train": {"mirror_tta": False}})
    assert said.summary()["val_mirror_tta"] is True  # the card's own word wins
    unmeasured = ModelCard.from_dict({**saved["card"], "metrics": {}}, config={"train": {"mirror_tta": True}})
    assert unmeasured.summary()["val_mirror_tta"] is None  # no val_rmse: nothing to qualify


def test_the_service_card_says_the_shipped_models_validation_basis():
    # needs models/checkpoint.py's load_checkpoint to pass the checkpoint's config to ModelCard.from_dict
    app = create_app(workers=1)
    cards = TestClient(app).get("/v1/models").json()["cards"]
    assert cards["kaggle15"]["val_mirror_tta"] is True and cards["ibug68"]["val_mirror_tta"] is False


# P4: a drawing too tall for JPEG is said to be too tall

def test_a_drawing_too_tall_for_jpeg_is_said_to_be_too_tall(client):
    tall = cv2.imencode(".png", np.full((70000, 2, 3), 128, np.uint8))[1].tobytes()
    answer = client.post("/v1/keypoints?draw=true", content=tall, headers={"content-type": "image/png"})
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
    assert "too tall for JPEG (70000 px" in answer.headers["x-notes"] and "wide" not in answer.headers["x-notes"]


# P5: the multipart boundary is the boundary parameter, not one whose name ends in "boundary"

def test_a_parameter_ending_in_boundary_does_not_hide_the_boundary(client):
    photo = _photo()
    body = b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + photo + b"\r\n--B--\r\n"
    answer = client.post("/v1/keypoints", content=body,
                         headers={"content-type": "multipart/form-data; xboundary=A; boundary=B"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["faces"]) == 1


# P6: demo -o replaces only what an earlier demo wrote

def test_demo_refuses_to_replace_a_users_files_and_reruns_over_its_own(tmp_path, capsys):
    model = mean_face_checkpoint(tmp_path / "mean.pt")
    mine = tmp_path / "mine"
    grace_hopper_copy(mine / "grace_hopper.jpg")  # the user's photo, no demo JSON beside it
    before = (mine / "grace_hopper.jpg").read_bytes()
    assert main(["demo", "-o", str(mine), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert f"{mine / 'grace_hopper.jpg'}: exists" in err and "another -o folder" in err
    assert (mine / "grace_hopper.jpg").read_bytes() == before and not (mine / "grace_hopper.json").exists()

    (mine / "grace_hopper.jpg").unlink()
    (mine / "grace_hopper.json").write_text('{"mine": 1}')  # the user's JSON
    assert main(["demo", "-o", str(mine), "--model", str(model)]) == 2
    assert "grace_hopper.json: exists and is not a result the demo wrote" in capsys.readouterr().err
    assert (mine / "grace_hopper.json").read_text() == '{"mine": 1}'

    out = tmp_path / "demo-output"  # make demo runs it again into its own folder
    for _ in range(2):
        assert main(["demo", "-o", str(out), "--model", str(model)]) == 0
    assert json.loads((out / "grace_hopper.json").read_text())["source"] == "grace_hopper"


# predict P4: a whole-photo model refuses the face search's options, as a Kaggle CSV does

def _whole_photo_checkpoint(path: Path) -> Path:
    from facekeypoints.models import create_model
    from facekeypoints.models.checkpoint import card_for, save_checkpoint

    model = create_model("fcnn", schema="kaggle15")
    save_checkpoint(path, model, card_for(model, framing="resize"))
    return path


@pytest.mark.parametrize("options, named", [
    (["--detector", "cnn", "--min-face", "30"], "--detector cnn and --min-face"),
    (["--detector", "haar"], "--detector haar"), (["--max-side", "200"], "--max-side"), (["--no-refine"], "--no-refine")])
def test_predict_refuses_face_search_options_for_a_whole_photo_model(tmp_path, capsys, options, named):
    model = _whole_photo_checkpoint(tmp_path / "whole.pt")
    photo = grace_hopper_copy(tmp_path / "in" / "a.jpg")
    code = main(["predict", str(photo), "-o", str(tmp_path / "out"), "--quiet", "--model", str(model), *options])
    captured = capsys.readouterr()
    assert code == 2 and f"error: {named} appl" in captured.err and "uses no face detector" in captured.err
    assert "warning" not in captured.err and not (tmp_path / "out").exists()
    assert main(["predict", str(photo), "-o", str(tmp_path / "ok"), "--quiet", "--model", str(model)]) == 0


# predict P19: a video whose drawing fails has its .jsonl written, and the summary says so

def test_a_video_whose_drawing_fails_reports_its_jsonl(tmp_path, capsys, monkeypatch):
    clip = still_clip(tmp_path / "in" / "clip.avi", frames=2)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/bin/false")  # an H.264 encoder that fails at once
    out = tmp_path / "out"
    assert main(["predict", str(clip), "-o", f"{out}/", "--quiet", "--model",
                 str(mean_face_checkpoint(tmp_path / "mean.pt"))]) == 1
    captured = capsys.readouterr()
    assert (out / "clip.jsonl").is_file() and "nothing was written" not in captured.out + captured.err
    assert f"results: {out}" in captured.err and "wrote 1 files" in captured.err
