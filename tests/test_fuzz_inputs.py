"""Fuzzing the other doors: training configs, images handed to the predictor, and CLI options.

Each case ends in a result or in the error type that names what is wrong; never another exception.
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.infer.results import Result
from facekeypoints.train.config import Config, ConfigError, load_config
from fakes import mean_face_checkpoint

KEYS = ["train.epochs", "train.lr", "train.batch_size", "train.loss", "train.loss_params", "train.device", "train.amp",
        "model.name", "model.options", "preprocess.size", "preprocess.scale", "preprocess.clahe",
        "augment.scale", "augment.flip_prob", "data.split", "data.missing", "train.nosuch", "augmnt.shift", "out_dir"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=12), st.lists(st.integers(-5, 5), max_size=4),
                   st.dictionaries(st.text(max_size=8), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_any_config_override_loads_or_names_the_key(overrides):
    args = [f"{key}={_yaml(value)}" for key, value in overrides]
    try:
        assert isinstance(load_config(None, args), Config)
    except ConfigError as err:
        assert any(key.split(".")[0] in str(err) or key.split(".")[-1] in str(err) for key, _ in overrides), str(err)


def _yaml(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("m") / "mean.pt"), detector=None)


ARRAYS = st.builds(
    lambda dtype, shape, fill: np.full(shape, fill).astype(dtype),
    st.sampled_from([np.uint8, np.float32, np.float64, np.int16, np.bool_]),
    st.lists(st.integers(0, 70), min_size=0, max_size=4).map(tuple),
    st.integers(0, 255))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=st.one_of(ARRAYS, st.none(), st.integers(), st.binary(max_size=20), st.text(max_size=10)),
       boxes=st.one_of(st.none(), st.lists(st.lists(st.floats(-1e9, 1e9), min_size=0, max_size=6), max_size=3)),
       color=st.sampled_from(["rgb", "bgr", "hsv"]))
def test_any_image_and_boxes_give_a_result_or_a_clear_error(detector, image, boxes, color):
    try:
        result = detector(image, boxes=boxes if boxes is not None else [[0, 0, 10, 10]], color=color)
    except (ValueError, TypeError, FileNotFoundError) as err:
        assert str(err)  # a message, not an empty exception
    else:
        assert isinstance(result, Result) and np.isfinite(result.keypoints).all()


@pytest.mark.parametrize("argv", [
    ["predict"], ["predict", "{tmp}/none.jpg", "--batch-size", "0"], ["predict", "{tmp}/x.jpg", "--threads", "-3"],
    ["predict", "{tmp}/x.jpg", "--detector", "nosuch"], ["predict", "{tmp}/x.jpg", "--backend", "tpu"],
    ["evaluate", "--split", "test"], ["evaluate", "{tmp}/x.jpg"], ["export", "-o", "{tmp}"],
    ["export", "--opset", "-1", "-o", "{tmp}/m.onnx"], ["models", "--size", "0"], ["train", "--config", "{tmp}/x.jpg"],
    ["train", "--set", "nonsense"], ["train", "--set", "train.epochs"], ["grid", "{tmp}/empty"],
    ["data", "info", "{tmp}/x.jpg"], ["data", "convert", "{tmp}/x.jpg", "-o", "{tmp}/o.csv"], ["bench", "--repeats", "0"],
    ["submit", "{tmp}/x.jpg", "--lookup", "{tmp}/x.jpg", "-o", "{tmp}/s.csv"],
])
def test_bad_cli_options_end_in_a_message(argv, tmp_path, capsys):
    (tmp_path / "x.jpg").write_bytes(b"not a picture")
    (tmp_path / "empty").mkdir()
    argv = [part.format(tmp=tmp_path) for part in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse: usage and a message
        code = stop.code
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and err.strip(), (argv, err)
    assert "--debug" not in err, f"an unexpected exception escaped for {argv}: {err}"
