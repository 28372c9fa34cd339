"""Landmark file readers/writers and the format dispatcher, on generated files and the shared samples."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import DataFormatError, detect_format, read, read_coco_json, read_dlib_xml
from facekeypoints.data import read_aflw_mat, read_asf, read_ljson, read_pts, write_pts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = SHARED / "samples"


def shared(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"shared data {path} not present")
    return path


def _image(path: Path, h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """Write a random BGR image; return it as RGB (what the readers should give back)."""
    bgr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), bgr)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # jpg is lossy: compare to the decoded file


def _points(k: int, seed: int = 0, w: float = 80, h: float = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(0, 1, (k, 2)) * (w - 1, h - 1), 3)


# ---- .pts ----------------------------------------------------------------------------------------
def test_pts_round_trip_subtracts_one_and_loads_rgb(tmp_path):
    kp = _points(68)
    write_pts(kp, tmp_path / "face.pts")
    rgb = _image(tmp_path / "face.png")
    text = (tmp_path / "face.pts").read_text().splitlines()
    assert text[:3] == ["version: 1", "n_points: 68", "{"] and text[-1] == "}"
    assert float(text[3].split()[0]) == pytest.approx(kp[0, 0] + 1)  # the file is 1-based
    data = read_pts(tmp_path / "face.pts")
    assert data.schema.name == "ibug68" and data.keypoints.shape == (1, 68, 2)
    np.testing.assert_allclose(data.keypoints[0], kp, atol=1e-4)
    np.testing.assert_array_equal(data.images[0], rgb)
    assert data.paths == [str(tmp_path / "face.png")] and data.ids == ["face"]


def test_write_pts_rounds_to_its_precision_and_refuses_nan(tmp_path):
    kp = _points(68, seed=1) + 0.123456
    write_pts(kp, tmp_path / "a.pts", decimals=2)
    back = read_pts(tmp_path / "a.pts", load_images=False).keypoints[0]
    np.testing.assert_allclose(back, np.round(kp + 1, 2) - 1, atol=1e-4)
    kp[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"\[5\]"):
        write_pts(kp, tmp_path / "b.pts")


def test_pts_folder_is_recursive_and_sorted(tmp_path):
    for name, seed in (("b/two", 2), ("a/one", 1), ("three", 3)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_pts(_points(68, seed), tmp_path / f"{name}.pts")
        _image(tmp_path / f"{name}.jpg", h=40 + seed, seed=seed)
    data = read_pts(tmp_path)
    assert data.ids == ["a/one", "b/two", "three"]
    assert isinstance(data.images, list) and [im.shape[0] for im in data.images] == [41, 42, 43]
    np.testing.assert_allclose(data.keypoints[1], _points(68, 2), atol=1e-4)


def _pts_text(lines: list[str], n_points: int = 68) -> str:
    return f"version: 1\nn_points: {n_points}\n{{\n" + "\n".join(lines) + "\n}\n"


@pytest.mark.parametrize("text, message", [
    (_pts_text(["1 2"] * 67), r"line 71: n_points says 68 but 67 points"),
    (_pts_text(["1 2"] * 67, n_points=67), r"67 points; iBUG .pts files must have 68"),
    (_pts_text(["1 2"] * 10 + ["3 abc"] + ["1 2"] * 57), r"line 14: not a number in '3 abc'"),
    (_pts_text(["1 2 3"] + ["1 2"] * 67), r"line 4: expected two numbers"),
    ("version: 1\nn_points: 68\n" + "1 2\n" * 68, r"line 3: expected 'key: value' or '\{'"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 68, r"missing \} brace"),
    (_pts_text(["1 2"] * 68) + "extra\n", r"line 73: text after the closing brace"),
    ("version: 1\n{\n" + "1 2\n" * 68 + "}\n", r"n_points"),
    ("", r"file is empty"),
])
def test_bad_pts_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_pts(path, load_images=False)
    assert str(path) in str(err.value)


def test_binary_pts_and_missing_image_are_reported(tmp_path):
    (tmp_path / "bin.pts").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(DataFormatError, match="binary file"):
        read_pts(tmp_path / "bin.pts", load_images=False)
    write_pts(_points(68), tmp_path / "lonely.pts")
    with pytest.raises(DataFormatError, match=r"lonely.pts: image not found.*load_images=False"):
        read_pts(tmp_path / "lonely.pts")
    (tmp_path / "broken.pts").write_text((tmp_path / "lonely.pts").read_text())
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataFormatError, match=r"broken.jpg: cannot decode image"):
        read_pts(tmp_path / "broken.pts")


def test_skip_bad_lists_every_bad_file(tmp_path):
    write_pts(_points(68), tmp_path / "good.pts")
    (tmp_path / "short.pts").write_text(_pts_text(["1 2"] * 67))
    (tmp_path / "empty.pts").write_text("")
    data = read_pts(tmp_path, load_images=False, skip_bad=True)
    assert data.ids == ["good"] and len(data.skipped) == 2
    assert any("short.pts" in s and "67 points" in s for s in data.skipped)
    assert any("empty.pts" in s for s in data.skipped)
    with pytest.raises(DataFormatError):
        read_pts(tmp_path, load_images=False)


# ---- .asf ----------------------------------------------------------------------------------------
def _write_asf(path: Path, rel: np.ndarray, host: str | None, user_fields: bool = False) -> None:
    extra = "\t0.00\t0.00\t0.00" if user_fields else ""
    lines = ["#", "# number of model points", "#", str(len(rel)), "", "# model points"]
    lines += [f"0 \t4 \t{x:.8f} \t{y:.8f} \t{i} \t{max(i - 1, 0)} \t{i + 1}{extra}" for i, (x, y) in enumerate(rel)]
    lines += ["", "#", "# host image", "#"] + ([host] if host else [])
    path.write_text("\n".join(lines) + "\n")


def test_asf_scales_relative_points_by_image_size(tmp_path):
    rel = np.random.default_rng(3).uniform(0.1, 0.9, (58, 2))
    _write_asf(tmp_path / "07-3f.asf", rel, "07-3f.jpg", user_fields=True)
    _image(tmp_path / "07-3f.jpg", h=48, w=64)
    data = read_asf(tmp_path / "07-3f.asf")
    assert data.schema.name == "imm58" and data.person == ["07"] and data.images.shape == (1, 48, 64, 3)
    np.testing.assert_allclose(data.keypoints[0], rel * (64, 48), atol=1e-4)
    labels_only = read_asf(tmp_path / "07-3f.asf", load_images=False)  # size read from the image
    assert labels_only.images is None
    np.testing.assert_allclose(labels_only.keypoints, data.keypoints)


def test_asf_without_image_needs_image_size(tmp_path):
    rel = np.random.default_rng(4).uniform(0.1, 0.9, (58, 2))
    _write_asf(tmp_path / "12-1m.asf", rel, "12-1m.jpg")
    with pytest.raises(DataFormatError, match=r"12-1m.asf: image not found: looked for 12-1m.jpg.*image_size"):
        read_asf(tmp_path / "12-1m.asf", load_images=False)
    data = read_asf(tmp_path / "12-1m.asf", load_images=False, image_size=(480, 640))
    np.testing.assert_allclose(data.keypoints[0], rel * (640, 480), atol=1e-3)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("\n58\n", "\n57\n", 1), r"57 points; IMM .asf files must have 58"),
    (lambda t: t.replace("\t0.", "\tx.", 1), r"line 7: not a number"),
    (lambda t: t.replace("\t5 \t4 \t6", "\t4 \t4 \t6", 1), r"point number 4 out of range or repeated"),
    (lambda t: "# only a comment\n", r"no data lines"),
    (lambda t: t.replace("0.50000000", "5.00000000", 1), r"line 7: relative coordinates must lie in \[0, 1\], got "
                                                          r"x = 5.00000000"),
    (lambda t: t.replace("0.50000000", "nan", 1), r"line 7: relative coordinates must lie in \[0, 1\], got x = nan"),
    (lambda t: t.replace("\t0.50000000 \t5", "\t-0.1 \t5", 1), r"line 12: relative coordinates .* y = -0.1"),
    (lambda t: t.replace("\n58\n", "\n\u00b2\n", 1), r"expected the number of points, got '\u00b2'"),
])
def test_bad_asf(tmp_path, edit, message):
    path = tmp_path / "01-1m.asf"
    _write_asf(path, np.full((58, 2), 0.5), None)
    path.write_text(edit(path.read_text()))
    with pytest.raises(DataFormatError, match=message):
        read_asf(path, load_images=False, image_size=(10, 10))


# ---- absurd values in per-face files ----------------------------------------------------------------
@pytest.mark.parametrize("line, message", [
    ("nan 5", r"line 4: x is NaN where a number is required"),
    ("5 -inf", r"line 4: y = -inf is not a finite number"),
    ("1e30 5", r"line 4: x = 1e\+30 is more than 100000 px from any image"),
])
def test_pts_numbers_must_be_finite_and_plausible(tmp_path, line, message):
    path = tmp_path / "bad.pts"
    path.write_text(_pts_text([line] + ["1 2"] * 67))
    with pytest.raises(DataFormatError, match=message) as err:
        read_pts(path, load_images=False)
    assert str(path) in str(err.value)


def test_points_more_than_an_image_size_outside_it(tmp_path):
    """-W <= x <= 2W, -H <= y <= 2H: a label may stray past the border, not by a whole image."""
    kp = _points(68)
    kp[0] = (159.0, -59.0)  # inside the bounds of the 80 x 60 image
    write_pts(kp, tmp_path / "near.pts")
    _image(tmp_path / "near.png")
    assert len(read_pts(tmp_path / "near.pts")) == 1
    kp[5] = (161.0, 10.0)  # file value 162: more than 80 px right of the image
    write_pts(kp, tmp_path / "far.pts")
    _image(tmp_path / "far.png")
    with pytest.raises(DataFormatError, match=r"far.pts: line 9: x = 162 is more than one image size \(80 px\) "
                                              r"beyond the edge of the 80 x 60 image"):
        read_pts(tmp_path / "far.pts")
    assert len(read_pts(tmp_path / "far.pts", load_images=False)) == 1  # no image, no size: only +-100000 px
    data = read_pts(tmp_path, skip_bad=True)
    assert data.ids == ["near"] and len(data.skipped) == 1 and "far.pts" in data.skipped[0]


# ---- malformed structures: the file and the entry or field are named --------------------------------
def _coco_doc(**annotation) -> dict:
    flat = [v for x, y in _points(68, 7) for v in (float(x), float(y), 2)]
    return {"images": [{"id": 9, "file_name": "img.png", "height": 60, "width": 80}],
            "annotations": [{"id": 1, "image_id": 9, "keypoints": flat} | annotation]}


@pytest.mark.parametrize("doc, field, message", [
    (_coco_doc(keypoints=[{"x": 1, "y": 2, "v": 2}] * 204), "keypoints", "not a number: {'x': 1, 'y': 2, 'v': 2}"),
    (_coco_doc(keypoints=[True, 2.0, 2] * 68), "keypoints", "not a number: True (point 0)"),
    (_coco_doc(keypoints=[1.0, 2.0, 7] * 68), "keypoints", "point 0: visibility v = 7, expected 0, 1 or 2"),
    (_coco_doc(keypoints=[1e30, 2.0, 2] * 68), "keypoints", "point 0: x = 1e+30 is more than one image size (80 px)"),
    (_coco_doc(keypoints=[5.0, 130.0, 1] * 68), "keypoints", "point 0: y = 130 is more than one image size (60 px)"),
    (_coco_doc(keypoints=[float("nan"), 2.0, 2] * 68), "keypoints", "point 0: x is NaN where a number is required"),
    (_coco_doc(bbox=5), "bbox", "bbox must be [x, y, width, height], four numbers: got 5"),
    (_coco_doc(bbox=["1", "2", "3", "4"]), "bbox", "'1' is not a number"),
    (_coco_doc(bbox=[0, 0, float("inf"), 10]), "bbox", "inf is not a finite number"),
    (_coco_doc(bbox=[0, 0, 1e9, 10]), "bbox", "corner x + width, y + height: x = 1e+09 is more than one image size"),
    (_coco_doc(image_id=[9]), "image_id", "image_id [9] is not in 'images'"),
    (_coco_doc(id={"a": 1}), "id", "id must be an integer or text"),
    (_coco_doc() | {"images": {"id": 9}}, "images", "'images' must be a list of objects"),
    (_coco_doc() | {"images": [[9, "img.png"]]}, "images", "images[0] must be an object with an id"),
    (_coco_doc() | {"images": [{"id": 9}]}, "images", "and a file_name, got {'id': 9}"),
    (_coco_doc() | {"images": [{"id": 9, "file_name": "img.png", "width": "80"}]}, "image_id",
     "width and height must be numbers"),
    (_coco_doc() | {"annotations": [[1, 2]]}, None, "annotation is not an object: [1, 2]"),
])
def test_malformed_coco_json(tmp_path, doc, field, message):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))  # NaN and inf as NaN and Infinity, which Python's json reads
    with pytest.raises(DataFormatError) as err:
        read_coco_json(path, load_images=False)
    assert str(err.value).startswith(str(path)) and err.value.field == field and message in str(err.value)
    assert err.value.row == (None if field == "images" else 0)


def _ljson_doc(points: list) -> dict:
    return {"version": 2, "landmarks": {"points": points}}


@pytest.mark.parametrize("doc, field, message", [
    (_ljson_doc([{"x": 1, "y": 2}] * 68), "landmarks.points", "point 0 is not [y, x]: {'x': 1, 'y': 2}"),
    (_ljson_doc([[1, 2, 3]] * 68), "landmarks.points", "point 0 is not [y, x]: [1, 2, 3]"),
    (_ljson_doc([["1", "2"]] * 68), "landmarks.points", "point 0: '2' is not a number"),
    (_ljson_doc([[float("nan"), 2.0]] * 68), "landmarks.points", "point 0: nan is not a finite number"),
    (_ljson_doc([[2.0, 1e30]] * 68), "landmarks.points", "point 0: x = 1e+30 is more than 100000 px"),
    (_ljson_doc(68), "landmarks.points", "expected a list of [y, x] points, got 68"),
    ({"landmarks": {"connectivity": []}}, "landmarks.points", "expected a list of [y, x] points, got None"),
    ({"groups": {"LJSON": [[1, 2]] * 68}}, "groups.LJSON", "expected an object with a 'landmarks' object"),
    ({"groups": {"LJSON": {"landmarks": [[1, 2]]}}}, "groups.LJSON", "got {'landmarks': [[1, 2]]}"),
])
def test_malformed_ljson(tmp_path, doc, field, message):
    path = tmp_path / "face.ljson"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as err:
        read_ljson(path, load_images=False)
    assert str(err.value).startswith(str(path)) and err.value.field == field and message in str(err.value)


@pytest.mark.parametrize("value, message", [
    (np.ones(68), r"expected a \(3, 68\) array, got shape \(1, 68\)"),
    (np.ones((3, 68, 2)), r"got shape \(3, 68, 2\)"),
    ({"x": 1}, r"got shape \(1, 1\)"),  # a MATLAB struct
    (np.array([["a"] * 68] * 3), r"expected a \(3, 68\) array of real numbers, got <U1 values"),
    (np.ones((3, 68)) + 1j, r"of real numbers, got complex128 values"),
    (np.full((3, 68), np.nan), r"point 0: x is NaN where a number is required"),
    (np.full((3, 68), -1e30), r"point 0: x = -1e\+30 is more than 100000 px"),
])
def test_malformed_aflw_mat(tmp_path, value, message):
    scipy_io = pytest.importorskip("scipy.io", reason="reading .mat needs scipy")
    scipy_io.savemat(tmp_path / "image0001.mat", {"pt3d_68": value})
    with pytest.raises(DataFormatError, match=message) as err:
        read_aflw_mat(tmp_path / "image0001.mat", load_images=False)
    assert str(err.value).startswith(str(tmp_path / "image0001.mat")) and err.value.field == "pt3d_68"


def _dlib_xml(path: Path, parts: str, box: str = "top='5' left='7' width='30' height='20'") -> Path:
    path.write_text(f"<dataset><images><image file='pic.png'><box {box}>{parts}</box></image></images></dataset>")
    return path


@pytest.mark.parametrize("parts, box, message", [
    ("<part name='36' x='1' y='2'/><part name='36' x='5' y='6'/>", None, "box 0: part 36 appears more than once"),
    ("<part name='36' x='1' y='2'/><part name='036' x='5' y='6'/>", None, "box 0: part 036 appears more than once"),
    ("<part name='36' x='nan' y='2'/>", None, "box 0: part 36: x is NaN where a number is required"),
    ("<part name='36' x='1' y='1e30'/>", None, "box 0: part 36: y = 1e+30 is more than 100000 px"),
    ("<part name='\u00b2' x='1' y='2'/>", None, "box 0: part name '\u00b2' is not a number 00..67"),
    ("", "top='inf' left='1' width='2' height='2'", "box 0: box left, top: y = inf is not a finite number"),
])
def test_malformed_dlib_xml(tmp_path, parts, box, message):
    path = _dlib_xml(tmp_path / "faces.xml", parts, *([box] if box else []))
    with pytest.raises(DataFormatError) as err:
        read_dlib_xml(path, load_images=False)
    assert str(err.value).startswith(f"{path}") and f"image 'pic.png', {message}" in str(err.value)


# ---- dlib XML, ljson, COCO JSON, .mat --------------------------------------------------------------
def test_dlib_xml_boxes_parts_and_empty_boxes(tmp_path):
    kp = np.round(_points(68, 5))
    parts = "".join(f"<part name='{i:02d}' x='{x:.0f}' y='{y:.0f}'/>" for i, (x, y) in enumerate(kp))
    (tmp_path / "faces.xml").write_text(
        "<?xml version='1.0'?><dataset><images><image file='pic.png'>"
        f"<box top='5' left='7' width='30' height='20'>{parts}</box>"
        "<box top='1' left='2' width='3' height='4'/></image></images></dataset>")
    rgb = _image(tmp_path / "pic.png")
    data = read_dlib_xml(tmp_path / "faces.xml")
    assert len(data) == 2 and data.ids == ["pic#0", "pic#1"]
    np.testing.assert_array_equal(data.keypoints[0], kp)
    assert np.isnan(data.keypoints[1]).all()
    np.testing.assert_array_equal(data.boxes, [[7, 5, 37, 25], [2, 1, 5, 5]])
    np.testing.assert_array_equal(data.images[1], rgb)
    (tmp_path / "bad.xml").write_text(
        "<dataset><images><image file='pic.png'><box top='1' left='2' width='3' height='4'>"
        "<part name='eye' x='1' y='2'/></box></image></images></dataset>")
    with pytest.raises(DataFormatError, match=r"bad.xml.*box 0: part name 'eye'"):
        read_dlib_xml(tmp_path / "bad.xml", load_images=False)
    (tmp_path / "broken.xml").write_text("<dataset>\n<images>\n<image file='a.png'>\n</dataset>")
    with pytest.raises(DataFormatError, match=r"broken.xml: line 4: not well-formed"):
        read_dlib_xml(tmp_path / "broken.xml")


def test_ljson_swaps_y_x_and_keeps_nulls(tmp_path):
    kp = _points(68, 6)
    points = [[float(y), float(x)] for x, y in kp]
    points[10] = None
    points[11] = [None, None]
    doc = {"version": 3, "groups": {"pupils": {"landmarks": {"points": [[1, 2], [3, 4]]}},
                                    "LJSON": {"landmarks": {"points": points, "connectivity": []}, "labels": []}}}
    (tmp_path / "face.ljson").write_text(json.dumps(doc))
    _image(tmp_path / "face.jpg")
    data = read_ljson(tmp_path / "face.ljson")
    assert np.isnan(data.keypoints[0, 10:12]).all()
    np.testing.assert_allclose(np.delete(data.keypoints[0], [10, 11], axis=0), np.delete(kp, [10, 11], axis=0),
                               atol=1e-4)
    doc["groups"].pop("LJSON")
    (tmp_path / "face.ljson").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"no 68-point group.*'pupils': 2"):
        read_ljson(tmp_path / "face.ljson", load_images=False)


def _coco(tmp_path: Path, k: int, with_image: bool = True) -> Path:
    flat = []
    for i, (x, y) in enumerate(_points(k, 7)):
        flat += [float(x), float(y), 0 if i == 3 else 2]
    doc = {"images": [{"id": 9, "file_name": "sub/img.png", "height": 60, "width": 80}],
           "annotations": [{"id": 1, "image_id": 9, "keypoints": flat, "bbox": [10, 20, 30, 40]},
                           {"id": 2, "image_id": 9, "keypoints": flat}]}
    if with_image:
        (tmp_path / "sub").mkdir()
        _image(tmp_path / "sub" / "img.png")
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return tmp_path / "ann.json"


def test_coco_json_visibility_boxes_and_images(tmp_path):
    data = read_coco_json(_coco(tmp_path, 68))
    assert data.schema.name == "ibug68" and data.ids == ["img#1", "img#2"] and data.images.shape == (2, 60, 80, 3)
    assert np.isnan(data.keypoints[:, 3]).all() and not np.isnan(np.delete(data.keypoints, 3, axis=1)).any()
    np.testing.assert_allclose(data.keypoints[0, :3], _points(68, 7)[:3], atol=1e-4)
    np.testing.assert_array_equal(data.boxes[0], [10, 20, 40, 60])
    assert np.isnan(data.boxes[1]).all()


def test_coco_json_unknown_point_count_and_missing_image(tmp_path):
    path = _coco(tmp_path, 19, with_image=False)
    with pytest.raises(DataFormatError, match=r"19-point annotations have no built-in schema; supported point "
                                              r"counts: 68 \(ibug68\)"):
        read_coco_json(path, load_images=False)
    (tmp_path / "k68").mkdir()
    with pytest.raises(DataFormatError, match=r"ann.json: annotation 0: image .*img.png not found"):
        read_coco_json(_coco(tmp_path / "k68", 68, with_image=False))


def test_aflw_mat_uses_x_y_rows(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason="reading .mat needs scipy")
    pts = np.vstack([_points(68, 8).T, np.ones((1, 68))])
    scipy_io.savemat(tmp_path / "image0001.mat", {"pt3d_68": pts})
    _image(tmp_path / "image0001.jpg")
    data = read_aflw_mat(tmp_path)
    np.testing.assert_allclose(data.keypoints[0], pts[:2].T, atol=1e-4)
    scipy_io.savemat(tmp_path / "image0001.mat", {"pt2d": pts[:2, :21]})
    with pytest.raises(DataFormatError, match=r"field 'pt3d_68': expected a \(3, 68\) array, got absent"):
        read_aflw_mat(tmp_path / "image0001.mat")


# ---- dispatcher ------------------------------------------------------------------------------------
def test_read_detects_formats_and_converts_schema(tmp_path):
    write_pts(_points(68, 9), tmp_path / "face.pts")
    (tmp_path / "face.txt").write_text((tmp_path / "face.pts").read_text())  # found by content
    (tmp_path / "menpo.json").write_text(json.dumps({"landmarks": {"points": [[1.0, 2.0]] * 68}}))
    assert detect_format(tmp_path / "face.txt") == "pts"
    assert detect_format(tmp_path / "menpo.json") == "ljson"
    (tmp_path / "coco").mkdir()
    assert detect_format(_coco(tmp_path / "coco", 68)) == "coco_json"
    data = read(tmp_path / "face.pts", schema="kaggle15", load_images=False)
    assert data.schema.name == "kaggle15" and data.keypoints.shape == (1, 15, 2)
    raw = read(tmp_path / "face.pts", load_images=False).keypoints[0]
    np.testing.assert_allclose(data.keypoints[0, 10], raw[30], atol=1e-5)  # nose tip = iBUG point 30
    np.testing.assert_allclose(data.keypoints[0, 1], raw[36:42].mean(axis=0), atol=1e-4)  # right eye centre


def test_read_unknown_or_ambiguous_input_lists_formats(tmp_path):
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(DataFormatError, match=r"notes.md: cannot tell the format.*Supported formats: kaggle"):
        read(tmp_path / "notes.md")
    (tmp_path / "table.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataFormatError, match=r"CSV header \['a', 'b', 'c'\].*Supported formats"):
        read(tmp_path / "table.csv")
    with pytest.raises(DataFormatError, match="folder holds no .pts/.asf/.ljson/.mat"):
        read(tmp_path)
    write_pts(_points(68), tmp_path / "x.pts")
    (tmp_path / "y.asf").write_text("58\n")
    with pytest.raises(DataFormatError, match=r"several annotation formats \(\['asf', 'pts'\]"):
        read(tmp_path)
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "absent.pts")


def test_read_dispatches_csv_layouts(tmp_path):
    from facekeypoints.data import KeypointData
    from facekeypoints.data.formats.kaggle import write_kaggle_csv

    kp = _points(15, 10, w=96, h=96)[None].repeat(2, axis=0)
    kp[1, 3] = np.nan
    images = np.random.default_rng(0).integers(0, 256, (2, 96, 96), dtype=np.uint8)
    write_kaggle_csv(KeypointData.from_arrays("kaggle15", kp, images=images), tmp_path / "train.csv")
    assert detect_format(tmp_path / "train.csv") == "kaggle"
    back = read(tmp_path / "train.csv")
    np.testing.assert_allclose(back.keypoints, kp, atol=1e-3)
    np.testing.assert_array_equal(back.images, images)
    header = ["image", "person"] + [f"{a}{i}" for i in range(68) for a in "xy"]
    (tmp_path / "images" / "train").mkdir(parents=True)
    rgb = _image(tmp_path / "images" / "train" / "ann_01.png")
    kp68 = _points(68, 11)
    row = ["train/ann_01.png", "Ann"] + [f"{v:.3f}" for v in kp68.ravel()]
    (tmp_path / "ytf.csv").write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    assert detect_format(tmp_path / "ytf.csv") == "ytf68"
    faces = read(tmp_path / "ytf.csv", schema="kaggle15")
    assert faces.schema.name == "kaggle15" and faces.person == ["Ann"]
    np.testing.assert_allclose(faces.keypoints[0, 10], kp68[30], atol=1e-3)
    np.testing.assert_array_equal(faces.images[0], rgb)
    (tmp_path / "udacity.csv").write_text(",".join([""] + [str(i) for i in range(136)]) + "\n")
    assert detect_format(tmp_path / "udacity.csv") == "udacity"
    (tmp_path / "IdLookupTable.csv").write_text("RowId,ImageId,FeatureName,Location\n1,1,nose_tip_x,\n")
    with pytest.raises(DataFormatError, match="IdLookupTable.*read_id_lookup"):
        read(tmp_path / "IdLookupTable.csv")


# ---- the shared samples (real files) ---------------------------------------------------------------
@pytest.mark.shared_data
def test_300w_pts_samples():
    data = read(shared("samples/300w-pts"))
    assert len(data) == 17 and data.keypoints.shape == (17, 68, 2) and not np.isnan(data.keypoints).any()
    for i in range(len(data)):
        h, w = data.image_size(i)
        kp = data.keypoints[i]
        assert kp[:, 0].min() > -5 and kp[:, 0].max() < w + 5 and kp[:, 1].max() < h + 5, data.ids[i]
        assert kp[36:42, 0].mean() < kp[42:48, 0].mean()  # subject's right eye on the image's left


@pytest.mark.shared_data
def test_imm_database():
    data = read(shared("imm/imm_face_db"), load_images=False)
    assert len(data) == 240 and data.keypoints.shape == (240, 58, 2)
    assert len(set(data.person)) == 40 and all(data.person.count(p) == 6 for p in set(data.person))
    kp = data.keypoints
    assert (kp[..., 0] > 0).all() and (kp[..., 0] < 640).all() and (kp[..., 1] > 0).all() and (kp[..., 1] < 480).all()
    one = read_asf(shared("imm/imm_face_db/01-1m.asf"))
    assert one.images.shape == (1, 480, 640, 3)
    np.testing.assert_allclose(one.keypoints[0], kp[0], atol=1e-4)


@pytest.mark.shared_data
def test_dlib_examples_counts():
    train = read(shared("samples/dlib-examples/training_with_face_landmarks.xml"))
    test = read(shared("samples/dlib-examples/testing_with_face_landmarks.xml"), load_images=False)
    assert len(train) + len(test) == 43 and len(train) == 18
    assert not np.isnan(train.keypoints).any() and len(train.images) == 18
    boxes, kp = train.boxes, train.keypoints
    inside = (kp[..., 0] >= boxes[:, None, 0] - 5) & (kp[..., 0] <= boxes[:, None, 2] + 5)
    assert inside.mean() > 0.95
    no_parts = read(shared("samples/dlib-examples/training.xml"), load_images=False)
    assert len(no_parts) == 18 and np.isnan(no_parts.keypoints).all()


@pytest.mark.shared_data
def test_lenna_ljson():
    data = read(shared("samples/menpo/lenna.ljson"))
    kp = data.keypoints[0]
    assert data.images.shape == (1, 512, 512, 3) and not np.isnan(kp).any()
    assert kp[0, 0] < kp[16, 0]  # the jaw runs from the image's left to its right...
    assert kp[17:27, 1].mean() < kp[36:48, 1].mean() < kp[48:68, 1].mean()  # ...brows above eyes above mouth


@pytest.mark.shared_data
def test_mmpose_and_aflw_samples():
    root = shared("samples/mmpose/tests/data")
    assert len(read(root / "300w/test_300w.json", load_images=False)) == 2
    assert len(read(root / "300vw/anno_300vw.json")) == 3
    for name, k in (("aflw", 19), ("cofw", 29), ("wflw", 98), ("lapa", 106)):
        with pytest.raises(DataFormatError, match=f"{k}-point annotations have no built-in schema"):
            read(root / name / f"test_{name}.json", load_images=False)
    pytest.importorskip("scipy.io", reason="reading .mat needs scipy")
    data = read(shared("samples/aflw2000-3d/AFLW2000"), load_images=False)
    assert data.keypoints.shape == (16, 68, 2) and (data.keypoints > -50).all() and (data.keypoints < 500).all()
