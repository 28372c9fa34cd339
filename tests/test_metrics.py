import numpy as np
import pytest

from facekeypoints.evaluate.metrics import ced, mae, mean_error, nme, per_keypoint_rmse, rmse, summarize
from facekeypoints.schema import load_schema


def _random_case(seed=0, n=20, k=15, missing=0.4):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(10, 86, size=(n, k, 2))
    pred = gt + rng.normal(0, 2, size=gt.shape)
    gt[rng.random((n, k)) < missing] = np.nan
    return pred, gt


def test_rmse_and_mae_use_only_labelled_coordinates():
    pred, gt = _random_case()
    labelled = ~np.isnan(gt)
    diff = (pred - gt)[labelled]
    assert rmse(pred, gt) == pytest.approx(np.sqrt(np.mean(diff**2)))
    assert mae(pred, gt) == pytest.approx(np.mean(np.abs(diff)))
    # an unlabelled coordinate's prediction does not matter
    pred2 = pred.copy()
    pred2[np.isnan(gt)] = 1e6
    assert rmse(pred2, gt) == rmse(pred, gt)


def test_per_keypoint_rmse_matches_a_loop_and_marks_unlabelled_keypoints():
    pred, gt = _random_case(1)
    gt[:, 3] = np.nan
    pk = per_keypoint_rmse(pred, gt)
    assert np.isnan(pk[3])
    for k in (0, 7, 14):
        rows = ~np.isnan(gt[:, k]).any(-1)
        assert pk[k] == pytest.approx(np.sqrt(np.mean((pred[rows, k] - gt[rows, k]) ** 2)))


def test_nme_divides_by_interocular_distance():
    schema = load_schema("kaggle15")
    gt = np.full((1, 15, 2), 50.0)
    gt[0, schema.index("left_eye_center")] = [70, 40]
    gt[0, schema.index("right_eye_center")] = [30, 40]
    pred = gt.copy()
    pred[0, :, 0] += 4.0  # every point 4 px off; eyes are 40 px apart
    assert nme(pred, gt, schema)[0] == pytest.approx(0.1)


def test_ced_auc_is_one_for_perfect_and_zero_for_hopeless_predictions():
    assert ced(np.zeros(10))[2] == pytest.approx(1.0)
    assert ced(np.full(10, 0.5))[2] == pytest.approx(0.0)
    t, frac, _ = ced(np.array([0.02, 0.06, 0.2]))
    assert frac[-1] == pytest.approx(2 / 3) and np.all(np.diff(frac) >= 0)


def test_summarize_reports_failure_rates():
    schema = load_schema("kaggle15")
    pred, gt = _random_case(2, missing=0.0)
    s = summarize(pred, gt, schema)
    per_row = nme(pred, gt, schema)
    assert s["fr_10"] == pytest.approx(np.mean(per_row > 0.10))
    assert set(s["per_keypoint_rmse"]) == set(schema.keypoints)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        rmse(np.zeros((2, 15, 2)), np.zeros((2, 14, 2)))


def test_mean_error_finds_a_systematic_offset_and_ignores_unlabelled_coordinates():
    pred, gt = _random_case(5, n=400)
    shifted = pred + np.array([1.25, -0.5])
    x, y = mean_error(shifted, gt)
    labelled = ~np.isnan(gt)
    assert x == pytest.approx(np.mean((shifted - gt)[..., 0][labelled[..., 0]]))
    assert abs(x - 1.25) < 0.2 and abs(y + 0.5) < 0.2  # noise std 2 over ~5000 coordinates
    shifted[np.isnan(gt)] = 1e6
    assert mean_error(shifted, gt) == (x, y)
    assert summarize(shifted, gt, load_schema("kaggle15"))["mean_error_xy"] == [x, y]


def test_nme_is_undefined_not_infinite_for_a_single_keypoint_schema():
    schema = load_schema("nose1")
    gt = np.array([[[40.0, 50.0]], [[30.0, 60.0]]])
    per_row = nme(gt + 1.0, gt, schema)
    assert np.isnan(per_row).all()
    result = summarize(gt + 1.0, gt, schema)
    assert np.isnan(result["nme"]) and np.isnan(result["auc_10"]) and result["rows_with_nme"] == 0
    assert result["rmse"] == pytest.approx(1.0)
