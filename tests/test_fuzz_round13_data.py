"""Round 13 of fresh bad inputs for the data readers, data info and photo evaluation: each case was
once read or scored without a word (a label far outside its photo scored at NME 1500%, one face
listed twice on a photo counted twice, a hard link to a listed photo, a face found by the detector
counted as missed because its jaw was unlabelled, another thread's stderr taken for an image
decoder's warning); each now is an error, a skipped and listed face, or the right figure
(synthetic files only)."""
from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from facekeypoints.data import read, to_kaggle_task, write_pts
from facekeypoints.data.convert import face_photo
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats.landmark_sets import read_coco_json, read_dlib_xml
from facekeypoints.data.formats.landmarks import read_pts
from facekeypoints.data.formats.ytf import read_udacity_csv, read_ytf68_csv
from facekeypoints.data.images import decode_image, decoder_output, read_image
from facekeypoints.data.info import read_for_info
from facekeypoints.evaluate.photos import evaluate_photos
from fakes import LabelEcho, link_or_skip

# 68 points in a 100 wide x 200 high picture (x 20..80, y 40..160)
POINTS = np.stack([np.linspace(20, 80, 68), np.linspace(40, 160, 68)], 1)
FAR = POINTS.copy()
FAR[0, 0] = 250.0  # more than one image size (100 px) past the right edge


def _photo(path: Path, width: int = 100, height: int = 200) -> Path:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _pts_face(folder: Path, points=POINTS, name: str = "face") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _photo(folder / f"{name}.jpg")
    write_pts(points, folder / f"{name}.pts")
    return folder



# ---- 3. labels far outside their photo, read without it -------------------------------------------
def test_evaluate_checks_labels_against_the_photo_it_reads(tmp_path):
    folder = _pts_face(tmp_path / "f", POINTS, "good")
    _pts_face(folder, FAR, "far")
    report = evaluate_photos(read(folder, load_images=False), LabelEcho(POINTS))
    assert report["scored"] == 1 and report["unusable_count"] == 1
    assert report["unusable"][0].endswith("far.pts: line 4: x = 251 is more than one image size (100 px) beyond "
                                          "the edge of the 100 x 200 image")


def test_data_info_checks_labels_against_the_photo_header(tmp_path):
    folder = _pts_face(tmp_path / "f", POINTS, "good")
    _pts_face(folder, FAR, "far")
    with pytest.raises(DataFormatError, match=r"far.pts: line 4: x = 251 is more than one image size"):
        read_for_info(folder)
    data = read_for_info(folder, skip_bad=True)
    assert data.ids == ["good"] and len(data.skipped) == 1 and "far.pts: line 4: x = 251" in data.skipped[0]


def test_data_info_reads_labels_whose_photo_is_missing(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    write_pts(FAR, folder / "alone.pts")  # no photo: nothing to check against (info names it)
    assert len(read_for_info(folder)) == 1


def test_evaluate_and_convert_give_no_predict_option_for_a_large_photo(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    ihdr = struct.pack(">IIBBBBB", 12000, 9000, 8, 2, 0, 0, 0)  # 108 MP, from the header alone
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    (folder / "face.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    write_pts(POINTS, folder / "face.pts")
    with pytest.raises(DataFormatError, match="over the limit") as err:
        face_photo(read(folder, load_images=False), 0)
    assert "--max-pixels" not in str(err.value)


def test_convert_of_labels_only_gives_no_python_advice():
    data = KeypointData.from_arrays("kaggle15", np.zeros((1, 15, 2)), source="konly.csv")
    with pytest.raises(ValueError, match=r"konly\.csv holds labels only: no images and no photos") as err:
        to_kaggle_task(data)
    assert "load_images" not in str(err.value)


# ---- 4. one face listed twice on one photo -----------------------------------------------------------
def _coco_annotation(ann_id: int, shift: float = 0.0) -> dict:
    flat = [v for x, y in POINTS for v in (float(x) + shift, float(y), 2)]
    return {"id": ann_id, "image_id": 1, "keypoints": flat, "bbox": [20, 40, 60, 120]}


def test_coco_refuses_the_same_face_under_another_id(tmp_path):
    _photo(tmp_path / "a.png")
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                                "annotations": [_coco_annotation(1), _coco_annotation(2, 1.0), _coco_annotation(3)]}))
    with pytest.raises(DataFormatError, match=r"row 2, field 'keypoints': annotation 2 repeats the points and bbox "
                                              r"of annotation 0 on the same image: its face would count twice"):
        read_coco_json(path, load_images=False)
    data = read_coco_json(path, load_images=False, skip_bad=True)
    assert len(data) == 2 and len(data.skipped) == 1  # the face 1 px over is another face


def test_dlib_refuses_a_repeated_box(tmp_path):
    _photo(tmp_path / "a.png")
    parts = "".join(f"<part name='{i:02d}' x='{x:.0f}' y='{y:.0f}'/>" for i, (x, y) in enumerate(POINTS))
    box = f"<box top='40' left='20' width='60' height='120'>{parts}</box>"
    path = tmp_path / "faces.xml"
    path.write_text(f"<dataset><images><image file='a.png'>{box}{box}</image></images></dataset>")
    with pytest.raises(DataFormatError, match=r"image 'a\.png', box 1 repeats the box and parts of box 0: its face "
                                              r"would count twice"):
        read_dlib_xml(path, load_images=False)
    assert len(read_dlib_xml(path, load_images=False, skip_bad=True)) == 1




def test_ytf68_refuses_a_hard_link_to_a_listed_image(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    _photo(tmp_path / "images" / "train" / "a.jpg")
    link_or_skip(tmp_path / "images" / "train" / "a.jpg", tmp_path / "images" / "train" / "b.jpg", hard=True)
    header = ["image", "person"] + [f"{a}{i}" for i in range(68) for a in ("x", "y")]
    rows = [[name, "p"] + [f"{v:.1f}" for v in POINTS.ravel()] for name in ("train/a.jpg", "train/b.jpg")]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(",".join(r) for r in [header] + rows) + "\n")
    with pytest.raises(DataFormatError, match=r"row 2, field 'image': repeats the image 'train/b\.jpg' of row 1"):
        read_ytf68_csv(path, load_images=False)


def test_a_hard_linked_pts_file_is_read_once(tmp_path):
    folder = _pts_face(tmp_path / "f")
    link_or_skip(folder / "face.pts", folder / "linked.pts", hard=True)
    with pytest.raises(DataFormatError, match=r"linked\.pts: leads to the same file as .*face\.pts"):
        read_pts(folder, load_images=False)


# ---- 5. --boxes DETECTOR with unlabelled points ------------------------------------------------------
def test_a_face_found_by_the_detector_is_not_missed_for_its_unlabelled_jaw(tmp_path):
    from facekeypoints import KeypointDetector

    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    points = KeypointDetector("ibug68")(str(photo)).keypoints[0]
    (tmp_path / "face.jpg").write_bytes(photo.read_bytes())
    flat = [v for k, (x, y) in enumerate(points) for v in ((0, 0, 0) if k < 17 else (float(x), float(y), 2))]
    path = tmp_path / "f.json"  # no bbox: the face's box is that of its labelled points, the jaw left out
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "face.jpg"}],
                                "annotations": [{"id": 1, "image_id": 1, "keypoints": flat}]}))
    report = evaluate_photos(read(path, load_images=False), KeypointDetector("ibug68", detector="haar"), boxes="haar")
    assert report["missed"] == 0 and report["scored"] == 1


# ---- 6. Udacity: an empty folder beside the one with the photos -------------------------------------
def test_udacity_takes_the_image_folder_that_holds_the_photos(tmp_path):
    header = [""] + [str(i) for i in range(136)]
    row = ["a.jpg"] + [f"{v:.1f}" for v in (POINTS / 2).ravel()]
    path = tmp_path / "training_frames_keypoints.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    (tmp_path / "training_frames_keypoints").mkdir()  # left empty
    (tmp_path / "training").mkdir()
    _photo(tmp_path / "training" / "a.jpg")
    assert read_udacity_csv(path, load_images=False).paths == [str(tmp_path / "training" / "a.jpg")]


# ---- predict 8: a Kaggle CSV without its header -----------------------------------------------------
def test_a_headerless_kaggle_csv_gets_a_short_message_naming_the_header(tmp_path):
    path = tmp_path / "nohdr.csv"
    path.write_text("1," + " ".join(["219"] * 9216) + "\n2," + " ".join(["1"] * 9216) + "\n")
    with pytest.raises(DataFormatError, match=r"nohdr\.csv: its first line holds numbers, not column names .*"
                                              r"is the header missing\?") as err:
        read(path)
    assert len(str(err.value)) < 1500


# ---- serve 1 / predict 5: what the decoders print on stderr ----------------------------------------
def _png_with_bad_crc() -> bytes:
    import cv2

    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    damaged = struct.pack(">I", 3) + b"tEXta\x00b" + struct.pack(">I", 0)  # a text chunk whose CRC is wrong
    return png[:33] + damaged + png[33:]


def test_other_stderr_output_during_a_decode_stays_on_stderr(capfd):
    with decoder_output() as said:
        os.write(2, b"my app: heartbeat\n")  # another thread's line, written while the decoder runs
        os.write(2, b"libpng warning: tEXt: CRC error\n")
        os.write(2, b"[mjpeg @ 0x55de2ab21980] error y=3\n")
        os.write(2, b"WARNING:  Invalid HTTP request received.\n")
    assert said == ["libpng warning: tEXt: CRC error", "[mjpeg] error y=3"]
    err = capfd.readouterr().err
    assert err == "my app: heartbeat\nWARNING:  Invalid HTTP request received.\n"


def test_decoder_notes_work_without_sys_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)  # a process started with stderr closed (2>&-)
    notes: list[str] = []
    assert decode_image(_png_with_bad_crc(), name="upload", notes=notes).shape == (8, 8, 3)
    assert notes == ["upload: the image decoder warned: libpng warning: tEXt: CRC error"]


def test_a_plain_read_still_works_under_a_closed_stderr(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)
    assert read_image(_photo(tmp_path / "a.png", 10, 10)).shape == (10, 10, 3)
