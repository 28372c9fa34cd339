"""Round 14 of fresh bad inputs for the data readers, photo evaluation and image decoding: each case was
once read or scored wrong without a word (a partly labelled face framed from its eye strip, a COCO bbox
of no size or drawn wrong making a found face "missed", an annotation without an id taken for a repeat,
a hard-linked .pts of another photo refused, a corrupt JPEG's warning credited to another thread's
image) or named unclearly; each now is the right figure, an error naming the row and field, or a note
naming its own image (synthetic files only)."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from facekeypoints.data import framing, read, write_pts
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.landmark_sets import read_coco_json
from facekeypoints.data.formats.landmarks import read_pts
from facekeypoints.data.images import decode_image, decoder_output, read_image
from facekeypoints.data.info import read_for_info
from facekeypoints.evaluate.photos import evaluate_photos
from facekeypoints.schema import load_schema
from fakes import link_or_skip

EYES = range(36, 48)
# 68 points in a 100 wide x 200 high picture (x 20..80, y 40..160)
POINTS = np.stack([np.linspace(20, 80, 68), np.linspace(40, 160, 68)], 1)


def _photo(path: Path, width: int = 100, height: int = 200) -> Path:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def hopper(tmp_path_factory):
    """A real face photo and its 68 points (the shipped model's), for framing that needs a face's shape."""
    from facekeypoints import KeypointDetector

    folder = tmp_path_factory.mktemp("hopper")
    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    (folder / "face.jpg").write_bytes(photo.read_bytes())
    return folder, KeypointDetector("ibug68")(str(photo)).keypoints[0]


def _coco(path: Path, points: np.ndarray, labelled=range(68), **face) -> Path:
    flat = [v for k, (x, y) in enumerate(points) for v in ((float(x), float(y), 2) if k in labelled else (0, 0, 0))]
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "face.jpg"}],
                                "annotations": [{"id": 1, "image_id": 1, "keypoints": flat, **face}]}))
    return path


class _Recorder:
    """Stands in for a KeypointDetector in labels mode: records the box it is given."""
    schema = load_schema("ibug68")
    runner = SimpleNamespace(source="stand-in")

    def __init__(self, points):
        self.points, self.boxes = points, []

    def __call__(self, image, boxes=None):
        self.boxes.append(np.asarray(boxes[0]))
        return SimpleNamespace(keypoints=self.points[None].copy())


# ---- 1. labels mode: a partly labelled face is framed from its whole face's box ---------------------------
def test_a_partly_labelled_face_is_framed_as_the_whole_face(hopper):
    folder, points = hopper
    full, eyes = _Recorder(points), _Recorder(points)
    evaluate_photos(read(_coco(folder / "full.json", points), load_images=False), full)
    evaluate_photos(read(_coco(folder / "eyes.json", points, EYES), load_images=False), eyes)
    assert framing.box_iou(full.boxes[0], eyes.boxes[0]) > 0.7  # was the eye strip's box: IoU about 0.1


def test_a_partly_labelled_face_scores_as_the_model_predicts(hopper):
    from facekeypoints import KeypointDetector

    folder, points = hopper
    detector = KeypointDetector("ibug68", detector=None, box_frame="landmarks")
    report = evaluate_photos(read(_coco(folder / "eyes.json", points, EYES), load_images=False), detector)
    assert report["scored"] == 1 and report["nme"] < 0.1  # was 0.28 on a real 300-W face


def test_a_face_with_too_few_points_to_frame_is_named_not_scored_from_a_part(hopper):
    folder, points = hopper
    data = read(_coco(folder / "jaw.json", points, range(17)), load_images=False)
    with pytest.raises(ValueError, match=r"too few of its points are labelled to frame the whole face from them"):
        evaluate_photos(data, _Recorder(points))


# ---- 2. a COCO bbox of no size, or one that does not hold the face ------------------------------------
def test_coco_refuses_a_bbox_of_no_size(tmp_path):
    _photo(tmp_path / "face.jpg")
    path = _coco(tmp_path / "zero.json", POINTS, bbox=[20, 40, 0, 0])
    with pytest.raises(DataFormatError, match=r"zero\.json, row 0, field 'bbox': .*width and height must be > 0, "
                                              r"got 0\.0 and 0\.0"):
        read_coco_json(path, load_images=False)
    with pytest.raises(DataFormatError, match=r"no faces; 1 skipped as bad: .*row 0, field 'bbox'"):
        read_coco_json(path, load_images=False, skip_bad=True)


@pytest.mark.parametrize("bbox", ["elsewhere", "x2y2"])
def test_a_found_face_is_not_missed_for_a_wrong_bbox(hopper, bbox):
    from facekeypoints import KeypointDetector

    folder, points = hopper
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    box = [0, 0, 30, 30] if bbox == "elsewhere" else [float(x1), float(y1), float(x2), float(y2)]
    data = read(_coco(folder / f"{bbox}.json", points, bbox=box), load_images=False)
    report = evaluate_photos(data, KeypointDetector("ibug68", detector="haar"), boxes="haar")
    assert report["missed"] == 0 and report["scored"] == 1


# ---- 3. COCO: an annotation without an id -------------------------------------------------------------
def test_an_annotation_without_id_never_repeats_a_real_id(tmp_path):
    flat = [v for x, y in POINTS for v in (float(x), float(y), 2)]
    other = [v for x, y in POINTS + 5 for v in (float(x), float(y), 2)]
    path = tmp_path / "mixid.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "two.jpg"}],
                                "annotations": [{"id": 1, "image_id": 1, "keypoints": flat},
                                                {"image_id": 1, "keypoints": other}]}))
    data = read_coco_json(path, load_images=False)
    assert len(data) == 2 and len(set(data.ids)) == 2  # each face its own name: outputs keyed by it stay apart


# ---- 4. a hard-linked .pts that labels another photo ---------------------------------------------------


def test_a_hard_linked_pts_of_another_photo_is_read(tmp_path):
    _photo(tmp_path / "a.jpg")
    _photo(tmp_path / "b.jpg", 120)  # another photo
    write_pts(POINTS, tmp_path / "a.pts")
    link_or_skip(tmp_path / "a.pts", tmp_path / "b.pts", hard=True)  # the same labels (a dedup tool)
    assert read_pts(tmp_path, load_images=False).ids == ["a", "b"]


def test_a_hard_linked_pts_of_the_same_photo_is_still_refused(tmp_path):
    _photo(tmp_path / "a.jpg")
    link_or_skip(tmp_path / "a.jpg", tmp_path / "b.jpg", hard=True)
    write_pts(POINTS, tmp_path / "a.pts")
    link_or_skip(tmp_path / "a.pts", tmp_path / "b.pts", hard=True)
    with pytest.raises(DataFormatError, match=r"b\.pts: leads to the same file as .*a\.pts \(a link\)"):
        read_pts(tmp_path, load_images=False)


# ---- 5. messages naming the face and its label file ----------------------------------------------------
class _FoundOnly(list):
    """Stands in for a KeypointDetector with a face detector: finds only the face in ``box``."""
    schema = load_schema("ibug68")
    runner = SimpleNamespace(source="stand-in")

    def __init__(self, box):
        super().__init__([SimpleNamespace(box=box)])
        self.keypoints = POINTS[None].copy()

    def __call__(self, image, boxes=None):
        return self


def test_missed_faces_are_named_by_face_not_photo(tmp_path):
    _photo(tmp_path / "two.jpg")
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "two.jpg"}], "annotations": [
        {"id": k + 1, "image_id": 1, "keypoints": [v for x, y in points for v in (float(x), float(y), 2)]}
        for k, points in enumerate([POINTS, POINTS * 0.2])]}))
    report = evaluate_photos(read(path, load_images=False), _FoundOnly(np.r_[POINTS.min(0), POINTS.max(0) + 1]),
                             boxes="haar")
    assert report["scored"] == 1 and report["missed_files"] == ["two#2"]  # was the photo's path


def test_a_label_off_its_photo_names_its_label_file(tmp_path):
    _photo(tmp_path / "a.jpg")
    _photo(tmp_path / "b.jpg")
    write_pts(POINTS, tmp_path / "a.pts")
    far = POINTS.copy()
    far[0, 0] = 9000.0
    write_pts(far, tmp_path / "b.pts")
    with pytest.raises(DataFormatError, match=rf"^{tmp_path / 'b.pts'}: line 4: x = 9001 "):
        read_for_info(tmp_path)


# ---- serve 1: JPEG decoder warnings ------------------------------------------------------------------------
def _corrupt_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    data[len(data) // 2:len(data) // 2 + 2] = b"\xff\xd9"  # an end marker inside the entropy data
    return bytes(data)


def test_a_corrupt_jpeg_warns_naming_its_file(tmp_path):
    notes = []
    decode_image(_corrupt_jpeg(), notes=notes, name="up.jpg")
    assert notes == ["up.jpg: the image decoder warned: Corrupt JPEG data: premature end of data segment"]
    (tmp_path / "bad.jpg").write_bytes(_corrupt_jpeg())
    with pytest.warns(UserWarning, match=r"bad\.jpg: the image decoder warned: Corrupt JPEG data"):
        read_image(tmp_path / "bad.jpg")


def test_a_jpeg_warning_never_lands_in_another_decodes_notes():
    png = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8))[1].tobytes()
    jpeg, png_notes, jpeg_notes = _corrupt_jpeg(), [], []

    def decode(data, notes, times=20):
        for _ in range(times):
            said = []
            decode_image(data, notes=said)
            notes.append(said)

    threads = [threading.Thread(target=decode, args=(png, png_notes)),
               threading.Thread(target=decode, args=(jpeg, jpeg_notes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(said == [] for said in png_notes)
    assert all(len(said) == 1 and "Corrupt JPEG data" in said[0] for said in jpeg_notes)


# ---- serve 4: messages about images ---------------------------------------------------------------------------
def test_a_jpeg_start_before_garbage_is_not_called_text():
    with pytest.raises(DataFormatError) as err:
        decode_image(b"\xff\xd8garbage", name="bad.jpg")
    assert "text" not in str(err.value) and "not an image format OpenCV reads" in str(err.value)
    with pytest.raises(DataFormatError, match=r"it is text, not an image"):
        decode_image("plain text, é and all".encode() + "é".encode()[:1], name="notes")  # a character cut at the end


def test_opencv_log_prefix_is_left_out_of_decoder_notes():
    with decoder_output() as said:
        os.write(2, b"[ WARN:2@417.645] global grfmt_tiff.cpp:122 TIFF_Warning TIFFReadDirectory: Unknown field "
                    b"with tag 65000 (0xfde8) encountered\n")
    assert said == ["TIFFReadDirectory: Unknown field with tag 65000 (0xfde8) encountered"]
