"""Round 18 of bad inputs for the data readers and writers: each case was once a valid file refused
(data convert's own output, whose photo set holds one frame under two names), valid rows lost or
misnamed (a quote missing in an all-quoted CSV joined lines into one record), a warning given on the
first read only, a flag such as ``skip_bad="no"`` taken as true, numpy's bare reshape error, a
header-only submission written without a word, or a bare OSError; each now is the right result or
one line naming the file, row, field or argument."""
from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest

from facekeypoints.data import DataFormatError, KeypointData, read
from facekeypoints.data.convert import to_kaggle_task
from facekeypoints.data.formats import csvfile
from facekeypoints.data.formats.kaggle import read_kaggle_csv
from facekeypoints.data.formats.landmark_sets import read_coco_json, read_dlib_xml
from facekeypoints.data.formats.landmarks import read_asf, read_ljson, read_pts
from facekeypoints.data.formats.submission import write_submission
from facekeypoints.data.formats.verify import verify_kaggle_download
from facekeypoints.data.formats.ytf import read_udacity_csv, read_ytf68_csv
from facekeypoints.data.info import describe, read_for_info
from facekeypoints.data.splits import MISSING_STRATEGIES, handle_missing
from facekeypoints.schema import load_schema
from fakes import kaggle_pixels as _pixels
from fakes import kaggle_training_csv as _training_csv
from fakes import run_cli

COLUMNS = load_schema("kaggle15").columns()



def _repeat_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "the image of an earlier row" in str(w.message)]


# ---- newdata #1, #6: a repeated image is kept, with one warning on every read ------------------------
def test_a_repeated_image_is_kept_with_one_warning_on_every_read_cached_or_not(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    path = _training_csv(tmp_path / "t.csv", [_pixels(0), _pixels(1), _pixels(0), _pixels(2), _pixels(1)])
    for _ in range(2):  # the first read parses and caches, the second comes from the cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = read_kaggle_csv(path)
        assert len(data) == 5 and data.ids == ["1", "2", "3", "4", "5"] and not data.skipped
        assert _repeat_warnings(caught) == [
            f"{path}: 2 rows repeat the image of an earlier row (row 3 repeats row 1, row 5 repeats row 2); all are "
            "kept (training refuses a split that puts copies on both sides)"]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_other_labels_on_a_repeated_image_are_kept_with_the_same_warning(tmp_path):
    path = tmp_path / "t.csv"
    header = ",".join(COLUMNS + ["Image"])
    path.write_text(f"{header}\n{','.join(['40.0'] * 30)},{_pixels(0)}\n{','.join(['41.0'] * 30)},{_pixels(0)}\n")
    with pytest.warns(UserWarning, match=r"1 row repeats the image of an earlier row \(row 2 repeats row 1\)"):
        assert len(read_kaggle_csv(path, use_cache=False)) == 2


def test_many_repeats_are_one_warning_listing_the_first_few(tmp_path):
    path = _training_csv(tmp_path / "t.csv", [_pixels(0)] * 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(read_kaggle_csv(path, use_cache=False)) == 12
    (message,) = _repeat_warnings(caught)
    assert message.startswith(f"{path}: 11 rows repeat the image of an earlier row (row 2 repeats row 1, ")
    assert "row 6 repeats row 1, ...)" in message and "row 7" not in message


def test_a_test_csv_or_unlabelled_rows_may_repeat_an_image_without_a_warning(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text(f"ImageId,Image\n1,{_pixels(0)}\n2,{_pixels(0)}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_kaggle_csv(path, use_cache=False).ids == ["1", "2"]


# ---- newdata #2: every line is one row; quotes are read per line -----------------------------------
def _rows(seed: int, n: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        coords = [f"{v:.4f}" for v in rng.uniform(10, 80, 30)]
        if k % 3 == 1:
            coords[4:8] = ["", "", "", ""]
        rows.append(coords + [_pixels(seed * 100 + k)])
    return rows


@pytest.mark.parametrize("quoting", [csv.QUOTE_ALL, csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC])
@pytest.mark.parametrize("block", [csvfile.BLOCK, 4096])
def test_csv_writers_quoting_styles_read_as_pythons_csv_module_reads_them(tmp_path, monkeypatch, quoting, block):
    monkeypatch.setattr(csvfile, "BLOCK", block)
    rows = _rows(quoting, 7)
    path = tmp_path / "q.csv"
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, quoting=quoting)
        writer.writerow(COLUMNS + ["Image"])
        writer.writerows(rows)
    data = read_kaggle_csv(path, use_cache=False)
    with open(path, newline="") as stream:
        expected = list(csv.reader(stream))[1:]
    assert len(data) == len(expected) == 7 and not data.skipped
    coords = np.array([[float(v) if v else math.nan for v in row[:30]] for row in expected], np.float32)
    np.testing.assert_array_equal(data.keypoints.reshape(7, 30), coords)
    images = np.array([row[30].split() for row in expected], np.uint8).reshape(7, 96, 96)
    np.testing.assert_array_equal(data.images, images)


def test_a_missing_closing_quote_in_an_all_quoted_file_is_that_lines_row_alone(tmp_path):
    lines = ['"ImageId","Image"']
    for i in range(1, 7):
        pixels = _pixels(i).replace(" ", " x", 1) if i == 5 else _pixels(i)
        lines.append(f'"{i}","{pixels}"' if i != 2 else f'"{i}","{pixels}')
    path = tmp_path / "stray.csv"
    path.write_text("\n".join(lines) + "\n")
    data = read_kaggle_csv(path, skip_bad=True, use_cache=False)
    assert data.ids == ["1", "3", "4", "6"] and len(data.skipped) == 2
    assert data.skipped[0] == (f"{path}, row 2: a quoted field is not closed on this line (a Kaggle CSV holds no "
                               "line breaks inside a field; a field that runs over lines counts one bad row per line)")
    assert data.skipped[1].startswith(f"{path}, row 5, field 'Image'")


@pytest.mark.parametrize("block", [csvfile.BLOCK, 4096])
def test_a_field_over_several_lines_is_one_bad_row_per_line(tmp_path, monkeypatch, block):
    monkeypatch.setattr(csvfile, "BLOCK", block)
    split = _pixels(1).split(" ")
    broken = "\n".join([" ".join(split[:1]), " ".join(split[1:2]), " ".join(split[2:])])
    path = tmp_path / "k_nl.csv"
    path.write_text(f'ImageId,Image\n1,{_pixels(0)}\n2,"{broken}"\n3,{_pixels(2)}\n"line\nbreak",{_pixels(3)}\n'
                    f"5,{_pixels(4)}\n", newline="")
    data = read_kaggle_csv(path, skip_bad=True, use_cache=False)
    assert data.ids == ["1", "3", "5"]
    assert [s.split(":")[0] for s in data.skipped] == [f"{path}, row {r}" for r in (2, 3, 4, 6, 7)]
    assert all("not closed on this line" in data.skipped[k] for k in (0, 2, 3, 4))
    assert "has 1 fields, the header has 2" in data.skipped[1]
    with pytest.raises(DataFormatError, match=rf"^{path}, row 2: a quoted field is not closed on this line"):
        read_kaggle_csv(path, use_cache=False)


def test_every_line_with_an_open_quote_counts_as_its_own_row(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text("ImageId,Image\n" + "".join(f'{i},"{_pixels(0)[:50]}\n' for i in range(1, 201)))
    with pytest.raises(DataFormatError, match="no faces; 200 skipped as bad"):
        read(path, skip_bad=True)


# ---- api #3: reader flags are bools -------------------------------------------------------------------
@pytest.mark.parametrize("reader", [read, read_pts, read_asf, read_ljson, read_dlib_xml, read_coco_json,
                                    read_ytf68_csv, read_udacity_csv])
@pytest.mark.parametrize("flag", ["skip_bad", "load_images"])
def test_reader_flags_must_be_bools(tmp_path, reader, flag):
    with pytest.raises(TypeError, match=rf"^{flag} must be True or False, got str 'no'$"):
        reader(tmp_path / "nothing-here", **{flag: "no"})


def test_kaggle_and_info_and_conversion_flags_must_be_bools(tmp_path):
    path = _training_csv(tmp_path / "t.csv", [_pixels(0)])
    for flag in ("skip_bad", "use_cache"):
        with pytest.raises(TypeError, match=rf"^{flag} must be True or False, got int 0$"):
            read_kaggle_csv(path, **{flag: 0})
    with pytest.raises(TypeError, match=r"^skip_bad must be True or False, got str 'no'$"):
        read_for_info(path, skip_bad="no")
    with pytest.raises(TypeError, match=r"^skip_bad must be True or False, got str 'no'$"):
        to_kaggle_task(read_kaggle_csv(path, use_cache=False), skip_bad="no")
    assert len(read_kaggle_csv(path, skip_bad=np.bool_(True), use_cache=False)) == 1  # numpy's bool is a bool


# ---- api #4: handle_missing and describe --------------------------------------------------------------
@pytest.mark.parametrize("strategy", MISSING_STRATEGIES)
def test_handle_missing_on_empty_data_is_an_empty_report(strategy):
    data, report = handle_missing(KeypointData.from_arrays("kaggle15", np.zeros((0, 15, 2))), strategy)
    assert len(data) == 0 and (report.rows_in, report.rows_out, report.values_missing) == (0, 0, 0)


def test_handle_missing_and_describe_refuse_what_is_not_keypoint_data():
    with pytest.raises(TypeError, match=r"^handle_missing needs KeypointData .*, got ndarray$"):
        handle_missing(np.zeros((2, 15, 2)), "drop")
    with pytest.raises(TypeError, match=r"^describe needs KeypointData .*, got list$"):
        describe([1])


# ---- api #17: write_submission ------------------------------------------------------------------------
def test_a_submission_for_an_empty_lookup_is_refused(tmp_path):
    out = tmp_path / "s.csv"
    with pytest.raises(ValueError, match=r"^lookup_rows is empty"):
        write_submission(np.zeros((1, 15, 2)), [], out, image_ids=[1])
    assert not out.exists()


def test_repeated_image_ids_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"^image ids are not unique: 7 is given 2 times \(2 repeated ids in all\)$"):
        write_submission(np.zeros((5, 15, 2)), [(1, 7, "nose_tip_x")], tmp_path / "s.csv",
                         image_ids=[7, 3, 7, 3, 3])


# ---- newinfer #3: data verify on a name too long ------------------------------------------------------
def test_verify_names_a_name_too_long(tmp_path, capsys):
    name = tmp_path / ("x" * 300)
    with pytest.raises(ValueError, match=rf"^{name}: the name .* is 300 bytes long, over the 255 bytes"):
        verify_kaggle_download(name)
    code, _, err = run_cli(["data", "verify", name], capsys)
    assert code == 2 and f"{name}: the name" in err and "OSError" not in err
