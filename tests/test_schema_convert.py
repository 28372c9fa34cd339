"""Schema conversion (e.g. ibug68 -> kaggle15): a missing source point spoils only the points made from it."""
import numpy as np
import pytest

from facekeypoints.data import KeypointData
from facekeypoints.schema import load_schema

IBUG, KAGGLE = load_schema("ibug68"), load_schema("kaggle15")


def _missing_names(points: np.ndarray) -> list[str]:
    return [KAGGLE.keypoints[k] for k in np.flatnonzero(np.isnan(points).any(axis=-1))]


def test_one_missing_point_spoils_only_the_points_derived_from_it():
    kp = np.random.default_rng(0).uniform(0, 100, (4, 68, 2)).astype(np.float32)
    complete = IBUG.convert(kp, "kaggle15")
    kp[1, IBUG.index("nose_bridge_3")] = np.nan  # the nose tip's only source
    kp[2, IBUG.index("right_eye_0"), 0] = np.nan  # one coordinate of a point two targets use
    kp[3, IBUG.index("jaw_00")] = np.nan  # a point no kaggle15 point uses
    out = IBUG.convert(kp, "kaggle15")
    assert out.shape == (4, 15, 2) and out.dtype == np.float32
    assert [_missing_names(face) for face in out] == [[], ["nose_tip"], ["right_eye_center",
                                                                         "right_eye_outer_corner"], []]
    present = ~np.isnan(out)
    np.testing.assert_allclose(out[present], complete[present], rtol=1e-6)


@pytest.mark.parametrize("shape", [(68, 2), (3, 68, 2), (2, 3, 68, 2)])
def test_any_leading_shape(shape):
    kp = np.random.default_rng(1).uniform(0, 100, shape)
    kp[..., 42, :] = np.nan  # left_eye_0: the left eye centre and its inner corner
    out = IBUG.convert(kp, "kaggle15")
    assert out.shape == shape[:-2] + (15, 2)
    flat = out.reshape(-1, 15, 2)
    assert all(_missing_names(face) == ["left_eye_center", "left_eye_inner_corner"] for face in flat)


def test_the_same_schema_keeps_nan_where_it_is():
    kp = np.random.default_rng(2).uniform(0, 96, (2, 15, 2))
    kp[0, 3] = np.nan
    np.testing.assert_array_equal(KAGGLE.convert(kp, "kaggle15"), kp)


def test_keypoint_data_to_schema_follows_the_same_rule():
    kp = np.random.default_rng(3).uniform(0, 100, (2, 68, 2))
    kp[0, :17] = np.nan  # the whole jaw: no kaggle15 point needs it
    data = KeypointData.from_arrays("ibug68", kp).to_schema("kaggle15")
    assert data.schema.name == "kaggle15" and data.fully_labelled().tolist() == [True, True]
    assert load_schema("ibug68").convert(kp, "nose1")[0, 0].tolist() == kp[0, 30].tolist()  # nose1: point 30
