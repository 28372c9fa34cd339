"""Round-9 audit findings on the data layer and the ``data`` commands (tiny synthetic inputs).

- P1: ``data convert --skip-bad`` named one read-skipped file and ten unaligned faces, yet said
  "listed above": up to 20 of each are listed; past that the summary says how many it does not
  show, and ``--report FILE`` writes every left-out face with its reason.
- P2: a dlib XML of 5-point boxes (parts 00..04) read as ibug68 jaw points 0-4: refused.
- P3: ``data info --report`` could be written inside the folder being read: refused.
- P4: COCO ``images[i].width/height`` (and dlib ``<image width= height=>``) contradicting the real
  image were ignored: an error naming the field; without the image, an error against the declared
  size says where that size comes from.
- P5: a ``.pts`` value past float32's range was reported as "inf" with a numpy overflow warning.
- P6: ljson 68-point groups equal in value but written as ints and floats were "several groups".
- P7: a truncated AFLW2000 ``.mat`` was reported as lacking ``pt3d_68``: it is named truncated.
- P8: ``data verify`` on a broken zip did not name the zip.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import DataFormatError, read, read_coco_json, read_dlib_xml
from facekeypoints.data.formats.landmarks import read_aflw_mat, read_ljson, read_pts
from fakes import run_cli, ytf68_csv


# ---- P1 ---------------------------------------------------------------------------------------------
def test_convert_skip_bad_lists_every_bad_row_it_left_out(tmp_path, capsys):
    src = ytf68_csv(tmp_path / "d", 5, text_rows=(1, 3))
    code, out, err = run_cli(["data", "convert", src, "-o", tmp_path / "k.csv", "--skip-bad"], capsys)
    assert code == 1
    assert "left out when reading (skip_bad): 2" in out
    assert "row 2" in out and "row 4" in out  # both, not "e.g." the first
    assert "partial: 2 of 5 faces left out (listed above)" in err


def test_convert_says_what_it_does_not_show_and_report_writes_every_face(tmp_path, capsys):
    src = ytf68_csv(tmp_path / "d", 26, empty_rows=range(2, 26))  # 24 faces cannot be aligned
    code, out, err = run_cli(["data", "convert", src, "-o", tmp_path / "k.csv"], capsys)
    assert code == 1
    assert "listed above" not in err
    assert "partial: 24 of 26 faces left out (4 not shown above; --report FILE writes them all)" in err
    assert "... and 4 more left out, not shown" in out
    report = tmp_path / "left_out.txt"
    code, out, err = run_cli(["data", "convert", src, "-o", tmp_path / "k2.csv", "--report", report], capsys)
    assert code == 1 and f"partial: 24 of 26 faces left out (listed in {report})" in err
    lines = report.read_text().splitlines()
    assert len(lines) == 24 and all(f"'train/face{r}.png' not converted" in lines[r - 2] for r in range(2, 26))


def test_convert_report_inside_the_source_folder_or_on_the_output_is_refused(tmp_path, capsys):
    src = ytf68_csv(tmp_path / "d", 3, empty_rows=(1,))
    code, _, err = run_cli(["data", "convert", tmp_path / "d", "-o", tmp_path / "k.csv",
                            "--report", tmp_path / "d" / "r.txt"], capsys)
    assert code == 2 and "is inside" in err and not (tmp_path / "d" / "r.txt").exists()
    code, _, err = run_cli(["data", "convert", src, "-o", tmp_path / "k.csv", "--report", tmp_path / "k.csv"], capsys)
    assert code == 2 and "same file" in err and not (tmp_path / "k.csv").exists()


# ---- P2 ---------------------------------------------------------------------------------------------
def _dlib_xml(path: Path, boxes: list[str], image_attrs: str = "") -> Path:
    body = "".join(f"<box top='10' left='10' width='40' height='40'>{b}</box>" for b in boxes)
    path.write_text(f"<dataset><images><image file='a.png'{image_attrs}>{body}</image></images></dataset>")
    return path


def _parts(indices) -> str:
    return "".join(f"<part name='{i:02d}' x='{12 + i % 30}' y='{12 + i // 30}'/>" for i in indices)


def test_dlib_five_point_boxes_are_refused_not_read_as_jaw_points(tmp_path):
    path = _dlib_xml(tmp_path / "five.xml", [_parts(range(5)), _parts(range(5)), ""])
    with pytest.raises(DataFormatError, match=r"five\.xml.*exactly the 5 parts 00\.\.04.*5-point"):
        read_dlib_xml(path, load_images=False)
    with pytest.raises(DataFormatError, match="5-point"):
        read_dlib_xml(path, load_images=False, skip_bad=True)  # the file as a whole is not 68-point


def test_dlib_partial_68_point_boxes_still_read(tmp_path):
    path = _dlib_xml(tmp_path / "p.xml", [_parts(range(5)), _parts(range(68)), _parts([36]), ""])
    data = read_dlib_xml(path, load_images=False)
    assert len(data) == 4 and data.schema.name == "ibug68"
    one = _dlib_xml(tmp_path / "one.xml", [_parts([36, 45, 30])])  # a few points, not 00..n-1
    assert len(read_dlib_xml(one, load_images=False)) == 1


# ---- P3 ---------------------------------------------------------------------------------------------
def test_info_report_inside_the_folder_read_is_refused(tmp_path, capsys, shared_data):
    src = tmp_path / "src"
    src.mkdir()
    for f in (shared_data / "samples" / "300w-pts" / "lfpw-a").glob("*.pts"):
        (src / f.name).write_bytes(f.read_bytes())
    (src / "bad.pts").write_text("version: 1\nn_points: 3\n{\n1 1\n2 2\n3 3\n}\n")
    code, _, err = run_cli(["data", "info", src, "--skip-bad", "--report", src / "skipped.txt"], capsys)
    assert code == 2 and "is inside" in err and not (src / "skipped.txt").exists()
    code, _, err = run_cli(["data", "info", src, "--skip-bad", "--report", tmp_path / "skipped.txt"], capsys)
    assert code == 1 and "bad.pts" in (tmp_path / "skipped.txt").read_text()


# ---- P4 ---------------------------------------------------------------------------------------------
def _coco_with_image(tmp_path: Path, width: int, height: int) -> Path:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((60, 80, 3), np.uint8))  # 80 wide, 60 high
    kp = [v for i in range(68) for v in (10.0 + i % 60, 10.0 + i // 60, 2)]
    doc = {"images": [{"id": 7, "file_name": "a.png", "width": width, "height": height}],
           "annotations": [{"id": 0, "image_id": 7, "keypoints": kp}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    return tmp_path / "a.json"


def test_coco_declared_size_contradicting_the_image_is_an_error(tmp_path):
    path = _coco_with_image(tmp_path, 800, 60)
    with pytest.raises(DataFormatError, match=r"field 'images\[0\]\.width'.*declare 800 x 60.*image is 80 x 60"):
        read_coco_json(path)
    assert len(read_coco_json(_coco_with_image(tmp_path, 80, 60))) == 1


def test_coco_point_beyond_the_declared_size_names_the_declared_fields(tmp_path):
    path = _coco_with_image(tmp_path, 5, 5)
    # round 12: where the photo is there, labels alone are checked against its header size first
    with pytest.raises(DataFormatError, match=r"declare 5 x 5 \(width x height\), but the image is 80 x 60"):
        read_coco_json(path, load_images=False)
    (tmp_path / "a.png").unlink()  # without the photo, the declared size is all there is
    with pytest.raises(DataFormatError, match=r"field 'keypoints'.*declared images\[0\]\.width and \.height"):
        read_coco_json(path, load_images=False)


def test_dlib_image_size_attributes_contradicting_the_image_are_an_error(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((60, 80, 3), np.uint8))
    path = _dlib_xml(tmp_path / "x.xml", [_parts(range(68))], " width='40' height='60'")
    with pytest.raises(DataFormatError, match=r"field 'width'.*declare 40 x 60.*image is 80 x 60"):
        read_dlib_xml(path)
    assert len(read_dlib_xml(_dlib_xml(tmp_path / "y.xml", [_parts(range(68))], " width='80' height='60'"))) == 1


# ---- P5 ---------------------------------------------------------------------------------------------
def test_pts_value_past_float32_is_named_as_written_without_a_warning(tmp_path):
    (tmp_path / "a.pts").write_text("version: 1\nn_points: 68\n{\n1e300 5\n" + "10 10\n" * 67 + "}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataFormatError, match=r"line 4: x = 1e\+300 is more than 100000 px from any image"):
            read_pts(tmp_path / "a.pts", load_images=False)


# ---- P6 ---------------------------------------------------------------------------------------------
def test_ljson_groups_equal_in_value_are_one_group(tmp_path):
    pts = [[float(100 + i), float(100 + i)] for i in range(68)]
    same = [list(p) for p in pts]
    same[0] = [100, 100]
    same[5] = None
    pts[5] = [None, None]
    (tmp_path / "x.ljson").write_text(json.dumps({"groups": {"a": {"landmarks": {"points": pts}},
                                                             "b": {"landmarks": {"points": same}}}}))
    data = read_ljson(tmp_path / "x.ljson", load_images=False)
    assert data.keypoints[0, 0].tolist() == [100.0, 100.0] and np.isnan(data.keypoints[0, 5]).all()
    same[1] = [1.0, 2.0]
    (tmp_path / "x.ljson").write_text(json.dumps({"groups": {"a": {"landmarks": {"points": pts}},
                                                             "b": {"landmarks": {"points": same}}}}))
    with pytest.raises(DataFormatError, match="several different 68-point groups"):
        read_ljson(tmp_path / "x.ljson", load_images=False)


# ---- P7 ---------------------------------------------------------------------------------------------
def test_truncated_mat_is_named_truncated_not_missing_its_field(tmp_path):
    from scipy.io import savemat

    full = tmp_path / "full.mat"
    savemat(full, {"Shape_Para": np.ones((199, 1)), "roi": np.arange(4), "pt3d_68": np.ones((3, 68))})
    assert len(read_aflw_mat(full, load_images=False)) == 1
    raw = full.read_bytes()
    for cut in (600, len(raw) - 100):  # inside the first variable; inside pt3d_68 itself
        (tmp_path / "cut.mat").write_bytes(raw[:cut])
        with pytest.raises(DataFormatError, match=r"cut\.mat: truncated or damaged MATLAB file: .*truncated") as err:
            read_aflw_mat(tmp_path / "cut.mat", load_images=False)
        assert "absent" not in str(err.value)


def test_truncated_aflw2000_mat_is_named_truncated(tmp_path, shared_data):
    genuine = shared_data / "samples" / "aflw2000-3d" / "AFLW2000" / "image00050.mat"
    if not genuine.is_file():
        pytest.skip(f"{genuine} not present")
    (tmp_path / "image00050.mat").write_bytes(genuine.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"image00050\.mat: truncated or damaged MATLAB file"):
        read(tmp_path / "image00050.mat", load_images=False)


# ---- P8 ---------------------------------------------------------------------------------------------
def test_verify_names_a_broken_zip(tmp_path, capsys):
    (tmp_path / "training.zip").write_bytes(b"not a zip at all\n")
    code, out, _ = run_cli(["data", "verify", tmp_path], capsys)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("training.csv"))
    assert "unreadable" in line and f"{tmp_path / 'training.zip'}: not a readable zip archive" in line
