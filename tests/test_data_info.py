"""`data info` summaries and `data verify` download checks, as functions and through the CLI."""
import hashlib
import json
import zipfile

import numpy as np
import pytest

from facekeypoints.cli import main
from facekeypoints.data import KeypointData
from facekeypoints.data.formats import verify
from facekeypoints.data.info import describe, format_description
from facekeypoints.data.formats.kaggle import write_kaggle_csv
from facekeypoints.data.formats.verify import Genuine, verify_kaggle_download


def _labels(patterns: list[tuple[list[int], int]]) -> np.ndarray:
    """Keypoints where each (labelled keypoint indices, rows) pattern occurs that many times."""
    rows = []
    for labelled, count in patterns:
        kp = np.full((15, 2), np.nan)
        kp[labelled] = 40.0
        rows += [kp] * count
    return np.stack(rows)


def test_describe_counts_labels_and_patterns():
    usual = [0, 1, 10, 14]
    data = KeypointData.from_arrays("kaggle15", _labels([(usual, 3), (list(range(15)), 2), ([], 1), ([0, 1], 4)]))
    info = describe(data)
    assert info["rows"] == 10 and info["fully_labelled"] == 2 and info["image_size"] is None
    assert info["labelled_per_keypoint"]["left_eye_center"] == 9
    assert info["labelled_per_keypoint"]["nose_tip"] == 5 and info["labelled_per_keypoint"]["left_eyebrow_inner_end"] == 2
    assert [p["count"] for p in info["missing_patterns"]] == [4, 3, 2, 1]
    assert info["missing_patterns"][1]["labelled"] == ["left_eye_center", "right_eye_center", "nose_tip",
                                                       "mouth_center_bottom_lip"]
    assert info["missing_patterns"][3]["labelled"] == []
    json.dumps(info)  # plain values only
    table = format_description(info)
    assert "fully labelled  2 (20.0%)" in table and "4 of 15: left_eye_center, right_eye_center, nose_tip" in table
    assert "all 15" in table and "none" in table


def test_image_size_summaries():
    kp = np.zeros((2, 15, 2))
    same = KeypointData.from_arrays("kaggle15", kp, images=np.zeros((2, 96, 96), np.uint8))
    assert describe(same)["image_size"] == [96, 96]
    varied = KeypointData.from_arrays("kaggle15", kp, images=[np.zeros((40, 30, 3), np.uint8), np.zeros((50, 20, 3), np.uint8)])
    assert describe(varied)["image_size"] == {"distinct": 2, "min": [40, 20], "max": [50, 30]}
    assert "2 sizes, from 40 x 20 to 50 x 30" in format_description(describe(varied))


def _training_file(tmp_path, rows: int = 4) -> tuple:
    keypoints = _labels([([0, 1, 10, 14], rows - 1), (list(range(15)), 1)])
    images = np.random.default_rng(0).integers(0, 256, (rows, 96, 96), dtype=np.uint8)
    path = write_kaggle_csv(KeypointData.from_arrays("kaggle15", keypoints, images=images), tmp_path / "training.csv")
    return path, keypoints


def test_cli_info_table_and_json(tmp_path, capsys):
    path, _ = _training_file(tmp_path)
    assert main(["data", "info", str(path)]) == 0
    table = capsys.readouterr().out
    assert "rows            4" in table and "96 x 96" in table and "fully labelled  1 (25.0%)" in table
    assert main(["data", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["rows"], info["fully_labelled"], info["image_size"]) == (4, 1, [96, 96])


def test_cli_skip_bad_writes_a_report(tmp_path, capsys):
    path, _ = _training_file(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0]  # row 2 loses its last pixel
    lines[4] = "abc," + lines[4].split(",", 1)[1]  # row 4: text where left_eye_center_x belongs
    path.write_text("\n".join(lines) + "\n")
    assert main(["data", "info", str(path)]) == 2
    assert "row 2, field 'Image': holds 9215 pixel values" in capsys.readouterr().err
    report = tmp_path / "skipped.txt"
    assert main(["data", "info", str(path), "--skip-bad", "--report", str(report), "--json"]) == 1  # partial
    out = capsys.readouterr()
    assert json.loads(out.out)["rows"] == 2 and "skipped 2 bad rows" in out.err
    listed = report.read_text().splitlines()
    assert len(listed) == 2 and "row 2, field 'Image'" in listed[0]
    assert "row 4, field 'left_eye_center_x': not a number: 'abc'" in listed[1]
    assert main(["data", "info", str(path), "--report", str(report)]) == 2  # --report needs --skip-bad


@pytest.mark.shared_data
@pytest.mark.parametrize("relative, rows, full", [
    ("fkd15-ytf/training.zip", 3045, 992),
    ("kaggle-fkd/training_keypoints_only.csv", 7049, 2140),
])
def test_cli_info_on_shared_data(shared_data, capsys, relative, rows, full):
    assert main(["data", "info", str(shared_data / relative), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["rows"], info["fully_labelled"]) == (rows, full)


@pytest.mark.shared_data
def test_cli_info_reads_other_formats_through_the_front_door(shared_data, capsys):
    assert main(["data", "info", str(shared_data / "ytf68" / "train.csv"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["schema"], info["rows"], info["fully_labelled"]) == ("ibug68", 3045, 3045)
    assert info["image_size"]["distinct"] > 1 and info["missing_patterns"][0]["count"] == 3045


# ---- verify -----------------------------------------------------------------------------------------
def test_verify_rejects_fake_files(tmp_path, capsys):
    (tmp_path / "training.csv").write_text("left_eye_center_x,Image\n")
    with zipfile.ZipFile(tmp_path / "test.zip", "w") as archive:
        archive.writestr("test.csv", "ImageId,Image\n")
    report = verify_kaggle_download(tmp_path)
    status = {c.name: c.status for c in report.checks}
    assert status == {"training.csv": "size differs", "test.csv": "size differs",
                      "IdLookupTable.csv": "missing", "SampleSubmission.csv": "missing"}
    assert not report.ok
    assert main(["data", "verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "IdLookupTable.csv      missing" in out and "SampleSubmission.csv   missing (optional)" in out


def test_verify_compares_sha256_and_prefixes(tmp_path, monkeypatch):
    """The genuine files are far too big for a test, so the table is pointed at small stand-ins."""
    content = b"RowId,ImageId,FeatureName,Location\r\n"
    digest = hashlib.sha256(content).hexdigest()
    table = {"training.csv": Genuine(len(content), digest), "test.csv": Genuine(len(content), digest),
             "IdLookupTable.csv": Genuine(len(content), "0" * 64), "SampleSubmission.csv": Genuine(len(content), digest[:8])}
    monkeypatch.setattr(verify, "GENUINE_FILES", table)
    (tmp_path / "training.csv").write_bytes(content)
    with zipfile.ZipFile(tmp_path / "test.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("test.csv", content)
    (tmp_path / "IdLookupTable.csv").write_bytes(content)
    (tmp_path / "SampleSubmission.csv").write_bytes(content)
    status = {c.name: c.status for c in verify_kaggle_download(tmp_path).checks}
    assert status == {"training.csv": "OK", "test.csv": "OK", "IdLookupTable.csv": "sha256 differs",
                      "SampleSubmission.csv": "OK"}
    table["IdLookupTable.csv"] = Genuine(len(content), digest)
    assert verify_kaggle_download(tmp_path).ok
    (tmp_path / "SampleSubmission.csv").unlink()  # optional
    assert verify_kaggle_download(tmp_path).ok
    (tmp_path / "test.zip").write_bytes(b"PK\x03\x04 broken")
    assert {c.name: c.status for c in verify_kaggle_download(tmp_path).checks}["test.csv"] == "unreadable"


@pytest.mark.shared_data
def test_verify_accepts_the_genuine_lookup_table(shared_data, capsys):
    report = verify_kaggle_download(shared_data / "kaggle-fkd")
    status = {c.name: c.status for c in report.checks}
    assert status["IdLookupTable.csv"] == "OK" and status["training.csv"] == "missing" and not report.ok
    assert main(["data", "verify", str(shared_data / "kaggle-fkd")]) == 1
    assert "IdLookupTable.csv      OK" in capsys.readouterr().out
