"""Conversion of landmark datasets to the Kaggle task: alignment, warping, keypoint mapping, CLI."""
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.cli import main
from facekeypoints.data import DataFormatError, KeypointData, read, to_kaggle_task, write_pts
from facekeypoints.data.framing import KAGGLE_MEAN_FACE, fit_similarity

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _similarity(scale: float, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[scale * np.cos(t), -scale * np.sin(t), shift[0]],
                     [scale * np.sin(t), scale * np.cos(t), shift[1]]])


def _inverse(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _ibug68_around(k15: np.ndarray, seed: int = 0) -> np.ndarray:
    """68 iBUG points whose kaggle15 derivation (schema ibug68.yaml) gives exactly ``k15``."""
    kp = np.random.default_rng(seed).uniform(k15.min(0), k15.max(0), (68, 2))
    single = {42: 2, 45: 3, 39: 4, 36: 5, 22: 6, 26: 7, 21: 8, 17: 9, 30: 10, 54: 11, 48: 12, 51: 13, 57: 14}
    for ibug, kaggle in single.items():
        kp[ibug] = k15[kaggle]
    for centre, inner, outer, rest in ((0, 42, 45, (43, 44, 46, 47)), (1, 39, 36, (37, 38, 40, 41))):
        q = (6 * k15[centre] - kp[inner] - kp[outer]) / 4  # the four lid points average to q
        for j, dy in zip(rest, (-2, -2, 2, 2)):
            kp[j] = q + (0, dy)
    return kp


def test_fit_similarity_recovers_a_known_transform():
    m = _similarity(0.7, 12, (5, -3))
    src = np.random.default_rng(0).uniform(0, 100, (15, 2))
    np.testing.assert_allclose(fit_similarity(src, _apply(m, src)), m, atol=1e-9)
    src[4] = np.nan  # NaN rows are ignored
    np.testing.assert_allclose(fit_similarity(src, _apply(m, src)), m, atol=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fit_similarity(src[:1], src[:1])


def test_exactly_similar_face_lands_on_the_mean_face():
    to_source = _similarity(2.2, -17, (40, 25))  # mean face -> this photo
    k15 = _apply(to_source, KAGGLE_MEAN_FACE)
    kp = _ibug68_around(k15)
    data = KeypointData.from_arrays("ibug68", kp[None], images=np.full((1, 260, 240, 3), 90, np.uint8))
    faces, report = to_kaggle_task(data)
    assert faces.schema.name == "kaggle15" and faces.images.shape == (1, 96, 96) and faces.images.dtype == np.uint8
    np.testing.assert_allclose(faces.keypoints[0], KAGGLE_MEAN_FACE, atol=1e-3)
    assert report.fit_rms < 1e-3 and report.outside == 0 and report.faces_out == 1
    np.testing.assert_allclose(report.eye_centres, KAGGLE_MEAN_FACE[:2], atol=1e-3)


def test_pixels_follow_the_keypoints():
    to_source = _similarity(1.8, 25, (60, 10))
    k15 = _apply(to_source, KAGGLE_MEAN_FACE) + np.random.default_rng(1).normal(0, 3, (15, 2))  # not exact
    kp = _ibug68_around(k15, seed=2)
    kp[30] = np.round(kp[30])  # draw the dots at whole pixels
    kp[54] = np.round(kp[54])
    image = np.full((240, 260, 3), 40, np.uint8)
    for point in (kp[30], kp[54]):
        cv2.circle(image, (int(point[0]), int(point[1])), 4, (255, 255, 255), -1)
    faces, _ = to_kaggle_task(KeypointData.from_arrays("ibug68", kp[None], images=image[None]))
    out = faces.images[0].astype(np.float64) - 40
    ys, xs = np.mgrid[:96, :96]
    for kaggle_index in (10, 11):  # nose tip <- iBUG 30, mouth left corner <- iBUG 54
        x, y = faces.keypoints[0, kaggle_index]
        near = (np.hypot(xs - x, ys - y) < 7) * out
        assert near.max() > 150, "the bright dot is not near its keypoint"
        cx, cy = (near * xs).sum() / near.sum(), (near * ys).sum() / near.sum()
        assert np.hypot(cx - x, cy - y) < 1.0, (kaggle_index, (cx, cy), (x, y))


def test_outside_points_are_kept_and_unalignable_rows_reported():
    k15 = KAGGLE_MEAN_FACE.copy()
    k15[14, 1] += 60  # a bottom lip far below the face: it must stay outside, not be clipped
    good = _ibug68_around(k15)
    kp = np.stack([good, np.full((68, 2), np.nan)])
    data = KeypointData.from_arrays("ibug68", kp, images=[np.zeros((120, 100), np.uint8)] * 2, ids=["ok", "blank"])
    faces, report = to_kaggle_task(data)
    assert faces.ids == ["ok"] and report.not_aligned == ["blank"] and any("blank" in s for s in faces.skipped)
    assert faces.keypoints[0, 14, 1] > 95 and report.outside >= 1 and report.rows_with_outside == 1
    assert "outside the image (kept, not clipped): " in str(report) and "blank" in str(report)


def test_faces_that_cannot_be_placed_say_why():
    good = _ibug68_around(_apply(_similarity(2.0, 10, (30, 20)), KAGGLE_MEAN_FACE))
    no_jaw = good.copy()
    no_jaw[:17] = np.nan  # no kaggle15 point comes from the jaw: this face aligns as well as any
    nose_only = np.full((68, 2), np.nan)
    nose_only[30] = good[30]
    data = KeypointData.from_arrays("ibug68", np.stack([good, no_jaw, nose_only]), ids=["good", "no_jaw", "nose"],
                                    images=np.zeros((3, 260, 240), np.uint8), source="faces.xml")
    faces, report = to_kaggle_task(data)
    assert faces.ids == ["good", "no_jaw"] and report.not_aligned == ["nose"]
    np.testing.assert_allclose(faces.keypoints[1], faces.keypoints[0], atol=1e-4)
    assert faces.skipped == ["faces.xml: face 'nose' not converted: only 1 of its 15 kaggle15 alignment points can "
                             "be derived from its ibug68 keypoints; aligning needs 2"]


def test_no_face_to_place_is_an_error_naming_the_source(tmp_path, capsys):
    data = KeypointData.from_arrays("ibug68", np.full((2, 68, 2), np.nan), images=np.zeros((2, 60, 60), np.uint8),
                                    source="faces.xml", ids=["a", "b"])
    with pytest.raises(DataFormatError, match=r"^faces.xml: none of its 2 faces can be converted: no face has 2 "
                                              r"distinct kaggle15 alignment points .*; e.g. face 'a': only 0 of"):
        to_kaggle_task(data)
    xml = tmp_path / "faces.xml"  # boxes without parts: faces with no keypoints at all
    xml.write_text("<dataset><images><image file='pic.png'><box top='1' left='2' width='30' height='30'/>"
                   "</image></images></dataset>")
    cv2.imwrite(str(tmp_path / "pic.png"), np.zeros((40, 40, 3), np.uint8))
    assert main(["data", "convert", str(xml), "-o", str(tmp_path / "out.csv")]) == 2
    assert f"error: {xml}: none of its 1 faces can be converted" in capsys.readouterr().err
    empty = KeypointData.from_arrays("ibug68", np.zeros((0, 68, 2)), images=np.zeros((0, 60, 60), np.uint8),
                                     source="faces.xml")
    with pytest.raises(DataFormatError, match="faces.xml: holds no faces to convert"):
        to_kaggle_task(empty)


def test_imm_nose_tip_from_partial_anchors():
    # eyes, nose and mouth corners at their mean-face places, 2x larger, in a 300 x 300 image
    face = _apply(_similarity(2.0, 0, (50, 40)), KAGGLE_MEAN_FACE)
    imm = np.random.default_rng(3).uniform(80, 200, (58, 2))
    imm[13:21], imm[21:29] = face[0], face[1]  # left, right eye contours (imm58 points 13-20, 21-28)
    imm[52], imm[43], imm[39] = face[10], face[11], face[12]  # nose_05, mouth_4 (left), mouth_0 (right)
    data = KeypointData.from_arrays("imm58", imm[None], images=np.zeros((1, 300, 300, 3), np.uint8), person=["05"])
    faces, report = to_kaggle_task(data, "nose1")
    assert faces.schema.name == "nose1" and faces.person == ["05"]
    np.testing.assert_allclose(faces.keypoints[0, 0], KAGGLE_MEAN_FACE[10], atol=1e-3)
    with pytest.raises(ValueError, match="no images"):
        to_kaggle_task(KeypointData.from_arrays("imm58", imm[None]))


def test_cli_convert_writes_a_kaggle_csv(tmp_path, capsys):
    src = tmp_path / "faces"
    src.mkdir()
    for i in range(3):
        k15 = _apply(_similarity(1.5 + i * 0.2, 5 * i, (20, 30)), KAGGLE_MEAN_FACE)
        write_pts(_ibug68_around(k15, seed=i), src / f"f{i}.pts")
        cv2.imwrite(str(src / f"f{i}.png"), np.random.default_rng(i).integers(0, 255, (220, 200, 3), np.uint8))
    out = tmp_path / "kaggle.csv"
    assert main(["data", "convert", str(src), "--to", "kaggle15", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "converted 3 of 3 faces" in printed and "wrote" in printed
    back = read(out)
    assert back.schema.name == "kaggle15" and back.images.shape == (3, 96, 96)
    np.testing.assert_allclose(back.keypoints, np.broadcast_to(KAGGLE_MEAN_FACE, (3, 15, 2)), atol=0.01)
    assert main(["data", "convert", str(src), "--to", "nose1", "-o", str(out)]) == 2


@pytest.mark.shared_data
def test_imm_face_converts_with_eyes_in_place():
    path = SHARED / "imm" / "imm_face_db" / "01-1m.asf"
    if not path.exists():
        pytest.skip("shared IMM data not present")
    faces, report = to_kaggle_task(read(path), "nose1")
    assert 30 < faces.keypoints[0, 0, 0] < 66 and 40 < faces.keypoints[0, 0, 1] < 75
    assert np.abs(report.eye_centres - KAGGLE_MEAN_FACE[:2]).max() < 4


@pytest.mark.shared_data
@pytest.mark.slow
def test_ytf68_converts_to_kaggle_framing():
    """Acceptance: the eye centres of the converted ytf68 faces sit where Kaggle's do on average."""
    path = SHARED / "ytf68" / "train.csv"
    if not path.exists():
        pytest.skip("shared ytf68 data not present")
    start = time.perf_counter()
    faces, report = to_kaggle_task(read(path))
    elapsed = time.perf_counter() - start
    print(report, f"\nruntime {elapsed:.1f} s")
    assert len(faces) == 3045 and faces.images.shape == (3045, 96, 96)
    np.testing.assert_allclose(np.nanmean(faces.keypoints[:, :2], axis=0), KAGGLE_MEAN_FACE[:2], atol=1.5)


@pytest.mark.shared_data
def test_mean_face_is_the_statistic_it_claims_to_be():
    path = SHARED / "kaggle-fkd" / "training_keypoints_only.csv"
    if not path.exists():
        pytest.skip("shared Kaggle label file not present")
    labels = read(path)
    full = labels.keypoints[labels.fully_labelled()]
    assert len(labels) == 7049 and len(full) == 2140
    np.testing.assert_allclose(full.mean(axis=0), KAGGLE_MEAN_FACE, atol=0.005 + 1e-6)
