"""ONNX export and the ONNX Runtime backend agree with torch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from matplotlib import cbook

from facekeypoints.models.card import CARD_VERSION
from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.infer.bench import random_checkpoint
from facekeypoints.infer.onnx import CARD_KEY, OnnxRunner, export_onnx
from facekeypoints.models.checkpoint import load_checkpoint

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint("keypoint_net", tmp_path_factory.mktemp("onnx") / "net.pt")


@pytest.fixture(scope="module")
def exported(checkpoint) -> Path:
    return export_onnx(checkpoint, checkpoint.with_suffix(".onnx"))


def test_export_carries_the_model_card_and_a_dynamic_batch(checkpoint, exported):
    graph = onnx.load(str(exported))
    card = json.loads({p.key: p.value for p in graph.metadata_props}[CARD_KEY])
    assert card["schema"]["name"] == "kaggle15" and card["preprocess"]["size"] == 96
    assert card["model"] == "keypoint_net" and card["framing"] == "kaggle" and card["version"] == CARD_VERSION
    assert OnnxRunner(exported).card == load_checkpoint(checkpoint).card
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"
    runner = OnnxRunner(exported, threads=1)
    for n in (1, 5):
        assert runner(np.zeros((n, 1, 96, 96), np.float32)).shape == (n, 15, 2)


def test_onnx_keypoints_equal_torch_within_a_thousandth_pixel(checkpoint, exported):
    torch_det = KeypointDetector(checkpoint, backend="torch")
    for onnx_det in (KeypointDetector(exported), KeypointDetector(checkpoint, backend="onnx")):
        assert onnx_det.runner.backend == "onnx"
        for image in (GRACE_HOPPER,):
            a, b = torch_det(image), onnx_det(image)
            assert len(a) == len(b) == 1
            assert np.abs(a.keypoints - b.keypoints).max() < 1e-3
    x = np.random.default_rng(0).random((8, 1, 96, 96), dtype=np.float32)
    assert np.abs(torch_det.runner(x) - onnx_det.runner(x)).max() < 1e-4  # normalised units


def test_an_export_from_before_the_model_card_still_loads(tmp_path, exported):
    """Version-1 exports held schema, preprocess and model as three metadata entries."""
    graph = onnx.load(str(exported))
    card = json.loads({p.key: p.value for p in graph.metadata_props}[CARD_KEY])
    del graph.metadata_props[:]
    v1 = {"facekeypoints.schema": card["schema"], "facekeypoints.preprocess": {"size": 96},
          "facekeypoints.model": {"name": "keypoint_net", "input_size": 96, "in_channels": 1, "framing": "resize"}}
    for key, value in v1.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(graph, str(tmp_path / "v1.onnx"))
    old = OnnxRunner(tmp_path / "v1.onnx")
    assert (old.card.model, old.card.schema.name, old.card.framing, old.card.input_size) == \
        ("keypoint_net", "kaggle15", "resize", 96)
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="bare.onnx: not exported by facekeypoints"):
        OnnxRunner(tmp_path / "bare.onnx")


def test_bad_onnx_files_get_clear_errors(tmp_path, checkpoint):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx: ONNX Runtime cannot load"):
        OnnxRunner(junk)
    with pytest.raises(ValueError, match="backend='onnx'"):
        KeypointDetector(checkpoint.with_suffix(".onnx"), backend="torch")


def test_cli_export(tmp_path, checkpoint, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(checkpoint), "-o", str(out), "--opset", "17"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert onnx.load(str(out)).opset_import[0].version == 17


def test_a_checkpoint_runs_on_onnx_runtime_by_default_on_the_cpu(checkpoint):
    assert KeypointDetector(checkpoint).runner.backend == "onnx"
    assert KeypointDetector(checkpoint, backend="torch").runner.backend == "torch"


def test_default_backend_falls_back_to_torch_with_a_warning_when_export_fails(checkpoint, monkeypatch):
    import facekeypoints.infer.predictor as predictor_module

    def broken_export(path, opset=17):
        raise RuntimeError("cannot trace this model")

    monkeypatch.setattr(predictor_module, "cached_export", broken_export)
    with pytest.warns(RuntimeWarning, match="net.pt: ONNX export failed .*cannot trace"):
        assert KeypointDetector(checkpoint).runner.backend == "torch"
    with pytest.raises(RuntimeError, match="cannot trace"):  # asked for explicitly: no fallback
        KeypointDetector(checkpoint, backend="onnx")


def test_exported_heatmap_net_has_no_shape_arithmetic(exported):
    """Constant feature sizes keep Shape/Gather chains (slow at batch 1) out of the graph."""
    ops = {node.op_type for node in onnx.load(str(exported)).graph.node}
    assert not ops & {"Shape", "Gather", "Range", "ConstantOfShape"}, ops
    assert "MatMul" in ops and "Softmax" in ops


def test_a_single_face_runs_on_a_one_thread_session_with_the_same_result(exported):
    runner = OnnxRunner(exported, threads=2)
    x = np.random.default_rng(1).random((3, 1, 96, 96), dtype=np.float32)
    batched = runner(x)
    alone = np.concatenate([runner(x[i:i + 1]) for i in range(3)])
    assert runner._single is not None and runner._single is not runner.session
    assert np.abs(batched - alone).max() < 1e-5
    assert OnnxRunner(exported, threads=1)._single is not None  # one thread already: one session


@pytest.mark.parametrize("command", [["export", "-o", "{tmp}/never.onnx"], ["evaluate", "--split", "val"]])
def test_a_missing_model_is_named_with_the_shipped_alternatives(command, tmp_path, capsys):
    command = [part.format(tmp=tmp_path) for part in command]
    assert main([*command, "--model", str(tmp_path / "gone.pt")]) == 2
    err = capsys.readouterr().err
    assert "gone.pt: no such model file" in err and "kaggle15, ibug68" in err
    assert not (tmp_path / "never.onnx").exists()
