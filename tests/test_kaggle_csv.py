"""Kaggle and YouTube-Faces CSV readers and the Kaggle writer, on generated files and on ../shared/data."""
import gzip
import re
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import DataFormatError, KeypointData, cache, read
from facekeypoints.data.formats import csvfile, kaggle
from facekeypoints.data.formats.kaggle import read_kaggle_csv, write_kaggle_csv
from facekeypoints.data.formats.pixels import PIXELS, PixelParser
from facekeypoints.data.formats.ytf import attach_person, read_udacity_csv, read_ytf68_csv
from facekeypoints.schema import load_schema

COLUMNS = load_schema("kaggle15").columns()


def _fake_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 15, 2) keypoints with some missing labels and (n, 96, 96) uint8 images using 0..255."""
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(0, 95, (n, 15, 2)).round(4)
    keypoints[1::2, 2:10] = np.nan  # the usual Kaggle gap: only some keypoints on every other row
    images = rng.integers(0, 256, (n, 96, 96), dtype=np.uint8)
    images[0, 0, :3] = (0, 255, 7)
    return keypoints, images


def _cells(values) -> list[str]:
    return ["" if np.isnan(v) else f"{v:.4f}" for v in values]


def _training_text(keypoints, images, *, order=None, newline="\n", ids=None) -> str:
    """Kaggle training.csv text written by hand (not by write_kaggle_csv), columns in ``order``."""
    header = (["ImageId"] if ids is not None else []) + COLUMNS + ["Image"]
    order = order or header
    lines = [",".join(order)]
    for i, (kp, im) in enumerate(zip(keypoints, images)):
        cells = dict(zip(COLUMNS, _cells(kp.reshape(-1))))
        cells["Image"] = " ".join(map(str, im.reshape(-1)))
        if ids is not None:
            cells["ImageId"] = str(ids[i])
        lines.append(",".join(cells[c] for c in order))
    return newline.join(lines) + newline


def _write(path: Path, text: str) -> Path:
    path.write_text(text, newline="")
    return path


def _pixel_line(values) -> str:
    return " ".join(str(v) for v in values)


def _one_row_csv(tmp_path, image_text: str, name: str = "bad.csv", coord: str = "40.0") -> Path:
    """training.csv with a good row 1 and the given Image text (and nose_tip_x) on row 2."""
    good = _pixel_line([1] * 9216)
    coords = ["50.0"] * 30
    bad = list(coords)
    bad[COLUMNS.index("nose_tip_x")] = coord
    text = ",".join(COLUMNS + ["Image"]) + "\n" + ",".join(coords + [good]) + "\n" + ",".join(bad + [image_text]) + "\n"
    return _write(tmp_path / name, text)


# ---- reading good files ----------------------------------------------------------------------------
def test_reads_training_csv_exactly(tmp_path):
    keypoints, images = _fake_faces(5)
    data = read_kaggle_csv(_write(tmp_path / "training.csv", _training_text(keypoints, images)))
    assert data.schema.name == "kaggle15" and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_allclose(data.keypoints, keypoints, atol=1e-4)
    assert np.isnan(data.keypoints[1, 2:10]).all() and not np.isnan(data.keypoints[0]).any()
    assert data.ids == ["1", "2", "3", "4", "5"] and data.skipped == []


def test_columns_are_matched_by_name_not_position(tmp_path):
    keypoints, images = _fake_faces(3)
    order = ["Image"] + COLUMNS[::-1]
    data = read_kaggle_csv(_write(tmp_path / "shuffled.csv", _training_text(keypoints, images, order=order)))
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_allclose(data.keypoints, keypoints, atol=1e-4)


def test_test_csv_has_ids_and_no_labels(tmp_path):
    _, images = _fake_faces(3)
    text = "ImageId,Image\n" + "".join(f"{i},{_pixel_line(im.reshape(-1))}\n" for i, im in zip((7, 3, 9), images))
    data = read_kaggle_csv(_write(tmp_path / "test.csv", text))
    assert data.ids == ["7", "3", "9"] and np.isnan(data.keypoints).all()
    np.testing.assert_array_equal(data.images, images)


def test_label_only_csv_has_no_images(tmp_path):
    keypoints, _ = _fake_faces(4)
    text = ",".join(COLUMNS) + "\n" + "".join(",".join(_cells(kp.reshape(-1))) + "\n" for kp in keypoints)
    data = read_kaggle_csv(_write(tmp_path / "labels.csv", text))
    assert data.images is None and len(data) == 4
    np.testing.assert_allclose(data.keypoints, keypoints, atol=1e-4)


def test_zip_gzip_crlf_and_unterminated_files_read_the_same(tmp_path):
    keypoints, images = _fake_faces(3)
    text = _training_text(keypoints, images)
    with zipfile.ZipFile(tmp_path / "training.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("training.csv", text)
    with gzip.open(tmp_path / "training.csv.gz", "wt", newline="") as out:
        out.write(text)
    variants = [tmp_path / "training.zip", tmp_path / "training.csv.gz",
                _write(tmp_path / "crlf.csv", _training_text(keypoints, images, newline="\r\n")),
                _write(tmp_path / "unterminated.csv", text.rstrip("\n")),
                _write(tmp_path / "trailing_blank.csv", text + "\n\n")]
    for path in variants:
        data = read_kaggle_csv(path, use_cache=False)
        np.testing.assert_array_equal(data.images, images, err_msg=str(path))
        np.testing.assert_allclose(data.keypoints, keypoints, atol=1e-4, err_msg=str(path))


def test_rows_split_across_parse_blocks(tmp_path, monkeypatch):
    keypoints, images = _fake_faces(9)
    path = _write(tmp_path / "training.csv", _training_text(keypoints, images))
    monkeypatch.setattr(csvfile, "BLOCK", 20_011)  # smaller than one row, not aligned to anything
    data = read_kaggle_csv(path, use_cache=False)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_allclose(data.keypoints, keypoints, atol=1e-4)


def test_leading_zeros_are_decimal(tmp_path):
    values = ["007", "0255", "00", "0" * 5000 + "9"] + ["5"] * 9212  # more digits than int() converts
    data = read_kaggle_csv(_one_row_csv(tmp_path, " ".join(values)), use_cache=False)
    assert data.images[1].reshape(-1)[:5].tolist() == [7, 255, 0, 9, 5]


def test_pixel_parser_matches_a_plain_parse_on_irregular_spacing():
    """Many spaces, leading and trailing spaces, leading zeros, fields before and after others."""
    rng = np.random.default_rng(1)
    parser = PixelParser()
    for _ in range(3):  # the same parser again: its reused work arrays must not leak between calls
        rows, texts = rng.integers(0, 256, (4, PIXELS)), []
        for row in rows:
            gaps = rng.choice([" ", "  ", "   "], PIXELS - 1)
            cells = [f"{v:03d}" if rng.random() < 0.1 else str(v) for v in row]
            texts.append(" " + "".join(c + g for c, g in zip(cells, gaps)) + cells[-1] + " ")
        lines = [f"{k},{text},9" for k, text in enumerate(texts)]
        blob = ("\n".join(lines) + "\n").encode()
        starts = np.array([blob.index(b",", blob.index(line.encode())) + 1 for line in lines])
        ends = np.array([blob.rindex(b",", 0, blob.index(line.encode()) + len(line)) for line in lines])
        good, pixels, problems = parser.parse(np.frombuffer(blob, np.uint8), starts, ends)
        assert problems == {} and good.tolist() == [0, 1, 2, 3]
        np.testing.assert_array_equal(pixels, rows)


# ---- bad input: errors name the file, the row, the field and what is wrong ------------------------
@pytest.mark.parametrize("image_text, field, expected", [
    (_pixel_line([3] * 9215), "'Image'", "holds 9215 pixel values, expected 9216"),
    (_pixel_line([3] * 100 + [300] + [3] * 9115), "'Image'", "value 300 (pixel 101) is outside 0..255"),
    (_pixel_line([3] * 9215) + " 1a", "'Image'", "'a' at character"),
    (_pixel_line([3] * 9216) + " -5", "'Image'", "'-' at character"),
    (_pixel_line([3] * 9215) + " 12345", "'Image'", "value 12345 (pixel 9216)"),
    (_pixel_line([3] * 9215) + " " + "9" * 5000, "'Image'", "value 999999999... (pixel 9216) is outside 0..255"),
])
def test_bad_pixels_name_row_and_field(tmp_path, image_text, field, expected):
    path = _one_row_csv(tmp_path, image_text)
    with pytest.raises(DataFormatError) as err:
        read_kaggle_csv(path)
    message = str(err.value)
    assert str(path) in message and "row 2" in message and field in message and expected in message
    assert err.value.row == 2 and err.value.field == "Image"


def test_text_in_a_coordinate_names_row_and_column(tmp_path):
    path = _one_row_csv(tmp_path, _pixel_line([1] * 9216), coord="abc")
    with pytest.raises(DataFormatError, match=r"row 2, field 'nose_tip_x': not a number: 'abc'"):
        read_kaggle_csv(path)


def test_half_a_keypoint_is_an_error(tmp_path):
    path = _one_row_csv(tmp_path, _pixel_line([1] * 9216), coord="")
    with pytest.raises(DataFormatError, match=r"row 2, field 'nose_tip': only one of x and y"):
        read_kaggle_csv(path)


def test_duplicate_image_id(tmp_path):
    pixels = _pixel_line([1] * 9216)
    path = _write(tmp_path / "test.csv", f"ImageId,Image\n1,{pixels}\n2,{pixels}\n1,{pixels}\n")
    with pytest.raises(DataFormatError, match=r"row 3, field 'ImageId': duplicate ImageId 1 \(also on row 1\)"):
        read_kaggle_csv(path)


@pytest.mark.parametrize("content, expected", [
    (b"", "empty file"),
    (b"\n\n", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data (NUL byte"),
    ("Image\n".encode("utf-16"), "text is UTF-16 encoded"),
    (b"nose_tip_x\xff,Image\n", "not UTF-8"),
    (b"ImageId,Image\n", "no data rows"),
    (b"ImageId,Image\r\n\r\n", "no data rows"),
])
def test_unreadable_files(tmp_path, content, expected):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=re.escape(expected)) as err:
        read_kaggle_csv(path)
    assert str(path) in str(err.value)


def test_missing_and_unknown_columns_are_named(tmp_path):
    header = [c for c in COLUMNS if c != "nose_tip_y"] + ["Image", "Extra"]
    path = _write(tmp_path / "cols.csv", ",".join(header) + "\n")
    with pytest.raises(DataFormatError, match=r"header: unknown columns \['Extra'\]; missing columns \['nose_tip_y'\]"):
        read_kaggle_csv(path)


def test_wrong_field_count_blank_line_and_bad_zip(tmp_path):
    pixels = _pixel_line([1] * 9216)
    path = _write(tmp_path / "fields.csv", f"ImageId,Image\n1,{pixels}\n2,3,{pixels}\n")
    with pytest.raises(DataFormatError, match="row 2: has 3 fields, the header has 2"):
        read_kaggle_csv(path)
    path = _write(tmp_path / "blank.csv", f"ImageId,Image\n1,{pixels}\n\n2,{pixels}\n")
    with pytest.raises(DataFormatError, match="row 2: empty line"):
        read_kaggle_csv(path)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataFormatError, match="not a readable zip archive"):
        read_kaggle_csv(tmp_path / "broken.zip")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.csv", "ImageId,Image\n")
        archive.writestr("b.csv", "ImageId,Image\n")
    with pytest.raises(DataFormatError, match=r"exactly one \.csv file, it holds \['a.csv', 'b.csv'\]"):
        read_kaggle_csv(tmp_path / "two.zip")


@pytest.mark.parametrize("block", [None, 20_011])  # one parse block, or about one row per block
def test_skip_bad_keeps_good_rows_and_reports_each_bad_one(tmp_path, monkeypatch, block):
    if block:
        monkeypatch.setattr(csvfile, "BLOCK", block)
    _, images = _fake_faces(6)
    lines = [f"{i + 1},{_pixel_line(im.reshape(-1))}" for i, im in enumerate(images)]
    lines[1] = "2," + _pixel_line(images[1].reshape(-1)[:-1])  # 9215 values
    lines[3] = "3," + _pixel_line(images[3].reshape(-1))       # ImageId 3 again
    lines[4] = "5," + _pixel_line(images[4].reshape(-1)) + " x"
    path = _write(tmp_path / "test.csv", "ImageId,Image\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="row 2"):
        read_kaggle_csv(path)
    data = read_kaggle_csv(path, skip_bad=True, use_cache=False)
    assert data.ids == ["1", "3", "6"]
    np.testing.assert_array_equal(data.images, images[[0, 2, 5]])
    assert len(data.skipped) == 3
    for message, row in zip(data.skipped, (2, 4, 5)):
        assert f"row {row}, field 'ImageId'" in message or f"row {row}, field 'Image'" in message
    assert "9215" in data.skipped[0] and "duplicate ImageId 3" in data.skipped[1] and "'x'" in data.skipped[2]


@pytest.mark.parametrize("coord, expected", [
    ("1e30", "x = 1e+30 is more than one image size (96 px) beyond the edge of the 96 x 96 image"),
    ("192.5", "x = 192.5 is more than one image size (96 px)"),
    ("-96.5", "x = -96.5 is more than one image size (96 px)"),
    ("1e999", "x = inf is not a finite number"),
    ("inf", "not a finite number: 'inf'"),
    ("-inf", "not a finite number: '-inf'"),
    ("nan", "not a finite number: 'nan' (leave the cell empty for a missing keypoint)"),
])
def test_absurd_coordinates_are_bad_rows(tmp_path, coord, expected):
    path = _one_row_csv(tmp_path, _pixel_line([1] * 9216), coord=coord)
    with pytest.raises(DataFormatError) as err:
        read_kaggle_csv(path)
    assert f"{path}, row 2, field 'nose_tip_x': {expected}" in str(err.value)
    data = read_kaggle_csv(path, skip_bad=True)
    assert len(data) == 1 and len(data.skipped) == 1 and expected in data.skipped[0]


def test_label_only_files_bound_coordinates_without_an_image_size(tmp_path):
    """No Image column, no image size: only values beyond any photo (100000 px) are absurd."""
    path = _write(tmp_path / "labels.csv", ",".join(COLUMNS) + "\n" + ",".join(["1000"] * 30) + "\n")
    assert read_kaggle_csv(path).keypoints.max() == 1000
    path.write_text(",".join(COLUMNS) + "\n" + ",".join(["-1e30"] * 30) + "\n")
    with pytest.raises(DataFormatError, match=r"row 1, field 'left_eye_center_x': x = -1e\+30 is more than 100000 px"):
        read_kaggle_csv(path)


@pytest.mark.parametrize("block, bad_rows", [(None, [1, 2, 3]), (20_011, [2])])  # one block; a block per row
def test_a_parse_block_of_only_bad_rows(tmp_path, monkeypatch, block, bad_rows):
    if block:
        monkeypatch.setattr(csvfile, "BLOCK", block)
    keypoints, images = _fake_faces(3)
    lines = _training_text(keypoints, images).splitlines()
    for row in bad_rows:
        lines[row] = lines[row].rsplit(" ", 1)[0]  # 9215 pixel values
    path = _write(tmp_path / "training.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"training.csv, row {bad_rows[0]}, field 'Image': holds 9215"):
        read_kaggle_csv(path, use_cache=False)
    data = read_kaggle_csv(path, skip_bad=True, use_cache=False)
    assert len(data) == 3 - len(bad_rows) and [int(m.split("row ")[1].split(",")[0]) for m in data.skipped] == bad_rows


def test_old_mac_line_ends_read_like_lf(tmp_path, monkeypatch):
    keypoints, images = _fake_faces(3)
    path = _write(tmp_path / "mac.csv", _training_text(keypoints, images, newline="\r"))
    for block in (None, 20_011):  # CRs at the ends of blocks too
        if block:
            monkeypatch.setattr(csvfile, "BLOCK", block)
        for data in (read_kaggle_csv(path, use_cache=False), read(path)):
            np.testing.assert_array_equal(data.images, images)
            np.testing.assert_allclose(data.keypoints, keypoints, atol=1e-4)
    # a CR LF pair split between two chunks stays one line end; a lone CR first makes every CR one
    assert b"".join(csvfile.line_blocks(iter([b"a,b\r", b"\n1,2\r\n"]))) == b"a,b\r\n1,2\r\n"
    assert b"".join(csvfile.line_blocks(iter([b"a,b\r", b"1,2\r3,4"]))) == b"a,b\n1,2\n3,4\n"


def test_damaged_zip_member(tmp_path):
    keypoints, images = _fake_faces(2)
    with zipfile.ZipFile(tmp_path / "training.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("training.csv", _training_text(keypoints, images))
    raw = (tmp_path / "training.zip").read_bytes()
    (tmp_path / "training.zip").write_bytes(b"XX" + raw[2:])  # the member's own header, not the directory
    with pytest.raises(DataFormatError, match=r"training.zip: cannot open training.csv in the zip archive"):
        read_kaggle_csv(tmp_path / "training.zip")


# ---- the cache -------------------------------------------------------------------------------------
def test_cache_hit_is_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    keypoints, images = _fake_faces(3)
    path = _write(tmp_path / "training.csv", _training_text(keypoints, images))
    first = read_kaggle_csv(path)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    moved = path.rename(tmp_path / "renamed.csv")
    with monkeypatch.context() as patch:
        patch.setattr(kaggle, "_parse_kaggle", lambda *a: pytest.fail("parsed although cached"))
        again = read_kaggle_csv(moved)
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.keypoints, first.keypoints)
    assert again.source == str(moved)
    images[0, 0, 0] = 99  # new content, new key: parsed afresh
    changed = read_kaggle_csv(_write(moved, _training_text(keypoints, images)))
    assert changed.images[0, 0, 0] == 99


def test_corrupt_cache_entry_is_ignored_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    keypoints, images = _fake_faces(2)
    path = _write(tmp_path / "training.csv", _training_text(keypoints, images))
    read_kaggle_csv(path)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:5000])  # truncated
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        data = read_kaggle_csv(path)
    np.testing.assert_array_equal(data.images, images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_kaggle_csv(path).images, images)  # the rebuilt entry is good
    np.savez(entry, keypoints=np.zeros((1, 3, 2), np.float32))  # readable, but not this reader's arrays
    with pytest.warns(UserWarning, match="inconsistent cache entry"):
        data = read_kaggle_csv(path)
    np.testing.assert_array_equal(data.images, images)


def test_skip_bad_results_are_cached_apart_from_strict_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(tmp_path / "cache"))
    path = _one_row_csv(tmp_path, _pixel_line([3] * 9215))
    lenient = read_kaggle_csv(path, skip_bad=True)
    again = read_kaggle_csv(path, skip_bad=True)  # from the cache, messages rebuilt
    assert len(lenient) == len(again) == 1 and again.skipped == lenient.skipped
    assert "row 2, field 'Image'" in again.skipped[0]
    with pytest.raises(DataFormatError, match="9215"):
        read_kaggle_csv(path)
    assert cache.cache_dir() == tmp_path / "cache"


# ---- writing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.csv", "out.zip", "out.csv.gz"])
def test_write_then_read_round_trips(tmp_path, name):
    keypoints, images = _fake_faces(4)
    keypoints[2] = np.nan
    data = KeypointData.from_arrays("kaggle15", keypoints + 1e-5, images=images)
    back = read_kaggle_csv(write_kaggle_csv(data, tmp_path / name))
    np.testing.assert_array_equal(back.images, images)
    np.testing.assert_allclose(back.keypoints, data.keypoints, atol=1e-4)
    assert np.isnan(back.keypoints[2]).all()
    header = (tmp_path / "x.csv")
    write_kaggle_csv(KeypointData.from_arrays("kaggle15", keypoints), header)
    assert header.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert header.read_text().splitlines()[3] == "," * 29  # a row with every label missing


def test_writer_refuses_other_schemas_and_shapes(tmp_path):
    with pytest.raises(ValueError, match="to_schema"):
        write_kaggle_csv(KeypointData.from_arrays("ibug68", np.zeros((1, 68, 2))), tmp_path / "a.csv")
    data = KeypointData.from_arrays("kaggle15", np.zeros((1, 15, 2)), images=np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 96, 96\) uint8"):
        write_kaggle_csv(data, tmp_path / "b.csv")


# ---- YouTube Faces CSVs ----------------------------------------------------------------------------
def _points(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 60, (68, 2)).round(2)


def _ytf_folder(tmp_path: Path, sizes=((64, 48), (50, 70))) -> tuple[Path, list[np.ndarray]]:
    (tmp_path / "images" / "train").mkdir(parents=True)
    header = "image,person," + ",".join(f"x{i},y{i}" for i in range(68))
    lines, images = [header], []
    for k, (h, w) in enumerate(sizes):
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 2] = 200 + k  # BGR red on disk
        cv2.imwrite(str(tmp_path / "images" / "train" / f"P{k}_0{k}.png"), image)
        images.append(image[..., ::-1])
        lines.append(f"train/P{k}_0{k}.png,Person_{k}," + ",".join(f"{v:.2f}" for v in _points(k).reshape(-1)))
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "train.csv", images


def test_ytf68_reads_rgb_images_person_and_points(tmp_path):
    path, images = _ytf_folder(tmp_path)
    data = read_ytf68_csv(path)
    assert data.schema.name == "ibug68" and data.person == ["Person_0", "Person_1"]
    assert data.ids == ["train/P0_00.png", "train/P1_01.png"]
    assert data.paths[1] == str(tmp_path / "images" / "train" / "P1_01.png")
    for got, want in zip(data.images, images):
        np.testing.assert_array_equal(got, want)  # RGB: the red channel first
    np.testing.assert_allclose(data.keypoints[1], _points(1), atol=1e-4)
    unlabeled = tmp_path / "unlabeled.csv"
    unlabeled.write_text("image,person\ntrain/P0_00.png,Person_0\n")
    blank = read_ytf68_csv(unlabeled, load_images=False)
    assert blank.images is None and blank.keypoints.shape == (1, 68, 2) and np.isnan(blank.keypoints).all()


def test_ytf68_missing_image_and_bad_values(tmp_path):
    path, _ = _ytf_folder(tmp_path)
    (tmp_path / "images" / "train" / "P1_01.png").unlink()
    with pytest.raises(DataFormatError, match=r"train.csv, row 2, field 'image': image file not found: .*P1_01.png"):
        read_ytf68_csv(path)
    data = read_ytf68_csv(path, skip_bad=True)
    assert len(data) == 1 and len(data.skipped) == 1 and "row 2" in data.skipped[0]
    header, first = path.read_text().splitlines()[:2]
    cells = first.split(",")
    cells[2] = "oops"  # x0
    path.write_text(header + "\n" + ",".join(cells) + "\n")
    with pytest.raises(DataFormatError, match=r"row 1, field 'x0': not a number: 'oops'"):
        read_ytf68_csv(path)
    path.write_text("image,person,x0\nfoo.png,P,1\n")
    with pytest.raises(DataFormatError, match=r"missing \['y0', 'x1'"):
        read_ytf68_csv(path)


def test_ytf68_absurd_coordinates_name_row_and_column(tmp_path):
    path, _ = _ytf_folder(tmp_path)  # row 1's image is 48 wide, 64 high
    header, first, second = path.read_text().splitlines()
    for value, expected, labels_only_too in (("nan", "not a finite number: 'nan'", True),
                                             ("1e30", "x = 1e+30 is more than one image size (48 px)", True),
                                             ("-60", "x = -60 is more than one image size (48 px) beyond the "
                                                     "edge of the 48 x 64 image", False)):
        cells = first.split(",")
        cells[2] = value  # x0
        path.write_text("\n".join([header, ",".join(cells), second]) + "\n")
        with pytest.raises(DataFormatError) as err:
            read_ytf68_csv(path)
        assert f"train.csv, row 1, field 'x0': {expected}" in str(err.value)
        assert len(read_ytf68_csv(path, skip_bad=True)) == 1
        labels = read_ytf68_csv(path, load_images=False, skip_bad=True)  # no image: only beyond 100000 px
        assert len(labels) == (1 if labels_only_too else 2)


def test_udacity_layout(tmp_path):
    folder = tmp_path / "training"
    folder.mkdir()
    cv2.imwrite(str(folder / "Luis_21.jpg"), np.full((40, 30, 3), 128, np.uint8))
    points = _points(3)
    csv_path = tmp_path / "training_frames_keypoints.csv"
    csv_path.write_text("," + ",".join(str(i) for i in range(136)) + "\n"
                        "Luis_21.jpg," + ",".join(f"{v:.1f}" for v in points.reshape(-1)) + "\n")
    data = read_udacity_csv(csv_path)
    assert data.ids == ["Luis_21.jpg"] and data.images[0].shape == (40, 30, 3)
    np.testing.assert_allclose(data.keypoints[0], points, atol=0.051)
    elsewhere = tmp_path / "frames"
    folder.rename(elsewhere)
    with pytest.raises(DataFormatError, match="no image folder beside the CSV"):
        read_udacity_csv(csv_path)
    assert len(read_udacity_csv(csv_path, image_dir=elsewhere)) == 1
    with pytest.raises(DataFormatError, match="image file not found"):
        read_udacity_csv(csv_path, image_dir=tmp_path)
    csv_path.write_text(",x0,y0\nLuis_21.jpg,1,2\n")
    with pytest.raises(DataFormatError, match="header must be a name column then 0..135"):
        read_udacity_csv(csv_path, image_dir=elsewhere)


def test_attach_person_needs_matching_rows(tmp_path):
    path, _ = _ytf_folder(tmp_path)
    data = KeypointData.from_arrays("kaggle15", np.zeros((2, 15, 2)))
    assert attach_person(data, path).person == ["Person_0", "Person_1"]
    assert data.person == [None, None]  # a copy; the original is unchanged
    with pytest.raises(ValueError, match="has 2 rows but .* has 3"):
        attach_person(KeypointData.from_arrays("kaggle15", np.zeros((3, 15, 2))), path)
    skipped = KeypointData.from_arrays("kaggle15", np.zeros((2, 15, 2)), skipped=["row 3: bad"])
    with pytest.raises(ValueError, match="rows skipped"):
        attach_person(skipped, path)


# ---- the real files in ../shared/data ---------------------------------------------------------------
@pytest.mark.shared_data
def test_shared_fkd15_ytf_training_and_test(shared_data):
    training = read_kaggle_csv(shared_data / "fkd15-ytf" / "training.zip")
    assert training.images.shape == (3045, 96, 96) and int(training.fully_labelled().sum()) == 992
    test = read_kaggle_csv(shared_data / "fkd15-ytf" / "test.zip")
    assert test.images.shape == (1783, 96, 96) and test.ids == [str(i) for i in range(1, 1784)]
    assert np.isnan(test.keypoints).all()
    people = attach_person(training, shared_data / "ytf68" / "train.csv")
    assert len(set(people.person)) == 304 and people.person[0] == "Luis_Fonsi"


@pytest.mark.shared_data
def test_shared_kaggle_label_file(shared_data):
    labels = read_kaggle_csv(shared_data / "kaggle-fkd" / "training_keypoints_only.csv")
    assert len(labels) == 7049 and labels.images is None and int(labels.fully_labelled().sum()) == 2140
    assert int((labels.labelled_mask().sum(axis=1) == 4).sum()) == 4755
