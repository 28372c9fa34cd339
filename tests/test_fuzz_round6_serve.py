"""Round 6, service: a model file replaced or removed while serving changes nothing served."""
import shutil

from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.serve.app import create_app
from fakes import mean_face_checkpoint


def _nose(app) -> dict:
    photo = cbook.get_sample_data("grace_hopper.jpg").read()
    answer = TestClient(app).post("/v1/keypoints?model=mine", content=photo, headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    return answer.json()["faces"][0]["keypoints"]["nose_tip"]


def test_the_weights_served_are_the_ones_read_at_start_up(tmp_path):
    path = mean_face_checkpoint(tmp_path / "mine.pt", wobble=0.5, seed=1)
    shutil.copy(path, tmp_path / "a.pt")
    served = create_app({"mine": path}, workers=1)  # worker threads read their model on first use
    mean_face_checkpoint(path, wobble=0.5, seed=2)  # another model under the same name, before any request
    other = _nose(create_app({"mine": path}, workers=1))
    assert _nose(served) == _nose(create_app({"mine": tmp_path / "a.pt"}, workers=1)) != other
    path.unlink()
    fresh = create_app({"mine": tmp_path / "a.pt"}, workers=1)
    (tmp_path / "a.pt").unlink()
    assert _nose(fresh)["x"] is not None  # gone from disk after start-up: still served, never a 404 for a listed model


def test_an_empty_model_or_detector_option_is_a_422(tmp_path):
    client = TestClient(create_app({"mine": mean_face_checkpoint(tmp_path / "m.pt")}, workers=1))
    photo = cbook.get_sample_data("grace_hopper.jpg").read()
    for query in ("model=", "detector="):
        answer = client.post(f"/v1/keypoints?{query}", content=photo, headers={"content-type": "image/jpeg"})
        assert answer.status_code == 422 and "is empty" in answer.json()["error"], answer.text
