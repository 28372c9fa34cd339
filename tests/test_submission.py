"""IdLookupTable reading and Kaggle submission writing: order, clipping report, missing predictions."""
import numpy as np
import pytest

from facekeypoints.data import DataFormatError, KeypointData
from facekeypoints.data.formats.submission import read_id_lookup, write_submission


def _lookup(tmp_path, body: str, header: str = "RowId,ImageId,FeatureName,Location"):
    path = tmp_path / "IdLookupTable.csv"
    path.write_bytes((header + "\r\n" + body).encode())  # Kaggle's file uses CRLF
    return path


def test_reads_lookup_rows_in_order(tmp_path):
    path = _lookup(tmp_path, "1,1,left_eye_center_x,\r\n2,1,nose_tip_y\r\n3,2,mouth_left_corner_x,\r\n")  # 2: as Kaggle
    assert read_id_lookup(path) == [(1, 1, "left_eye_center_x"), (2, 1, "nose_tip_y"), (3, 2, "mouth_left_corner_x")]


@pytest.mark.parametrize("body, expected", [
    ("1,1,nose_tip_z,\r\n", r"row 1, field 'FeatureName': unknown feature 'nose_tip_z'; did you mean 'nose_tip_[xy]'"),
    ("1,1,nose_tip_x,\r\n1,2,nose_tip_y,\r\n", r"row 2, field 'RowId': duplicate RowId 1 \(also on row 1\)"),
    ("1,one,nose_tip_x,\r\n", r"row 1, field 'ImageId': not an integer: 'one'"),
    ("1,1,nose_tip_x,,\r\n", r"row 1: has 5 fields, the header has 4"),
    ("", "no data rows"),
])
def test_bad_lookup_rows(tmp_path, body, expected):
    with pytest.raises(DataFormatError, match=expected):
        read_id_lookup(_lookup(tmp_path, body))


def test_lookup_header_must_name_the_columns(tmp_path):
    with pytest.raises(DataFormatError, match=r"missing \['FeatureName'\], unknown \['Feature'\]"):
        read_id_lookup(_lookup(tmp_path, "1,1,nose_tip_x\r\n", header="RowId,ImageId,Feature"))


def _predictions(n: int = 2) -> KeypointData:
    keypoints = np.full((n, 15, 2), 48.0)
    keypoints[0, 10] = (10.5, 20.25)       # nose tip of ImageId 5
    keypoints[1, 0] = (-3.0, 101.0)        # left eye centre of ImageId 9 lies outside the image
    return KeypointData.from_arrays("kaggle15", keypoints, ids=["5", "9"])


def test_writes_one_answer_per_lookup_row_and_reports_clipping(tmp_path):
    rows = [(1, 9, "left_eye_center_x"), (2, 5, "nose_tip_x"), (3, 5, "nose_tip_y"), (4, 9, "left_eye_center_y"),
            (5, 9, "nose_tip_x")]
    report = write_submission(_predictions(), rows, tmp_path / "submission.csv")
    lines = (tmp_path / "submission.csv").read_text().splitlines()
    assert lines == ["RowId,Location", "1,0.0000", "2,10.5000", "3,20.2500", "4,95.0000", "5,48.0000"]
    assert (report.rows, report.clipped, report.clipped_row_ids) == (5, 2, (1, 4))


def test_array_predictions_need_image_ids(tmp_path):
    rows = [(1, 9, "nose_tip_x")]
    keypoints = _predictions().keypoints
    with pytest.raises(ValueError, match="needs image_ids"):
        write_submission(keypoints, rows, tmp_path / "s.csv")
    report = write_submission(keypoints, rows, tmp_path / "s.csv", image_ids=[5, 9])
    assert report.rows == 1 and (tmp_path / "s.csv").read_text().splitlines()[1] == "1,48.0000"
    report = write_submission(keypoints, [(1, 9, "left_eye_center_y")], tmp_path / "s.csv", image_ids=[5, 9],
                              image_size=(200, 200))
    assert report.clipped == 0 and (tmp_path / "s.csv").read_text().splitlines()[1] == "1,101.0000"


def test_missing_predictions_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"lk.csv: field 'ImageId': 2 of 3 rows ask for ImageIds the test file has "
                                         r"no face for \(the first: RowId 7, ImageId 3\)"):
        write_submission(_predictions(), [(7, 3, "nose_tip_x"), (8, 5, "nose_tip_x"), (9, 4, "nose_tip_x")],
                         tmp_path / "s.csv", lookup_source="lk.csv")
    data = _predictions()
    data.keypoints[0, 10] = np.nan
    with pytest.raises(ValueError, match=r"ImageId 5 nose_tip_x \(RowId 1\) is NaN"):
        write_submission(data, [(1, 5, "nose_tip_x")], tmp_path / "s.csv")
    with pytest.raises(ValueError, match="schema kaggle15"):
        write_submission(KeypointData.from_arrays("ibug68", np.zeros((1, 68, 2))), [], tmp_path / "s.csv")


@pytest.mark.shared_data
def test_real_lookup_table_gives_the_kaggle_shape(shared_data, tmp_path):
    rows = read_id_lookup(shared_data / "kaggle-fkd" / "IdLookupTable.csv")
    assert len(rows) == 27124 and rows[0] == (1, 1, "left_eye_center_x") and rows[-1][1] == 1783
    centre = KeypointData.from_arrays("kaggle15", np.full((1783, 15, 2), 47.5), ids=[str(i) for i in range(1, 1784)])
    report = write_submission(centre, rows, tmp_path / "submission.csv")
    lines = (tmp_path / "submission.csv").read_text().splitlines()
    assert report.rows == 27124 and report.clipped == 0 and len(lines) == 27125
    assert [int(line.split(",")[0]) for line in lines[1:]] == [r[0] for r in rows]
