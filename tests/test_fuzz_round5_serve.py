"""Round-5 fuzz of the service (items 27-31): a client gone mid-upload, one error shape for every
answer, HEAD, misspelt query options, decode errors worded for HTTP clients, a multipart body cut
short, a port in use, and no /docs page that would be blank offline."""
from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.cli import main
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.images import decode_image
from facekeypoints.serve.app import OPTIONS, create_app
from fakes import running
from facekeypoints.serve.server import bind

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
JPEG = {"content-type": "image/jpeg"}
CLI_WORDS = ("predict", "--max-pixels", "max_pixels", "Python")


@pytest.fixture(scope="module")
def app():
    return create_app({"ibug68": "ibug68"}, workers=1, max_body=2_000_000, max_pixels=1_200_000)


@pytest.fixture(scope="module")
def client(app) -> TestClient:
    return TestClient(app)


def _error(response, status: int) -> str:
    """The one-line error of a ``status`` answer, checked for the service's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"], body
    return body["error"]


# ---- 27: a client that disconnects mid-upload -----------------------------------------------------
def _disconnecting(app, headers: list[tuple[bytes, bytes]], first: bytes) -> list[dict]:
    """Call the ASGI app as uvicorn does for a client that sends ``first`` and then goes away;
    an exception escaping the app (what uvicorn prints as a traceback) fails the test."""
    messages = [{"type": "http.request", "body": first, "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/keypoints", "raw_path": b"/v1/keypoints", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_gone_mid_upload_gets_a_400_and_raises_nothing(app):
    raw = _disconnecting(app, [(b"content-type", b"image/jpeg"), (b"content-length", b"100000")],
                         b"\xff\xd8" + b"x" * 5000)
    form = _disconnecting(app, [(b"content-type", b"multipart/form-data; boundary=xyz"),
                                (b"content-length", b"100000")], b"--xyz\r\nContent-Disposition: form-data")
    for sent in (raw, form):
        assert sent[0]["status"] == 400 and b"the client disconnected" in sent[1]["body"]


# ---- 28: one error shape; HEAD; no /docs ---------------------------------------------------------
def test_404_405_and_422_have_the_services_error_shape(client):
    assert "no such path '/nope'" in _error(client.get("/nope"), 404)
    assert "POST /v1/keypoints" in _error(client.get("/nope"), 404)  # and says what there is
    response = client.get("/v1/keypoints")
    assert _error(response, 405) == "GET is not allowed on /v1/keypoints; use POST"
    assert response.headers["allow"] == "POST"
    assert client.delete("/healthz").headers["allow"] == "GET, HEAD"
    assert "draw" in _error(client.post("/v1/keypoints?draw=maybe", content=PHOTO, headers=JPEG), 422)
    no_number = client.post("/v1/keypoints", content=b"x", headers={**JPEG, "content-length": "-1"})
    assert _error(no_number, 400) == "the Content-Length header is not a number"


def test_get_routes_answer_head(client):
    for path in ("/", "/healthz", "/v1/models", "/openapi.json"):
        response = client.head(path)
        assert response.status_code == 200 and not response.content, path
    assert "head" not in client.get("/openapi.json").json()["paths"]["/healthz"]  # the twin is not documented


def test_no_docs_page_that_needs_a_cdn_but_the_openapi_description(client):
    _error(client.get("/docs"), 404)
    _error(client.get("/redoc"), 404)
    assert "/v1/keypoints" in client.get("/openapi.json").json()["paths"]


# ---- 29: query options ----------------------------------------------------------------------------
def test_misspelt_query_options_are_422_naming_them_and_the_known_ones(client):
    error = _error(client.post("/v1/keypoints?modle=ibug68&drow=true", content=PHOTO, headers=JPEG), 422)
    assert error == ("unknown query options 'modle' (did you mean 'model'?), 'drow' (did you mean 'draw'?); "
                     "known: model, detector, draw")
    many = "&".join(f"x{i}=1" for i in range(50))
    assert "and 47 more" in _error(client.post(f"/v1/keypoints?{many}", content=PHOTO, headers=JPEG), 422)
    error = _error(client.post("/v1/keypoints?model=ibug68&model=kaggle15", content=PHOTO, headers=JPEG), 422)
    assert "'model' is given 2 times" in error


def test_the_known_options_are_the_endpoints_parameters(client):
    operation = client.get("/openapi.json").json()["paths"]["/v1/keypoints"]["post"]
    assert [p["name"] for p in operation["parameters"]] == list(OPTIONS)


# ---- 30: errors worded for HTTP clients -----------------------------------------------------------
def test_decode_errors_give_no_cli_or_python_advice(client):
    png16 = cv2.imencode(".png", np.zeros((1000, 1000, 3), np.uint16))[1].tobytes()  # 6 MB decoded
    big = cv2.imencode(".png", np.zeros((1200, 1100, 3), np.uint8))[1].tobytes()
    cases = [
        (b"hello, not an image", JPEG, 400, "its size cannot be read from its header"),
        (png16, {"content-type": "image/png"}, 413, "16-bit RGB: 6 MB, over the limit of 4 MB allowed "
                                                     "(1200000 8-bit RGB pixels)"),
        (big, {"content-type": "image/png"}, 413, "1100x1200 = 1320000 pixels, over the limit of 1200000 pixels"),
    ]
    for content, headers, status, words in cases:
        error = _error(client.post("/v1/keypoints", content=content, headers=headers), status)
        assert words in error and not any(w in error for w in CLI_WORDS), error


def test_opencv_errors_name_no_build_machine_path(monkeypatch):
    def fails(*args):
        raise cv2.error("OpenCV(4.10.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:99: error: (-215) bad")

    monkeypatch.setattr(cv2, "imdecode", fails)
    with pytest.raises(DataFormatError) as err:
        decode_image(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes(), name="upload")
    assert err.value.reason == "cannot decode image: (-215) bad" and err.value.hint is None


def test_a_multipart_body_cut_short_says_so(client):
    request = httpx.Request("POST", "http://x/", files={"file": ("face.jpg", PHOTO, "image/jpeg")})
    body, kind = request.read(), request.headers["content-type"]
    for cut in (100, len(body) // 2, len(body) - 4):
        error = _error(client.post("/v1/keypoints", content=body[:cut], headers={"content-type": kind}), 400)
        assert "cut short or malformed" in error
    whole = client.post("/v1/keypoints", content=body, headers={"content-type": kind})
    assert whole.status_code == 200 and len(whole.json()["faces"]) == 1


# ---- 31: a port in use; uvicorn's own answers ------------------------------------------------------
def test_a_port_in_use_is_one_error_naming_it_and_nothing_else(capsys):
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: cannot serve on 127.0.0.1:{port}: address already in use "
                                 "(is another server running there? pick another --port)\n")


@pytest.fixture(scope="module")
def live(app):
    """The service under uvicorn as ``facekeypoints serve`` runs it, on a free port."""
    with running(app) as port:
        yield port


def test_a_request_uvicorn_cannot_parse_gets_a_json_400(live):
    for head in (b"POST /v1/keypoints HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: -1\r\n\r\n",
                 b"GARBAGE\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", live), timeout=5) as s:
            s.sendall(head)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in status
        assert body == (b'{"error": "the request is not valid HTTP/1.1 (a malformed request line, header or '
                        b'Content-Length)"}')
    assert httpx.get(f"http://127.0.0.1:{live}/healthz").json() == {"status": "ok"}


def test_an_animated_upload_says_which_frames_went_unused(client, tmp_path):
    from PIL import Image

    face = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    gif = tmp_path / "two.gif"
    face.save(gif, save_all=True, append_images=[face.transpose(Image.FLIP_LEFT_RIGHT)], duration=100)
    answer = client.post("/v1/keypoints", content=gif.read_bytes(), headers={"content-type": "image/gif"})
    assert answer.status_code == 200
    assert answer.json()["notes"] == ["upload: has 2 frames; only the first is used (send them as single images)"]
    drawn = client.post("/v1/keypoints?draw=true", content=gif.read_bytes(), headers={"content-type": "image/gif"})
    assert drawn.status_code == 200 and "only the first is used" in drawn.headers["x-notes"]
    single = client.post("/v1/keypoints", content=cbook.get_sample_data("grace_hopper.jpg").read(),
                         headers={"content-type": "image/jpeg"})
    assert "notes" not in single.json()


def test_a_drawing_too_wide_for_jpeg_comes_back_as_png(client):
    wide = np.full((8, 70000, 3), 128, np.uint8)
    body = cv2.imencode(".png", wide)[1].tobytes()
    answer = client.post("/v1/keypoints?draw=true", content=body, headers={"content-type": "image/png"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.content.startswith(b"\x89PNG") and "too wide for JPEG" in answer.headers["x-notes"]
