"""KeypointDetector: inputs, face detection, framing, refinement, batching and Result objects."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from facekeypoints import KeypointDetector
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data import framing
from facekeypoints.infer.bench import demo_frame
from fakes import FakeRunner, mean_face_checkpoint
from facekeypoints.infer.results import Result
from facekeypoints.schema import load_schema

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "src" / "facekeypoints" / "weights" / "kaggle15_default.pt"


@pytest.fixture(scope="module")
def mean_face(tmp_path_factory) -> Path:
    """A checkpoint that always predicts the mean Kaggle face in its crop."""
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt")


@pytest.fixture(scope="module")
def wobbly(tmp_path_factory) -> Path:
    """The mean face plus a small image-dependent offset: face-shaped, but it reads the pixels."""
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "wobbly.pt", wobble=0.01)


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_grace_hopper_has_one_face_with_keypoints_inside_its_box(mean_face):
    assert GRACE_HOPPER.is_file(), "matplotlib's sample photo is missing"
    result = KeypointDetector(mean_face)(GRACE_HOPPER)
    assert isinstance(result, Result) and len(result) == 1
    face = result[0]
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 600 and x2 - x1 > 100  # a real face, not a speck
    assert ((face.keypoints >= [x1, y1]) & (face.keypoints <= [x2, y2])).all()
    assert face.keypoints.shape == (15, 2) and face.scores is None  # these models predict no confidence
    assert face["left_eye_center"][0] > face["right_eye_center"][0]  # subject's left is on the image's right
    assert result.image_size == (600, 512) and result.source == str(GRACE_HOPPER)
    assert set(result.timings) == {"detection", "preprocess", "model", "postprocess"}


def test_no_face_gives_an_empty_result(mean_face):
    result = KeypointDetector(mean_face)(np.full((120, 160, 3), 90, np.uint8))
    assert isinstance(result, Result) and len(result) == 0 and list(result) == []
    assert result.keypoints.shape == (0, 15, 2) and result.boxes.shape == (0, 5)
    assert result.to_dict()["faces"] == []


def test_given_boxes_frame_the_face_exactly(mean_face):
    """With the mean-face model, keypoints are the template carried back through the box's frame."""
    det = KeypointDetector(mean_face, detector=None, refine=False)
    box = np.array([40.0, 30.0, 140.0, 130.0])
    result = det(np.zeros((200, 220), np.uint8), boxes=[box])
    expected = framing.to_image(framing.frame_from_box(box, 96), framing.template(96))
    np.testing.assert_allclose(result[0].keypoints, expected, atol=1e-3)
    assert result[0].box_score == 1.0 and result[0].box.tolist() == box.tolist()


def test_refinement_frame_is_a_fixed_point_for_the_mean_face(mean_face):
    """Refining aligns on the first keypoints; for the mean-face model that frame reproduces them."""
    det = KeypointDetector(mean_face, detector=None)
    assert det.refine
    result = det(np.zeros((200, 220, 3), np.uint8), boxes=[[40, 30, 140, 130]])
    frames, error = framing.frames_from_keypoints(result.keypoints, det.schema, 96)
    assert error[0] < 1e-6
    np.testing.assert_allclose(framing.to_crop(frames[0], result[0].keypoints), framing.template(96), atol=1e-3)


def test_keypoint_frame_undoes_tilt_scale_and_shift():
    """A face turned by 25 degrees, 2.5x the template's size, lands upright on the template."""
    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    face = framing.template(96) @ (2.5 * rotation).T + [300.0, 120.0]
    schema = load_schema("kaggle15")
    frames, error = framing.frames_from_keypoints(face[None], schema, 96)
    np.testing.assert_allclose(framing.to_crop(frames[0], face), framing.template(96), atol=1e-4)
    assert np.rad2deg(np.arctan2(frames[0][1, 0], frames[0][0, 0])) == pytest.approx(-25)
    assert error[0] < 1e-6
    squashed = face.copy()
    squashed[:, 1] = squashed[:, 1].mean()  # all points on one line: not face-shaped
    assert framing.frames_from_keypoints(squashed[None], schema, 96)[1][0] > framing.MAX_SHAPE_ERROR


def test_detector_none_needs_boxes(mean_face):
    det = KeypointDetector(mean_face, detector=None)
    with pytest.raises(ValueError, match="boxes="):
        det(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ValueError, match="x2 > x1"):
        det(np.zeros((50, 50, 3), np.uint8), boxes=[[10, 10, 5, 20]])


def test_any_object_with_detect_is_a_detector(mean_face):
    class TwoFaces:
        def detect(self, image):
            return np.array([[0, 0, 50, 50, 0.9], [60, 0, 110, 50, 0.5]])

    result = KeypointDetector(mean_face, detector=TwoFaces())(np.zeros((60, 120, 3), np.uint8))
    assert len(result) == 2 and [f.box_score for f in result] == [0.9, 0.5]
    with pytest.raises(ValueError, match="unknown face detector 'har'.*haar"):
        KeypointDetector(mean_face, detector="har")


def test_bgr_pil_tensor_and_path_inputs_agree(wobbly):
    import torch
    from PIL import Image

    det = KeypointDetector(wobbly)
    rgb = _rgb(GRACE_HOPPER)
    reference = det(rgb).keypoints
    assert reference.shape == (1, 15, 2)
    for image, color in ((rgb[..., ::-1].copy(), "bgr"), (Image.fromarray(rgb), "rgb"),
                         (torch.from_numpy(rgb).permute(2, 0, 1), "rgb"), (GRACE_HOPPER, "rgb")):
        np.testing.assert_allclose(det(image, color=color).keypoints, reference, atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        det(rgb.astype(np.float32))
    with pytest.raises(DataFormatError, match="cannot decode"):
        det(Path(__file__))  # a file that is not an image


def test_predict_batch_batches_faces_and_matches_single_calls(wobbly, monkeypatch):
    det = KeypointDetector(wobbly)
    frame = demo_frame()
    images = [frame, np.zeros((80, 80, 3), np.uint8), GRACE_HOPPER]
    singles = [det(im) for im in images]
    calls = []
    real = det.runner
    monkeypatch.setattr(det, "runner", FakeRunner(real.card, lambda x: calls.append(len(x)) or real(x)))
    batch = det.predict_batch(images)
    assert [len(r) for r in batch] == [len(r) for r in singles] == [1, 0, 1]
    assert calls == [2, 2]  # one call for both faces, one for their refinement
    for a, b in zip(batch, singles):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)


def test_result_dict_json_and_drawing(mean_face, tmp_path):
    det = KeypointDetector(mean_face)
    rgb = _rgb(GRACE_HOPPER)
    result = det(rgb)
    doc = json.loads(result.to_json())
    assert set(doc) == {"source", "image_size", "schema", "faces", "timings"}
    assert doc["image_size"] == {"height": 600, "width": 512} and doc["schema"] == "kaggle15"
    face = doc["faces"][0]
    assert set(face) == {"box", "box_score", "keypoints"} and len(face["box"]) == 4
    assert list(face["keypoints"]) == list(det.schema.keypoints)
    assert set(face["keypoints"]["nose_tip"]) == {"x", "y"}  # no made-up score
    assert face["keypoints"]["nose_tip"]["x"] == pytest.approx(result[0]["nose_tip"][0], abs=0.01)
    drawn = result.draw(rgb)
    assert drawn.shape == rgb.shape and (drawn != rgb).any() and (rgb == _rgb(GRACE_HOPPER)).all()
    assert (drawn[rgb.shape[0] // 2, :] == rgb[rgb.shape[0] // 2, :]).any()  # drawn on, not replaced
    written = result.save(tmp_path / "out.png", image=rgb)
    assert cv2.imread(str(written)).shape == rgb.shape
    with pytest.raises(ValueError, match="needs image="):
        result.save(tmp_path / "again.png")  # an array has no file to re-read
    from_file = det(GRACE_HOPPER).save(tmp_path / "from_file.jpg")  # re-reads its source
    assert cv2.imread(str(from_file)).shape == rgb.shape
    assert json.loads(result.save(tmp_path / "out.json").read_text()) == doc


def test_large_faces_are_area_averaged_not_aliased():
    """A 4x downscale through warp_crops matches cv2.resize(INTER_AREA) of the same region."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (384, 384), dtype=np.uint8)
    frame = np.array([[0.25, 0, 0.25 * 0.5 - 0.5], [0, 0.25, 0.25 * 0.5 - 0.5]])  # whole image -> 96x96
    crop = framing.warp_crops(image, frame[None], 96)[0]
    area = cv2.resize(image, (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - area).mean() < 2
    assert crop.std() < image.std() / 2  # averaged: noise shrinks, as it should


def test_default_model_finds_grace_hoppers_eyes():
    result = KeypointDetector()(GRACE_HOPPER)
    assert len(result) == 1
    left, right = result[0]["left_eye_center"], result[0]["right_eye_center"]
    # pupils read off a gridded enlargement of the photo: (305, 186) and (222, 190); 83 px apart
    assert np.linalg.norm(left - [305, 186]) < 12 and np.linalg.norm(right - [222, 190]) < 12
    assert np.linalg.norm(result[0]["nose_tip"] - [265, 243]) < 15


def test_inference_code_never_imports_training_code():
    """STYLE.md section 3: infer/ needs only torch or onnxruntime, numpy and OpenCV (lazy imports included)."""
    import ast

    package = Path(__file__).resolve().parents[1] / "src" / "facekeypoints"
    files = sorted((package / "infer").glob("*.py")) + [package / "demo.py"]
    assert len(files) > 5
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("facekeypoints.train") for n in names), f"{file.name} imports {names}"


def _whole_photo_checkpoint(path: Path) -> Path:
    """A model trained on whole photos resized to 96x96 (data.frame: resize) that always answers the template."""
    import torch

    from facekeypoints.models import create_model
    from facekeypoints.models.checkpoint import card_for, save_checkpoint
    from facekeypoints.models.codecs import encode

    model = create_model("fcnn", schema="kaggle15")
    with torch.no_grad():
        model.head[-1].weight.zero_()
        answer = encode(framing.template(96), (96, 96)).reshape(-1).astype(np.float32)
        model.head[-1].bias.copy_(torch.from_numpy(answer))
    save_checkpoint(path, model, card_for(model, framing="resize"))
    return path


def test_a_whole_photo_model_sees_the_whole_photo(tmp_path):
    from facekeypoints.infer.onnx import export_onnx

    checkpoint = _whole_photo_checkpoint(tmp_path / "whole.pt")
    for det in (KeypointDetector(checkpoint), KeypointDetector(export_onnx(checkpoint, tmp_path / "whole.onnx"))):
        assert det.framing == "resize" and det.detector is None and not det.refine
        result = det(np.zeros((100, 200, 3), np.uint8))  # no face for Haar: the model still answers
        assert len(result) == 1 and result[0].box.tolist() == [0, 0, 200, 100]
        expected = (framing.template(96) + 0.5) * [200 / 96, 100 / 96] - 0.5
        np.testing.assert_allclose(result[0].keypoints, expected, atol=1e-3)


def test_shipped_68_point_model_by_name_finds_grace_hoppers_eyes_nose_and_chin():
    det = KeypointDetector("ibug68")
    assert det.schema.name == "ibug68"
    result = det(GRACE_HOPPER)
    assert len(result) == 1
    points = result[0].keypoints
    assert points.shape == (68, 2)
    # iBUG 0-based: 36-41 the subject's right eye (image left), 42-47 the left eye, 30 nose tip, 8 chin
    assert np.linalg.norm(points[36:42].mean(0) - [222, 190]) < 12
    assert np.linalg.norm(points[42:48].mean(0) - [305, 186]) < 12
    assert np.linalg.norm(points[30] - [265, 243]) < 15
    assert points[8, 1] > points[57, 1] > points[30, 1]  # chin below the bottom lip below the nose


def test_an_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="no-such-model: no such model file .*kaggle15, ibug68"):
        KeypointDetector("no-such-model")
