"""Round 5 of fresh bad inputs for the data layer: each case once ended in a stack trace, a silent
wrong result or a half-written output; each now ends in a result or in a message naming what is
wrong (the auditor's repro scripts built the same inputs from ../shared/data; these are synthetic).
"""
from __future__ import annotations

import errno
import json
import math
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.atomic import WriteError
from facekeypoints.data import DataFormatError, read, read_coco_json, read_dlib_xml, write_pts
from facekeypoints.data.formats import csvfile
from facekeypoints.data.formats import kaggle as kaggle_format
from facekeypoints.data.formats import submission as submission_format
from facekeypoints.data.formats.kaggle import read_kaggle_csv, write_kaggle_csv
from facekeypoints.data.formats.submission import write_submission
from facekeypoints.schema import load_schema
from fakes import make_faces, points68, run_cli, ytf68_csv

COLUMNS = load_schema("kaggle15").columns()


def _no_space(*args):
    """What a write on a full disk raises: OSError ENOSPC "No space left on device", with no file name."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in ``folder`` other than ``keep``: a temporary file a failed write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---- inputs --------------------------------------------------------------------------------------
def _pts_face(folder: Path, name: str, *, seed: int = 0, photo: str | None = ".png") -> Path:
    """``folder/name.pts`` with 68 points inside a 100 x 120 photo ``name<photo>`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if photo:
        assert cv2.imwrite(str(folder / f"{name}{photo}"), rng.integers(0, 256, (120, 100, 3), np.uint8))
    write_pts(points68(rng, 100, 120), folder / f"{name}.pts")
    return folder / f"{name}.pts"


def _kaggle_csv(path: Path, n: int = 3) -> Path:
    return write_kaggle_csv(make_faces(n, missing=False), path)


# ---- 1. a full disk while writing: a named error, the previous file kept, no temporary file left ------
def test_full_disk_in_write_kaggle_csv_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "faces.csv"
    out.write_text("previous result\n")
    monkeypatch.setattr(kaggle_format, "format_pixels", _no_space)
    with pytest.raises(WriteError) as err:
        write_kaggle_csv(make_faces(3), out)
    assert err.value.errno == errno.ENOSPC
    assert err.value.strerror == f"{out}: could not be written (No space left on device); its previous content is kept"
    assert out.read_text() == "previous result\n"
    assert _leftovers(tmp_path, {"faces.csv"}) == []


@pytest.mark.parametrize("name", ["new.csv.gz", "new.zip"])
def test_full_disk_in_a_new_compressed_kaggle_csv_leaves_nothing(tmp_path, monkeypatch, name):
    monkeypatch.setattr(kaggle_format, "format_pixels", _no_space)
    with pytest.raises(WriteError, match="nothing was written"):
        write_kaggle_csv(make_faces(2), tmp_path / name)
    assert _leftovers(tmp_path, set()) == []


class _FillingFile:
    """A text file whose disk fills after ``room`` characters: the write then fails with ENOSPC."""

    def __init__(self, path, mode="r", **kwargs):
        self.file, self.room = open(path, mode, **kwargs), 20

    def write(self, text):
        if len(text) > self.room:
            self.file.write(text[:self.room])
            _no_space()
        self.room -= len(text)
        return self.file.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_full_disk_in_write_submission_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "sub.csv"
    out.write_text("RowId,Location\n1,1.0\n")
    monkeypatch.setattr(submission_format, "open", _FillingFile, raising=False)  # this module's open only
    predictions = np.full((2, 15, 2), 48.0)
    lookup = [(row, 1 + row % 2, COLUMNS[row % 30]) for row in range(1, 40)]
    with pytest.raises(WriteError) as err:
        write_submission(predictions, lookup, out, image_ids=[1, 2])
    assert err.value.errno == errno.ENOSPC  # str() adds "[Errno 28] "; the CLI prints strerror
    assert err.value.strerror == f"{out}: could not be written (No space left on device); its previous content is kept"
    assert out.read_text() == "RowId,Location\n1,1.0\n"
    assert _leftovers(tmp_path, {"sub.csv"}) == []


def test_convert_on_a_full_disk_says_which_output_and_exits_1(tmp_path, monkeypatch, capsys):
    src = ytf68_csv(tmp_path / "ytf")
    out = tmp_path / "out" / "faces.csv"
    out.parent.mkdir()
    out.write_text("previous result\n")
    monkeypatch.setattr(kaggle_format, "format_pixels", _no_space)
    code, stdout, stderr = run(["data", "convert", src, "-o", out], capsys)
    assert code == 1
    assert stderr.strip().splitlines() == [f"error: {out}: could not be written (No space left on device); "
                                           "its previous content is kept"]
    assert "wrote" not in stdout
    assert out.read_text() == "previous result\n"
    assert _leftovers(out.parent, {"faces.csv"}) == []


# ---- 2. data verify: an encrypted or Deflate64 zip member, a folder named training.csv ----------------
def _doctored_zip(path: Path, *, flag: int = 0, method: int | None = None) -> None:
    """training.zip whose member claims the genuine size (so its bytes are read) with the encryption
    flag bit set, or with compression method ``method`` (9: Deflate64, which zipfile cannot read)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("training.csv", b"x" * 1000)
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    for flags_at, method_at, size_at in ((local + 6, local + 8, local + 22), (central + 8, central + 10, central + 24)):
        struct.pack_into("<H", data, flags_at, struct.unpack_from("<H", data, flags_at)[0] | flag)
        if method is not None:
            struct.pack_into("<H", data, method_at, method)
        struct.pack_into("<I", data, size_at, 238064810)  # training.csv's genuine size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("flag, method, detail", [(1, None, "encrypted member"),
                                                  (0, 9, "unzip it and verify the CSV")])
def test_verify_reports_an_unreadable_zip_member_and_goes_on(tmp_path, capsys, flag, method, detail):
    _doctored_zip(tmp_path / "training.zip", flag=flag, method=method)
    (tmp_path / "IdLookupTable.csv").write_text("RowId,ImageId,FeatureName,Location\n1,1,nose_tip_x,\n")
    code, out, err = run(["data", "verify", tmp_path], capsys)
    assert code == 1 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["training.csv"].split()[1] == "unreadable" and detail in lines["training.csv"]
    assert "IdLookupTable.csv" in lines and "size differs" in lines["IdLookupTable.csv"]
    assert "test.csv" in lines and "missing" in lines["test.csv"]
    assert out.rstrip().endswith("NOT a genuine Kaggle download (see above)")


def test_verify_reports_a_folder_named_training_csv_and_a_looping_link(tmp_path, capsys):
    (tmp_path / "training.csv").mkdir()  # unzipped into a folder of the file's name
    (tmp_path / "test.csv").symlink_to("test.csv")  # a link to itself
    (tmp_path / "IdLookupTable.csv").write_text("RowId,ImageId,FeatureName,Location\n")
    code, out, err = run(["data", "verify", tmp_path], capsys)
    assert code == 1 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["training.csv"].split()[1] == "unreadable" and "is a folder" in lines["training.csv"]
    assert lines["test.csv"].split()[1] == "unreadable" and "link to nothing" in lines["test.csv"]
    assert "size differs" in lines["IdLookupTable.csv"]


# ---- 3. .pts folders: linked folders, link loops, dangling links, macOS junk ---------------------------
def test_pts_folder_follows_a_linked_folder_once_and_ends_a_link_loop(tmp_path, capsys):
    root, other = tmp_path / "set", tmp_path / "elsewhere"
    for k in range(2):
        _pts_face(root, f"a{k}", seed=k)
    for k in range(2):
        _pts_face(other, f"b{k}", seed=10 + k, photo=".jpg")
    (root / "more").symlink_to(other, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link to the folder itself
    data = read(root)
    assert data.ids == ["a0", "a1", "more/b0", "more/b1"]  # each file once, not again through loop/
    assert all(image.shape == (120, 100, 3) for image in data.images)
    code, out, _ = run(["data", "info", root], capsys)
    assert code == 0 and out.splitlines()[2].split() == ["rows", "4"]


def test_a_dangling_pts_link_is_named_and_macosx_junk_is_passed_over(tmp_path):
    root = tmp_path / "set"
    for k in range(2):
        _pts_face(root, f"a{k}", seed=k)
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._a0.pts").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    (root / "._a1.pts").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    assert len(read(root)) == 2  # the junk is no data and no error
    (root / "x.pts").symlink_to(tmp_path / "does_not_exist.pts")
    with pytest.raises(DataFormatError) as err:
        read(root)
    assert str(err.value).startswith(str(root / "x.pts")) and "link to nothing" in str(err.value)
    data = read(root, skip_bad=True)
    assert len(data) == 2 and len(data.skipped) == 1 and "x.pts" in data.skipped[0]


# ---- 4. evaluate a .pts folder: a missing photo is named; a bad .pts stops it unless --skip-bad --------
def test_evaluate_names_a_face_without_a_photo_and_exits_1(tmp_path, capsys):
    for k in range(2):
        _pts_face(tmp_path, f"a{k}", seed=k)
    _pts_face(tmp_path, "lonely", seed=5, photo=None)
    code, out, err = run(["evaluate", tmp_path], capsys)
    assert code == 1
    assert "faces 3, scored 2" in out and "1 unusable" in out
    assert "lonely: no photo found beside its labels" in out
    assert "partial: 1 faces left out" in err


def test_evaluate_stops_on_a_bad_pts_and_skip_bad_scores_the_rest(tmp_path, capsys):
    for k in range(3):
        _pts_face(tmp_path, f"a{k}", seed=k)
    bad = tmp_path / "a1.pts"
    bad.write_text(bad.read_text().replace("n_points: 68", "n_points: 67"))
    code, out, err = run(["evaluate", tmp_path], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {bad}: ") and "n_points says 67 but 68 points" in err
    code, out, err = run(["evaluate", tmp_path, "--skip-bad"], capsys)
    assert code == 1
    assert "faces 2, scored 2" in out and "1 skipped as bad" in out and "a1.pts" in out
    code, out, _ = run(["evaluate", tmp_path, "--skip-bad", "--json"], capsys)
    result = json.loads(out)
    assert code == 1 and result["scored"] == 2 and result["skipped_count"] == 1 and "a1.pts" in result["skipped"][0]


# ---- 5. convert leaves a face out: written, listed, exit 1; --skip-bad counts the bad row ------------------
def test_convert_lists_a_face_without_alignment_points_and_exits_1(tmp_path, capsys):
    src = ytf68_csv(tmp_path, rows=3, empty_rows=(1,))
    out = tmp_path / "faces.csv"
    code, stdout, stderr = run(["data", "convert", src, "-o", out], capsys)
    assert code == 1
    assert "converted 2 of 3 faces" in stdout
    assert "not converted (fewer than 2 distinct alignment points): 1: ['train/face1.png']" in stdout
    assert f"wrote {out} (2 rows)" in stdout
    assert "partial: 1 of 3 faces left out" in stderr
    assert len(read_kaggle_csv(out, use_cache=False)) == 2


def test_convert_skip_bad_counts_the_bad_row_among_the_faces_in(tmp_path, capsys):
    src = ytf68_csv(tmp_path, rows=3, text_rows=(2,))
    out = tmp_path / "faces.csv"
    code, _, err = run(["data", "convert", src, "-o", out], capsys)
    assert code == 2 and "row 3" in err and "x0" in err and not out.exists()
    code, stdout, stderr = run(["data", "convert", src, "-o", out, "--skip-bad"], capsys)
    assert code == 1
    assert "converted 2 of 3 faces" in stdout and "left out when reading (skip_bad): 1" in stdout
    assert "partial: 1 of 3 faces left out" in stderr
    assert len(read_kaggle_csv(out, use_cache=False)) == 2


# ---- 6. evaluate's JSON is strict JSON when NME has no face to divide by ---------------------------------
def _refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_evaluate_without_eye_labels_gives_null_nme_and_a_dash(tmp_path, capsys):
    faces = make_faces(3, missing=False)
    nose = load_schema("kaggle15").index("nose_tip")
    faces.keypoints[:, [k for k in range(15) if k != nose]] = np.nan
    path = write_kaggle_csv(faces, tmp_path / "nose_only.csv")
    code, out, _ = run(["evaluate", path, "--json"], capsys)
    assert code == 0
    result = json.loads(out, parse_constant=_refuse_constant)
    assert result["nme"] is None and math.isfinite(result["rmse"])
    code, out, _ = run(["evaluate", path], capsys)
    assert code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:7]}
    assert lines["nme"] == ["-"] and lines["rmse"] != ["-"]
    assert "nan" not in out.lower()


# ---- 7. COCO repeated ids and negative sizes; dlib XML elements the reader would pass over ----------------
def _coco(**image) -> dict:
    flat = [v for x, y in points68(np.random.default_rng(0), 80, 60) for v in (float(x), float(y), 2)]
    return {"images": [{"id": 9, "file_name": "img.png", "height": 60, "width": 80} | image],
            "annotations": [{"id": 1, "image_id": 9, "keypoints": flat},  # two faces: the same one twice is refused
                            {"id": 2, "image_id": 9, "keypoints": [v + (i % 3 < 2) for i, v in enumerate(flat)]}]}


def test_coco_annotation_repeating_an_id_on_its_image_is_an_error(tmp_path):
    doc = _coco()
    doc["annotations"].append(dict(doc["annotations"][0]))  # row 2 repeats annotation 0
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as err:
        read_coco_json(path, load_images=False)
    assert err.value.row == 2 and err.value.field == "id"
    assert str(err.value) == f"{path}, row 2, field 'id': annotation 2 repeats the id '1' of annotation 0 on the same image"
    doc["annotations"].pop()
    path.write_text(json.dumps(doc))
    assert len(read_coco_json(path, load_images=False)) == 2  # two faces of one image, ids 1 and 2: fine


@pytest.mark.parametrize("size, field", [({"width": -80}, "width"), ({"height": -60}, "height"),
                                         ({"width": -80, "height": -60}, "width")])
def test_coco_image_with_a_negative_size_is_an_error(tmp_path, size, field):
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(_coco(**size)))
    with pytest.raises(DataFormatError) as err:
        read_coco_json(path, load_images=False)
    assert str(err.value).startswith(str(path)) and err.value.field == field
    assert "width and height must be >= 0" in str(err.value)


def _dlib_image(file: str, box: str = "box") -> str:
    parts = "".join(f"<part name='{i:02d}' x='{x:.0f}' y='{y:.0f}'/>"
                    for i, (x, y) in enumerate(points68(np.random.default_rng(3), 80, 60)))
    return f"<image file='{file}'><{box} top='5' left='7' width='60' height='50'>{parts}</{box}></image>"


@pytest.mark.parametrize("body, field, message", [
    ("<images>" + _dlib_image("a.png") + "</images>" + _dlib_image("b.png"), "image",
     "an <image> (file 'b.png') sits outside <images>"),
    ("<images>" + _dlib_image("a.png") + _dlib_image("b.png", box="Box") + "</images>", "Box",
     "image 'b.png': <Box> is not a dlib element"),
])
def test_dlib_faces_the_reader_would_pass_over_are_errors(tmp_path, body, field, message):
    path = tmp_path / "faces.xml"
    path.write_text(f"<?xml version='1.0'?>\n<dataset>{body}</dataset>\n")
    with pytest.raises(DataFormatError) as err:
        read_dlib_xml(path, load_images=False)
    assert str(err.value).startswith(str(path)) and err.value.field == field and message in str(err.value)
    good = tmp_path / "good.xml"
    good.write_text("<?xml version='1.0'?>\n<dataset><images>" + _dlib_image("a.png") + "</images></dataset>\n")
    assert len(read_dlib_xml(good, load_images=False)) == 1


# ---- 8. submit: a lookup of another test file, folders, UTF-16 -------------------------------------------------
def _test_csv(path: Path, ids=(1, 2)) -> Path:
    rng = np.random.default_rng(0)
    lines = ["ImageId,Image"] + [f"{i}," + " ".join(map(str, rng.integers(0, 256, 96 * 96))) for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def _lookup(path: Path, rows: list[tuple[int, str]], encoding: str = "utf-8") -> Path:
    text = "RowId,ImageId,FeatureName,Location\n" + "".join(f"{r + 1},{i},{f}\n" for r, (i, f) in enumerate(rows))
    path.write_bytes(text.encode(encoding))
    return path


def test_submit_names_lookup_rows_for_images_the_test_file_lacks(tmp_path, capsys):
    test = _test_csv(tmp_path / "test.csv")
    lookup = _lookup(tmp_path / "lookup.csv", [(1, "nose_tip_x"), (2, "nose_tip_y"), (3, "nose_tip_x"),
                                               (1, "left_eye_center_x"), (4, "nose_tip_y")])
    out = tmp_path / "sub.csv"
    code, stdout, err = run(["submit", test, "--lookup", lookup, "-o", out], capsys)
    assert code == 2 and stdout == ""
    assert err.startswith(f"error: {lookup} (for {test}): field 'ImageId': 2 of 5 rows ask for ImageIds")
    assert "(the first: RowId 3, ImageId 3)" in err
    assert not out.exists() and _leftovers(tmp_path, {"test.csv", "lookup.csv"}) == []
    good = _lookup(tmp_path / "good.csv", [(1, "nose_tip_x"), (2, "nose_tip_y")])
    code, stdout, _ = run(["submit", test, "--lookup", good, "-o", out], capsys)
    assert code == 0 and out.read_text().splitlines()[0] == "RowId,Location" and len(out.read_text().splitlines()) == 3


@pytest.mark.parametrize("which", ["test", "lookup"])
def test_submit_refuses_a_folder_as_test_or_lookup(tmp_path, capsys, which):
    folder = tmp_path / "folder"
    folder.mkdir()
    test = folder if which == "test" else _test_csv(tmp_path / "test.csv")
    lookup = folder if which == "lookup" else _lookup(tmp_path / "lookup.csv", [(1, "nose_tip_x")])
    code, _, err = run(["submit", test, "--lookup", lookup, "-o", tmp_path / "sub.csv"], capsys)
    assert code == 2 and err == f"error: {folder}: is a folder; give the CSV file\n"


def test_submit_names_a_utf16_lookup(tmp_path, capsys):
    test = _test_csv(tmp_path / "test.csv")
    lookup = _lookup(tmp_path / "lookup.csv", [(1, "nose_tip_x"), (2, "nose_tip_y")], encoding="utf-16")
    code, _, err = run(["submit", test, "--lookup", lookup, "-o", tmp_path / "sub.csv"], capsys)
    assert code == 2 and err.startswith(f"error: {lookup}: ") and "UTF-16" in err
    assert not (tmp_path / "sub.csv").exists()


# ---- 9. CR CR LF line ends -----------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [None, 1, 2, 3])
def test_cr_cr_lf_kaggle_csv_reads_every_row(tmp_path, monkeypatch, extra):
    """Lines ending CR CR LF (a CR LF file saved again on Windows) read as the LF file does; ``extra``
    ends the first read block 1, 2 or 3 bytes into the header's line end."""
    faces = make_faces(4)
    lf = write_kaggle_csv(faces, tmp_path / "lf.csv")
    text = lf.read_bytes()
    crcrlf = tmp_path / "crcrlf.csv"
    crcrlf.write_bytes(text.replace(b"\n", b"\r\r\n"))
    if extra is not None:
        monkeypatch.setattr(csvfile, "BLOCK", text.index(b"\n") + extra)
    expected = read_kaggle_csv(lf, use_cache=False)
    data = read_kaggle_csv(crcrlf, use_cache=False)
    assert len(data) == 4 and len(expected) == 4
    np.testing.assert_array_equal(data.keypoints, expected.keypoints)
    np.testing.assert_array_equal(data.images, expected.images)


# ---- 10. library warnings on the CLI: one line, no source -------------------------------------------------------
def test_cli_shows_a_library_warning_as_one_line(tmp_path):
    csv = _kaggle_csv(tmp_path / "faces.csv")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    env = os.environ | {"FACEKEYPOINTS_CACHE": str(blocker)}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-m", "facekeypoints", "data", "info", str(csv)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"warning: could not write cache entry {blocker}")
    assert "warnings.warn" not in done.stderr and ".py:" not in done.stderr
    assert "rows            3" in done.stdout


def test_cr_cr_lf_ytf68_csv_reads_every_row(tmp_path):
    plain = ytf68_csv(tmp_path)
    doubled = tmp_path / "crcrlf.csv"
    doubled.write_bytes(plain.read_bytes().replace(b"\n", b"\r\r\n"))
    a, b = read(plain, load_images=False), read(doubled, load_images=False)
    assert len(b) == len(a) == 3 and np.array_equal(a.keypoints, b.keypoints, equal_nan=True)
