"""Round 15 of bad inputs for the data layer, photo evaluation, reports and image decoding: each case
was once a silent wrong result (one blank person cell splitting by rows, a collapsed face written as
a training row), a crash with a library's exception (Pillow's TypeError, IndexError, RuntimeError), a
file replaced without a word (a user's index.html under --report), or a message naming the wrong
value, a build machine's path or useless advice; each now is the right result or one line naming the
file (synthetic files only)."""
from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image, features

from facekeypoints.data import KeypointData, read, write_kaggle_csv
from facekeypoints.data.convert import to_kaggle_task
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.landmarks import write_pts
from facekeypoints.data.images import decode_image, decoder_output, read_image
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.data.splits import split
from facekeypoints.evaluate.compare import compare_runs
from facekeypoints.evaluate.photo_report import check_photo_report_folder
from facekeypoints.evaluate.photos import evaluate_photos
from facekeypoints.schema import SchemaError, load_schema
from fakes import face68, run_cli


def _photo(path: Path, width: int = 160, height: int = 200) -> Path:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# ---- P1: one face without a person no longer makes the whole split random rows ------------------
def test_a_face_without_a_person_keeps_the_others_split_by_person():
    person = [f"p{i // 4}" for i in range(40)]
    person[0] = None
    data = KeypointData.from_arrays("kaggle15", np.zeros((40, 15, 2)), person=person, source="faces.csv")
    with pytest.warns(UserWarning, match=r"faces.csv: 1 of 40 faces have no person .*'0'.* of its own"):
        train, val = split(data, (0.7, 0.3), seed=0)
    assert not {p for p in train.person if p} & {p for p in val.person if p}
    assert len(train) + len(val) == 40


def test_data_without_any_person_is_split_by_rows_without_a_warning():
    data = KeypointData.from_arrays("kaggle15", np.zeros((10, 15, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [len(p) for p in split(data, (0.7, 0.3), seed=0)] == [7, 3]


# ---- P2: a .pts point off its photo is named by its line and the file's own value ----------------
def test_a_far_pts_point_is_named_by_its_line_and_value(tmp_path, capsys):
    folder = tmp_path / "far"
    folder.mkdir()
    _photo(folder / "face.png")
    points = face68()
    write_pts(points, folder / "face.pts", decimals=0)
    lines = (folder / "face.pts").read_text().splitlines()
    lines[3 + 48] = "-400 200"
    (folder / "face.pts").write_text("\n".join(lines) + "\n")
    for command in (["data", "info", folder], ["data", "convert", folder, "-o", tmp_path / "o.csv"]):
        code, _, err = run_cli(command, capsys)
        assert code == 2 and "face.pts: line 52: x = -400 is more than one image size" in err, err


# ---- P3: evaluate PHOTOS with imm58 and nose1 models ----------------------------------------------
class _Detector:
    """A stand-in for KeypointDetector: answers each face's own labels, shifted a little."""

    def __init__(self, schema: str, answer: np.ndarray | None = None):
        self.schema, self.runner = load_schema(schema), SimpleNamespace(source="m.pt")
        self.answer, self.calls = answer, 0

    def __call__(self, image, boxes=None):
        self.calls += 1
        return SimpleNamespace(keypoints=self.answer[None] + 1.0)


def _imm_face() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.c_[rng.uniform(40, 120, 58), rng.uniform(50, 150, 58)]


def test_an_imm58_model_is_scored_on_imm_photos_with_turns():
    face = _imm_face()
    data = KeypointData.from_arrays("imm58", face[None], images=np.zeros((1, 200, 160, 3), np.uint8), source="imm")
    report = evaluate_photos(data, _Detector("imm58", face))
    assert report["scored"] == 1 and report["schema"] == "imm58"
    assert sum(v["faces"] for v in report["by_turn"].values()) == 1


def test_a_nose1_model_is_refused_before_any_face_is_predicted():
    face = _imm_face()
    data = KeypointData.from_arrays("imm58", face[None], images=np.zeros((1, 200, 160, 3), np.uint8), source="imm")
    detector = _Detector("nose1", face[[5]])
    with pytest.raises(ValueError, match=r"m.pt: a nose1 model predicts 1 point.*--split val"):
        evaluate_photos(data, detector)
    assert detector.calls == 0


# ---- P5: a killed write's temporary file is swept by the next write -------------------------------
def test_a_dead_writers_temporary_is_removed_by_the_next_csv_write(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".out.csv.gz.{gone.pid}-0.tmp"
    stale.write_bytes(b"half a file")
    live = tmp_path / f".out.csv.gz.{os.getpid()}-99.tmp"  # this process's: left alone
    live.write_bytes(b"in use")
    write_kaggle_csv(KeypointData.from_arrays("kaggle15", np.full((2, 15, 2), 40.0)), tmp_path / "out.csv.gz")
    assert not stale.exists() and live.exists()


# ---- P6: an output named only by its suffix is written and read as that suffix says -------------
@pytest.mark.parametrize("name", [".zip", ".csv", ".gz"])
def test_a_dot_file_csv_is_written_and_read_back(tmp_path, name):
    data = KeypointData.from_arrays("kaggle15", np.full((3, 15, 2), 40.0), images=np.zeros((3, 96, 96), np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None])
    write_kaggle_csv(data, tmp_path / name)
    assert zipfile.is_zipfile(tmp_path / name) == (name == ".zip")
    back = read(tmp_path / name)
    assert len(back) == 3 and np.allclose(back.keypoints, 40.0)


# ---- P7: a face whose labels fit no face shape is left out, not written collapsed ----------------
def _wild_mouth(points: np.ndarray) -> np.ndarray:
    wild = points.copy()
    wild[[48, 54, 51, 57]] = [(-150, 390), (310, 390), (80, -190), (80, 390)]  # within one image size
    return wild


def test_a_face_with_wild_points_is_left_out_and_listed():
    good = face68()
    data = KeypointData.from_arrays("ibug68", np.stack([good, _wild_mouth(good)]),
                                    images=np.zeros((2, 200, 160, 3), np.uint8), ids=["good", "wild"], source="set")
    faces, report = to_kaggle_task(data)
    assert faces.ids == ["good"] and report.misshaped == ["wild"]
    assert "labels do not fit a face" in str(report) and "wild" in faces.skipped[-1]
    only = data.subset(np.array([1]))
    with pytest.raises(DataFormatError, match=r"face 'wild': its labels do not fit a face"):
        to_kaggle_task(only)


# ---- P8: numpy arrays for ids, person and paths -----------------------------------------------------
def test_numpy_arrays_are_taken_for_ids_person_and_paths():
    data = KeypointData.from_arrays("kaggle15", np.zeros((4, 15, 2)), person=np.array(["p", "p", "q", "q"]),
                                    ids=np.array(["a", "b", "c", "d"]), paths=np.array(["1", "2", "3", "4"]))
    assert data.person == ["p", "p", "q", "q"] and data.ids == ["a", "b", "c", "d"]
    assert all(type(p) is str for p in data.person)  # plain values, not numpy's
    with pytest.raises(ValueError, match="person must be one-dimensional"):
        KeypointData.from_arrays("kaggle15", np.zeros((4, 15, 2)), person=np.zeros((4, 2)))


# ---- P9: write_kaggle_csv refuses what read_kaggle_csv would refuse ------------------------------
def test_write_kaggle_csv_refuses_a_point_its_reader_refuses(tmp_path):
    kp = np.full((2, 15, 2), 40.0)
    kp[1, 3] = (300.0, 50.0)
    with pytest.raises(ValueError, match=r"data row 2, column 'left_eye_outer_corner_x': x = 300 .*nothing was"):
        write_kaggle_csv(KeypointData.from_arrays("kaggle15", kp, images=np.zeros((2, 96, 96), np.uint8)),
                         tmp_path / "far.csv")
    assert not (tmp_path / "far.csv").exists()
    write_kaggle_csv(KeypointData.from_arrays("kaggle15", kp), tmp_path / "labels.csv")  # no image: no 96 px bound
    assert np.allclose(read(tmp_path / "labels.csv").keypoints[1, 3], (300, 50))


# ---- P10: empty batches through every Preprocess path ---------------------------------------------
@pytest.mark.parametrize("channels,clahe,shape", [(1, True, (0, 96, 96)), (1, False, (0, 96, 96, 3)),
                                                  (3, True, (0, 96, 96, 3)), (1, True, (0, 96, 96, 3))])
def test_preprocess_takes_an_empty_batch(channels, clahe, shape):
    out = Preprocess(channels=channels, clahe=clahe)(np.zeros(shape, np.uint8))
    assert out.shape == (0, channels, 96, 96) and out.dtype == np.float32
    assert Preprocess(channels=channels, clahe=clahe)([]).shape == (0, channels, 96, 96)


# ---- P11: --report never replaces a user's files ---------------------------------------------------
def test_a_photo_report_refuses_a_folder_of_the_users_files(tmp_path):
    (tmp_path / "index.html").write_text("my homepage")
    with pytest.raises(ValueError, match=r"index.html: exists, and .* holds no earlier facekeypoints report"):
        check_photo_report_folder(tmp_path)
    (tmp_path / "index.html").unlink()
    (tmp_path / "best_1.jpg").write_text("photo")
    with pytest.raises(ValueError, match="best_1.jpg: exists"):
        check_photo_report_folder(tmp_path)
    (tmp_path / "index.html").write_text("<!doctype html><title>facekeypoints evaluation</title>")
    check_photo_report_folder(tmp_path)  # an earlier report's folder: replaced


def _run_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.csv").write_text("epoch,minutes,train_loss,val_rmse\n1,0.1,0.5,4.0\n")
    (path / "config.json").write_text('{"config": {"model": {"name": "fcnn"}}}')
    return path


def test_compare_report_refuses_a_users_index_and_replaces_its_own(tmp_path):
    run = _run_folder(tmp_path / "r")
    mine = tmp_path / "mydocs"
    mine.mkdir()
    (mine / "index.html").write_text("my homepage")
    with pytest.raises(ValueError, match="index.html: exists"):
        compare_runs([str(run)], report_dir=str(mine))
    assert (mine / "index.html").read_text() == "my homepage" and not (mine / "curves.png").exists()
    compare_runs([str(run)], report_dir=str(tmp_path / "rep"))
    compare_runs([str(run)], report_dir=str(tmp_path / "rep"))  # its own earlier report: replaced
    assert "Training runs" in (tmp_path / "rep" / "index.html").read_text()


# ---- service P2, P7, P8, P9: Pillow's and OpenCV's failures as one line naming the file -----------
def _png(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def test_a_png_wider_than_libpng_reads_is_refused_by_its_size():
    with pytest.raises(DataFormatError, match=r"<upload>: the PNG is 1000001x1 pixels; .* 1000000 pixels a side"):
        decode_image(_png(1_000_001, 1))


def test_a_tiff_whose_next_page_is_past_its_end_gives_its_first_page():
    b = io.BytesIO()
    Image.new("RGB", (120, 120), (128, 128, 128)).save(b, "TIFF")
    d = bytearray(b.getvalue())
    ifd = struct.unpack("<I", d[4:8])[0]
    n = struct.unpack("<H", d[ifd:ifd + 2])[0]
    d[ifd + 2 + 12 * n: ifd + 6 + 12 * n] = struct.pack("<I", 10_000_000)  # Pillow: TypeError "Missing dimensions"
    notes: list = []
    assert decode_image(bytes(d), notes=notes).shape == (120, 120, 3)


def test_a_gif_cut_after_a_frames_descriptor_is_a_one_line_error():
    b = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(b, "GIF")
    cut = b.getvalue()[:-1] + b"," + bytes(4) + struct.pack("<HH", 8, 8) + b"\x00"  # Pillow: IndexError
    try:
        decode_image(cut, name="cut.gif")
    except DataFormatError as err:
        assert str(err).startswith("cut.gif: ") and "\n" not in str(err)


def _damaged_gif() -> bytes:
    """A GIF whose LZW data OpenCV refuses with a several-line error (bytes flipped, seeded)."""
    yy, xx = np.mgrid[0:120, 0:120]
    pic = np.stack([(xx * 2) % 256, (yy * 2) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(pic).save(b, "GIF")
    seed, rnd = b.getvalue(), random.Random(1)
    for _ in range(2000):
        d = bytearray(seed)
        for _ in range(rnd.choice([1, 2, 4, 8])):
            d[rnd.randrange(min(len(d), 400)) if rnd.random() < 0.7 else rnd.randrange(len(d))] = rnd.randrange(256)
        with decoder_output() as said:
            cv2.imdecode(np.frombuffer(bytes(d), np.uint8), cv2.IMREAD_COLOR)
        if any("LZW" in line for line in said):
            return bytes(d)
    pytest.skip("no byte flip gave OpenCV's LZW error with this OpenCV")


def test_opencvs_several_line_error_is_one_line_without_build_paths(capfd):
    with pytest.raises(DataFormatError) as caught:
        decode_image(_damaged_gif(), name="lzw.gif")
    message = str(caught.value)
    assert message.startswith("lzw.gif: cannot decode image") and "LZW length" in message, message
    assert "/io/" not in message and ".cpp" not in message and "\n" not in message
    assert capfd.readouterr().err == ""  # OpenCV's "> ..." lines no longer reach the terminal


def _avif() -> bytes:
    if not features.check("avif"):
        pytest.skip("this Pillow writes no AVIF")
    b = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(b, "AVIF")
    return b.getvalue()


def test_a_damaged_avif_is_named_damaged_not_unsupported():
    d = bytearray(_avif())
    i = d.find(b"pitm")
    d[i + 8:i + 10] = b"\x00\x07"  # the primary item is one that does not exist: Pillow's RuntimeError
    for data, name in ((bytes(d), "pitm7.avif"), (bytes(_avif()[:160]), "trunc.avif")):
        with pytest.raises(DataFormatError) as caught:
            decode_image(data, name=name)
        message = str(caught.value)
        assert message.startswith(f"{name}: ") and "damaged or truncated AVIF" in message, message
        assert "does not read" not in message


def test_a_dds_pillow_cannot_parse_is_a_one_line_error():
    b = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(b, "DDS")
    d = bytearray(b.getvalue())
    d[80:84] = struct.pack("<I", 0)  # pixel-format flags 0: Pillow's NotImplementedError
    with pytest.raises(DataFormatError, match=r"flags0.dds: .*a DDS texture, which OpenCV does not read"):
        decode_image(bytes(d), name="flags0.dds")


# ---- predict P2: a video named as a video is told to use stream(), not to be renamed -------------
def test_a_video_read_as_an_image_is_told_how_to_read_it(tmp_path):
    mp4 = b"\x00\x00\x00\x20ftypisom" + bytes(200)
    (tmp_path / "clip.mp4").write_bytes(mp4)
    (tmp_path / "clip.jpg").write_bytes(mp4)
    with pytest.raises(DataFormatError) as caught:
        read_image(tmp_path / "clip.mp4")
    assert "stream()" in str(caught.value) and "suffix" not in str(caught.value)
    with pytest.raises(DataFormatError, match="named .jpg, not an image; give it a video suffix such as .mp4"):
        read_image(tmp_path / "clip.jpg")


# ---- predict P17: ibug68's nose tip named when asked for kaggle15's --------------------------------
def test_a_kaggle15_name_asked_of_ibug68_names_its_point():
    with pytest.raises(SchemaError, match=r"has no keypoint 'nose_tip'; kaggle15's and nose1's 'nose_tip' is "
                                          r"'nose_bridge_3' here"):
        load_schema("ibug68").index("nose_tip")
