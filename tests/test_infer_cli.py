"""``facekeypoints predict`` on folders (with a corrupt file), Kaggle CSVs and bad input."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.data.dataset import KeypointData
from facekeypoints.data.formats.kaggle import write_kaggle_csv
from fakes import mean_face_checkpoint

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "wobbly.pt", wobble=0.01)


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two good photos (one in a subfolder), one truncated JPEG, one text file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(GRACE_HOPPER, folder / "a.jpg")
    cv2.imwrite(str(folder / "sub" / "b.png"), cv2.resize(cv2.imread(str(GRACE_HOPPER)), (256, 300)))
    (folder / "broken.jpg").write_bytes(GRACE_HOPPER.read_bytes()[:400])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_with_a_corrupt_file(photos, model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["predict", str(photos), "-o", str(out), "--model", str(model), "--batch-size", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED 1 files" in err and "broken.jpg" in err and "cannot decode image" in err
    assert "notes.txt" in err  # ignored files are listed, not silently dropped
    assert (out / "a.jpg").is_file() and (out / "sub" / "b.png").is_file() and not (out / "broken.jpg").exists()
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [Path(r["source"]).name for r in lines] == ["a.jpg", "b.png"]
    assert [len(r["faces"]) for r in lines] == [1, 1]


def test_all_good_files_exit_zero_and_no_draw_writes_json_only(photos, model, tmp_path):
    (photos / "broken.jpg").unlink()
    out = tmp_path / "out"
    assert main(["predict", str(photos / "a.jpg"), "-o", str(out), "--model", str(model), "--no-draw", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl"]


def test_missing_input_is_a_failure(model, tmp_path, capsys):
    code = main(["predict", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"])
    assert code == 1 and "nope.jpg: no such file or folder" in capsys.readouterr().err


def test_kaggle_csv_gives_30_keypoint_columns_in_row_order(model, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 96, 96), dtype=np.uint8)
    data = KeypointData.from_arrays("kaggle15", np.full((5, 15, 2), np.nan, np.float32), images=images)
    source = write_kaggle_csv(data, tmp_path / "test.csv")
    out = tmp_path / "keypoints.csv"
    assert main(["predict", str(source), "-o", str(out), "--model", str(model)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    det = KeypointDetector(model, detector=None)
    assert rows[0] == ["id", *det.schema.columns()] and len(rows[0]) == 31 and len(rows) == 6
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4", "5"]
    expected = det.predict_crops(images).reshape(5, 30)
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], float), expected, atol=1e-3)
    assert len({tuple(r[1:]) for r in rows[1:]}) == 5  # each row is its own image's prediction


def test_a_bad_row_in_a_kaggle_csv_is_reported_and_the_others_written(model, tmp_path, capsys):
    images = np.random.default_rng(1).integers(0, 256, (3, 96, 96), dtype=np.uint8)
    data = KeypointData.from_arrays("kaggle15", np.full((3, 15, 2), np.nan, np.float32), images=images)
    lines = write_kaggle_csv(data, tmp_path / "test.csv").read_text().splitlines()
    lines[2] = lines[2][:300]  # row 2's pixels cut short
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "keypoints.csv"
    assert main(["predict", str(tmp_path / "bad.csv"), "-o", str(out), "--model", str(model)]) == 1
    assert "row 2, field 'Image'" in capsys.readouterr().err
    assert [r.split(",")[0] for r in out.read_text().splitlines()[1:]] == ["1", "3"]


def test_crops_of_another_size_are_rescaled(model):
    det = KeypointDetector(model, detector=None)
    images = np.random.default_rng(1).integers(0, 256, (2, 96, 96), dtype=np.uint8)
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # the same faces at 192x192
    np.testing.assert_allclose(det.predict_crops(big), (det.predict_crops(images) + 0.5) * 2 - 0.5, atol=1e-3)
