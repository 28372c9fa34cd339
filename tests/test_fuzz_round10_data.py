"""Round-10 fuzzing of the data API: bad arguments are refused by name, never written or half-used.

- KeypointData.subset / image: ints, int lists (empty too), full-length masks and slices only.
- KeypointData fields: schema, keypoints (no inf), images (uint8 layouts), boxes ((N, 4)).
- write_kaggle_csv: no inf written, TypeError for a non-KeypointData.
- write_submission: integer ImageIds, a positive (H, W), (RowId, ImageId, FeatureName) rows.
- write_pts: 68 points, decimals an int in 0..10, swapped arguments named.
- split_indices / split_imm_people: ratios, seed, by_person, person numbers.
- to_kaggle_task size, Preprocess fields, read_image max_pixels; ``~`` and bytes paths.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from facekeypoints.data import (KeypointData, Preprocess, read_kaggle_csv, read_pts, read_image, split_imm_people,
                                split_indices, to_kaggle_task, write_kaggle_csv, write_pts, write_submission)

KP = np.random.default_rng(0).uniform(10, 80, (4, 15, 2)).astype(np.float32)
ROWS = [(1, 1, "nose_tip_x"), (2, 1, "nose_tip_y"), (3, 2, "nose_tip_x")]
PRED = np.full((2, 15, 2), 50.0)


def _data(**kw) -> KeypointData:
    return KeypointData("kaggle15", KP, images=np.zeros((4, 96, 96), np.uint8), **kw)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# ---- 1. subset and image -----------------------------------------------------------------------
def test_subset_refuses_a_short_or_long_mask():
    with pytest.raises(ValueError, match="boolean mask has 2 entries for 4 samples"):
        _data().subset([True, False])
    with pytest.raises(ValueError, match="boolean mask has 5 entries for 4 samples"):
        _data().subset(np.ones(5, bool))


@pytest.mark.parametrize("index", [1, np.int64(1)])
def test_subset_of_one_int(index):
    assert _data().subset(index).ids == ["1"]


def test_subset_empty_list_and_slice():
    empty = _data().subset([])
    assert len(empty) == 0 and empty.images.shape == (0, 96, 96)
    assert _data().subset(slice(0, 2)).ids == ["0", "1"]


@pytest.mark.parametrize("index", [None, "0", 1.0, [0.0, 1.0], True])
def test_subset_refuses_other_index_types(index):
    with pytest.raises(TypeError, match="index must"):
        _data().subset(index)


def test_subset_and_image_out_of_range_name_index_and_length():
    with pytest.raises(IndexError, match="index 10 is out of range for 4 samples"):
        _data().subset([0, 10])
    with pytest.raises(IndexError, match="sample index 10 is out of range for 4 samples"):
        _data().image(10)
    with pytest.raises(TypeError, match="sample index must be an int, got str"):
        _data().image("0")


# ---- 2. KeypointData fields ---------------------------------------------------------------------
def test_schema_and_keypoints_types():
    with pytest.raises(TypeError, match="schema must be a schema name or a KeypointSchema, got NoneType"):
        KeypointData(None, KP)
    with pytest.raises(TypeError, match="keypoints must be an"):
        KeypointData("kaggle15", None)
    with pytest.raises(ValueError, match=r"keypoints must be \(N, 15, 2\).*got \(\)"):
        KeypointData("kaggle15", np.float32(1))


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e300])
def test_infinite_keypoints_refused(value):
    kp = KP.astype(np.float64)
    kp[2, 3, 1] = value
    with pytest.raises(ValueError, match=r"1 infinite .* sample 2, keypoint 3 \(left_eye_outer_corner\)"):
        KeypointData("kaggle15", kp)


def test_nan_keypoints_still_missing():
    kp = KP.copy()
    kp[0, 0] = np.nan
    assert not KeypointData("kaggle15", kp).labelled_mask()[0, 0]


@pytest.mark.parametrize("images, error", [
    (np.zeros((4, 96, 96)), ValueError), (np.zeros((4, 96, 96, 5), np.uint8), ValueError),
    (np.zeros(4, np.uint8), ValueError), ("abcd", TypeError), (5, TypeError),
    ([np.zeros((96, 96, 4), np.uint8)] * 4, ValueError), ([[0]] * 4, TypeError),
])
def test_bad_images_refused(images, error):
    with pytest.raises(error, match="images"):
        KeypointData("kaggle15", KP, images=images)


def test_good_image_layouts_kept():
    assert KeypointData("kaggle15", KP, images=np.zeros((4, 8, 8, 3), np.uint8)).images.shape == (4, 8, 8, 3)
    listed = [np.zeros((8, 8), np.uint8), np.zeros((9, 7, 3), np.uint8)] * 2
    assert len(KeypointData("kaggle15", KP, images=listed).images) == 4


def test_boxes_checked_and_made_an_array():
    boxes = KeypointData("kaggle15", KP, boxes=[[0, 0, 1, 1]] * 4).boxes
    assert isinstance(boxes, np.ndarray) and boxes.dtype == np.float32
    for bad in (np.zeros((4, 5)), np.zeros(4)):
        with pytest.raises(ValueError, match=r"boxes must be \(N, 4\)"):
            KeypointData("kaggle15", KP, boxes=bad)
    with pytest.raises(ValueError, match="boxes hold 1 infinite"):
        KeypointData("kaggle15", KP, boxes=np.where(np.eye(4) * np.arange(4) == 3, np.inf, 0.0))


# ---- 3. write_kaggle_csv ------------------------------------------------------------------------
def test_kaggle_csv_refuses_inf_naming_row_and_column(tmp_path):
    data = KeypointData("kaggle15", KP.copy())
    data.keypoints[1, 2, 1] = np.inf  # set after construction, which refuses it
    with pytest.raises(ValueError, match=r"1 infinite .* data row 2, column 'left_eye_inner_corner_y'"):
        write_kaggle_csv(data, tmp_path / "k.csv")
    assert not (tmp_path / "k.csv").exists()


@pytest.mark.parametrize("data", [None, KP])
def test_kaggle_csv_needs_keypoint_data(tmp_path, data):
    with pytest.raises(TypeError, match="write_kaggle_csv needs KeypointData"):
        write_kaggle_csv(data, tmp_path / "k.csv")


# ---- 4. write_submission ------------------------------------------------------------------------
@pytest.mark.parametrize("ids", [[1.7, 2.2], [True, 2], "12"])
def test_submission_image_ids_must_be_ints(tmp_path, ids):
    with pytest.raises(TypeError, match="image_ids"):
        write_submission(PRED, ROWS, tmp_path / "s.csv", image_ids=ids)


def test_submission_numpy_int_ids_fine(tmp_path):
    assert write_submission(PRED, ROWS, tmp_path / "s.csv", image_ids=np.array([1, 2])).rows == 3


@pytest.mark.parametrize("size, error", [((0, 0), ValueError), ((-5, -5), ValueError),
                                         ((float("nan"),) * 2, TypeError), (96, TypeError),
                                         ((96, 96, 3), TypeError), ("96", TypeError)])
def test_submission_image_size(tmp_path, size, error):
    with pytest.raises(error, match="image_size must be"):
        write_submission(PRED, ROWS, tmp_path / "s.csv", image_ids=[1, 2], image_size=size)
    assert not (tmp_path / "s.csv").exists()


def test_submission_bad_lookup_row_named(tmp_path):
    with pytest.raises(ValueError, match=r"lookup_rows\[1\] must be \(RowId, ImageId, FeatureName\)"):
        write_submission(PRED, [ROWS[0], (1, 1)], tmp_path / "s.csv", image_ids=[1, 2])
    with pytest.raises(TypeError, match="lookup_rows must be a list"):
        write_submission(PRED, None, tmp_path / "s.csv", image_ids=[1, 2])


def test_submission_refuses_infinite_prediction(tmp_path):
    with pytest.raises(ValueError, match=r"\(RowId 1\) is inf"):
        write_submission(np.full((2, 15, 2), np.inf), ROWS, tmp_path / "s.csv", image_ids=[1, 2])


# ---- 5. write_pts -------------------------------------------------------------------------------
def test_write_pts_needs_68_points(tmp_path):
    with pytest.raises(ValueError, match="iBUG .pts file holds 68 points, got 15"):
        write_pts(np.zeros((15, 2)), tmp_path / "a.pts")
    assert not (tmp_path / "a.pts").exists()


@pytest.mark.parametrize("decimals, error", [(-1, ValueError), (11, ValueError), (True, TypeError),
                                             (1.5, TypeError), ("3", TypeError), (None, TypeError)])
def test_write_pts_decimals(tmp_path, decimals, error):
    with pytest.raises(error, match="decimals must be"):
        write_pts(np.ones((68, 2)), tmp_path / "a.pts", decimals=decimals)


def test_write_pts_swapped_arguments(tmp_path):
    with pytest.raises(TypeError, match="are the arguments swapped"):
        write_pts(str(tmp_path / "a.pts"), np.ones((68, 2)))


def test_write_pts_refuses_what_read_pts_refuses(tmp_path):
    with pytest.raises(ValueError, match="beyond"):
        write_pts(np.full((68, 2), 1e300), tmp_path / "a.pts")


# ---- 6. splits ----------------------------------------------------------------------------------
D10 = KeypointData("kaggle15", np.zeros((10, 15, 2)))


@pytest.mark.parametrize("ratios, error", [((float("nan"),) * 2, ValueError), ((0.5, float("nan")), ValueError),
                                           (0.7, TypeError), ("0.7", TypeError), ((True, False), TypeError)])
def test_split_ratios(ratios, error):
    with pytest.raises(error, match="ratios must be"):
        split_indices(D10, ratios)


@pytest.mark.parametrize("seed, error", [("1", TypeError), (-1, ValueError), (1.5, TypeError),
                                         (2 ** 32, ValueError), (True, TypeError)])
def test_split_seed(seed, error):
    with pytest.raises(error, match="seed must be"):
        split_indices(D10, seed=seed)


@pytest.mark.parametrize("by_person", [1, 2])
def test_split_by_person_must_be_a_bool(by_person):
    with pytest.raises(ValueError, match="by_person must be True, False or 'auto'"):
        split_indices(D10, by_person=by_person)


def test_split_numpy_true_is_checked_like_true():
    with pytest.raises(ValueError, match="by_person=True but 10 of 10 samples have no person"):
        split_indices(D10, by_person=np.True_)


def test_split_imm_arguments():
    data = KeypointData("kaggle15", KP, person=["1", "2", "33", "34"])
    with pytest.raises(TypeError, match="train must be an iterable of person numbers"):
        split_imm_people(data, train=5)
    with pytest.raises(TypeError, match="train must hold person numbers"):
        split_imm_people(data, train=["1", "2"])
    with pytest.raises(ValueError, match="got person '²'"):
        split_imm_people(KeypointData("kaggle15", KP[:1], person=["²"]))


# ---- 7. sizes and limits ------------------------------------------------------------------------
def _ibug_face() -> KeypointData:
    kp = np.random.default_rng(1).uniform(20, 80, (1, 68, 2))
    return KeypointData("ibug68", kp, images=np.zeros((1, 100, 100, 3), np.uint8))


@pytest.mark.parametrize("size, error", [(10 ** 5, ValueError), (0, ValueError), (96.0, TypeError),
                                         (True, TypeError)])
def test_to_kaggle_task_size(size, error):
    with pytest.raises(error, match="size must be"):
        to_kaggle_task(_ibug_face(), size=size)


@pytest.mark.parametrize("kw, error", [
    ({"clahe_grid": 10 ** 6, "clahe": True}, ValueError), ({"channels": True}, TypeError),
    ({"channels": 3.0}, TypeError), ({"clahe_clip": True}, TypeError), ({"clahe_clip": "x"}, TypeError),
    ({"clahe_clip": None}, TypeError), ({"clahe_clip": float("inf")}, ValueError),
    ({"scale": ["unit"]}, TypeError),
])
def test_preprocess_fields(kw, error):
    with pytest.raises(error, match=f"Preprocess.{next(iter(kw))} must"):
        Preprocess(**kw)


@pytest.mark.parametrize("channels", [4, 1])
def test_preprocess_names_the_channel_count(channels):
    with pytest.raises(ValueError, match=f"3 \\(RGB\\) channels, got {channels}"):
        Preprocess()(np.zeros((96, 96, channels), np.uint8))


@pytest.mark.parametrize("limit, error", [(float("nan"), TypeError), (-1, ValueError), (0, ValueError),
                                          (True, TypeError), ("10", TypeError)])
def test_read_image_max_pixels(tmp_path, limit, error):
    import cv2
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(error, match="max_pixels must be"):
        read_image(tmp_path / "a.png", max_pixels=limit)


# ---- 8. paths -----------------------------------------------------------------------------------
def test_tilde_expanded_by_writers_and_readers(home):
    import cv2
    write_pts(np.full((68, 2), 5.0), "~/a.pts")
    assert (home / "a.pts").is_file() and len(read_pts("~/a.pts", load_images=False)) == 1
    write_kaggle_csv(KeypointData("kaggle15", KP), "~/k.csv")
    assert len(read_kaggle_csv("~/k.csv", use_cache=False)) == 4
    write_submission(PRED, ROWS, "~/s.csv", image_ids=[1, 2])
    assert (home / "s.csv").is_file()
    cv2.imwrite(str(home / "i.png"), np.zeros((4, 6, 3), np.uint8))
    assert read_image("~/i.png").shape == (4, 6, 3) and read_image(Path("~/i.png")).shape == (4, 6, 3)


def test_bytes_paths_accepted_other_types_refused(tmp_path):
    write_pts(np.full((68, 2), 5.0), os.fsencode(tmp_path / "b.pts"))
    assert (tmp_path / "b.pts").is_file()
    with pytest.raises(TypeError, match="path must be a file path"):
        write_pts(np.full((68, 2), 5.0), None)
    with pytest.raises(TypeError, match="path must be a file path"):
        read_image(None)


def test_read_and_attach_person_take_home_paths_and_name_a_missing_file(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    from facekeypoints.data import KeypointData, read, write_kaggle_csv
    from facekeypoints.data.formats.ytf import attach_person

    monkeypatch.setenv("HOME", str(tmp_path))
    write_kaggle_csv(KeypointData("kaggle15", np.full((2, 15, 2), 40.0), images=np.zeros((2, 96, 96), np.uint8) + np.arange(2, dtype=np.uint8)[:, None, None]),
                     tmp_path / "k.csv")
    assert len(read("~/k.csv")) == 2  # ~ is the home folder, as on the command line
    with pytest.raises(TypeError, match="path must be a file path"):
        read(None)
    with pytest.raises(FileNotFoundError, match="attach_person: csv_path .*nothere.csv: no such file"):
        attach_person(read("~/k.csv"), "~/nothere.csv")
    with pytest.raises(TypeError, match="data must be KeypointData"):
        attach_person(None, "~/k.csv")


def test_ids_person_or_paths_given_as_one_string_are_refused():
    import numpy as np
    import pytest

    from facekeypoints.data import KeypointData

    for name in ("ids", "person", "paths"):
        with pytest.raises(TypeError, match=f"{name} must be a list with one entry per sample, got a str"):
            KeypointData("kaggle15", np.zeros((4, 15, 2)), **{name: "abcd"})
    assert KeypointData("kaggle15", np.zeros((2, 15, 2)), ids=["a", "b"]).ids == ["a", "b"]
