"""Round 16 of bad inputs for the data layer, photo evaluation, reports and image decoding: each case
was once a wrong result (a full-profile face refused as "misplaced points", a collapsed face written
as a labelled row), a crash (scoring frames out of step with the faces framing kept), a user's file
deleted (best_2019.jpg beside a report), gigabytes taken by a tiny file, or a line naming no file
or the wrong thing; each now is the right result or one line naming the file (synthetic files only;
the checks on real samples skip without ../shared/data)."""
from __future__ import annotations

import struct
import time
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from facekeypoints.data import KeypointData, framing, read, write_kaggle_csv
from facekeypoints.data.convert import to_kaggle_task
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.images import OVER_LIMIT, decode_image, read_image
from facekeypoints.data.pipeline import DataConfig, load_parts
from facekeypoints.evaluate.photo_report import check_photo_report_folder, write_photo_report
from facekeypoints.evaluate.photos import evaluate_photos
from facekeypoints.schema import load_schema
from fakes import face68

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# ---- P1: a full-profile face, its eyes and mouth corners meeting, is converted --------------------
def _profile(yaw_deg: float) -> np.ndarray:
    """face68 on a rough head (a cylinder, the nose standing out) turned ``yaw_deg`` about the vertical."""
    points = face68()
    dx = points[:, 0] - 80
    depth = np.sqrt(np.maximum(60.5 ** 2 - dx ** 2, 0))
    depth[27:36] += 20
    turn = np.radians(yaw_deg)
    return np.c_[130 + 0.6 * (dx * np.cos(turn) - depth * np.sin(turn)), points[:, 1]]


def test_a_full_profile_face_is_converted():
    yaws = (0, 85, 88, 90)
    data = KeypointData.from_arrays("ibug68", np.stack([_profile(y) for y in yaws]),
                                    images=np.zeros((len(yaws), 200, 160, 3), np.uint8), ids=[str(y) for y in yaws])
    faces, report = to_kaggle_task(data)
    assert faces.ids == ["0", "85", "88", "90"] and report.misshaped == []


@pytest.mark.skipif(not (SHARED / "samples" / "aflw2000-3d").is_dir(), reason="needs ../shared/data/samples")
def test_aflw2000_faces_turned_to_full_profile_are_converted():
    sio = pytest.importorskip("scipy.io")
    src = SHARED / "samples" / "aflw2000-3d" / "AFLW2000" / "image02420.mat"
    points = sio.loadmat(src)["pt3d_68"].T.astype(float)
    centre = points.mean(0)
    faces = []
    for extra in (0, 14, 17, 19):  # 71 degrees of yaw and up to 19 more: the labels 300W-LP gives a profile
        a = np.radians(-extra)
        turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        faces.append(((turn @ (points - centre).T).T + centre)[:, :2])
    data = KeypointData.from_arrays("ibug68", np.stack(faces), images=np.zeros((4, 450, 450, 3), np.uint8),
                                    ids=["0", "14", "17", "19"])
    converted, report = to_kaggle_task(data)
    assert len(converted) == 4 and report.misshaped == []


# ---- P2: a face a few pixels wide (both eyes on one spot) is left out, with few anchors too --------
def test_a_collapsed_four_point_kaggle_face_is_left_out():
    target = framing.template(96)
    keypoints = np.full((3, 15, 2), np.nan)
    for i in range(3):
        keypoints[i][[0, 1, 10, 14]] = target[[0, 1, 10, 14]] + i  # eye centres, nose tip, bottom lip
    keypoints[1][[0, 1]] = (80, 10)  # both eyes at one spot, off the face
    data = KeypointData.from_arrays("kaggle15", keypoints, images=np.zeros((3, 96, 96), np.uint8),
                                    ids=["a", "collapsed", "c"], source="k4.csv")
    faces, report = to_kaggle_task(data)
    assert faces.ids == ["a", "c"] and report.misshaped == ["collapsed"]
    assert "points would span under 0.6 of a face's size" in faces.skipped[-1]


def _imm_folder(tmp_path: Path, persons: tuple[str, ...]) -> Path:
    imm = SHARED / "imm" / "imm_face_db"
    if not imm.is_dir():
        pytest.skip("needs ../shared/data/imm")
    out = tmp_path / "imm"
    out.mkdir()
    for person in persons:
        for f in imm.glob(f"{person}-*"):
            (out / f.name).write_bytes(f.read_bytes())
    return out


def _collapse_eyes(asf: Path) -> None:
    """Move IMM points 13-28 (both eyes' contours) to one spot, as a slip of a labelling tool would."""
    lines = asf.read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if len(line.split()) == 7 and not line.startswith("#")]
    for i in rows[13:29]:
        parts = lines[i].split()
        parts[2:4] = ["0.95000000", "0.05000000"]
        lines[i] = " \t".join(parts)
    asf.write_text("\n".join(lines) + "\n")


def test_a_collapsed_imm_face_is_left_out(tmp_path):
    folder = _imm_folder(tmp_path, ("01",))
    _collapse_eyes(folder / "01-3m.asf")
    faces, report = to_kaggle_task(read(folder))
    assert report.misshaped == ["01-3m"] and len(faces) == 5


# ---- P3: faces left out by framing keep the scoring frames, split and label completion in step ----
def test_an_imm_split_with_a_collapsed_face_loads(tmp_path):
    folder = _imm_folder(tmp_path, ("01", "02", "33", "34"))
    _collapse_eyes(folder / "02-3m.asf")
    with pytest.warns(UserWarning, match="02-3m"):
        parts, frames, _ = load_parts(DataConfig(train=str(folder), schema="imm58", split="imm", frame="kaggle"), 96)
    assert len(parts["train"]) == 11 and len(parts["val"]) == 12
    assert all(len(frames[name]) == len(parts[name]) for name in parts)


def _kaggle_csv(path: Path, collapsed: int | None, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    keypoints = framing.template(96)[None] + rng.normal(0, 1, (8, 15, 2))
    keypoints[1::2, 2:10] = np.nan  # rows for label completion to fill
    if collapsed is not None:
        keypoints[collapsed, 2:] = keypoints[collapsed, 2:] * 0.02 + 47  # the face a pixel or two across
        keypoints[collapsed, :2] = [(90, 90), (5, 5)]
    images = rng.integers(0, 255, (8, 96, 96), dtype=np.uint8)
    data = KeypointData.from_arrays("kaggle15", keypoints.astype(np.float32), images=images)
    write_kaggle_csv(data, path)
    return path


@pytest.mark.parametrize("bad", ["train", "val"])
def test_a_separate_validation_file_with_a_collapsed_face_loads(tmp_path, bad):
    train = _kaggle_csv(tmp_path / "train.csv", 3 if bad == "train" else None, 0)
    val = _kaggle_csv(tmp_path / "val.csv", 3 if bad == "val" else None, 1)
    with pytest.warns(UserWarning, match="faces left out"):
        parts, frames, _ = load_parts(DataConfig(train=str(train), val=str(val), frame="kaggle"), 96)
    assert {name: len(part) for name, part in parts.items()} == {"train": 7 if bad == "train" else 8,
                                                                 "val": 7 if bad == "val" else 8}
    assert all(len(frames[name]) == len(parts[name]) for name in parts)


def test_label_completion_beside_a_collapsed_face_keeps_the_rows_in_step(tmp_path):
    train = _kaggle_csv(tmp_path / "train.csv", 2, 0)
    with pytest.warns(UserWarning, match="faces left out"):
        parts, frames, report = load_parts(DataConfig(train=str(train), complete_labels=str(train), frame="kaggle",
                                                      split=[0.5, 0.5]), 96)
    assert report["completed"]["rows"] == 7 and len(parts["train"]) + len(parts["val"]) == 7
    assert all(len(frames[name]) == len(parts[name]) for name in parts)


# ---- P4: a whole-photo model with --boxes haar|cnn is refused before any face is predicted --------
class _Detector:
    """A stand-in for KeypointDetector: answers every face with ``answer``, shifted a little."""

    def __init__(self, schema: str, answer: np.ndarray, framing_: str = "kaggle"):
        self.schema, self.runner, self.framing = load_schema(schema), SimpleNamespace(source="m.pt"), framing_
        self.answer, self.calls = answer, 0

    def __call__(self, image, boxes=None):
        self.calls += 1
        return SimpleNamespace(keypoints=self.answer[None] + 1.0)


def test_a_whole_photo_model_with_a_detector_is_refused():
    face = face68()
    data = KeypointData.from_arrays("ibug68", face[None], images=np.zeros((1, 200, 160, 3), np.uint8), source="set")
    detector = _Detector("kaggle15", framing.anchor_points(load_schema("ibug68"), face[None])[0], "resize")
    with pytest.raises(ValueError, match=r"--boxes haar applies to finding faces.*m.pt \(a kaggle15 model trained "
                                         r"on whole photos\).*leave --boxes out"):
        evaluate_photos(data, detector, boxes="haar")
    assert detector.calls == 0


# ---- P5: a report tidies only the face pictures an earlier report showed --------------------------
def test_a_report_leaves_a_users_best_and_worst_pictures(tmp_path):
    face = face68()
    data = KeypointData.from_arrays("ibug68", np.stack([face] * 8), images=np.zeros((8, 200, 160, 3), np.uint8),
                                    ids=[str(i) for i in range(8)], source="set")
    answer = framing.anchor_points(load_schema("ibug68"), face[None])[0]
    out = tmp_path / "report"
    for limit in (8, 3):  # the second, smaller report no longer shows best_4..6
        details: dict = {}
        report = evaluate_photos(data, _Detector("kaggle15", answer), limit=limit, details=details)
        report["model"] = "m.pt"
        write_photo_report(out, data, details, report)
        if limit == 8:
            (out / "best_2019.jpg").write_bytes(b"my photo")
            (out / "worst_10.jpg").write_bytes(b"my photo")
    names = {p.name for p in out.iterdir()}
    assert {"best_2019.jpg", "worst_10.jpg", "best_3.jpg"} <= names and "best_4.jpg" not in names


# ---- P9: another kind of our reports is named as such ---------------------------------------------
def test_a_compare_reports_folder_is_named_as_one(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><html><head><meta charset='utf-8'>"
                                         "<title>facekeypoints runs</title></head></html>")
    with pytest.raises(ValueError, match=r"holds a compare report \(its index.html\), not an evaluation report; "
                                         r"give --report another folder"):
        check_photo_report_folder(tmp_path)


# ---- P6: a PNG chunk longer than the file is refused from its bytes, before OpenCV allocates it ----
def _png_with(length: bytes, where: str) -> bytes:
    png = bytearray(cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8))[1])
    if where == "IDAT":
        i = png.find(b"IDAT") - 4
        png[i:i + 4] = length
        return bytes(png)
    text = length + b"tEXt" + b"k\0v" + struct.pack(">I", zlib.crc32(b"tEXtk\0v"))
    return bytes(png[:33] + text + png[33:])


@pytest.mark.parametrize("length, where", [(b"\xff\xff\xff\xff", "IDAT"), (b"\x7f\xff\xff\xff", "IDAT"),
                                           (b"\xff\xff\xff\xf0", "tEXt")])
def test_a_png_chunk_longer_than_the_file_is_refused_at_once(tmp_path, length, where):
    data = _png_with(length, where)
    (tmp_path / "x.png").write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=rf"x.png: cannot decode image \(damaged or truncated\): its PNG chunk "
                                              rf"{where} at byte \d+ declares \d+ bytes, but the file has \d+ left"):
        read_image(tmp_path / "x.png")
    with pytest.raises(DataFormatError, match=rf"up.png: .*chunk {where}"):
        decode_image(data, name="up.png")
    assert time.perf_counter() - start < 1.0
    assert read_image(_ok_png(tmp_path)).shape == (48, 64, 3)  # a whole PNG is walked to its end and read


def _ok_png(tmp_path: Path) -> Path:
    path = tmp_path / "ok.png"
    path.write_bytes(cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes())
    return path


# ---- P7: Pillow's log lines and warnings go into the file's own message --------------------------
def test_pillows_words_on_a_tiff_are_in_its_message_not_on_stderr(tmp_path, capfd):
    path = tmp_path / "spp.tif"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(path)
    raw = bytearray(path.read_bytes())
    ifd = struct.unpack("<I", raw[4:8])[0]
    for k in range(struct.unpack("<H", raw[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack("<H", raw[entry:entry + 2])[0] == 277:  # SamplesPerPixel
            raw[entry + 8:entry + 10] = struct.pack("<H", 2048)
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataFormatError, match=r"spp.tif: .*More samples per pixel than can be decoded: 2048"):
            read_image(path)
    assert capfd.readouterr().err == "" and not caught


# ---- P8: a JPEG 2000's 32-bit decoding counts against the pixel limit --------------------------
def test_a_jpeg2000_counts_its_32_bit_decoding_against_the_limit(tmp_path):
    picture = np.zeros((200, 300, 3), np.uint8)
    picture[::10] = 255
    ok, encoded = cv2.imencode(".jp2", picture)
    if not ok:
        pytest.skip("this OpenCV writes no JPEG 2000")
    (tmp_path / "x.jp2").write_bytes(encoded.tobytes())
    (tmp_path / "x.png").write_bytes(cv2.imencode(".png", picture)[1].tobytes())
    assert read_image(tmp_path / "x.png", max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(DataFormatError, match=rf"x.jp2: image is 300x200, decoded as 32-bit RGB: .*{OVER_LIMIT}"):
        read_image(tmp_path / "x.jp2", max_pixels=60_000)
    assert read_image(tmp_path / "x.jp2", max_pixels=240_000).shape == (200, 300, 3)


def test_skip_bad_lists_a_point_off_its_photo_by_its_line_not_as_a_misshape(tmp_path):
    from facekeypoints.data.formats.landmarks import write_pts

    for name in ("p0", "p1"):
        Image.fromarray(np.zeros((200, 160, 3), np.uint8)).save(tmp_path / f"{name}.jpg")
        far = face68()
        far[30] = (370, 100)  # the nose tip more than one image width right of the 160 px photo
        write_pts(far if name == "p1" else face68(), tmp_path / f"{name}.pts")
    faces, report = to_kaggle_task(read(tmp_path, load_images=False), skip_bad=True)
    assert faces.ids == ["p0"] and report.misshaped == [] and "p1.pts: line 34" in report.read_skipped[0]
    only = read(tmp_path, load_images=False).subset(np.array([1]))
    with pytest.raises(DataFormatError, match=r"none of its 1 faces has a usable photo; e.g. .*p1.pts: line 34"):
        to_kaggle_task(only, skip_bad=True)


def test_reading_a_header_leaves_other_threads_warning_filters_alone():
    """The service reads images in several threads: catching Pillow's words must not swap the
    process's warning filters under another thread (catch_warnings did: a warning of one thread
    then failed another's read, or warnings stopped showing for good)."""
    import threading
    import warnings

    from facekeypoints.data.images import _pillow_words

    before = list(warnings.filters)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with _pillow_words():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(5)
        assert warnings.filters == before
    finally:
        release.set()
        thread.join()
