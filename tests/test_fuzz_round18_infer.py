"""Round 18 of bad inputs for the prediction API and ``predict``: a user's folder holding a file named
predictions.jsonl was left out whole; a retried batch's warnings lost their file; ``save(in_place=True)``
swapped the caller's colours; bad ``box_frame``, ``device``, ``indent``, detector classes and detector
inputs got bare errors; Result equality raised; a URL was mangled; ``boxes=`` was ignored silently by
a whole-photo model; an offline ``pretrained=True`` gave a raw URLError (synthetic files only)."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.infer.files import predict_paths
from facekeypoints.infer.predictor import KeypointDetector
from fakes import grace_hopper_copy, still_clip


def _sources(path: Path) -> list[str]:
    return sorted(Path(json.loads(line)["source"]).name for line in path.read_text().splitlines())


# N1: only what another run wrote is left out, never a folder for holding a file named predictions.jsonl

def test_a_folder_a_file_run_wrote_into_is_still_an_input(det, tmp_path):
    ds = tmp_path / "ds2"
    grace_hopper_copy(ds / "sub" / "face.jpg")
    grace_hopper_copy(ds / "top.jpg")
    predict_paths(det, [ds / "sub"], ds / "sub" / "predictions.jsonl", progress=False)  # -o FILE inside it
    report = predict_paths(det, [ds], tmp_path / "out3", progress=False)
    assert report.images == 2 and not report.failures and not report.left_out
    assert _sources(tmp_path / "out3" / "predictions.jsonl") == ["face.jpg", "top.jpg"]


# (an empty one is a running run's claim: test_a_running_or_killed_runs_folder_is_left_out_while_...)
@pytest.mark.parametrize("text", [b"my own notes\n", b'{"a": 1}\n', b"\xff\xfe" * 10])
def test_a_users_own_predictions_jsonl_leaves_out_nothing(det, tmp_path, text):
    ds = tmp_path / "ds"
    grace_hopper_copy(ds / "sub" / "face.jpg")
    (ds / "sub" / "predictions.jsonl").write_bytes(text)
    report = predict_paths(det, [ds], tmp_path / "out", progress=False)
    assert report.images == 1 and not report.left_out and not report.failures
    assert str(ds / "sub" / "predictions.jsonl") in report.ignored


def test_another_runs_drawings_are_left_out_and_the_users_photos_beside_them_predicted(det, tmp_path):
    ds = tmp_path / "ds"
    grace_hopper_copy(ds / "face.jpg")
    still_clip(ds / "clip.avi")
    predict_paths(det, [ds / "face.jpg", ds / "clip.avi"], ds / "k1", progress=False)
    grace_hopper_copy(ds / "k1" / "mine.jpg")  # the user's own photo, put there later
    report = predict_paths(det, [ds], tmp_path / "out", progress=False)
    assert (report.images, report.frames, report.failures, report.ignored) == (2, 3, [], [])
    assert _sources(tmp_path / "out" / "predictions.jsonl") == ["face.jpg", "mine.jpg"]
    said = str(report)
    assert "k1: 4 files another facekeypoints run wrote" in said
    assert "clip_keypoints.mp4" in said and "face.jpg" in said and "mine.jpg" not in said


def test_a_drawing_named_outside_its_folder_is_not_left_out(det, tmp_path):
    ds = tmp_path / "ds"
    grace_hopper_copy(ds / "face.jpg")
    record = {"source": "x.jpg", "image_size": {"height": 1, "width": 1}, "schema": "kaggle15", "faces": [],
              "drawing": "../face.jpg"}
    (ds / "k" / "predictions.jsonl").parent.mkdir()
    (ds / "k" / "predictions.jsonl").write_text(json.dumps(record) + "\n")
    report = predict_paths(det, [ds], tmp_path / "out", progress=False)
    assert report.images == 1 and not report.left_out


def test_a_huge_predictions_jsonl_of_ours_leaves_its_folder_out_saying_why(det, tmp_path, monkeypatch):
    import facekeypoints.infer.files as files
    ds = tmp_path / "ds"
    grace_hopper_copy(ds / "face.jpg")
    predict_paths(det, [ds / "face.jpg"], ds / "k1", progress=False)
    monkeypatch.setattr(files, "RECORDS_READ_BYTES", 10)
    report = predict_paths(det, [ds], tmp_path / "out", progress=False)
    assert report.images == 1
    assert [item for item in report.left_out if "k1" in item] == [
        f"{ds / 'k1'} (2 files: the output folder of another facekeypoints run; its predictions.jsonl is over 0 MB, "
        "too long to read for the drawings it names; give a photo there as an input of its own to predict it)"]


def test_a_pipe_named_predictions_jsonl_is_not_opened(det, tmp_path):
    ds = tmp_path / "ds"
    grace_hopper_copy(ds / "face.jpg")
    os.mkfifo(ds / "predictions.jsonl")
    report = predict_paths(det, [ds], tmp_path / "out", progress=False)  # would wait for a writer for ever
    assert report.images == 1 and [p for p, _ in report.failures] == [str(ds / "predictions.jsonl")]


# N6: the warnings of a failed batch's one-image-at-a-time retry each name their photo

class _WarnsAndFailsOnTall:
    """A detector whose predict_batch warns once per call and raises on a batch with a tall photo."""

    def __init__(self, det):
        self.det = det

    def predict_batch(self, pixels):
        warnings.warn("something about this image")
        if any(p.shape[0] > p.shape[1] for p in pixels):
            raise RuntimeError("NaN box")
        return self.det.predict_batch(pixels)


def test_warnings_of_a_retried_batch_name_each_photo(det, tmp_path):
    folder = tmp_path / "rt"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), np.full((40, 60, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "tall.png"), np.full((60, 40, 3), 90, np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = predict_paths(_WarnsAndFailsOnTall(det), [folder], tmp_path / "out", progress=False)
    said = sorted(str(w.message) for w in caught if "something about" in str(w.message))
    assert said == [f"{folder / n}: something about this image" for n in ("a.png", "b.png", "tall.png")]
    assert report.images == 2 and [p for p, _ in report.failures] == [str(folder / "tall.png")]


# A1: save(in_place=True) draws on the caller's array in its own colour order, RGB or BGR

def _one_face_result(color: str):
    from facekeypoints.infer.results import Face, Result
    from facekeypoints.schema import load_schema
    schema = load_schema("nose1")
    face = Face(box=np.array([10., 10., 50., 50.]), box_score=1.0, keypoints=np.array([[30., 32.]]), scores=None,
                schema=schema)
    return Result(image_size=(64, 80), faces=[face], schema=schema, color=color)


@pytest.mark.parametrize("color", ["rgb", "bgr"])
def test_save_in_place_draws_on_the_callers_image_in_its_own_order(tmp_path, color):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    result = _one_face_result(color)
    expected = result.draw(image)  # the same marks, drawn on a copy, in the result's colour order
    mine = image.copy()
    result.save(tmp_path / "o.png", image=mine, in_place=True)
    assert np.array_equal(mine, expected)
    saved = cv2.imread(str(tmp_path / "o.png"))  # BGR on disk
    assert np.array_equal(saved, expected if color == "bgr" else expected[..., ::-1])


# A2: a bool in box_frame is refused, not dropped with the other values shifted

@pytest.mark.parametrize("frame", [(0.1, False, 0.2, 1.0), (0, 0, True, 1.0), (0.0, True, 1.0), (0.1, 0.1)])
def test_box_frame_with_a_bool_or_the_wrong_length_is_refused(frame):
    from facekeypoints.infer.predictor import _box_frame
    with pytest.raises(ValueError, match="box_frame must be"):
        _box_frame(frame, None)


# A5: == on results and faces is identity, never numpy's "truth value is ambiguous"

def test_result_and_face_equality_is_identity():
    a, b = _one_face_result("rgb"), _one_face_result("rgb")
    assert a == a and a != b and a[0] == a[0] and a[0] != b[0]
    assert a[0] in a and b[0] not in a and [b, a].index(a) == 1
    assert len({a, b, a[0]}) == 3  # hashable
    assert a.to_dict() == b.to_dict()


# A13: to_json takes None or a whole number of spaces; "2" made invalid JSON

@pytest.mark.parametrize("indent", ["2", 2.5, True, -1])
def test_to_json_refuses_an_indent_that_is_no_count(indent):
    with pytest.raises(TypeError, match="indent must be None or a whole number"):
        _one_face_result("rgb").to_json(indent=indent)


def test_to_json_with_a_numpy_int_indent_is_json():
    assert json.loads(_one_face_result("rgb").to_json(indent=np.int64(2)))["schema"] == "nose1"


# A9: a device that is no string says what to pass

@pytest.mark.parametrize("device", [0, None, 1.0])
def test_a_device_that_is_no_string_names_device_and_its_forms(device):
    from facekeypoints.models.device import resolve_device
    with pytest.raises(TypeError, match=r"device must be a string, one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device(device)
    with pytest.raises(TypeError, match="device must be a string"):
        KeypointDetector(device=device)


# A7: a detector class is refused at once, saying to pass an instance

def test_a_detector_class_is_refused_saying_to_pass_an_instance(model):
    from facekeypoints.infer.detectors import DETECTORS, HaarDetector
    for given in (DETECTORS["haar"], HaarDetector):
        with pytest.raises(TypeError, match=r"detector HaarDetector is a class; pass an instance, HaarDetector\(\)"):
            KeypointDetector(model, backend="torch", detector=given)


# A8: the detectors' detect() checks its input once for all, saying what to pass

@pytest.mark.parametrize("image, error, words", [
    (np.zeros((40, 40, 3), np.float32), ValueError, "takes a uint8 image"),
    (np.zeros((3, 40, 40), np.uint8), ValueError, r"channels first\?"),
    (np.zeros((0, 40, 3), np.uint8), ValueError, "non-empty image"),
    (np.zeros((40, 40, 4), np.uint8), ValueError, r"\(H, W\) or \(H, W, 3\)"),
    ("face.jpg", TypeError, "read_image"),
    ([[0, 1], [2, 3]], TypeError, "a uint8 numpy array"),
])
def test_haar_and_cnn_detect_refuse_what_they_cannot_search(image, error, words):
    from facekeypoints.infer.detectors import CnnDetector, HaarDetector
    for detector in (HaarDetector(), CnnDetector()):
        with pytest.raises(error, match=words) as caught:
            detector.detect(image)
        assert f"{type(detector).__name__}.detect(image)" in str(caught.value)


def test_cnn_detect_on_a_float_image_in_0_to_1_is_an_error_not_zero_faces():
    from facekeypoints.infer.detectors import CnnDetector
    with pytest.raises(ValueError, match=r"\(image \* 255\)\.round\(\)\.astype\(np\.uint8\)"):
        CnnDetector().detect(np.full((64, 64, 3), 0.5, np.float32))


# A10: pretrained=True offline says how to give a local weights file, not a raw URLError

def test_pretrained_download_failing_names_the_local_file_option(monkeypatch):
    import urllib.error

    import torchvision

    from facekeypoints.models.registry import create_model

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(ValueError, match=r"pretrained=True downloads ImageNet weights.*Name or service not known"
                                         r".*pretrained='weights.pth'"):
        create_model("resnet50_tl", pretrained=True)
    with pytest.raises(FileNotFoundError, match="no such pretrained weights file"):  # a path's own error is kept
        create_model("resnet50_tl", pretrained="/nonexistent/w.pth")


# A14: a URL is refused as typed, as stream() refuses one, not "no such image file" with // made /

def test_a_url_is_refused_saying_urls_are_not_read(det):
    for call in (lambda: det("http://example.com/a.jpg"), lambda: det.predict_batch(["https://x.org/b.png"])):
        with pytest.raises(ValueError, match=r"https?://[a-z.]+/[ab]\.(jpg|png): URLs are not read"):
            call()


# A15: a whole-photo model says boxes= is not used, as it says for detector=

def test_a_whole_photo_model_says_boxes_are_not_used(tmp_path):
    from test_fuzz_round15_infer import _constant_checkpoint

    from facekeypoints.data import framing
    det = KeypointDetector(_constant_checkpoint(tmp_path / "whole.pt", framing.template(96), frame="resize"),
                           backend="torch")
    image = np.zeros((120, 100, 3), np.uint8)
    with pytest.warns(UserWarning, match=r"whole.pt: a kaggle15 model trained on whole photos .*; boxes= is not used"):
        result = det(image, boxes=[[0, 0, 50, 50]])
    assert result.boxes[0, :4].tolist() == [0, 0, 100, 120]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.predict_batch([image, image], boxes=[None, None])  # no box given: nothing to say


# A16: predict_batch reads every image before searching any, and says which item was bad

def test_predict_batch_refuses_a_bad_item_before_searching_any(model):
    class Counting:
        calls = 0

        def detect(self, image):
            Counting.calls += 1
            return np.zeros((0, 5))

    det = KeypointDetector(model, backend="torch", detector=Counting())
    with pytest.raises(FileNotFoundError, match=r"item 1 of 3: .*nonexist\.jpg"):
        det.predict_batch([np.zeros((40, 40, 3), np.uint8), "nonexist.jpg", np.zeros((40, 40, 3), np.uint8)])
    assert Counting.calls == 0
    assert "All or nothing" in KeypointDetector.predict_batch.__doc__


# ---- review of round 18: a run's claim, put-aside outputs, the input "." -------------------------------
def test_a_running_or_killed_runs_folder_is_left_out_while_its_predictions_jsonl_is_empty(tmp_path):
    from facekeypoints.infer.files import PredictReport, _without_other_runs_outputs

    (tmp_path / "out").mkdir()  # its drawings come batch by batch; its records only at its end
    files = [tmp_path / "out" / "predictions.jsonl", tmp_path / "out" / "p1.jpg", tmp_path / "mine.jpg"]
    for f in files:
        f.write_bytes(b"" if f.suffix == ".jsonl" else b"x")
    report = PredictReport()
    assert _without_other_runs_outputs(files, report) == [tmp_path / "mine.jpg"]
    assert "predictions.jsonl is empty: the claim of a run still going" in report.left_out[0]


def test_outputs_a_clashing_run_put_aside_are_left_out_too(tmp_path):
    from facekeypoints.infer.files import PredictReport, _without_other_runs_outputs

    names = ["x.jsonl", "x_keypoints.mp4", "x-2.jsonl", "x_keypoints-2.mp4", "y.mp4", "y-2.jsonl"]
    files = [tmp_path / n for n in names]
    kept = _without_other_runs_outputs(files, PredictReport())
    assert [f.name for f in kept] == ["y.mp4", "y-2.jsonl"]  # a user's video and a file that is no drawn pair


def test_the_input_folder_dot_leaves_out_what_its_subfolders_runs_wrote(tmp_path, monkeypatch):
    from facekeypoints.infer import files as files_module
    from facekeypoints.infer.files import PredictReport, _without_other_runs_outputs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files_module, "RECORDS_READ_BYTES", 100)  # ours, too long to read: its folder left out
    (tmp_path / "sub").mkdir()
    record = {"source": "a.jpg", "image_size": [1, 1], "schema": "kaggle15", "faces": [], "drawing": "a.jpg"}
    (tmp_path / "sub" / "predictions.jsonl").write_text((json.dumps(record) + "\n") * 20)
    (tmp_path / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    report = PredictReport()
    kept = _without_other_runs_outputs([Path("sub/predictions.jsonl"), Path("sub/a.jpg"), Path("b.jpg")], report)
    assert kept == [Path("b.jpg")] and "(2 files:" in report.left_out[0]
