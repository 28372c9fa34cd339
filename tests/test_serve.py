"""The keypoint service (issue 13): the API, every limit, concurrency, and the page it serves."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.serve.app import create_app
from fakes import png_bomb

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
JPEG = {"content-type": "image/jpeg"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(workers=2, max_body=2_000_000, max_pixels=5_000_000))


def _no_trace(response) -> None:
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"] and "/work" not in body["error"]


def test_health_models_page_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    listed = client.get("/v1/models").json()
    assert listed["models"] == ["ibug68", "kaggle15"] and "haar" in listed["detectors"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "/v1/keypoints" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assert "/v1/keypoints" in client.get("/openapi.json").json()["paths"]


def test_a_raw_jpeg_and_a_multipart_upload_give_the_same_keypoints(client):
    raw = client.post("/v1/keypoints", content=PHOTO, headers=JPEG)
    form = client.post("/v1/keypoints", files={"file": ("face.jpg", PHOTO, "image/jpeg")})
    assert raw.status_code == form.status_code == 200
    a, b = raw.json(), form.json()
    assert len(a["faces"]) == 1 and a["faces"] == b["faces"]
    assert a["model"]["schema"] == "kaggle15" and a["detector"] == "haar" and a["source"] == "upload"
    assert set(a["faces"][0]["keypoints"]) >= {"nose_tip", "left_eye_center"}
    assert a["timings"]["total"] > 0 and a["image_size"] == {"height": 600, "width": 512}


def test_68_points_and_a_drawing(client):
    body = client.post("/v1/keypoints?model=ibug68", content=PHOTO, headers=JPEG).json()
    assert len(body["faces"][0]["keypoints"]) == 68 and body["model"]["keypoints"] == 68
    drawn = client.post("/v1/keypoints?draw=true", content=PHOTO, headers=JPEG)
    assert drawn.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (600, 512, 3)


@pytest.mark.parametrize("query, status, words", [
    ("?model=resnet", 404, "unknown model 'resnet'; known: ['ibug68', 'kaggle15']"),
    ("?detector=viola", 404, "unknown detector 'viola'"),
])
def test_unknown_names_are_404_with_the_known_ones(client, query, status, words):
    response = client.post("/v1/keypoints" + query, content=PHOTO, headers=JPEG)
    assert response.status_code == status and words in response.json()["error"]
    _no_trace(response)


def test_every_limit_is_a_clear_4xx(client, tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png").read_bytes()
    cases = [
        (dict(content=b"x" * 2_000_001, headers=JPEG), 413, "over the limit of 2000000 bytes"),
        (dict(content=bomb, headers={"content-type": "image/png"}), 413, "2500000000 pixels, over the limit"),
        (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "send an image"),
        (dict(content=b"\xff\xd8\xff garbage", headers=JPEG), 400, "cannot decode image"),
        (dict(content=b"", headers=JPEG), 400, "the body is empty"),
        (dict(files={"other": ("a.jpg", PHOTO, "image/jpeg")}), 400, "no file field named 'file'"),
        (dict(content=PHOTO[: len(PHOTO) // 3], headers=JPEG), 400, "cannot decode image"),
    ]
    for kwargs, status, words in cases:
        response = client.post("/v1/keypoints", **kwargs)
        assert response.status_code == status and words in response.json()["error"], (status, response.text)
        _no_trace(response)
    assert client.get("/healthz").status_code == 200


def test_a_truncated_jpeg_with_a_readable_header_is_a_result_or_a_400(client):
    response = client.post("/v1/keypoints", content=PHOTO[: len(PHOTO) * 2 // 3], headers=JPEG)
    assert response.status_code in (200, 400)


def test_many_requests_at_once_queue_rather_than_fail(client):
    def one(_):
        return client.post("/v1/keypoints", content=PHOTO, headers=JPEG).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(16)))
    assert codes == [200] * 16


def test_the_service_binds_to_loopback_by_default():
    from facekeypoints.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.workers == 2


def test_the_first_model_served_is_the_default_and_bad_queries_keep_the_error_shape():
    client = TestClient(create_app({"ibug68": "ibug68"}, workers=1))
    body = client.post("/v1/keypoints", content=PHOTO, headers=JPEG).json()
    assert body["model"]["schema"] == "ibug68"
    response = client.post("/v1/keypoints?draw=maybe", content=PHOTO, headers=JPEG)
    assert response.status_code == 422 and "draw" in response.json()["error"]
    _no_trace(response)
    long_name = "m" * 5000
    error = client.post(f"/v1/keypoints?model={long_name}", content=PHOTO, headers=JPEG).json()["error"]
    assert len(error) < 300  # a client's long value is not echoed back whole
    assert client.post("/v1/keypoints?detector=HAAR", content=PHOTO, headers=JPEG).status_code == 200


def test_bad_models_stop_the_service_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="model 'foo': .*no such model file"):
        create_app({"foo": tmp_path / "none.pt"})
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="model 'bad'"):
        create_app({"bad": tmp_path / "text.pt"})
