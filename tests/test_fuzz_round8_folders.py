"""Round 8 of bad inputs for folder reading, the cache, ``data info``/``verify``/``convert`` and
messages (synthetic files in tmp_path). Each case was once read wrongly or aborted; each now gives a
correct result or a one-line error naming the file, which ``skip_bad`` lists while the rest is read:

- F1: a subfolder that can be listed but not entered (mode 644) aborted folder readers with a raw
  PermissionError on ``sub/a.pts``, even with skip_bad;
- F2: a cache folder that cannot be entered (~/.cache/facekeypoints root-owned 0700) aborted every
  Kaggle read; now one warning and the read goes on without the cache;
- F7: a photo with a mixed-case suffix (a.Jpg beside a.pts) was not found;
- F8: ``data info`` said "no images (labels only)" when one of two .pts files had no photo;
- F10: ``--report`` failed with a codec error for a skipped file whose name is not UTF-8;
- F11: a file name with a line break made a two-line message and two report lines;
- F15: ``data verify`` called a training.csv that is a FIFO "missing";
- F16: format sniffing did not skip a UTF-8 byte-order mark (.pts, XML, JSON without a suffix);
- F17: ``data convert DIR -o DIR/kaggle.csv`` wrote into the folder it read, which then held two formats;
- F18: b.pts linked to a.pts counted the face twice.

Permission cases are simulated by raising PermissionError where the system raises it: ``os.stat`` of
a file in a folder that may be listed but not entered (what ``Path.is_file`` calls).
"""
from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import cache, read
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.io import detect_format
from facekeypoints.data.formats.verify import verify_kaggle_download
from facekeypoints.data.info import describe, format_description, read_for_info
from tests.fakes import face68, run_cli

H, W = 200, 160


def _photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", _pixels())  # PNG under any name: the readers look at the bytes
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _pts_text(bom: bool = False) -> bytes:
    rows = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in face68())
    return (b"\xef\xbb\xbf" if bom else b"") + f"version: 1\nn_points: 68\n{{\n{rows}\n}}\n".encode()


def _pts(path: Path, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_pts_text(bom))
    return path


def _face(folder: Path, stem: str, photo_suffix: str = ".jpg") -> Path:
    _photo(folder / f"{stem}{photo_suffix}")
    return _pts(folder / f"{stem}.pts")


# ---- F1: a subfolder that can be listed but not entered ------------------------------------------------
def _no_entry(monkeypatch, folder: Path) -> None:
    """``os.stat`` of anything inside ``folder`` raises EACCES, as for a folder with r but no x."""
    inside = os.path.realpath(folder) + os.sep
    real_stat = os.stat

    def guarded(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and os.path.abspath(os.fspath(path)).startswith(inside):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", guarded)


def test_a_subfolder_that_cannot_be_entered_is_named_and_skip_bad_reads_the_rest(tmp_path, monkeypatch, capsys):
    _face(tmp_path / "f", "b")
    _face(tmp_path / "f" / "sub", "a")
    _no_entry(monkeypatch, tmp_path / "f" / "sub")
    with pytest.raises(DataFormatError, match=r"sub/a\.pts: cannot read \(Permission denied\)"):
        read(tmp_path / "f", load_images=False)
    data = read(tmp_path / "f", load_images=False, skip_bad=True)
    assert data.ids == ["b"] and len(data.skipped) == 1 and "sub/a.pts: cannot read" in data.skipped[0]
    code, out, err = run_cli(["data", "info", tmp_path / "f", "--skip-bad"], capsys)
    assert code == 1 and "rows            1" in out and "skipped 1 bad rows" in err


# ---- F2: a cache folder that cannot be entered -----------------------------------------------------------
def test_a_cache_folder_that_cannot_be_entered_warns_once_and_is_passed_over(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv(cache.CACHE_ENV, str(folder))
    monkeypatch.setattr(cache, "_unusable", set())
    _no_entry(monkeypatch, folder)
    with pytest.warns(UserWarning, match=r"cannot use the cache folder .*cache \(Permission denied\); reading "
                                         r"without the cache"):
        with pytest.raises(cache.CacheMiss):
            cache.load("demo-v1-abc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, by load: save does not warn again
        cache.save("demo-v1-abc", {"x": np.arange(3)})


# ---- F7: photo suffixes in any case ----------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".Jpg", ".jPEG", ".Png"])
def test_a_photo_with_a_mixed_case_suffix_is_found(tmp_path, suffix):
    _face(tmp_path / "f", "a", suffix)
    data = read(tmp_path / "f")
    assert data.paths == [str(tmp_path / "f" / f"a{suffix}")] and data.images[0].shape == (H, W, 3)


def test_two_photos_for_one_label_file_are_still_an_error_in_any_case(tmp_path):
    _face(tmp_path / "f", "a", ".Jpg")
    _photo(tmp_path / "f" / "a.pNg")
    with pytest.raises(DataFormatError, match=r"a\.pts: 2 images could be the one labelled here: a\.Jpg, a\.pNg"):
        read(tmp_path / "f")


def test_the_stem_still_matches_exactly(tmp_path):
    """Only the suffix's case is free: A.jpg is not the photo of a.pts."""
    _pts(tmp_path / "f" / "a.pts")
    _photo(tmp_path / "f" / "A.jpg")
    with pytest.raises(DataFormatError, match=r"a\.pts: image not found"):
        read(tmp_path / "f")


# ---- F8: data info names a missing photo -----------------------------------------------------------------
def test_data_info_names_a_missing_photo(tmp_path, capsys):
    _face(tmp_path / "f", "a")
    _pts(tmp_path / "f" / "b.pts")  # no photo
    info = describe(read_for_info(tmp_path / "f"))
    assert info["image_size"] == [H, W]
    assert info["unsized_images"] == ["b: no photo found beside its labels"]
    code, out, _ = run_cli(["data", "info", tmp_path / "f"], capsys)
    assert code == 0 and "1 photo left out: b: no photo found beside its labels" in out  # as an unreadable photo


def test_data_info_of_labels_alone_still_says_labels_only(tmp_path):
    _pts(tmp_path / "f" / "a.pts")
    _pts(tmp_path / "f" / "b.pts")
    info = describe(read_for_info(tmp_path / "f"))
    assert info["image_size"] is None and info["unsized_images"] == []
    assert "no images (labels only)" in format_description(info)


def test_data_info_names_a_coco_photo_that_is_gone(tmp_path):
    doc = {"images": [{"id": i, "file_name": f"{n}.jpg", "width": W, "height": H} for i, n in ((1, "a"), (2, "b"))],
           "annotations": [{"id": i, "image_id": i, "keypoints": np.c_[face68(), np.full(68, 2)].ravel().tolist()}
                           for i in (1, 2)],
           "categories": [{"id": 1, "name": "face"}]}
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "c.json").write_text(json.dumps(doc))
    _photo(tmp_path / "f" / "a.jpg")
    info = describe(read_for_info(tmp_path / "f" / "c.json"))
    assert info["image_size"] == [H, W]
    assert len(info["unsized_images"]) == 1 and info["unsized_images"][0].startswith(f"{tmp_path / 'f' / 'b.jpg'}: ")


# ---- F10, F11: names that are not UTF-8 or hold line breaks ----------------------------------------------
def test_report_of_a_skipped_file_whose_name_is_not_utf8(tmp_path, capsys):
    _face(tmp_path / "f", "a")
    with open(os.path.join(os.fsencode(tmp_path / "f"), b"b\xe9.pts"), "wb") as f:
        f.write(b"junk\n")
    report = tmp_path / "skipped.txt"
    code, out, err = run_cli(["data", "info", tmp_path / "f", "--skip-bad", "--report", report], capsys)
    assert code == 1 and "rows            1" in out and "skipped 1 bad rows" in err
    lines = report.read_bytes().splitlines()
    assert len(lines) == 1 and b"b\xe9.pts: line 1" in lines[0]  # the name's own bytes


def test_a_name_with_a_line_break_gives_one_line_messages(tmp_path, capsys):
    _face(tmp_path / "f", "a")
    (tmp_path / "f" / "bad\nname.pts").write_text("junk\n")
    with pytest.raises(DataFormatError) as caught:
        read(tmp_path / "f", load_images=False)
    assert "\n" not in str(caught.value) and "bad\\nname.pts: line 1" in str(caught.value)
    report = tmp_path / "skipped.txt"
    code, _, err = run_cli(["data", "info", tmp_path / "f", "--skip-bad", "--report", report], capsys)
    assert code == 1 and len(report.read_text().splitlines()) == 1 and "bad\\nname.pts" in report.read_text()


def test_every_data_format_error_is_one_line():
    err = DataFormatError("d/x\ry\u2028z.pts", "value 'a\nb'", row=3, field="f\tg", hint="see\x85here")
    assert len(str(err).splitlines()) == 1
    assert str(err) == "d/x\\ry\\u2028z.pts, row 3, field 'f\\tg': value 'a\\nb'; see\\x85here"


# ---- F15: data verify on a FIFO -------------------------------------------------------------------------
def test_verify_says_a_fifo_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "training.csv")
    check = next(c for c in verify_kaggle_download(tmp_path).checks if c.name == "training.csv")
    assert check.status == "unreadable" and "not a regular file" in check.detail


# ---- F16: a byte-order mark before sniffed content --------------------------------------------------------
def test_a_byte_order_mark_does_not_hide_the_format(tmp_path):
    (tmp_path / "a").write_bytes(_pts_text(bom=True))
    assert detect_format(tmp_path / "a") == "pts"
    assert read(tmp_path / "a", load_images=False).keypoints.shape == (1, 68, 2)
    (tmp_path / "x").write_bytes(b"\xef\xbb\xbf<?xml version='1.0'?>\n<dataset><images/></dataset>\n")
    assert detect_format(tmp_path / "x") == "dlib_xml"
    (tmp_path / "j").write_bytes(b"\xef\xbb\xbf" + json.dumps({"annotations": []}).encode())
    assert detect_format(tmp_path / "j") == "coco_json"


# ---- F17: convert refuses to write into the folder it reads ------------------------------------------------
def test_convert_refuses_an_output_inside_the_folder_it_reads(tmp_path, capsys):
    _face(tmp_path / "f", "a")
    code, _, err = run_cli(["data", "convert", tmp_path / "f", "-o", tmp_path / "f" / "sub" / "kaggle.csv"], capsys)
    assert code == 2 and f"{tmp_path / 'f' / 'sub' / 'kaggle.csv'}: is inside {tmp_path / 'f'}" in err
    assert not (tmp_path / "f" / "sub").exists()
    assert detect_format(tmp_path / "f") == "pts"


# ---- F18: a link to a label file ---------------------------------------------------------------------------
def test_a_link_to_a_label_file_is_named_never_counted_twice(tmp_path):
    _face(tmp_path / "f", "a")
    (tmp_path / "f" / "b.pts").symlink_to("a.pts")
    (tmp_path / "f" / "b.jpg").symlink_to("a.jpg")
    with pytest.raises(DataFormatError, match=r"b\.pts: leads to the same file as .*a\.pts \(a link\)"):
        read(tmp_path / "f", load_images=False)
    data = read(tmp_path / "f", load_images=False, skip_bad=True)
    assert data.ids == ["a"] and len(data.skipped) == 1 and "b.pts: leads to the same file" in data.skipped[0]
