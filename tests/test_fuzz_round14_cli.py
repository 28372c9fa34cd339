"""Round 14 of the service and CLI audit: the web page drawing an older upload's answer over the
latest one (and keeping an old drawing under an error), multipart uploads sent with chunked
Transfer-Encoding, and serve --model naming a missing path that holds '='."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from fakes import run_cli
from facekeypoints.serve.app import create_app
from test_serve_browser import _wait, browser, server  # noqa: F401 (fixtures)

PHOTO_PATH = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
PHOTO = PHOTO_PATH.read_bytes()
URL = "/v1/keypoints"


def _multipart(data: bytes, boundary: str = "BND") -> tuple[bytes, dict]:
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def _in_pieces(body: bytes, size: int = 4096):  # an iterator: httpx sends it chunked, without Content-Length
    for start in range(0, len(body), size):
        yield body[start:start + size]


# ---- serve 3: a multipart upload with chunked Transfer-Encoding is read, the limit checked while streaming --
def test_a_chunked_multipart_upload_is_answered():
    client = TestClient(create_app(workers=1))
    body, headers = _multipart(PHOTO)
    response = client.post(URL, content=_in_pieces(body), headers=headers)
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1


def test_a_chunked_multipart_upload_over_the_limit_is_a_413():
    client = TestClient(create_app(workers=1, max_body=len(PHOTO) // 2))
    body, headers = _multipart(PHOTO)
    response = client.post(URL, content=_in_pieces(body), headers=headers)
    assert response.status_code == 413, response.text
    assert response.json() == {"error": f"the body is over the limit of {len(PHOTO) // 2} bytes"}


def test_a_chunked_multipart_upload_over_a_live_socket(server):  # noqa: F811
    host, port = server.split("//")[1].rstrip("/").split(":")
    body, headers = _multipart(PHOTO)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in _in_pieces(body)) + b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: {headers['content-type']}\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode() + chunks)
        answer = b""
        while piece := conn.recv(65536):
            answer += piece
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


# ---- serve 4: a missing model path holding '=' is said as both readings ----------------------------------
@pytest.mark.parametrize("item", ["runs/lr=0.01/best.pt", "fast=missing.onnx"])
def test_a_missing_model_path_with_an_equals_sign_names_both_readings(tmp_path, capsys, monkeypatch, item):
    import facekeypoints.serve.server as server_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(server_module, "bind", lambda host, port: socket.socket())  # no port taken if it gets there
    code, _, err = run_cli(["serve", "--model", item], capsys)
    name, _, path = item.partition("=")
    assert code == 2, err
    assert f"--model {item!r}: read as NAME=PATH (name {name!r}, path {path!r}), but neither {item!r} nor " \
           f"{path!r} exists" in err, err
    assert err.count("\n") == 1


def test_name_equals_a_shipped_model_is_still_served(capsys, monkeypatch):
    import facekeypoints.serve.app as app_module
    import facekeypoints.serve.server as server_module

    seen = {}

    def create_app(models, **kwargs):
        seen.update(models)
        raise ValueError("stop here")

    monkeypatch.setattr(server_module, "bind", lambda host, port: socket.socket())
    monkeypatch.setattr(app_module, "create_app", create_app)
    code, _, err = run_cli(["serve", "--model", "mine=ibug68"], capsys)
    assert code == 2 and seen == {"mine": "ibug68"} and "stop here" in err, (seen, err)


# ---- serve 2: the page draws only the latest request's answer; a failure clears the old drawing ---------
CANVAS = "const c = document.getElementById('canvas'); return [c.width, c.height, c.dataset.faces || null];"
DELAY_FIRST_ANSWER = """
    const real = window.fetch.bind(window); let calls = 0;
    window.fetch = async (url, options) => {
        const answer = await real(url, options);
        if (String(url).startsWith('/v1/keypoints') && calls++ === 0) await new Promise(r => setTimeout(r, 3000));
        return answer;
    };"""


def test_the_page_draws_only_the_latest_photos_answer(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    blank = tmp_path / "blank.png"  # no face, and a size unlike the photo's
    cv2.imwrite(str(blank), np.full((200, 320, 3), 128, np.uint8))
    browser.get(server)
    _wait(browser, "return document.querySelector('input[name=points]:checked') !== null")
    browser.execute_script(DELAY_FIRST_ANSWER)  # the photo's answer comes last, as a big photo's would
    picker = browser.find_element(By.ID, "file")
    picker.send_keys(str(PHOTO_PATH))
    picker.send_keys(str(blank))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    assert browser.execute_script(CANVAS) == [320, 200, "0"]
    browser.execute_script("document.body.dataset.done = ''")
    time.sleep(3.5)  # the photo's delayed answer has arrived by now, and is dropped
    assert browser.execute_script(CANVAS) == [320, 200, "0"]
    assert browser.find_element(By.ID, "status").text.startswith("0 face(s)")
    assert browser.execute_script("return document.body.dataset.done") == ""


def test_a_failed_upload_clears_the_old_drawing(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a JPEG at all")
    browser.get(server)
    picker = browser.find_element(By.ID, "file")
    picker.send_keys(str(PHOTO_PATH))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    assert browser.execute_script(CANVAS)[2] == "1"
    browser.execute_script("document.body.dataset.done = ''")
    picker.send_keys(str(broken))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    assert browser.find_element(By.ID, "status").get_attribute("class") == "error"
    assert browser.execute_script(CANVAS)[2] is None
    painted = browser.execute_script("""
        const c = document.getElementById('canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;""")
    assert painted == 0  # the photo and its points are gone, not left under the error
