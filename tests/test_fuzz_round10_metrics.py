"""Fuzz round 10: bad input to the metrics and the keypoint schema.

- P1 a NaN prediction at a labelled point is not dropped (a better score); only a NaN label is "unlabelled"
- P2 KeypointSchema.flip checks the shape, returns floats for integers and checks width
- P3 nme / normalised_errors / summarize check K against the schema and take a schema name
- P4 schema name arguments of the wrong type are a TypeError naming the argument
- P5 KeypointSchema.convert checks shape and dtype before einsum
- P6 KeypointSchema.from_dict refuses fields that would break later
- P7 ced validates its array, max_threshold and steps
- P8 the metrics' shared helper checks pred and gt are numeric (N, K, 2) arrays
- P9 summarize's undefined values: NaN, turned into None by finite_json for JSON
"""
import json

import numpy as np
import pytest
import torch

from facekeypoints.evaluate.metrics import (ced, mae, mean_error, nme, normalised_errors, per_keypoint_rmse, rmse,
                                            summarize)
from facekeypoints.infer.results import finite_json
from facekeypoints.schema import KeypointSchema, SchemaError, load_schema

KAGGLE, IBUG = load_schema("kaggle15"), load_schema("ibug68")


def _face():
    gt = np.zeros((1, 15, 2))
    gt[0, :, 0] = np.arange(15)
    gt[0, 1] = [10, 0]  # eyes (0, 0) and (10, 0): inter-ocular distance 10
    return gt + 1.0, gt  # every point 1 px off


# P1 -------------------------------------------------------------------------------------------------

def test_a_nan_prediction_at_a_labelled_point_is_not_dropped():
    pred, gt = _face()
    pred[0, 3] = np.nan
    for fn in (nme, normalised_errors, summarize):
        with pytest.raises(ValueError, match=r"pred: 1 predicted points are NaN where the ground truth labels"):
            fn(pred, gt, KAGGLE)
    for fn in (per_keypoint_rmse, mean_error):
        with pytest.raises(ValueError, match="1 predicted points are NaN"):
            fn(pred, gt)
    # rmse and mae (what training validates a possibly diverged model with) give NaN, not a better score
    assert np.isnan(rmse(pred, gt)) and np.isnan(mae(pred, gt))


def test_a_nan_prediction_where_the_label_is_missing_still_does_not_count():
    pred, gt = _face()
    gt[0, 3], pred[0, 3] = np.nan, np.nan
    assert rmse(pred, gt) == pytest.approx(1.0) and nme(pred, gt, KAGGLE)[0] == pytest.approx(np.sqrt(2) / 10)
    assert np.isnan(per_keypoint_rmse(pred, gt)[3]) and summarize(pred, gt, KAGGLE)["per_keypoint_rmse"]["nose_tip"] is not None


def test_an_infinite_label_is_not_taken_for_a_missing_one():
    pred, gt = _face()
    gt[0, 2] = np.inf
    with pytest.raises(ValueError, match="gt: 1 points are infinite"):
        rmse(pred, gt)


# P2 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 68, 2), (15, 3), (2, 14, 2), (15,), ()])
def test_flip_refuses_keypoints_of_another_shape(shape):
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 15, 2\) for schema 'kaggle15'"):
        KAGGLE.flip(np.zeros(shape), 96)


def test_flip_gives_floats_for_integer_keypoints():
    kp = np.zeros((15, 2), np.uint8)
    kp[:, 0] = 200
    out = KAGGLE.flip(kp, 96)
    assert out.dtype == np.float64 and out[0, 0] == -105.0  # not 151: uint8 wrapping round
    assert KAGGLE.flip(np.zeros((15, 2), int), 96.5)[0, 0] == 95.5  # not truncated to 95
    t = KAGGLE.flip(torch.zeros(15, 2, dtype=torch.int64), 96.5)
    assert t.dtype == torch.get_default_dtype() and float(t[0, 0]) == 95.5
    np.testing.assert_array_equal(KAGGLE.flip(KAGGLE.flip(kp, 96), 96), kp)  # still its own inverse


@pytest.mark.parametrize("width, error", [(None, TypeError), ("96", TypeError), (True, TypeError),
                                          (float("nan"), ValueError), (float("inf"), ValueError),
                                          (0, ValueError), (-5, ValueError)])
def test_flip_refuses_a_bad_width(width, error):
    with pytest.raises(error, match="width"):
        KAGGLE.flip(np.zeros((15, 2)), width)


def test_flip_still_takes_float_tensors_and_numpy_widths():
    kp = torch.rand(2, 15, 2)
    out = KAGGLE.flip(kp, np.int64(96))
    assert out.dtype == torch.float32 and torch.allclose(KAGGLE.flip(out, 96), kp, atol=1e-4)


# P3 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [nme, normalised_errors, summarize])
def test_k_must_match_the_schema(fn):
    with pytest.raises(ValueError, match=r"expected shape \(N, 15, 2\) for schema 'kaggle15', got \(1, 68, 2\)"):
        fn(np.random.rand(1, 68, 2), np.random.rand(1, 68, 2), KAGGLE)
    with pytest.raises(ValueError, match=r"\(N, 68, 2\) for schema 'ibug68'"):
        fn(*_face(), IBUG)
    with pytest.raises(ValueError, match=r"expected shape \(N, K, 2\).*got \(15, 2\)"):  # one face, not an AxisError
        fn(_face()[0][0], _face()[1][0], KAGGLE)


@pytest.mark.parametrize("fn", [nme, normalised_errors])
def test_a_schema_name_is_accepted_like_a_schema(fn):
    np.testing.assert_array_equal(fn(*_face(), "kaggle15"), fn(*_face(), KAGGLE))


def test_summarize_takes_a_schema_name():
    assert summarize(*_face(), "kaggle15") == summarize(*_face(), KAGGLE)


# P4 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [None, 5, ["kaggle15"], b"kaggle15"])
def test_load_schema_refuses_a_non_name(name):
    with pytest.raises(TypeError, match=f"schema must be a name \\(str\\) or a KeypointSchema, got {type(name).__name__}"):
        load_schema(name)


@pytest.mark.parametrize("name", [None, 0])
def test_index_refuses_a_non_name(name):
    with pytest.raises(TypeError, match=f"keypoint name must be a str, got {type(name).__name__}"):
        KAGGLE.index(name)


def test_convert_takes_a_schema_object_and_refuses_other_types():
    kp = np.random.rand(2, 68, 2)
    np.testing.assert_array_equal(IBUG.convert(kp, KAGGLE), IBUG.convert(kp, "kaggle15"))
    with pytest.raises(TypeError, match="schema must be a name"):
        IBUG.convert(kp, None)
    with pytest.raises(TypeError, match="got list"):
        IBUG.converter(["kaggle15"])
    assert load_schema(KAGGLE) is KAGGLE and load_schema("kaggle15") is load_schema("kaggle15")  # still cached


# P5 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kp", [np.zeros((2, 15, 2)), np.zeros(68), np.zeros((68, 3))])
def test_convert_refuses_a_wrong_shape(kp):
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 68, 2\) for schema 'ibug68'"):
        IBUG.convert(kp, "kaggle15")


@pytest.mark.parametrize("kp", [None, np.full((68, 2), "a"), np.zeros((68, 2), bool)])
def test_convert_refuses_non_numbers(kp):
    with pytest.raises(TypeError, match="keypoints: expected an array of numbers"):
        IBUG.convert(kp, "kaggle15")


# P6 -------------------------------------------------------------------------------------------------

BASE = {"name": "x", "keypoints": ["a", "b", "c"]}


@pytest.mark.parametrize("change, message", [
    ({"keypoints": "abc"}, "keypoints must be a list, got str"),
    ({"keypoints": []}, "keypoints is empty"),
    ({"keypoints": None}, "keypoints must be a list of names, got None"),
    ({"keypoints": [1, 2]}, "keypoints must be names"),
    ({"normalization": ["a"]}, "normalization must name 2 different keypoints"),
    ({"normalization": ["a", "b", "c"]}, "normalization must name 2 different keypoints"),
    ({"normalization": ["a", "a"]}, "normalization must name 2 different keypoints"),
    ({"derive": {"nose1": {"nose_tip": []}}}, r"derive.nose1.nose_tip must be a non-empty list"),
    ({"derive": {"nose1": {"nose_tip": "a"}}}, r"derive.nose1.nose_tip must be a non-empty list"),
    ({"derive": [1]}, "derive must map schema names to mappings, got list"),
    ({"derive": {"nose1": [1]}}, "derive.nose1 must map target keypoints"),
    ({"flip_pairs": "ab"}, "flip_pairs must be a list, got str"),
    ({"flip_pairs": [["a", 1]]}, "keypoint name .in flip_pairs. must be a str"),
])
def test_from_dict_refuses_fields_that_would_break_later(change, message):
    with pytest.raises(SchemaError, match=message):
        KeypointSchema.from_dict({**BASE, **change})


def test_from_dict_still_reads_every_shipped_schema_and_its_own_output():
    for name in ("kaggle15", "ibug68", "imm58", "nose1"):
        s = load_schema(name)
        assert KeypointSchema.from_dict(s.to_dict()) == s
    assert KeypointSchema.from_dict({**BASE, "normalization": ["a", "c"]}).normalization == ("a", "c")


# P7 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"nme_per_row": None}, TypeError, "nme_per_row: expected a 1-d array of numbers"),
    ({"nme_per_row": [[0.01, 0.02]]}, ValueError, "nme_per_row: expected a 1-d array"),
    ({"max_threshold": "0.1"}, TypeError, "max_threshold: expected a number, got str"),
    ({"max_threshold": 0}, ValueError, "max_threshold: expected a finite number > 0, got 0"),
    ({"max_threshold": -0.1}, ValueError, "max_threshold"),
    ({"max_threshold": float("nan")}, ValueError, "max_threshold"),
    ({"steps": -3}, ValueError, "steps: expected 2 to 100000"),
    ({"steps": 1}, ValueError, "steps: expected 2 to 100000"),
    ({"steps": 10**12}, ValueError, "steps: expected 2 to 100000"),
    ({"steps": 10.5}, TypeError, "steps: expected an int, got float"),
    ({"steps": True}, TypeError, "steps: expected an int, got bool"),
])
def test_ced_validates_its_arguments(kwargs, error, message):
    args = {"nme_per_row": np.array([0.01, 0.05]), **kwargs}
    with pytest.raises(error, match=message):
        ced(**args)


def test_ced_takes_a_list_and_gives_what_it_gave():
    t, frac, area = ced([0.02, 0.06, 0.2, float("nan")])
    assert len(t) == 101 and frac[-1] == pytest.approx(2 / 3) and frac[20] == pytest.approx(1 / 3)
    e = np.random.default_rng(0).uniform(0, 0.12, 500)
    t, frac, area = ced(e, 0.08, np.int64(50))
    np.testing.assert_array_equal(frac, (e[None, :] <= t[:, None]).mean(axis=1))  # the old table, no longer built


# P8 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pred, gt, error, message", [
    ("a", "b", TypeError, "pred: expected an .N, K, 2. array of numbers, got str"),
    (None, None, TypeError, "got NoneType"),
    (np.zeros((1, 15, 2), bool), np.zeros((1, 15, 2)), TypeError, "dtype bool"),
    (np.zeros((15, 2)), np.zeros((15, 2)), ValueError, r"pred: expected shape \(N, K, 2\).*got \(15, 2\)"),
    (np.zeros((1, 15, 2)), np.zeros((1, 15, 3)), ValueError, "gt: expected shape"),
])
@pytest.mark.parametrize("fn", [rmse, mae, mean_error, per_keypoint_rmse])
def test_pred_and_gt_must_be_numeric_n_k_2_arrays(fn, pred, gt, error, message):
    with pytest.raises(error, match=message):
        fn(pred, gt)


def test_integer_inputs_are_not_wrapped_round():
    assert rmse(np.zeros((1, 15, 2), np.uint8), np.full((1, 15, 2), 255, np.uint8)) == 255.0


# P9 -------------------------------------------------------------------------------------------------

def test_summarize_of_unlabelled_data_is_json_ready_through_finite_json():
    pred, gt = _face()
    s = summarize(pred, np.full_like(gt, np.nan), KAGGLE)
    assert np.isnan(s["nme"]) and "finite_json" in summarize.__doc__
    out = json.loads(json.dumps(finite_json(s), allow_nan=False))
    assert out["nme"] is None and out["rmse"] is None and out["rows_with_nme"] == 0
