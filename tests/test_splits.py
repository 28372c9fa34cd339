"""Missing-label strategies and deterministic, person-disjoint splits."""
from pathlib import Path

import numpy as np
import pytest

from facekeypoints.data import KeypointData, describe_split, handle_missing, split, split_imm_people, split_indices

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _with_gaps(n: int = 12, seed: int = 0) -> KeypointData:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(0, 96, (n, 15, 2)).astype(np.float32)
    kp[rng.uniform(size=(n, 15)) < 0.3] = np.nan  # a keypoint is missing as a whole (x and y)
    kp[0, 4] = np.nan  # the first row has a gap: ffill cannot fill it
    return KeypointData.from_arrays("kaggle15", kp, images=np.zeros((n, 96, 96), np.uint8))


def _people(counts: list[int]) -> KeypointData:
    person = [f"p{i:03d}" for i, c in enumerate(counts) for _ in range(c)]
    n = len(person)
    return KeypointData.from_arrays("nose1", np.arange(n * 2, dtype=np.float32).reshape(n, 1, 2), person=person,
                                    ids=[f"s{i}" for i in range(n)])


def test_drop_keeps_only_fully_labelled_rows():
    data = _with_gaps()
    out, report = handle_missing(data, "drop")
    full = ~np.isnan(data.keypoints).any(axis=(1, 2))
    assert len(out) == full.sum() and report.rows_dropped == (~full).sum() > 0
    np.testing.assert_array_equal(out.keypoints, data.keypoints[full])
    assert out.ids == [data.ids[i] for i in np.flatnonzero(full)] and len(out.images) == len(out)
    assert report.values_missing == 0 and "dropped" in str(report)


def test_ffill_matches_pandas_on_the_table():
    pd = pytest.importorskip("pandas", reason="pandas is the reference for ffill")
    data = _with_gaps()
    out, report = handle_missing(data, "ffill")
    table = pd.DataFrame(data.keypoints.reshape(len(data), -1))
    np.testing.assert_array_equal(out.keypoints.reshape(len(data), -1), table.ffill().to_numpy(np.float32))
    assert report.values_filled == int(table.isna().sum().sum() - table.ffill().isna().sum().sum()) > 0
    still = table.ffill().isna()
    assert report.values_missing == still.sum().sum() >= 2  # at least row 0, keypoint 4: nothing above it
    assert report.rows_still_missing == still.any(axis=1).sum() and np.isnan(out.keypoints[0, 4]).all()
    assert np.isnan(data.keypoints).sum() > report.values_missing  # the input is not changed in place


def test_mask_keeps_nan_and_bad_strategy_is_rejected():
    data = _with_gaps()
    out, report = handle_missing(data, "mask")
    np.testing.assert_array_equal(out.keypoints, data.keypoints)
    assert report.values_missing == np.isnan(data.keypoints).sum() and report.rows_dropped == 0
    with pytest.raises(ValueError, match=r"'zero'.*drop"):
        handle_missing(data, "zero")


@pytest.mark.parametrize("ratios", [(0.7, 0.3), (0.55, 0.15, 0.3)])
def test_person_split_is_disjoint_deterministic_and_close_to_ratios(ratios):
    counts = list(np.random.default_rng(1).integers(1, 25, 300))  # like ytf68: 304 people, uneven frames
    data = _people(counts)
    parts = split(data, ratios, seed=7)
    people = [set(p.person) for p in parts]
    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            assert not people[a] & people[b]
    assert sorted(sum((p.ids for p in parts), [])) == sorted(data.ids)  # every sample exactly once
    achieved = np.array([len(p) for p in parts]) / len(data)
    np.testing.assert_allclose(achieved, ratios, atol=0.02)
    again = split_indices(data, ratios, seed=7)
    assert all(np.array_equal(a, np.flatnonzero(np.isin(data.ids, p.ids))) for a, p in zip(again, parts))
    other = split_indices(data, ratios, seed=8)
    assert not np.array_equal(other[0], again[0])
    assert "persons" in describe_split(parts) and f"{achieved[0]:.1%}" in describe_split(parts)


def test_sample_split_without_persons_hits_exact_counts():
    data = KeypointData.from_arrays("nose1", np.zeros((100, 1, 2)))
    parts = split_indices(data, (0.55, 0.15, 0.3), seed=0)
    assert [len(p) for p in parts] == [55, 15, 30]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(100))
    assert not np.array_equal(parts[0], np.arange(55))  # shuffled, not the first rows
    with pytest.raises(ValueError, match="have no person"):
        split(data, by_person=True)


def test_bad_ratios_and_too_few_people():
    data = _people([3, 3])
    for bad in [(0.5, 0.6), (1.0,), (0.7, 0.3, 0.0)]:
        with pytest.raises(ValueError, match="ratios"):
            split(data, bad)
    with pytest.raises(ValueError, match="empty: too few persons"):
        split(data, (0.4, 0.3, 0.3))


def test_imm_people_split():
    person = [f"{p:02d}" for p in range(1, 41) for _ in range(6)]
    data = KeypointData.from_arrays("nose1", np.zeros((240, 1, 2)), person=person)
    train, val = split_imm_people(data)
    assert len(train) == 192 and len(val) == 48
    assert {int(p) for p in train.person} == set(range(1, 33)) and {int(p) for p in val.person} == set(range(33, 41))
    with pytest.raises(ValueError, match=r"persons \[40\] are in neither"):
        split_imm_people(data, train=range(1, 33), val=range(33, 40))
    with pytest.raises(ValueError, match="both"):
        split_imm_people(data, train=range(1, 34), val=range(33, 41))


@pytest.mark.shared_data
def test_real_imm_split_by_person():
    if not (SHARED / "imm").exists():
        pytest.skip("shared IMM data not present")
    from facekeypoints.data import read

    data = read(SHARED / "imm" / "imm_face_db", load_images=False)
    train, val = split_imm_people(data)
    assert (len(train), len(val)) == (192, 48) and not set(train.person) & set(val.person)
