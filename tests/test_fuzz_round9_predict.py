"""Round 9 of bad inputs for the prediction API: each case once gave wrong results silently or failed
far from its cause; each now gives the right answer or an error naming what is wrong (the auditor's
scripts used shared-data photos; these use matplotlib's Grace Hopper and generated frames)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook

import facekeypoints.infer.predictor as predictor_module
from facekeypoints.cli import build_parser
from facekeypoints.infer.bench import demo_frame
from facekeypoints.infer.detectors import shipped_detector
from facekeypoints.infer.onnx import open_session
from facekeypoints.infer.predictor import MIN_BOX_SIDE, KeypointDetector
from facekeypoints.models.threads import max_threads
from fakes import grace_hopper_copy

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600, one face haar finds


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Four RGB photos with faces, each of its own size or content."""
    rgb = cv2.cvtColor(cv2.imread(str(GRACE_HOPPER)), cv2.COLOR_BGR2RGB)
    frame = cv2.cvtColor(demo_frame(), cv2.COLOR_BGR2RGB)
    return [rgb, np.ascontiguousarray(rgb[:, ::-1]), np.ascontiguousarray(rgb[50:450, 50:450]), frame]


# 1. one detector shared by threads: its Haar cascade gave other images' faces and OpenCV assertions

def test_one_detector_shared_by_threads_gives_the_sequential_results(det, photos):
    alone = [det(im) for im in photos]
    assert all(len(r) for r in alone)  # each photo has a face to get wrong
    with ThreadPoolExecutor(4) as pool:
        shared = list(pool.map(lambda i: det(photos[i % len(photos)]), range(24)))
    for i, result in enumerate(shared):
        want = alone[i % len(photos)]
        np.testing.assert_allclose(result.boxes, want.boxes, err_msg=f"call {i}")
        np.testing.assert_allclose(result.keypoints, want.keypoints, atol=1e-4, err_msg=f"call {i}")


# 2. a face box of a pixel or less framed a blur of one pixel: the mean face squeezed into it

@pytest.mark.parametrize("side", [1e-9, 0.01, 1, MIN_BOX_SIDE - 0.1])
def test_a_box_under_the_smallest_face_is_refused_naming_its_row_and_size(det, photos, side):
    boxes = [[100, 100, 300, 300], [10, 10, 10 + side, 10 + side]]
    with pytest.raises(ValueError, match=rf"row 1 .* is {side:.3g} x {side:.3g} px; a face box must be at least "
                                         rf"{MIN_BOX_SIDE} px"):
        det(photos[0], boxes=boxes)


def test_a_box_of_the_smallest_size_and_detector_boxes_are_accepted(det, photos):
    assert len(det(photos[0], boxes=[[10, 10, 10 + MIN_BOX_SIDE, 10 + MIN_BOX_SIDE]])) == 1
    tiny = type("Tiny", (), {"detect": lambda self, image: np.array([[10, 10, 12, 12, 1.0]])})()
    found = KeypointDetector(det.runner.source, backend="torch", detector=tiny)(photos[0])  # a detector's own
    assert len(found) == 1 and found.boxes[0, :4].tolist() == [10, 10, 12, 12]


# 3. --threads / threads= had no upper bound: 100000 took 16 GB and could not be stopped, 3000000000 overflowed
# after a warning that the ONNX export had failed

@pytest.mark.parametrize("command", [["predict", "photo.jpg"], ["bench"]])  # train-detector: its check_run
def test_threads_option_over_the_cap_is_refused_naming_the_maximum(command, capsys):
    with pytest.raises(SystemExit) as stop:  # parsed only: nothing runs with that many threads
        build_parser().parse_args([*command, "--threads", str(max_threads() + 1)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--threads" in err and f"1..{max_threads()}" in err, err
    assert build_parser().parse_args([*command, "--threads", str(max_threads())]).threads == max_threads()


@pytest.mark.parametrize("backend", [None, "torch", "onnx"])
def test_threads_argument_over_the_cap_is_refused_before_the_model_is_read(model, backend, recwarn):
    with pytest.raises(ValueError, match=f"threads must be at most {max_threads()} on this machine, got "
                                         f"{max_threads() + 1}"):
        KeypointDetector(model, backend=backend, threads=max_threads() + 1)
    assert not [w for w in recwarn if "export failed" in str(w.message)]


def test_onnx_sessions_refuse_threads_over_the_cap(recwarn):
    with pytest.raises(ValueError, match=rf"threads must be a whole number 1\.\.{max_threads()}"):
        open_session(shipped_detector(), max_threads() + 1)  # the keypoint runner's and the cnn detector's


def test_an_onnx_runner_error_is_not_taken_for_an_export_failure(model, tmp_path, monkeypatch, recwarn):
    def refuse(path, threads=None):
        raise ValueError("intra_op_num_threads: bad option")

    monkeypatch.setattr(predictor_module, "cached_export", lambda path, opset=17: tmp_path / "exported.onnx")
    monkeypatch.setattr(predictor_module, "OnnxRunner", refuse)
    with pytest.raises(ValueError, match="bad option"):  # was a warning and a quiet switch to torch
        KeypointDetector(model)
    assert not [w for w in recwarn if "export failed" in str(w.message)]


# 4. API edges: a dict's keys were read as image paths, a set lost the order; a capture without
# isOpened() passed the check and failed later on a missing attribute

def test_predict_batch_refuses_a_dict_or_a_set(det, photos, tmp_path):
    paths = {str(grace_hopper_copy(tmp_path / f"{i}.jpg")) for i in range(2)}
    with pytest.raises(TypeError, match=r"predict_batch\(\) images takes a list, got a dict \(its keys"):
        det.predict_batch({"a": photos[0]})
    with pytest.raises(TypeError, match=r"got a set \(it has no order"):
        det.predict_batch(paths)
    with pytest.raises(TypeError, match=r"boxes= takes a list, got a dict"):
        det.predict_batch([photos[0]], boxes={0: [[100, 100, 300, 300]]})
    assert len(det.predict_batch(sorted(paths))) == 2


def test_stream_refuses_a_capture_without_isopened_at_the_call(det):
    class ReadOnly:
        def read(self):
            return False, None

    with pytest.raises(TypeError, match=r"ReadOnly without isOpened\(\), get\(\)"):
        det.stream(ReadOnly())
