"""Round 7 (F11): memory of oversized inputs. The target: at most 1 GB peak for any single input, or
the input is refused early with a one-line error naming the file and the limit. Each case once took
gigabytes; the tests use small limits (monkeypatched) or modest inputs and check the mechanism
(tracemalloc peaks, the order photos are read in), never gigabytes:

- P12: a 120 MB .pts took 8.7 GB before "n_points says 68 but 31457280 points": label files
  (.pts, .asf, .ljson) over ``MAX_LABEL_BYTES`` (10 MB) are refused unread, and the .pts parser
  keeps 68 points at most (the rest are checked and counted);
- K01: a Kaggle row whose Image field was 100 MB (line ends lost) took 2.0 GB: a line over
  ``kaggle.MAX_LINE`` (4 MB) is refused as soon as it is that long; a Kaggle CSV over
  ``kaggle.MAX_ROWS`` lines is refused too (20 M trailing blank lines took 880 MB), and the image
  array grows to that cap at once instead of doubling by copies;
- J10: a 100 MB COCO JSON took 1.13 GB: JSON over ``MAX_COCO_BYTES`` (20 MB) is refused unread, by
  the reader and by format detection (which parses a .json to tell COCO from ljson);
- Y11: a ytf68 CSV of 1 M short rows took 2.1 GB (and a 30 MB one of 30 k rows 545 MB), and an 8 M
  row one did not stop on SIGTERM (its keypoints were one long C-level ``np.asarray`` of lists): the
  reader refuses over ``_MAX_ROWS`` lines or ``_MAX_BYTES`` of text before parsing, keeps the rows as
  their lines (parsed again as used, not a list of 138 strings a row) and fills the keypoints into a
  float32 array row by row;
- CV09: ``data convert`` of 24 photos of 12 MP took 1.75 GB, every photo held and stacked: it reads
  the labels alone, then each photo in turn (read, cut, dropped), checking the labels against the
  photo's size; with ``--skip-bad`` an unusable photo is left out and listed. A source of more faces
  than a Kaggle CSV may hold (``kaggle.MAX_ROWS``) is refused before any photo is read.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

import facekeypoints.data.images as images_module
from facekeypoints.data import framing, read
from facekeypoints.data.convert import to_kaggle_task
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats import csvfile, kaggle, landmark_sets, landmarks, ytf
from facekeypoints.data.formats.kaggle import read_kaggle_csv
from facekeypoints.data.formats.landmark_sets import read_coco_json
from facekeypoints.data.formats.landmarks import read_asf, read_ljson, read_pts
from facekeypoints.data.formats.ytf import attach_person, read_ytf68_csv
from facekeypoints.schema import load_schema
from tests.fakes import face68, run_cli

H, W = 200, 160


def _photo(path: Path, h: int = H, w: int = W, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def _pts(path: Path, kp: np.ndarray | None = None) -> Path:
    rows = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in (face68() if kp is None else kp))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"version: 1\nn_points: 68\n{{\n{rows}\n}}\n")
    return path


def _peak(call) -> int:
    """Peak bytes Python and numpy allocated while ``call()`` ran (its DataFormatError is expected)."""
    tracemalloc.start()
    try:
        call()
    except DataFormatError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# ---- P12: one-face label files ----------------------------------------------------------------------
def test_the_label_size_limit_is_generous_and_named():
    assert landmarks.MAX_LABEL_BYTES == 10_000_000  # a 68-point .pts is under 2 KB


@pytest.mark.parametrize("suffix", ["pts", "asf", "ljson"])
def test_a_label_file_over_the_limit_is_refused_unread(tmp_path, monkeypatch, suffix):
    file = tmp_path / f"01-1m.{suffix}"
    file.write_text("x" * 5000)
    monkeypatch.setattr(landmarks, "MAX_LABEL_BYTES", 4000)
    reader = {"pts": read_pts, "asf": read_asf, "ljson": read_ljson}[suffix]
    with pytest.raises(DataFormatError, match=rf"^{file}: file is 5000 bytes, over the size limit of 0.004 MB "
                                              rf"for an? \.{suffix} file \(\d+ points are"):
        reader(file, load_images=False)
    with pytest.raises(DataFormatError, match="over the size limit"):
        read(file, load_images=False)


def test_a_label_file_over_the_limit_is_listed_by_skip_bad(tmp_path, monkeypatch):
    _pts(tmp_path / "f" / "a.pts")
    (tmp_path / "f" / "b.pts").write_bytes(b"version: 1\nn_points: 68\n{\n" + b"1 1\n" * 2000 + b"}\n")
    monkeypatch.setattr(landmarks, "MAX_LABEL_BYTES", 4000)
    data = read_pts(tmp_path / "f", load_images=False, skip_bad=True)
    assert data.ids == ["a"] and len(data.skipped) == 1 and "over the size limit of 0.004 MB" in data.skipped[0]


def test_a_pts_file_of_many_points_is_counted_without_being_held(tmp_path):
    """200 k points: the error still counts them all, while only 68 are kept (48 MB peak before)."""
    file = tmp_path / "a.pts"
    file.write_bytes(b"version: 1\nn_points: 68\n{\n" + b"1 1\n" * 200_000 + b"}\n")
    with pytest.raises(DataFormatError, match="n_points says 68 but 200000 points were found between lines 3 and "):
        read_pts(file, load_images=False)
    assert _peak(lambda: read_pts(file, load_images=False)) < 25e6


def test_a_pts_file_of_68_points_reads_as_before(tmp_path):
    data = read_pts(_pts(tmp_path / "a.pts"), load_images=False)
    np.testing.assert_allclose(data.keypoints[0], face68(), atol=1e-3)
    (tmp_path / "b.pts").write_text("version: 1\nn_points: 69\n{\n" + "5 5\n" * 69 + "}\n")
    with pytest.raises(DataFormatError, match="69 points; iBUG .pts files must have 68"):
        read_pts(tmp_path / "b.pts", load_images=False)


# ---- J10: COCO JSON -----------------------------------------------------------------------------------
def _coco(path: Path) -> Path:
    flat = [v for x, y in face68() for v in (float(x), float(y), 2)]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
           "annotations": [{"id": 1, "image_id": 1, "keypoints": flat}]}
    path.write_text(json.dumps(doc))
    return path


def test_a_coco_json_over_the_limit_is_refused_by_the_reader_and_by_detection(tmp_path, monkeypatch):
    assert landmark_sets.MAX_COCO_BYTES == 300_000_000  # a plain limit; memory is estimated from tokens (round 8)
    ann = _coco(tmp_path / "ann.json")
    assert len(read(ann, load_images=False)) == 1
    size = ann.stat().st_size
    monkeypatch.setattr(landmark_sets, "MAX_COCO_BYTES", 1000)
    with pytest.raises(DataFormatError, match=rf"^{ann}: file is {size} bytes, over the size limit of 0.001 MB "
                                              r"for a COCO keypoint JSON"):
        read_coco_json(ann, load_images=False)
    # detection parses a .json to tell its format: it checks the same limit first
    with pytest.raises(DataFormatError, match=rf"^{ann}: file is {size} bytes, over the size limit of 0.001 MB "
                                              r"for a keypoint JSON"):
        read(ann, load_images=False)


# ---- K01: Kaggle CSV lines and rows -----------------------------------------------------------------
KAGGLE_COLUMNS = load_schema("kaggle15").columns()


def _kaggle_row(pixels: str | None = None) -> str:
    coords = ",".join(f"{30 + i % 30:.1f}" for i in range(30))
    return coords + "," + (pixels if pixels is not None else " ".join(["7"] * 9216))


def test_line_blocks_refuses_a_line_over_the_limit_as_soon_as_it_is_that_long():
    seen = []

    def chunks():
        yield b"a,b\n1,2\n3,"
        for _ in range(100):
            seen.append(1)
            yield b"4" * 100
        yield b"\n"

    blocks = csvfile.line_blocks(chunks(), max_line=250, path=Path("x.csv"))
    assert next(blocks) == b"a,b\n1,2\n"
    with pytest.raises(DataFormatError, match=r"^x\.csv: line 3 is over 250 bytes, the limit for one line"):
        list(blocks)
    assert len(seen) == 3  # stopped at the third chunk of the long line, not at its end
    ok = [b"a,b\n" + b"1" * 200, b"2" * 40 + b"\n5,6\n"]  # 240 bytes across chunks: within the limit
    assert b"".join(csvfile.line_blocks(iter(ok), max_line=250)) == b"".join(ok)
    assert b"".join(csvfile.line_blocks(iter([b"a,b\r", b"1,2\r3,4"]), max_line=250)) == b"a,b\n1,2\n3,4\n"


def test_a_kaggle_row_over_the_line_limit_is_refused_naming_file_line_and_limit(tmp_path, monkeypatch):
    assert kaggle.MAX_LINE == 4 << 20  # a row is ~36 KB
    monkeypatch.setattr(kaggle, "MAX_LINE", 4096)
    monkeypatch.setattr(csvfile, "BLOCK", 1024)  # the limit holds for lines longer than a chunk
    path = tmp_path / "training.csv"
    path.write_text(",".join(KAGGLE_COLUMNS + ["Image"]) + "\n" + _kaggle_row() + "\n")
    with pytest.raises(DataFormatError, match=rf"^{path}: line 2 is over 4096 bytes, the limit for one line of "
                                              r"this CSV \(were its line ends lost\?\)$"):
        read_kaggle_csv(path, use_cache=False)


def test_a_12_mb_kaggle_line_is_refused_without_parsing_it(tmp_path):
    """With the real limit: 12 MB of pixel text on one line peaked at 284 MB (traced) before."""
    path = tmp_path / "training.csv"
    with open(path, "wb") as f:
        f.write((",".join(KAGGLE_COLUMNS + ["Image"]) + "\n").encode())
        f.write(_kaggle_row("").encode() + b"1 " * (6 << 20) + b"\n")
    try:
        with pytest.raises(DataFormatError, match="line 2 is over 4194304 bytes"):
            read_kaggle_csv(path, use_cache=False)
        assert _peak(lambda: read_kaggle_csv(path, use_cache=False)) < 40e6
    finally:
        path.unlink()


def test_a_kaggle_csv_over_the_row_limit_is_refused(tmp_path, monkeypatch):
    assert kaggle.MAX_ROWS == 64_000  # 590 MB of images; training.csv has 7049 rows
    monkeypatch.setattr(kaggle, "MAX_ROWS", 5)
    header = ",".join(KAGGLE_COLUMNS + ["Image"]) + "\n"
    path = tmp_path / "training.csv"
    path.write_text(header + "".join(_kaggle_row(" ".join([str(i)] * 9216)) + "\n" for i in range(5)))
    assert len(read_kaggle_csv(path, use_cache=False)) == 5
    path.write_text(header + "".join(_kaggle_row(" ".join([str(i)] * 9216)) + "\n" for i in range(6)))
    with pytest.raises(DataFormatError, match=rf"^{path}: over 5 lines after the header, the limit for a Kaggle CSV"):
        read_kaggle_csv(path, use_cache=False)
    path.write_text(header + _kaggle_row() + "\n" + "\n" * 100)  # blank lines held a list entry each
    with pytest.raises(DataFormatError, match="over 5 lines after the header"):
        read_kaggle_csv(path, use_cache=False)


def test_kaggle_images_grow_to_the_row_limit_at_once_past_the_hint(tmp_path, monkeypatch):
    """Past the size hint's cap the array is made MAX_ROWS long in one step, not doubled by copies."""
    monkeypatch.setattr(kaggle, "_MAX_HINT_ROWS", 2)
    monkeypatch.setattr(kaggle, "MAX_ROWS", 50)
    sizes = []
    real_empty = np.empty

    def spy(shape, dtype=float):
        if isinstance(shape, tuple) and len(shape) == 3 and shape[1:] == kaggle.IMAGE_SHAPE:
            sizes.append(shape[0])
        return real_empty(shape, dtype)

    monkeypatch.setattr(kaggle.np, "empty", spy)
    path = tmp_path / "training.csv"
    rows = [_kaggle_row(" ".join([str(i)] * 9216)) for i in range(7)]
    path.write_text(",".join(KAGGLE_COLUMNS + ["Image"]) + "\n" + "\n".join(rows) + "\n")
    data = read_kaggle_csv(path, use_cache=False)
    assert len(data) == 7 and [int(im[0, 0]) for im in data.images] == list(range(7))
    assert sizes == [2, 50] and data.images.shape == (7, 96, 96)


# ---- Y11: ytf68 and Udacity CSVs ------------------------------------------------------------------
YTF_COLUMNS = ["image", "person"] + [f"{a}{i}" for i in range(68) for a in "xy"]


def _ytf(folder: Path, rows: int, labelled: bool = True, name: str = "train.csv") -> Path:
    """A ytf68 CSV of ``rows`` rows, each naming its own photo (copies of one small image: hard links
    would be one photo named twice, which the reader refuses)."""
    first = _photo(folder / "images" / "p.jpg", 20, 20)
    values = ",".join(f"{10 + (i % 7) * 0.123:.3f}" for i in range(136))
    with open(folder / name, "w") as f:
        f.write(",".join(YTF_COLUMNS if labelled else YTF_COLUMNS[:2]) + "\n")
        for i in range(rows):
            shutil.copyfile(first, folder / "images" / f"p{i}.jpg")
            f.write(f"p{i}.jpg,person{i % 50}" + (f",{values}" if labelled else "") + "\n")
    return folder / name


def test_a_ytf_csv_over_the_row_limit_is_refused_before_parsing(tmp_path, monkeypatch):
    assert ytf._MAX_ROWS == 200_000 and ytf._MAX_BYTES == 128_000_000  # the real train.csv: 3462 rows, 2.8 MB
    path = _ytf(tmp_path, 12, labelled=False, name="unlabeled.csv")
    monkeypatch.setattr(ytf, "_MAX_ROWS", 12)
    assert len(read_ytf68_csv(path, load_images=False)) == 12
    monkeypatch.setattr(ytf, "_MAX_ROWS", 11)
    with pytest.raises(DataFormatError, match=rf"^{path}: 12 lines after the header, over the limit of 11 rows for "
                                              r"a ytf68 or Udacity CSV$"):
        read_ytf68_csv(path, load_images=False)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))  # old Mac line ends count too
    with pytest.raises(DataFormatError, match="12 lines after the header, over the limit of 11 rows"):
        read_ytf68_csv(path, load_images=False)


def test_a_ytf_csv_over_the_byte_limit_is_refused_while_it_is_read(tmp_path, monkeypatch):
    path = _ytf(tmp_path, 3)
    monkeypatch.setattr(ytf, "_MAX_BYTES", 2000)
    with pytest.raises(DataFormatError, match=rf"^{path}: over 0.002 MB of CSV text, the size limit for a ytf68 or "
                                              r"Udacity CSV"):
        read_ytf68_csv(path, load_images=False)
    gz = tmp_path / "train.csv.gz"  # the limit is on the unpacked text
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataFormatError, match="over 0.002 MB of CSV text"):
        read_ytf68_csv(gz, load_images=False)


def test_ytf_rows_are_kept_as_lines_not_as_lists_of_fields(tmp_path):
    """3000 labelled rows: the traced peak was 15x the file's size, the keypoints a list of Python floats."""
    path = _ytf(tmp_path, 3000)
    data = read_ytf68_csv(path, load_images=False)
    assert len(data) == 3000 and data.keypoints.dtype == np.float32 and data.keypoints.shape == (3000, 68, 2)
    assert data.keypoints[2999, 67, 1] == np.float32(10 + (135 % 7) * 0.123) and data.person[3] == "person3"
    assert _peak(lambda: read_ytf68_csv(path, load_images=False)) < 6 * path.stat().st_size
    header, rows, spans = ytf._csv_rows(path)
    assert header == YTF_COLUMNS and len(rows) == 3000 == len(spans)
    assert list(rows) == list(csv.reader(path.read_text().splitlines()))[1:]  # parsed again, the same each time
    assert len(attach_person(data, path).person) == 3000


@pytest.mark.parametrize("text", ["a,b\r\n1,2\r\n", "a,b\r1,2\r3,4\n", "a,b\n\"x\ny\",2\n", "a,b\n1,2", "a\n\n\nb\n",
                                  "a,b\r\n1,\"2\r\n3\"\r\n"])
def test_the_line_split_is_the_csv_modules(text):
    """The lines are split as io.StringIO(newline="") splits them, which held 4 bytes a character."""
    assert ytf._PHYSICAL_LINE.findall(text) == io.StringIO(text, newline="").readlines()


def test_ytf_skip_bad_rows_leave_no_gaps_in_the_keypoints(tmp_path):
    path = _ytf(tmp_path, 4)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",10.000,", ",abc,", 1)
    path.write_text("\n".join(lines) + "\n")
    data = read_ytf68_csv(path, load_images=False, skip_bad=True)
    assert data.ids == ["p0.jpg", "p2.jpg", "p3.jpg"] and len(data.skipped) == 1
    assert np.isfinite(data.keypoints).all() and data.keypoints.shape == (3, 68, 2)


# ---- CV09: convert reads one photo at a time ---------------------------------------------------------
def _folder(tmp_path: Path, n: int = 3) -> Path:
    for i in range(n):
        _photo(tmp_path / "f" / f"p{i}.jpg", seed=i)
        _pts(tmp_path / "f" / f"p{i}.pts")
    return tmp_path / "f"


def test_convert_reads_each_photo_when_its_face_is_cut(tmp_path, monkeypatch, capsys):
    """Events: read, cut, read, cut, ... (read, read, read, cut, cut, cut held every photo at once)."""
    events = []
    real_read, real_warp = images_module.read_image, framing.warp_crops

    def read_image(path, **kwargs):
        events.append(("read", Path(path).name))
        return real_read(path, **kwargs)

    def warp_crops(*args, **kwargs):
        events.append(("cut",))
        return real_warp(*args, **kwargs)

    monkeypatch.setattr(images_module, "read_image", read_image)
    monkeypatch.setattr(landmarks, "read_image", read_image)  # where a reader loading photos would call it
    monkeypatch.setattr(framing, "warp_crops", warp_crops)
    code, out, err = run_cli(["data", "convert", _folder(tmp_path), "-o", tmp_path / "o.csv"], capsys)
    assert code == 0, (out, err)
    assert events == [("read", "p0.jpg"), ("cut",), ("read", "p1.jpg"), ("cut",), ("read", "p2.jpg"), ("cut",)]
    assert len(read_kaggle_csv(tmp_path / "o.csv", use_cache=False)) == 3


def test_convert_of_labels_read_alone_matches_convert_of_loaded_photos(tmp_path):
    folder = _folder(tmp_path)
    loaded, _ = to_kaggle_task(read(folder))
    lazy, report = to_kaggle_task(read(folder, load_images=False))
    np.testing.assert_array_equal(lazy.images, loaded.images)
    np.testing.assert_array_equal(lazy.keypoints, loaded.keypoints)
    assert lazy.ids == loaded.ids and report.faces_out == 3 and not report.read_skipped


def test_convert_checks_labels_against_the_photo_and_skip_bad_lists_the_face(tmp_path, capsys):
    folder = _folder(tmp_path)
    far = face68()
    far[30] = (2 * W + 50, 100)  # more than one image width right of the 160 px photo
    _pts(folder / "p1.pts", far)
    data = read(folder, load_images=False)  # without the photo's size, only the far-from-any-image bound
    with pytest.raises(DataFormatError, match=r"p1.pts: line 34: x = \d+ is more than one image size \(160 px\)"):
        to_kaggle_task(data)
    faces, report = to_kaggle_task(data, skip_bad=True)
    assert faces.ids == ["p0", "p2"] and len(report.read_skipped) == 1 and "p1.pts: line 34: x = " in faces.skipped[0]
    (folder / "p1.jpg").unlink()
    (folder / "p1.png").write_bytes(b"not an image")
    code, out, err = run_cli(["data", "convert", folder, "-o", tmp_path / "o.csv", "--skip-bad"], capsys)
    assert code == 1 and "converted 2 of 3 faces" in out and "p1.png: cannot decode image" in out, (out, err)
    code, out, err = run_cli(["data", "convert", folder, "-o", tmp_path / "o.csv"], capsys)
    assert code == 2 and "p1.png: cannot decode image" in err


def test_convert_refuses_more_faces_than_a_kaggle_csv_may_hold_before_reading_photos(tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path)
    monkeypatch.setattr(kaggle, "MAX_ROWS", 2)
    monkeypatch.setattr(images_module, "read_image", lambda *a, **k: pytest.fail("a photo was read"))
    code, out, err = run_cli(["data", "convert", folder, "-o", tmp_path / "o.csv"], capsys)
    assert code == 2 and f"{folder}: 3 faces, over the 2 rows a Kaggle CSV may hold" in err
    assert not (tmp_path / "o.csv").exists()
