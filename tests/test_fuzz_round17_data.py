"""Round 17 of bad inputs for the data readers: each case was once a wrong result (a cache entry holding
another file's rows, a Kaggle face read twice, a dlib size that disagrees with its photo accepted), a
hang (a FIFO lookup), a whole read refused for a photo a labels-only read does not need, or a line
that said the wrong thing (zero bytes called UTF-16, one bad record counted as four rows, numpy's
pickle advice); each now is the right result or one line naming the file, row or field."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import DataFormatError, read, read_asf, read_dlib_xml
from facekeypoints.data.formats import csvfile, kaggle, landmarks
from facekeypoints.data.formats.csvfile import csv_header
from facekeypoints.data.formats.kaggle import read_kaggle_csv
from facekeypoints.data.formats.submission import read_id_lookup
from facekeypoints.data.formats.textfile import encoding_problem
from facekeypoints.data.formats.verify import verify_kaggle_download
from facekeypoints.data.formats.ytf import read_udacity_csv, read_ytf68_csv
from facekeypoints.schema import load_schema
from fakes import kaggle_pixels as _pixels
from fakes import kaggle_training_csv as _training_csv
from fakes import run_cli

COLUMNS = load_schema("kaggle15").columns()



# ---- #10: a file of zero bytes is not called UTF-16 ------------------------------------------------
def test_a_file_of_zero_bytes_is_named_as_such_not_utf16(tmp_path):
    assert "UTF-16" in encoding_problem("x,y".encode("utf-16-le"))  # still told where it is so
    zeros = tmp_path / "z.csv"
    zeros.write_bytes(bytes(5000))
    with pytest.raises(DataFormatError) as err:
        read(zeros)
    assert str(err.value).startswith(f"{zeros}: ") and "zero" in str(err.value) and "UTF-16" not in str(err.value)


# ---- #9: a pipe is refused before it is opened -----------------------------------------------------
def test_a_fifo_lookup_or_csv_is_refused_at_once(tmp_path):
    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    # a writer that comes after a while: an open() of the pipe (the old fault) then ends, not hangs
    writer = threading.Timer(5, lambda: open(fifo, "wb").close())
    writer.start()
    try:
        for reader in (read_id_lookup, csv_header):
            with pytest.raises(DataFormatError, match=rf"^{fifo}: not a regular file \(a pipe or a device\)"):
                reader(fifo)
    finally:
        writer.cancel()


# ---- #13: an IdLookupTable with a repeated column ----------------------------------------------------
def test_a_lookup_with_a_repeated_column_is_refused_naming_it(tmp_path):
    lookup = tmp_path / "l.csv"
    lookup.write_text("RowId,ImageId,FeatureName,ImageId\n1,1,nose_tip_x,2\n2,2,nose_tip_y,1\n")
    with pytest.raises(DataFormatError, match=rf"^{lookup}: header: duplicate columns \['ImageId'\]"):
        read_id_lookup(lookup)


# ---- #15: data verify: a folder named as the zip -----------------------------------------------------
def test_verify_calls_a_folder_named_as_the_zip_a_folder(tmp_path):
    (tmp_path / "training.zip").mkdir()
    check = verify_kaggle_download(tmp_path).checks[0]
    assert check.status == "unreadable" and check.detail == "training.zip is a folder, not a zip file"
    assert "case-sensitive" not in check.detail


# ---- #16: a damaged cache entry --------------------------------------------------------------------
def test_a_damaged_cache_entry_is_named_without_numpys_pickle_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    path = _training_csv(tmp_path / "t.csv", [_pixels(0)])
    read_kaggle_csv(path)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"garbage\n")
    with pytest.warns(UserWarning) as caught:
        assert len(read_kaggle_csv(path)) == 1
    message = str(caught[0].message)
    assert f"ignoring unreadable cache entry {entry} (damaged: not a cache entry); rebuilding it" == message
    assert "pickle" not in message


# ---- #2: the cache keeps the content that was parsed -----------------------------------------------
def test_a_file_replaced_while_parsed_leaves_no_cache_entry_for_the_other_content(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    five = [_pixels(k) for k in range(5)]
    path = _training_csv(tmp_path / "data.csv", five)
    original = path.read_bytes()
    parse = kaggle._parse_kaggle

    def replaced_first(p, skip_bad):  # a download or a save landing between the hash and the parse
        _training_csv(path, five[:3])
        return parse(p, skip_bad)

    monkeypatch.setattr(kaggle, "_parse_kaggle", replaced_first)
    with pytest.raises(DataFormatError, match=rf"^{path}: the file changed while it was read"):
        read_kaggle_csv(path)
    monkeypatch.setattr(kaggle, "_parse_kaggle", parse)
    copy = tmp_path / "x.csv"
    copy.write_bytes(original)
    assert len(read_kaggle_csv(copy)) == 5 == len(read_kaggle_csv(copy, use_cache=False))


# ---- #8: a repeated Kaggle face (round 18: kept with a warning, with or without the same labels) ------
def test_a_repeated_kaggle_image_is_named_with_a_warning(tmp_path):
    path = _training_csv(tmp_path / "t.csv", [_pixels(0), _pixels(1), _pixels(0)])
    with pytest.warns(UserWarning, match=r"1 row repeats the image of an earlier row \(row 3 repeats row 1\)"):
        data = read_kaggle_csv(path, use_cache=False)
    assert data.ids == ["1", "2", "3"] and not data.skipped


def test_a_test_csv_may_repeat_an_image(tmp_path):
    path = tmp_path / "test.csv"  # no labels: nothing counts twice, and each ImageId is asked for
    path.write_text(f"ImageId,Image\n1,{_pixels(0)}\n2,{_pixels(0)}\n")
    assert read_kaggle_csv(path, use_cache=False).ids == ["1", "2"]


# ---- predict auditor #7: a quoted field over several lines (round 18: one bad row per line, see
# test_fuzz_round18_data.py, as joining lines lost valid rows of all-quoted files) -----------------
def _read_skipping(tmp_path, monkeypatch, block: int, text: str):
    """``text`` as a Kaggle CSV read with skip_bad, parsed in blocks of ``block`` bytes: (path, data)."""
    monkeypatch.setattr(csvfile, "BLOCK", block)
    path = tmp_path / "quotes.csv"
    path.write_text(text, newline="")
    return path, read_kaggle_csv(path, skip_bad=True, use_cache=False)


@pytest.mark.parametrize("block", [csvfile.BLOCK, 4096])
def test_a_quote_never_closed_is_its_lines_row(tmp_path, monkeypatch, block):
    path, data = _read_skipping(tmp_path, monkeypatch, block, f'ImageId,Image\n1,{_pixels(0)}\n2,"216\n214\n')
    assert data.ids == ["1"] and len(data.skipped) == 2
    assert data.skipped[0].startswith(f"{path}, row 2: a quoted field is not closed on this line")
    assert data.skipped[1] == f"{path}, row 3: has 1 fields, the header has 2"


@pytest.mark.parametrize("block", [csvfile.BLOCK, 4096])
def test_a_stray_quote_is_its_own_rows_problem_not_the_rest_of_the_file(tmp_path, monkeypatch, block):
    path, data = _read_skipping(tmp_path, monkeypatch, block,
                                f'ImageId,Image\n1,{_pixels(0)}\n2,"{_pixels(1)}\n3,{_pixels(2)}\n4,"{_pixels(3)}\n')
    assert data.ids == ["1", "3"] and len(data.skipped) == 2
    assert data.skipped[0].startswith(f"{path}, row 2: a quoted field is not closed on this line")
    assert data.skipped[1].startswith(f"{path}, row 4: a quoted field is not closed on this line")


def test_quoted_fields_on_one_line_still_read(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text(f'"ImageId","Image"\n"1","{_pixels(0)}"\n2,"{_pixels(1)}"\n', newline="")
    assert read_kaggle_csv(path, use_cache=False).ids == ["1", "2"]


# ---- #7: dlib XML sizes checked without the images --------------------------------------------------
def test_a_dlib_size_that_disagrees_with_its_photo_is_refused_labels_only(tmp_path):
    cv2.imwrite(str(tmp_path / "pic.png"), np.zeros((60, 80, 3), np.uint8))
    path = tmp_path / "faces.xml"
    path.write_text("<dataset><images><image file='pic.png' width='50' height='37'>"
                    "<box top='5' left='7' width='30' height='20'/></image></images></dataset>")
    for load_images in (True, False):
        with pytest.raises(DataFormatError, match=r"declare 50 x 37 \(width x height\), but the image is 80 x 60"):
            read_dlib_xml(path, load_images=load_images)
    (tmp_path / "pic.png").unlink()  # labels alone, no photo to tell: read
    assert len(read_dlib_xml(path, load_images=False)) == 1


# ---- #6: labels-only reads need no photo (or only its header) --------------------------------------
def _asf(path: Path, host: str) -> Path:
    rel = np.random.default_rng(4).uniform(0.1, 0.9, (58, 2))
    lines = ["#", "58", ""] + [f"0 \t4 \t{x:.8f} \t{y:.8f} \t{i} \t{i - 1} \t{i + 1}" for i, (x, y) in enumerate(rel)]
    path.write_text("\n".join(lines + ["", "#", host]) + "\n")
    return path


def test_an_asf_labels_only_read_sizes_the_photo_from_its_header(tmp_path, monkeypatch):
    path = _asf(tmp_path / "01-1m.asf", "01-1m.jpg")
    cv2.imwrite(str(tmp_path / "01-1m.jpg"), np.zeros((48, 64, 3), np.uint8))
    decoded = read_asf(path).keypoints
    monkeypatch.setattr(landmarks, "read_image", lambda *a: pytest.fail("decoded for a labels-only read"))
    np.testing.assert_allclose(read_asf(path, load_images=False).keypoints, decoded)


def test_an_asf_without_its_photo_gives_advice_a_cli_user_can_follow(tmp_path, capsys):
    _asf(tmp_path / "01-1m.asf", "01-1m.jpg")
    cv2.imwrite(str(tmp_path / "01-1m.jpg"), np.zeros((48, 64, 3), np.uint8))
    _asf(tmp_path / "03-1m.asf", "03-1m.jpg")
    code, _, err = run_cli(["data", "info", tmp_path], capsys)
    assert code == 2 and "03-1m.asf: image not found" in err and "--skip-bad" in err
    code, out, _ = run_cli(["data", "info", tmp_path, "--skip-bad"], capsys)
    assert code == 1 and "rows            1" in out


def test_udacity_and_ytf68_labels_only_reads_need_no_photos(tmp_path):
    points = np.random.default_rng(0).uniform(5, 30, (68, 2))
    udacity = tmp_path / "training_frames_keypoints.csv"  # no image folder beside it
    udacity.write_text("," + ",".join(str(i) for i in range(136)) + "\n"
                       "Luis_21.jpg," + ",".join(f"{v:.1f}" for v in points.reshape(-1)) + "\n")
    with pytest.raises(DataFormatError, match="no image folder beside the CSV"):
        read_udacity_csv(udacity)
    data = read_udacity_csv(udacity, load_images=False)
    assert data.ids == ["Luis_21.jpg"] and data.paths == [str(tmp_path / "training_frames_keypoints" / "Luis_21.jpg")]
    ytf = tmp_path / "train.csv"
    ytf.write_text("image,person," + ",".join(f"x{i},y{i}" for i in range(68)) + "\n"
                   "train/a.jpg,P," + ",".join(f"{v:.1f}" for v in points.reshape(-1)) + "\n")
    assert len(read_ytf68_csv(ytf, load_images=False)) == 1
    with pytest.raises(DataFormatError, match="image file not found"):
        read_ytf68_csv(ytf)
