"""Service findings of fuzz round 11: multipart form options, the OpenAPI description, multipart
edge cases, log noise, error wording, and the page with an image the browser cannot show."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.serve.app import create_app
from test_serve_browser import _wait, browser, server  # noqa: F401 (fixtures)

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
JPEG = {"content-type": "image/jpeg"}
URL = "/v1/keypoints"


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(workers=1))


def _multipart(parts, boundary="BND") -> tuple[bytes, dict]:
    body = b"".join(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n" for head, data in parts)
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    return response.json()["error"]


# 1. form fields model/detector/draw are options, as in the query
def test_form_fields_choose_the_model_detector_and_drawing(client):
    photo = {"file": ("a.jpg", PHOTO, "image/jpeg")}
    body = client.post(URL, files=photo, data={"model": "ibug68", "detector": "HAAR"}).json()
    assert body["model"]["schema"] == "ibug68" and body["detector"] == "haar" and len(body["faces"][0]["keypoints"]) == 68
    drawn = client.post(URL, files=photo, data={"draw": "true"})
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"
    same = client.post(URL + "?model=ibug68", files=photo, data={"model": "ibug68"})
    assert same.status_code == 200 and same.json()["model"]["schema"] == "ibug68"


@pytest.mark.parametrize("query, data, status, words", [
    ("?model=kaggle15", {"model": "ibug68"}, 422, "in the query and as 'ibug68' in the form"),
    ("?draw=false", {"draw": "true"}, 422, "option 'draw'"),
    ("", {"model": "nope"}, 404, "unknown model 'nope'"),
    ("", {"model": ""}, 422, "form field model is empty"),
    ("", {"draw": "maybe"}, 422, "form field 'draw' is 'maybe'"),
    ("", {"modle": "ibug68"}, 422, "unknown form field 'modle' (did you mean 'model'?)"),
])
def test_bad_form_fields_are_refused(client, query, data, status, words):
    answer = client.post(URL + query, files={"file": ("a.jpg", PHOTO, "image/jpeg")}, data=data)
    assert words in _error(answer, status)


def test_a_form_option_sent_twice_or_as_a_file_is_refused(client):
    body, headers = _multipart([('Content-Disposition: form-data; name="model"', b"ibug68"),
                                ('Content-Disposition: form-data; name="model"', b"kaggle15"),
                                ('Content-Disposition: form-data; name="file"; filename="a.jpg"', PHOTO)])
    assert "given 2 times" in _error(client.post(URL, content=body, headers=headers), 422)
    body, headers = _multipart([('Content-Disposition: form-data; name="model"; filename="m.txt"', b"ibug68"),
                                ('Content-Disposition: form-data; name="file"', PHOTO)])  # one file part at most
    assert "'model' is a file" in _error(client.post(URL, content=body, headers=headers), 422)


# 2. the OpenAPI description says what the route takes and answers
def test_openapi_describes_the_body_answers_errors_and_names(client):
    operation = client.get("/openapi.json").json()["paths"][URL]["post"]
    content = operation["requestBody"]["content"]
    assert {"image/*", "application/octet-stream", "multipart/form-data"} <= set(content)
    assert content["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert {"application/json", "image/jpeg", "image/png"} <= set(operation["responses"]["200"]["content"])
    for code in ("400", "404", "411", "413", "415", "422"):
        schema = operation["responses"][code]["content"]["application/json"]["schema"]
        assert schema["properties"] == {"error": {"type": "string"}}, code
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["model"]["enum"] == ["ibug68", "kaggle15"] and "haar" in parameters["detector"]["enum"]


# 4. multipart edge cases
def test_a_preamble_and_a_filename_star_part_are_read(client):
    body, headers = _multipart([('Content-Disposition: form-data; name="file"; filename="a.jpg"', PHOTO)])
    answer = client.post(URL, content=b"preamble text\r\n" + body, headers=headers)
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1
    body, headers = _multipart([("Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%B1.jpg", PHOTO)])
    answer = client.post(URL, content=body, headers=headers)
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1


def test_a_closing_boundary_after_a_bare_lf_is_named(client):
    body, headers = _multipart([('Content-Disposition: form-data; name="file"; filename="a.jpg"', PHOTO)])
    error = _error(client.post(URL, content=body.replace(b"\r\n--BND--", b"\n--BND--"), headers=headers), 400)
    assert "bare LF" in error and "no file field" not in error


# 5. log noise
def test_a_drawing_too_wide_for_jpeg_is_png_without_opencv_noise(client, capfd):
    ok, png = cv2.imencode(".png", np.full((4, 70000, 3), 128, np.uint8))
    answer = client.post(URL + "?draw=true", content=png.tobytes(), headers={"content-type": "image/png"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert "imencode" not in capfd.readouterr().err


def test_a_wrong_boundary_is_not_logged(client, caplog):
    body, _ = _multipart([('Content-Disposition: form-data; name="file"; filename="a.jpg"', PHOTO)])
    with caplog.at_level(logging.WARNING):
        answer = client.post(URL, content=body, headers={"content-type": "multipart/form-data; boundary=OTHER"})
    assert answer.status_code == 400 and "Expected boundary" not in caplog.text


# 6. error wording
def test_a_bad_draw_value_has_no_stray_quotes(client):
    error = _error(client.post(URL + "?draw=maybe", content=PHOTO, headers=JPEG), 422)
    assert error.startswith("draw: ") and "'" not in error


def test_a_video_sent_as_an_image_gets_no_cli_advice(client):
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(600)
    error = _error(client.post(URL, content=mp4, headers=JPEG), 400)
    assert "MP4" in error and "suffix" not in error


def test_model_names_are_case_insensitive_like_detector_names(client):
    body = client.post(URL + "?model=IBUG68&detector=HAAR", content=PHOTO, headers=JPEG).json()
    assert body["model"]["schema"] == "ibug68" and body["detector"] == "haar"
    assert "unknown model 'IBUG" in _error(client.post(URL + "?model=IBUG", content=PHOTO, headers=JPEG), 404)


# 3. the page, in a real browser (skipped without chromium, as tests/test_serve_browser.py)
def test_the_page_says_when_the_browser_cannot_show_an_image(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    tiff = tmp_path / "face.tiff"  # the server reads TIFF; Chromium cannot decode it
    cv2.imwrite(str(tiff), cv2.imdecode(np.frombuffer(PHOTO, np.uint8), cv2.IMREAD_COLOR))
    browser.get(server)
    browser.find_element(By.ID, "file").send_keys(str(tiff))
    _wait(browser, "return document.body.dataset.done === 'yes'")
    status = browser.find_element(By.ID, "status").text
    assert status == "the browser cannot show this image; 1 face(s) found", status
