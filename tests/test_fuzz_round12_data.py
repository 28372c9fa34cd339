"""Round-12 fuzzing of the data readers and data commands (synthetic files only).

- data convert: a face labelled outside its photo is refused (skip_bad: left out), not written as padding.
- EXIF orientation: header sizes are those of the turned picture, as read_image returns it; a COCO
  size declared before the turn names the orientation.
- A photo listed twice through a link (ytf68 CSV, COCO, dlib XML) counts once: the second is refused.
- Udacity: both image folders holding a listed file is an error naming both.
- COCO categories: an unknown category_id, or keypoint names unlike the annotation's count.
- Messages: integer COCO ids, convert's pixel-limit advice, data verify's other-case and
  doubled files, a folder named as an image, mixed CSV line ends.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekeypoints.data import read, read_image, to_kaggle_task, write_pts
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.landmark_sets import read_coco_json, read_dlib_xml
from facekeypoints.data.formats.verify import verify_kaggle_download
from facekeypoints.data.formats.ytf import read_udacity_csv, read_ytf68_csv
from facekeypoints.data.images import image_size
from facekeypoints.data.info import describe, read_for_info
from fakes import link_or_skip

# 68 points in a 100 wide x 200 high picture (x 20..80, y 40..160)
POINTS = np.stack([np.linspace(20, 80, 68), np.linspace(40, 160, 68)], 1)


def _photo(path: Path, width: int, height: int, orientation: int = 1, fmt: str | None = None) -> Path:
    """A noise picture stored ``width`` x ``height``, with an EXIF orientation when not 1."""
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    kw = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif if fmt == "TIFF" else exif.tobytes()
    Image.fromarray(pixels).save(path, fmt, **kw)
    return path


def _pts_face(folder: Path, width: int, height: int, points=POINTS, orientation: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _photo(folder / "face.jpg", width, height, orientation)
    write_pts(points, folder / "face.pts")
    return folder


def _coco(folder: Path, images: list[dict], annotations: list[dict], **extra) -> Path:
    path = folder / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, **extra}))
    return path


def _annotation(image_id=1, k: int = 68, **kw) -> dict:
    flat = [v for x, y in POINTS[:k] for v in (float(x) / 2, float(y) / 4, 2)]
    return {"id": kw.pop("id", 1), "image_id": image_id, "keypoints": flat, **kw}




# ---- 1. data convert: a face outside its photo -------------------------------------------------
def test_convert_refuses_a_face_labelled_outside_its_photo(tmp_path):
    folder = _pts_face(tmp_path / "outside", 100, 200, POINTS + (100, 0))  # x 120..180 in a 100 wide photo
    with pytest.raises(DataFormatError, match=r"face 'face': 68 of its 68 labelled points lie outside its 100 x "
                                              r"200 \(width x height\) photo, so its crop would be border padding"):
        to_kaggle_task(read(folder, load_images=False))


def test_convert_skip_bad_leaves_out_the_outside_face_and_lists_it(tmp_path):
    _pts_face(tmp_path / "set" / "a", 100, 200)
    _pts_face(tmp_path / "set" / "b", 100, 200, POINTS + (100, 0))
    for load_images in (False, True):
        faces, report = to_kaggle_task(read(tmp_path / "set", load_images=load_images), skip_bad=True)
        assert len(faces) == 1 and faces.ids[0].startswith("a")
        assert len(report.read_skipped) == 1 and "lie outside its 100 x 200" in report.read_skipped[0]


def test_convert_keeps_a_face_with_a_few_points_past_the_edge(tmp_path):
    points = POINTS.copy()
    points[:5, 0] = -10  # a jaw cut off by the frame
    faces, report = to_kaggle_task(read(_pts_face(tmp_path / "edge", 100, 200, points), load_images=False))
    assert len(faces) == 1 and not report.read_skipped


# ---- 2. EXIF orientation -----------------------------------------------------------------------
@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".tif", "TIFF")])
def test_header_size_is_that_of_the_turned_picture(tmp_path, suffix, fmt):
    path = _photo(tmp_path / f"a{suffix}", 200, 100, orientation=6, fmt=fmt)  # stored 200 wide, shown 100 wide
    assert read_image(path).shape[:2] == (200, 100)
    assert image_size(path) == (100, 200)


def test_info_and_read_agree_on_a_turned_photo(tmp_path):
    folder = tmp_path / "exif6"
    folder.mkdir()
    _photo(folder / "face.jpg", 200, 100, orientation=6)
    write_pts(POINTS, folder / "face.pts")  # labelled in the picture as shown: 100 wide, 200 high
    assert describe(read_for_info(folder))["image_size"] == [200, 100]
    data = read(folder)
    assert data.images[0].shape[:2] == (200, 100)
    np.testing.assert_allclose(data.keypoints[0], POINTS, atol=1e-3)  # points are not turned


@pytest.mark.parametrize("load_images", [True, False])
def test_coco_size_declared_before_the_turn_names_the_orientation(tmp_path, load_images):
    _photo(tmp_path / "a.jpg", 200, 100, orientation=6)
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}], [_annotation()])
    with pytest.raises(DataFormatError, match=r"declare 200 x 100 \(width x height\), but the image is 100 x 200; "
                                              r"the image has EXIF orientation 6 \(shown turned 90°\)"):
        read_coco_json(path, load_images=load_images)
    shown = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 200}], [_annotation()])
    assert len(read_coco_json(shown, load_images=load_images)) == 1


def test_coco_labels_alone_check_the_declared_size_against_the_header(tmp_path):
    _photo(tmp_path / "a.png", 120, 100)
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 90, "height": 100}], [_annotation()])
    with pytest.raises(DataFormatError, match=r"declare 90 x 100 \(width x height\), but the image is 120 x 100$"):
        read_coco_json(path, load_images=False)
    (tmp_path / "a.png").unlink()  # labels without their photo still read
    assert len(read_coco_json(path, load_images=False)) == 1


def test_convert_names_the_orientation_of_a_face_labelled_before_the_turn(tmp_path):
    folder = tmp_path / "exif6"
    folder.mkdir()
    _photo(folder / "face.jpg", 200, 100, orientation=6)
    write_pts(np.stack([np.linspace(110, 190, 68), np.linspace(10, 90, 68)], 1), folder / "face.pts")
    with pytest.raises(DataFormatError, match=r"the photo has EXIF orientation 6 \(shown turned 90°\)"):
        to_kaggle_task(read(folder, load_images=False))


# ---- 3. one photo listed twice through a link ---------------------------------------------------
def _ytf_csv(path: Path, names: list[str]) -> Path:
    header = ["image", "person"] + [f"{a}{i}" for i in range(68) for a in ("x", "y")]
    rows = [[name, "p"] + [f"{v:.1f}" for v in (POINTS / 2).ravel()] for name in names]
    path.write_text("\n".join(",".join(r) for r in [header] + rows) + "\n")
    return path


def test_ytf68_refuses_a_link_to_a_listed_image(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    _photo(tmp_path / "images" / "train" / "a.jpg", 100, 100)
    link_or_skip("a.jpg", tmp_path / "images" / "train" / "link.jpg")
    path = _ytf_csv(tmp_path / "train.csv", ["train/a.jpg", "train/link.jpg"])
    with pytest.raises(DataFormatError, match=r"row 2, field 'image': repeats the image 'train/link\.jpg' of row 1 "
                                              r"\(the same file as 'train/a\.jpg'\): its face would count twice"):
        read_ytf68_csv(path, load_images=False)
    data = read_ytf68_csv(path, skip_bad=True)
    assert data.ids == ["train/a.jpg"] and len(data.skipped) == 1


def test_coco_refuses_a_link_to_a_listed_image(tmp_path):
    _photo(tmp_path / "a.png", 100, 100)
    link_or_skip("a.png", tmp_path / "b.png")
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                 [_annotation(1), _annotation(2)])
    with pytest.raises(DataFormatError, match=r"images\[1\] \(id 2\) names the file 'b\.png' of images\[0\] \(id 1\) "
                                              r"\('a\.png', the same file\)"):
        read_coco_json(path, load_images=False)


def test_dlib_refuses_a_link_to_a_listed_image(tmp_path):
    _photo(tmp_path / "a.png", 100, 100)
    link_or_skip("a.png", tmp_path / "b.png")
    parts = "".join(f"<part name='{i:02d}' x='{x / 2:.0f}' y='{y / 4:.0f}'/>" for i, (x, y) in enumerate(POINTS))
    box = f"<box top='1' left='1' width='50' height='50'>{parts}</box>"
    path = tmp_path / "faces.xml"
    path.write_text(f"<dataset><images><image file='a.png'>{box}</image><image file='b.png'>{box}</image>"
                    "</images></dataset>")
    with pytest.raises(DataFormatError, match=r"<image> number 1 repeats the file 'b\.png' of <image> number 0"):
        read_dlib_xml(path, load_images=False)


# ---- 4. Udacity: two image folders ---------------------------------------------------------------
def _udacity(folder: Path, name: str = "training_frames_keypoints.csv") -> Path:
    header = [""] + [str(i) for i in range(136)]
    row = ["a.jpg"] + [f"{v:.1f}" for v in (POINTS / 2).ravel()]
    path = folder / name
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    return path


def test_udacity_refuses_a_file_held_by_both_image_folders(tmp_path):
    path = _udacity(tmp_path)
    for sub in ("training_frames_keypoints", "training"):
        (tmp_path / sub).mkdir()
        _photo(tmp_path / sub / "a.jpg", 100, 100)
    with pytest.raises(DataFormatError, match=r"both image folders beside the CSV hold 'a\.jpg' \(.*"
                                              r"training_frames_keypoints and .*training\)"):
        read_udacity_csv(path)
    (tmp_path / "training" / "a.jpg").unlink()  # the other folder holds other files: no doubt
    assert read_udacity_csv(path, load_images=False).paths == [str(tmp_path / "training_frames_keypoints" / "a.jpg")]


def test_udacity_missing_folder_is_named_once(tmp_path):
    path = _udacity(tmp_path, "named_first.csv")
    with pytest.raises(DataFormatError, match=r"no image folder beside the CSV \(looked for \S*named_first\); "):
        read_udacity_csv(path)


# ---- 5. COCO categories --------------------------------------------------------------------------
def test_coco_refuses_an_unknown_category(tmp_path):
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.png"}], [_annotation(category_id=2)],
                 categories=[{"id": 1, "name": "face"}])
    with pytest.raises(DataFormatError, match=r"row 0, field 'category_id': category_id 2 is not in 'categories' "
                                              r"\(ids: 1\)"):
        read_coco_json(path, load_images=False)


def test_coco_refuses_a_category_whose_keypoint_names_are_fewer(tmp_path):
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.png"}], [_annotation(category_id=1)],
                 categories=[{"id": 1, "name": "face", "keypoints": ["p"] * 19}])
    with pytest.raises(DataFormatError, match=r"categories\[0\]\.keypoints names 19 points, but the annotation has 68"):
        read_coco_json(path, load_images=False)


def test_coco_without_categories_or_category_id_still_reads(tmp_path):
    for categories in ([], [{"id": 1, "keypoints": [str(i) for i in range(68)]}]):
        path = _coco(tmp_path, [{"id": 1, "file_name": "a.png"}], [_annotation(category_id=1), _annotation(id=2, bbox=[1, 1, 10, 10])],
                     categories=categories)
        assert len(read_coco_json(path, load_images=False)) == 2


# ---- 7. messages ---------------------------------------------------------------------------------
def test_coco_float_id_is_said_to_need_an_integer(tmp_path):
    path = _coco(tmp_path, [{"id": 1.0, "file_name": "a.png"}], [_annotation()])
    with pytest.raises(DataFormatError, match=r"images\[0\] must be an object with an id \(an integer or text\)"):
        read_coco_json(path, load_images=False)


def test_convert_pixel_limit_error_names_no_option_of_another_command(tmp_path):
    folder = tmp_path / "bomb"
    folder.mkdir()
    write_pts(POINTS, folder / "face.pts")
    # a PNG whose header declares 100000 x 100000 pixels (its pixel data is never reached)
    ihdr = (100000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    (folder / "face.png").write_bytes(b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk
                                      + zlib.crc32(chunk).to_bytes(4, "big"))
    with pytest.raises(DataFormatError) as caught:
        to_kaggle_task(read(folder, load_images=False))
    assert "over the limit of 100000000 pixels" in str(caught.value)
    assert "--max-pixels" not in str(caught.value)


def test_verify_names_a_file_of_other_letter_case(tmp_path):
    (tmp_path / "TRAINING.CSV").write_text("x\n")
    check = verify_kaggle_download(tmp_path).checks[0]
    assert check.status == "missing" and "TRAINING.CSV is there: the names are case-sensitive" in check.detail


def test_verify_checks_both_a_csv_and_its_zip(tmp_path):
    (tmp_path / "training.csv").write_text("x\n")
    with zipfile.ZipFile(tmp_path / "training.zip", "w") as archive:
        archive.writestr("training.csv", "yy\n")
    check = verify_kaggle_download(tmp_path).checks[0]
    assert check.status == "size differs"
    assert "training.csv: size differs" in check.detail and "training.zip (member training.csv)" in check.detail


def test_ytf68_names_a_folder_given_as_image(tmp_path):
    (tmp_path / "images" / "train" / "sub").mkdir(parents=True)
    path = _ytf_csv(tmp_path / "train.csv", ["train/sub"])
    with pytest.raises(DataFormatError, match=r"row 1, field 'image': \S*train/sub is a folder, not an image file"):
        read_ytf68_csv(path)


def test_kaggle_row_joined_at_a_lone_cr_says_so(tmp_path):
    from facekeypoints.schema import load_schema
    names = load_schema("kaggle15").columns()
    row = ",".join(["50"] * 30) + "," + " ".join(["1"] * 9216)
    path = tmp_path / "mixed.csv"
    path.write_bytes((",".join(names + ["Image"]) + "\r\n" + row + "\n" + row + "\r" + row + "\n").encode())
    with pytest.raises(DataFormatError, match=r"row 2: has 61 fields, the header has 31 \(it holds a lone CR: the "
                                              r"file mixes line ends"):
        read(path)
