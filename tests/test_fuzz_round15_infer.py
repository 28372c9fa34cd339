"""Round 15 of the bad-input audit (issue 10): inference, bench, checkpoints and the benchmarks' arguments."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facekeypoints.data import framing
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for, save_checkpoint
from facekeypoints.models.codecs import encode


def _constant_checkpoint(path, points: np.ndarray, frame: str = "kaggle"):
    """A kaggle15 model that answers ``points`` (15, 2) crop pixels whatever it sees."""
    model = create_model("fcnn", schema="kaggle15")
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.from_numpy(encode(points, (96, 96)).reshape(-1).astype(np.float32)))
    save_checkpoint(path, model, card_for(model, framing=frame))
    return path


def test_refinement_does_not_follow_a_model_that_zooms_on_every_pass(tmp_path):
    # the template shrunk 6x about the crop's centre: a face-shaped answer (shape error 0) that asks each
    # pass for a frame 6 times narrower; eight passes put the keypoints on one point far from the face
    centre = (96 - 1) / 2.0
    tiny = (framing.template(96) - centre) / 6 + centre
    det = KeypointDetector(_constant_checkpoint(tmp_path / "zoom.pt", tiny), detector=None, backend="torch")
    image, box = np.zeros((300, 200, 3), np.uint8), [[40, 60, 160, 180]]
    once = KeypointDetector(tmp_path / "zoom.pt", detector=None, backend="torch", refine=False)(image, boxes=box)
    refined = det(image, boxes=box)
    np.testing.assert_allclose(refined[0].keypoints, once[0].keypoints, atol=1e-3)
    spread = np.ptp(refined[0].keypoints, axis=0)
    assert spread.min() > 5  # not collapsed onto a point


# --- whole-photo models (predict P4, P5) ---

def test_a_whole_photo_model_says_a_chosen_face_detector_is_not_used(tmp_path):
    path = _constant_checkpoint(tmp_path / "whole.pt", framing.template(96), frame="resize")
    with pytest.warns(UserWarning, match=r"whole.pt: a kaggle15 model trained on whole photos .* detector='cnn' is not used"):
        det = KeypointDetector(path, detector="cnn", backend="torch")
    assert det.detector is None
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default is no choice: nothing to say
        KeypointDetector(path, backend="torch")


def test_bench_times_a_whole_photo_model_without_face_detection(tmp_path, one_torch_thread):
    import json

    from facekeypoints.infer.bench import run_bench

    path = _constant_checkpoint(tmp_path / "whole.pt", framing.template(96), frame="resize")
    lines: list[str] = []
    report = run_bench(path, threads=1, batch=2, repeats=1, jitter_frames=0, json_out=tmp_path / "b.json",
                       echo=lines.append)
    assert set(report["backends"]) == {"torch", "onnx"}
    for figures in report["backends"].values():
        assert figures["frame_640x480"]["faces"] == 1 and figures["frame_640x480"]["detection_ms"] == 0
    assert any("no face detection" in line for line in lines)
    assert any("cnn detector: left out (this model frames whole photos" in line for line in lines)
    assert json.loads((tmp_path / "b.json").read_text())["backends"]["onnx"]["frame_640x480"]["faces"] == 1


# --- our own face-detector files given as a keypoint model (predict P6, P12) ---

def _detector_like_onnx(path):
    """An ONNX graph shaped like train-detector's export: outputs heat, size, offset, no model card."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("heat", "size", "offset")]
    nodes = [helper.make_node("Identity", ["image"], [n]) for n in ("heat", "size", "offset")]
    graph = helper.make_graph(nodes, "detector", [image], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_face_detector_onnx_given_as_the_model_is_named_so(tmp_path):
    from facekeypoints.infer.onnx import OnnxRunner

    path = _detector_like_onnx(tmp_path / "face_detector.onnx")
    with pytest.raises(ValueError, match="face_detector.onnx: a face detector .*train-detector.*not a keypoint model"):
        OnnxRunner(path)


def test_a_face_detector_training_state_given_as_the_model_is_named_so(tmp_path):
    from facekeypoints.models.checkpoint import CheckpointError, load_checkpoint

    path = tmp_path / "last.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "optimizer": {}, "step": 3, "minutes": 1.0, "faces": None,
                "distractors": 0}, path)
    with pytest.raises(CheckpointError, match="last.pt: a face detector's training state .*not a keypoint model"):
        load_checkpoint(path)


def test_the_cnn_detector_refuses_a_keypoint_model(tmp_path):
    from facekeypoints.infer.detectors import CnnDetector
    from facekeypoints.infer.onnx import export_onnx

    onnx = export_onnx(_constant_checkpoint(tmp_path / "m.pt", framing.template(96)), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="m.onnx: a facekeypoints keypoint model, not a face detector"):
        CnnDetector(onnx)


# --- the benchmarks' arguments (predict P8-P13): argparse's one line, before any data ---

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, words", [
    (["--jitter", "-0.5"], "--jitter: must be a fraction of the box in [0, 1), got -0.5"),
    (["--jitter", "nan"], "--jitter: must be a fraction"),
    (["--jitter", "5"], "--jitter: must be a fraction"),
    (["--limit", "-1"], "--limit must be >= 0 (0: all), got -1"),
    (["--model", "kaggle15"], "--model kaggle15: a model of schema kaggle15 (15 points); this benchmark scores ibug68"),
])
def test_bench_boxes_refuses_bad_arguments_in_one_line(args, words):
    done = _bench("bench_boxes.py", *args)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case", ["only", "json", "cnn"])
def test_bench_detect_refuses_bad_arguments_before_measuring(tmp_path, case):
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "bad.onnx").write_text("garbage")
    args, words = {
        "only": (["--only", "zzz"], "--only zzz matches no setting; settings: haar (default"),
        "json": (["--only", "haar (default", "--json", str(tmp_path / "folder.json")], "is a folder; give a file name"),
        "cnn": (["--only", "cnn", "--cnn", str(tmp_path / "bad.onnx")], "bad.onnx: ONNX Runtime cannot load this file"),
    }[case]
    done = _bench("bench_detect.py", *args)
    assert done.returncode == 2 and words in done.stderr and "load average" not in done.stdout
    assert "Traceback" not in done.stderr


# --- a run still going and another run's --overwrite (predict P18) ---

def _take_over(path):
    """What a run given --overwrite does when it ends: its own file renamed over ``path``."""
    other = path.with_name("other.tmp")
    other.write_text('{"source": "theirs"}\n')
    other.replace(path)


def test_a_run_without_results_leaves_the_file_another_run_wrote(tmp_path):
    from facekeypoints.infer.outputs import open_sink

    sink = open_sink(tmp_path / "out/")
    _take_over(tmp_path / "out" / "predictions.jsonl")
    assert sink.close(keep=False) is None
    assert (tmp_path / "out" / "predictions.jsonl").read_text() == '{"source": "theirs"}\n'


def test_a_run_with_results_puts_them_beside_the_file_another_run_wrote(tmp_path):
    from facekeypoints.infer.outputs import open_sink
    from facekeypoints.infer.results import Result
    from facekeypoints.schema import load_schema

    sink = open_sink(tmp_path / "out/")
    sink.write(Result(image_size=(10, 10), faces=[], schema=load_schema("kaggle15"), source="ours.jpg"))
    _take_over(tmp_path / "out" / "predictions.jsonl")
    with pytest.warns(RuntimeWarning, match="another run .* wrote this file .* this run's results are in .*predictions-2"):
        written = sink.close()
    assert written == tmp_path / "out" / "predictions-2.jsonl" and '"ours.jpg"' in written.read_text()
    assert (tmp_path / "out" / "predictions.jsonl").read_text() == '{"source": "theirs"}\n'
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["predictions-2.jsonl", "predictions.jsonl"]
