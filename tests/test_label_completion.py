import numpy as np
import pytest

from facekeypoints.data import KeypointData
from facekeypoints.data.convert import complete_labels, resize_faces
from facekeypoints.schema import load_schema


def _pair(n=12, seed=0):
    """68-point faces, and the same faces warped by per-row similarity transforms into kaggle15
    with Kaggle's usual missing pattern (only eye centres, nose tip, bottom lip on odd rows)."""
    rng = np.random.default_rng(seed)
    src = rng.uniform(20, 200, size=(n, 68, 2))
    truth = load_schema("ibug68").convert(src, "kaggle15")
    warped = np.empty_like(truth)
    for i in range(n):
        a, s = rng.uniform(-0.4, 0.4), rng.uniform(0.3, 0.6)
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        warped[i] = truth[i] @ rot.T + rng.uniform(-10, 10, 2)
    hidden = warped.copy()
    hidden[1::2, [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]] = np.nan
    return (KeypointData.from_arrays("ibug68", src, source="src.csv"),
            KeypointData.from_arrays("kaggle15", hidden, source="kaggle.csv"), warped)


def test_completion_recovers_hidden_labels_exactly():
    src, hidden, truth = _pair()
    done, report = complete_labels(hidden, src)
    assert np.allclose(done.keypoints, truth, atol=1e-3)
    assert report["keypoints_filled"] == 6 * 11 and report["max_residual_px"] < 1e-3
    labelled = ~np.isnan(hidden.keypoints)
    assert np.array_equal(done.keypoints[labelled], hidden.keypoints[labelled])  # given labels untouched


def test_rows_that_do_not_correspond_are_an_error_naming_the_row():
    src, hidden, _ = _pair()
    src.keypoints[[3, 4]] = src.keypoints[[4, 3]]  # swap two faces: row 4 no longer matches
    with pytest.raises(ValueError, match=r"kaggle.csv, row 4: .*src.csv row 4"):
        complete_labels(hidden, src)
    with pytest.raises(ValueError, match="row for row"):
        complete_labels(hidden, src.subset(range(5)))


def test_resize_faces_scales_keypoints_with_pixels():
    image = np.zeros((480, 640, 3), np.uint8)
    image[236:244, 316:324] = 255  # a bright square centred on pixel (319.5, 239.5)
    data = KeypointData.from_arrays("nose1", np.array([[[319.5, 239.5]]]), images=[image])
    out = resize_faces(data, 96)
    ys, xs = np.nonzero(out.images[0] > 20)
    weights = out.images[0][ys, xs].astype(float)
    centroid = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
    assert out.images.shape == (1, 96, 96)
    assert np.allclose(out.keypoints[0, 0], centroid, atol=0.1)
