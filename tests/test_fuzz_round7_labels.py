"""Round 7 of bad inputs for the label readers (ytf68 CSV, COCO JSON, menpo ljson, dlib XML, IMM .asf):
each case was once read without a word, or --skip-bad did not apply; each is now a one-line error
naming the file and row, or a listed skip (synthetic files only).

- F5 (Y01): a ytf68 quote never closed made the rest of the file one bad row (rows 3-6 lost under
  --skip-bad); now an error naming the line it opens on. A quoted line break is named with its lines.
- F6 (J01, J02, J04): a JSON key repeated in one object (two 'annotations', two 'keypoints', two
  'points'): the last one silently won; now "key ... repeated".
- F7 (J03, J20): the JSON format was told by substrings (a label named "annotations" made an ljson
  file COCO; "landmarks" in COCO's info made it ljson); now by the parsed document's top-level keys,
  and a .ljson file is ljson.
- F8 (X12, X18): <Part> or <parts> in a dlib <box> silently made missing points; now an error.
- F9 (J08, E02): --skip-bad had no effect on COCO JSON and dlib XML; now the bad annotation or box
  is listed and the rest read.
- F10 (Y03, E06, X03): a ytf68 row or a dlib <image> given twice counted its face twice; now an
  error (or a skip) naming both.
- F13 (P13, P18): an .asf whose named host image is missing used the image beside it (another
  size: wrong coordinates); a 59th point line was taken for the host image's name. Both are errors.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.cli import main
from facekeypoints.data import detect_format, read, read_asf, read_coco_json, read_dlib_xml, read_ljson
from facekeypoints.data.dataset import DataFormatError

W, H = 160, 200


def _face(w: int = W, h: int = H) -> np.ndarray:
    """68 plausible points inside a w x h image."""
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.c_[w / 2 + 0.3 * w * np.cos(t), h / 2 + 0.3 * h * np.sin(t)]


def _image(path: Path, w: int = W, h: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))
    return path


# ---- ytf68 CSV -------------------------------------------------------------------------------------
def _ytf(root: Path, names: list[str], make_images: bool = True) -> list[str]:
    """The lines of a ytf68 CSV with one face per name (its images written under root/images)."""
    header = ",".join(["image", "person"] + [f"{a}{i}" for i in range(68) for a in "xy"])
    lines = [header]
    for name in names:
        if make_images:
            _image(root / "images" / name)
        lines.append(",".join([name, "p"] + [f"{v:.2f}" for v in _face().ravel()]))
    return lines


def test_ytf68_unclosed_quote_is_an_error_naming_its_line_even_with_skip_bad(tmp_path, capsys):
    lines = _ytf(tmp_path, [f"f{i}.jpg" for i in range(6)])
    lines[2] = '"' + lines[2]  # row 2 opens a quote that never closes
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    for skip_bad in (False, True):
        with pytest.raises(DataFormatError, match=r"train\.csv, row 2: line 3: a quote opened on this line is "
                                                  r"never closed, so lines 3-7 would be one field"):
            read(tmp_path / "train.csv", load_images=False, skip_bad=skip_bad)
    assert main(["data", "info", str(tmp_path / "train.csv"), "--skip-bad"]) == 2
    assert "never closed" in capsys.readouterr().err


def test_ytf68_unclosed_quote_on_the_last_row(tmp_path):
    lines = _ytf(tmp_path, ["a.jpg", "b.jpg"])
    lines[2] = lines[2].replace("b.jpg", '"b.jpg', 1)
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"row 2: line 3: a quote opened on this line is never closed"):
        read(tmp_path / "train.csv", load_images=False)


def test_ytf68_quote_closed_rows_later_names_the_lines_it_spans(tmp_path):
    lines = _ytf(tmp_path, [f"f{i}.jpg" for i in range(5)])
    lines[2] = '"' + lines[2]
    lines[3] = lines[3].replace(",", '",', 1)  # closes on the next line: rows 2 and 3 read as one
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    data = read(tmp_path / "train.csv", load_images=False, skip_bad=True)
    assert data.ids == ["f0.jpg", "f3.jpg", "f4.jpg"]
    assert len(data.skipped) == 1 and "row 2" in data.skipped[0] and "lines 3-4" in data.skipped[0]
    assert "\n" not in data.skipped[0]  # the quoted line break is shown as \n: the message is one line


def test_ytf68_quoted_line_break_in_a_name_is_read(tmp_path):
    """A quoted field may hold a line break (valid CSV): the row after it keeps its number."""
    lines = _ytf(tmp_path, ["a.jpg", "b.jpg"])
    odd = "x\ny.jpg"
    _image(tmp_path / "images" / odd)
    lines.insert(2, ",".join([f'"{odd}"', "p"] + [f"{v:.2f}" for v in _face().ravel()]))
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    assert read(tmp_path / "train.csv", load_images=False).ids == ["a.jpg", odd, "b.jpg"]


def test_ytf68_repeated_row_is_refused_or_skipped(tmp_path):
    lines = _ytf(tmp_path, ["a.jpg", "b.jpg"])
    lines.append(lines[1])
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"row 3, field 'image': repeats the image 'a\.jpg' of row 1"):
        read(tmp_path / "train.csv", load_images=False)
    data = read(tmp_path / "train.csv", load_images=False, skip_bad=True)
    assert data.ids == ["a.jpg", "b.jpg"] and len(data.skipped) == 1 and "row 3" in data.skipped[0]


def test_ytf68_repeat_of_a_skipped_row_is_kept(tmp_path):
    """Only rows read count: the copy of a bad row is the one face of that image."""
    lines = _ytf(tmp_path, ["a.jpg", "b.jpg"])
    lines.append(lines[1])
    lines[1] = lines[1].replace(",p,", ",p,x", 1)  # row 1: x0 is not a number
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    data = read(tmp_path / "train.csv", load_images=False, skip_bad=True)
    assert data.ids == ["b.jpg", "a.jpg"] and len(data.skipped) == 1 and "row 1" in data.skipped[0]


# ---- JSON: repeated keys ------------------------------------------------------------------------------
def _coco(kps: list, files: list[str], bad: int | None = None) -> dict:
    images = [{"id": i + 1, "file_name": f, "width": W, "height": H} for i, f in enumerate(files)]
    anns = [{"id": j + 1, "image_id": 1 + j % len(files),
             "keypoints": [v for x, y in kp for v in (float(x), float(y), 2)]} for j, kp in enumerate(kps)]
    if bad is not None:
        anns[bad]["keypoints"][0] = "x"
    return {"images": images, "annotations": anns}


def test_repeated_annotations_key_is_an_error(tmp_path):
    doc = _coco([_face(), _face()], ["a.png", "b.png"])
    one, two = (json.dumps([a]) for a in doc["annotations"])
    (tmp_path / "ann.json").write_text('{"images": %s, "annotations": %s, "annotations": %s}'
                                       % (json.dumps(doc["images"]), one, two))
    with pytest.raises(DataFormatError, match=r"ann\.json: key 'annotations' repeated in one JSON object"):
        read(tmp_path / "ann.json", load_images=False)


def test_repeated_keypoints_key_in_an_annotation_is_an_error(tmp_path):
    text = json.dumps(_coco([_face()], ["a.png"])).replace('"keypoints": [', '"keypoints": [], "keypoints": [', 1)
    (tmp_path / "ann.json").write_text(text)
    with pytest.raises(DataFormatError, match=r"ann\.json: key 'keypoints' repeated"):
        read_coco_json(tmp_path / "ann.json", load_images=False)


def test_repeated_points_key_in_ljson_is_an_error(tmp_path):
    points = json.dumps([[y, x] for x, y in _face()])
    (tmp_path / "a.ljson").write_text('{"landmarks": {"points": %s, "points": %s}}'
                                      % (points, json.dumps([[None, None]] * 68)))
    with pytest.raises(DataFormatError, match=r"a\.ljson: key 'points' repeated"):
        read_ljson(tmp_path / "a.ljson", load_images=False)
    (tmp_path / "b.ljson").write_text('{"landmarks": {"points": %s}}' % points)  # once: fine
    assert len(read(tmp_path / "b.ljson", load_images=False)) == 1


# ---- JSON: the format from the parsed document ---------------------------------------------------------
def _ljson(points: np.ndarray) -> dict:
    return {"version": 3, "groups": {"LJSON": {"landmarks": {"points": [[y, x] for x, y in points]},
                                               "labels": [{"label": "annotations", "mask": [0, 1]}]}}}


def test_ljson_with_a_label_named_annotations_is_ljson(tmp_path):
    (tmp_path / "a.ljson").write_text(json.dumps(_ljson(_face())))
    assert detect_format(tmp_path / "a.ljson") == "ljson"
    assert len(read(tmp_path / "a.ljson", load_images=False)) == 1
    (tmp_path / "a.json").write_text(json.dumps(_ljson(_face())))  # the same as .json: told by its top-level keys
    assert detect_format(tmp_path / "a.json") == "ljson"


def test_coco_with_landmarks_in_info_and_annotations_late_is_coco(tmp_path):
    doc = _coco([_face()], ["a.png"])
    doc["images"] += [{"id": i, "file_name": f"unused{i}.png", "width": W, "height": H} for i in range(2, 2000)]
    doc = {"info": {"description": "face landmarks", "keywords": ["landmarks", "groups"]}, **doc}
    text = json.dumps(doc)
    assert text.index('"annotations"') > 1 << 16
    (tmp_path / "ann.json").write_text(text)
    assert detect_format(tmp_path / "ann.json") == "coco_json"
    assert len(read(tmp_path / "ann.json", load_images=False)) == 1


def test_json_with_both_formats_top_level_keys_is_an_error(tmp_path):
    doc = {**_coco([_face()], ["a.png"]), "landmarks": {"points": [[1.0, 2.0]] * 68}}
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"x\.json: the JSON object has both COCO's 'annotations' and menpo "
                                              r"ljson's \['landmarks'\]"):
        detect_format(tmp_path / "x.json")


def test_ljson_suffix_is_trusted(tmp_path):
    (tmp_path / "coco.ljson").write_text(json.dumps(_coco([_face()], ["a.png"])))
    assert detect_format(tmp_path / "coco.ljson") == "ljson"
    with pytest.raises(DataFormatError, match=r"coco\.ljson: no landmarks found"):
        read(tmp_path / "coco.ljson", load_images=False)


# ---- COCO JSON and --skip-bad ----------------------------------------------------------------------------
def test_coco_skip_bad_lists_the_bad_annotation_and_reads_the_rest(tmp_path, capsys):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    (tmp_path / "ann.json").write_text(json.dumps(_coco([_face(), _face()], ["a.png", "b.png"], bad=1)))
    with pytest.raises(DataFormatError, match=r"ann\.json, row 1, field 'keypoints': .*not a number"):
        read(tmp_path / "ann.json")
    data = read(tmp_path / "ann.json", skip_bad=True)
    assert data.ids == ["a#1"] and len(data.skipped) == 1 and "row 1" in data.skipped[0]
    report = tmp_path / "skipped.txt"
    assert main(["data", "info", str(tmp_path / "ann.json"), "--skip-bad", "--report", str(report)]) == 1  # partial
    assert "row 1" in report.read_text()


def test_coco_skip_bad_repeated_id_and_missing_image(tmp_path):
    doc = _coco([_face(), _face(), _face()], ["a.png", "b.png", "c.png"])
    doc["annotations"][2]["id"], doc["annotations"][2]["image_id"] = 1, 1  # annotation 0 again
    _image(tmp_path / "a.png")  # b.png is missing
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    data = read_coco_json(tmp_path / "ann.json", skip_bad=True)
    assert data.ids == ["a#1"]
    assert len(data.skipped) == 2
    assert "annotation 1: image" in data.skipped[0] and "b.png not found" in data.skipped[0]
    assert "row 2, field 'id': annotation 2 repeats the id '1' of annotation 0" in data.skipped[1]


def test_coco_skip_bad_keeps_the_most_common_point_count(tmp_path):
    doc = _coco([_face()[:5], _face(), _face() + 1], ["a.png"])  # two faces of 68 (one twice would be refused)
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"row 1, field 'keypoints': 68 points where earlier annotations have 5"):
        read_coco_json(tmp_path / "ann.json", load_images=False)
    data = read_coco_json(tmp_path / "ann.json", load_images=False, skip_bad=True)
    assert data.ids == ["a#2", "a#3"] and data.schema.name == "ibug68"
    assert len(data.skipped) == 1 and "row 0, field 'keypoints': 5 points where the other annotations have 68" \
        in data.skipped[0]


def test_coco_skip_bad_with_every_annotation_bad_is_an_error(tmp_path):
    (tmp_path / "ann.json").write_text(json.dumps(_coco([_face()], ["a.png"], bad=0)))
    with pytest.raises(DataFormatError, match=r"ann\.json: no faces; 1 skipped as bad: .*row 0"):
        read_coco_json(tmp_path / "ann.json", load_images=False, skip_bad=True)


# ---- dlib XML ------------------------------------------------------------------------------------------
def _box(points: np.ndarray, tag: str = "part") -> str:
    parts = "".join(f"<{tag} name='{i:02d}' x='{int(x)}' y='{int(y)}'/>" for i, (x, y) in enumerate(points))
    return f"<box top='20' left='10' width='100' height='150'>{parts}</box>"


def _xml(images: list[tuple[str, list[str]]]) -> str:
    body = "".join(f"<image file='{file}'>{''.join(boxes)}</image>" for file, boxes in images)
    return f"<?xml version='1.0'?>\n<dataset><name>x</name><images>{body}</images></dataset>\n"


@pytest.mark.parametrize("edit, tag", [
    (lambda box: box.replace("<part name='05'", "<Part name='05'", 1), "Part"),
    (lambda box: box.replace("<part name='00'", "<parts><part name='00'", 1).replace("</box>", "</parts></box>"),
     "parts"),
])
def test_dlib_unknown_element_in_a_box_is_an_error(tmp_path, edit, tag):
    (tmp_path / "a.xml").write_text(_xml([("a.png", [edit(_box(_face()))])]))
    with pytest.raises(DataFormatError, match=rf"a\.xml, field '{tag}': image 'a\.png', box 0: <{tag}> is not a "
                                              r"dlib element"):
        read_dlib_xml(tmp_path / "a.xml", load_images=False)


def test_dlib_label_in_a_box_is_read(tmp_path):
    box = _box(_face()).replace("<part ", "<label>face</label><part ", 1)
    (tmp_path / "a.xml").write_text(_xml([("a.png", [box])]))
    data = read_dlib_xml(tmp_path / "a.xml", load_images=False)
    assert len(data) == 1 and not np.isnan(data.keypoints).any()


def test_dlib_image_listed_twice_is_refused_or_skipped(tmp_path):
    (tmp_path / "a.xml").write_text(_xml([("a.png", [_box(_face())]), ("b.png", [_box(_face())]),
                                          ("./a.png", [_box(_face())])]))
    with pytest.raises(DataFormatError, match=r"a\.xml, field 'file': <image> number 2 repeats the file '\./a\.png' "
                                              r"of <image> number 0"):
        read(tmp_path / "a.xml", load_images=False)
    data = read(tmp_path / "a.xml", load_images=False, skip_bad=True)
    assert data.ids == ["a#0", "b#0"] and len(data.skipped) == 1


def test_dlib_skip_bad_lists_the_bad_box_and_reads_the_rest(tmp_path):
    _image(tmp_path / "a.png")
    bad = _box(_face()).replace("<part name='05'", "<part name='99'", 1)
    (tmp_path / "a.xml").write_text(_xml([("a.png", [_box(_face()), bad]), ("gone.png", [_box(_face())])]))
    with pytest.raises(DataFormatError, match=r"image 'a\.png', box 1: part name '99'"):
        read(tmp_path / "a.xml")
    data = read(tmp_path / "a.xml", skip_bad=True)
    assert data.ids == ["a#0"] and len(data.skipped) == 2
    assert "box 1: part name '99'" in data.skipped[0] and "gone.png" in data.skipped[1]


# ---- IMM .asf --------------------------------------------------------------------------------------------
def _asf(rel: np.ndarray, host: str | None, extra: list[str] = ()) -> str:
    lines = ["#", "# number of model points", "#", "58", "", "# model points"]
    lines += [f"0 \t0 \t{x:.6f} \t{y:.6f} \t{i} \t{(i - 1) % 58} \t{(i + 1) % 58}" for i, (x, y) in enumerate(rel)]
    lines += list(extra) + ["", "#", "# host image", "#"] + ([host] if host else [])
    return "\n".join(lines) + "\n"


REL = np.random.default_rng(7).uniform(0.2, 0.8, (58, 2))


def test_asf_missing_host_image_is_an_error_not_the_image_beside(tmp_path):
    _image(tmp_path / "01-1m.jpg", w=320, h=400)  # another size than the one labelled
    (tmp_path / "01-1m.asf").write_text(_asf(REL, "01-1m_original.jpg"))
    for load_images in (True, False):
        with pytest.raises(DataFormatError, match=r"01-1m\.asf: image not found: looked for 01-1m_original\.jpg "
                                                  r"\(the host image the file names\)"):
            read_asf(tmp_path / "01-1m.asf", load_images=load_images)
    labels = read_asf(tmp_path / "01-1m.asf", load_images=False, image_size=(H, W))  # the size given: fine
    np.testing.assert_allclose(labels.keypoints[0], REL * (W, H), atol=1e-3)
    assert labels.paths == [None]
    _image(tmp_path / "01-1m_original.jpg")
    data = read_asf(tmp_path / "01-1m.asf")
    assert Path(data.paths[0]).name == "01-1m_original.jpg"
    np.testing.assert_allclose(data.keypoints[0], REL * (W, H), atol=1e-3)


def test_asf_without_host_line_uses_the_image_beside(tmp_path):
    _image(tmp_path / "02-1m.jpg")
    (tmp_path / "02-1m.asf").write_text(_asf(REL, None))
    assert Path(read_asf(tmp_path / "02-1m.asf").paths[0]).name == "02-1m.jpg"


@pytest.mark.parametrize("extra, host, message", [
    (["0 \t0 \t0.5 \t0.5 \t58 \t57 \t0"], "03-1m.jpg", r"line 65: 2 data lines after the 58 points the file "
                                                       r"declares, where only the host image's name may follow"),
    (["0 \t0 \t0.5 \t0.5 \t58 \t57 \t0"], None, r"line 65: 1 data line after the 58 points"),
    (["03-1m.jpg"], "03-1m.jpg", r"line 65: 2 data lines after the 58 points .*'03-1m\.jpg'"),
])
def test_asf_extra_data_lines_are_an_error(tmp_path, extra, host, message):
    _image(tmp_path / "03-1m.jpg")
    (tmp_path / "03-1m.asf").write_text(_asf(REL, host, extra))
    with pytest.raises(DataFormatError, match=message):
        read_asf(tmp_path / "03-1m.asf", load_images=False)


def test_asf_host_name_with_spaces_is_a_name(tmp_path):
    _image(tmp_path / "my face 1 2 3 4 5.jpg")
    (tmp_path / "04-1m.asf").write_text(_asf(REL, "my face 1 2 3 4 5.jpg"))
    assert Path(read_asf(tmp_path / "04-1m.asf").paths[0]).name == "my face 1 2 3 4 5.jpg"


# ---- an image name longer than the file system allows (is_file raises rather than say False) -----------
LONG = "x" * 300 + ".jpg"


def test_a_name_too_long_is_a_bad_row_not_a_crash(tmp_path):
    lines = _ytf(tmp_path, ["a.jpg"])
    lines += _ytf(tmp_path, [LONG], make_images=False)[1:]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    data = read(tmp_path / "train.csv", load_images=False, skip_bad=True)
    assert data.ids == ["a.jpg"] and "row 2, field 'image': image file cannot be looked up" in data.skipped[0]
    _image(tmp_path / "a.png")
    (tmp_path / "ann.json").write_text(json.dumps(_coco([_face(), _face()], ["a.png", LONG])))
    data = read(tmp_path / "ann.json", skip_bad=True)
    assert data.ids == ["a#1"] and "annotation 1: image" in data.skipped[0] and "cannot be looked up" in data.skipped[0]
    (tmp_path / "05-1m.asf").write_text(_asf(REL, LONG))
    with pytest.raises(DataFormatError, match=r"05-1m\.asf: host image 'xxx.*cannot be looked up"):
        read_asf(tmp_path / "05-1m.asf")
