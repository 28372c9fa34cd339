"""Round-8 audit findings on label readers (tiny synthetic inputs; limits monkeypatched small).

- F3: COCO ``skip_bad`` kept one message per skipped annotation (6.6 M empty objects took 2.3 GB):
  the first ``MAX_SKIPPED_LISTED`` are listed, then one line counting the rest; ``skipped_count``
  (and every count printed) is the full number.
- F4: ``read_id_lookup`` had no size limit (3 M rows took 1.7 GB): over ``MAX_LOOKUP_BYTES`` of text
  or ``MAX_LOOKUP_ROWS`` rows is an error naming the file.
- F5: one photo listed in ``images`` under two ids was counted twice: an error naming both entries.
- F6: a/x.jpg and b/x.jpg, with annotation ids restarting on each image, were refused as "the same
  image": faces are keyed on the image, and ids name the whole file where stems collide.
- F9a: the 20 MB COCO limit refused files that fit: memory is estimated from the JSON's tokens
  (``MAX_JSON_MEMORY``), so nested empty lists are refused while 68-point faces of the same size read.
- F9b: the Kaggle 64,000-row limit (for images) also hit label-only files: they have their own.
- F12: a MATLAB logical ``pt3d_68`` read as 0/1 coordinates: refused, naming the field.
- F13: ``read_asf(image_size=...)`` was unchecked: it must be two positive integers.
- F14: text in a dlib ``<box>`` or CDATA in a ``<part>`` was dropped silently: refused.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from facekeypoints.data import read, read_asf, read_coco_json, read_dlib_xml, read_id_lookup, read_kaggle_csv
from facekeypoints.data import dataset
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats import kaggle, landmark_sets, submission
from facekeypoints.data.info import describe
from facekeypoints.schema import load_schema


def _flat68(shift: float = 0.0) -> list:
    return [v for i in range(68) for v in (10.0 + i + shift, 20.0 + i, 2)]


def _coco(path, images, annotations):
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


# ---- F3 ---------------------------------------------------------------------------------------------
def test_coco_skip_bad_lists_the_first_messages_and_counts_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(landmark_sets, "MAX_SKIPPED_LISTED", 3)
    anns = [{"id": 0, "image_id": 1, "keypoints": _flat68()}] + [{}] * 10
    path = _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png", "width": 200, "height": 200}], anns)
    data = read_coco_json(path, load_images=False, skip_bad=True)
    assert len(data) == 1
    assert data.skipped_count == 10 and data.skipped_unlisted == 7 and len(data.skipped) == 4
    assert "row 1," in data.skipped[0] and "row 3," in data.skipped[2]
    assert data.skipped[-1] == f"{path}: ... and 7 more skipped as bad, not listed (the first 3 are)"
    assert describe(data)["skipped"] == 10
    assert data.subset([0]).skipped_count == 10  # carried by copies


def test_coco_skip_bad_with_nothing_left_counts_all(tmp_path, monkeypatch):
    monkeypatch.setattr(landmark_sets, "MAX_SKIPPED_LISTED", 2)
    path = _coco(tmp_path / "a.json", [], [{}] * 9)
    with pytest.raises(DataFormatError, match=r"no faces; 9 skipped as bad: .*row 0"):
        read_coco_json(path, load_images=False, skip_bad=True)


def test_skipped_count_without_unlisted_rows():
    data = KeypointData.from_arrays("kaggle15", np.zeros((0, 15, 2)), skipped=["a", "b"])
    assert data.skipped_count == 2 and dataset.MAX_SKIPPED_LISTED == 1000


# ---- F4 ---------------------------------------------------------------------------------------------
def test_id_lookup_limits(tmp_path, monkeypatch):
    path = tmp_path / "IdLookupTable.csv"
    path.write_text("RowId,ImageId,FeatureName,Location\n" + "".join(
        f"{i},1,left_eye_center_x\n" for i in range(1, 6)))
    assert len(read_id_lookup(path)) == 5
    monkeypatch.setattr(submission, "MAX_LOOKUP_ROWS", 4)
    with pytest.raises(DataFormatError, match=rf"^{path}, row 5: over 4 rows, the limit for an IdLookupTable"):
        read_id_lookup(path)
    monkeypatch.setattr(submission, "MAX_LOOKUP_BYTES", 50)
    with pytest.raises(DataFormatError, match=rf"^{path}: over 5e-05 MB of text, the limit for an IdLookupTable"):
        read_id_lookup(path)


def test_id_lookup_field_over_csv_limit_is_named(tmp_path):
    path = tmp_path / "IdLookupTable.csv"
    path.write_text('RowId,ImageId,FeatureName\n1,1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(DataFormatError, match=rf"^{path}, row 1: not a readable CSV line"):
        read_id_lookup(path)


# ---- F5 / F6 ----------------------------------------------------------------------------------------
def test_coco_one_photo_under_two_ids_is_refused(tmp_path):
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "./a.png"}]
    anns = [{"id": 1, "image_id": 1, "keypoints": _flat68()}, {"id": 2, "image_id": 2, "keypoints": _flat68()}]
    path = _coco(tmp_path / "a.json", images, anns)
    with pytest.raises(DataFormatError, match=r"field 'file_name': images\[1\] \(id 2\) names the file "
                                              r"'\./a\.png' of images\[0\] \(id 1\)"):
        read_coco_json(path, load_images=False)


def test_coco_same_stem_in_two_folders_with_restarting_ids(tmp_path):
    images = [{"id": 1, "file_name": "a/x.jpg"}, {"id": 2, "file_name": "b/x.jpg"}, {"id": 3, "file_name": "y.jpg"}]
    anns = [{"id": 1, "image_id": 1, "keypoints": _flat68()}, {"id": 1, "image_id": 2, "keypoints": _flat68(1)},
            {"id": 1, "image_id": 3, "keypoints": _flat68(2)}]
    data = read_coco_json(_coco(tmp_path / "a.json", images, anns), load_images=False)
    assert data.ids == ["a/x.jpg#1", "b/x.jpg#1", "y#1"]
    anns.append({"id": 1, "image_id": 2, "keypoints": _flat68(3)})  # the same image and id: still refused
    with pytest.raises(DataFormatError, match=r"row 3, field 'id': annotation 3 repeats the id '1' of annotation 1 "
                                              r"on the same image"):
        read_coco_json(_coco(tmp_path / "b.json", images, anns), load_images=False)


# ---- F9a --------------------------------------------------------------------------------------------
def test_coco_memory_estimate_refuses_nested_lists_not_faces(tmp_path, monkeypatch):
    faces = _coco(tmp_path / "faces.json", [{"id": i, "file_name": f"{i}.png"} for i in range(20)],
                  [{"id": i, "image_id": i, "keypoints": _flat68(i + 0.125)} for i in range(20)])
    size = faces.stat().st_size
    lists = tmp_path / "lists.json"
    lists.write_text('{"images": [], "annotations": [' + ",".join(["[]"] * (size // 3)) + "]}")
    assert landmark_sets.json_memory(lists) > 2 * landmark_sets.json_memory(faces)
    monkeypatch.setattr(landmark_sets, "MAX_JSON_MEMORY", landmark_sets.json_memory(faces) + 1)
    assert len(read_coco_json(faces, load_images=False)) == 20
    assert len(read(faces, load_images=False)) == 20  # detection checks the same estimate
    with pytest.raises(DataFormatError, match=rf"^{lists}: parsing this JSON would take about .* MB of memory"):
        read_coco_json(lists, load_images=False, skip_bad=True)
    with pytest.raises(DataFormatError, match=rf"^{lists}: parsing this JSON would take"):
        read(lists, load_images=False)


def test_coco_byte_limit_is_raised():
    assert landmark_sets.MAX_COCO_BYTES >= 100_000_000


# ---- F9b --------------------------------------------------------------------------------------------
def test_kaggle_row_limit_for_images_does_not_apply_to_label_only_files(tmp_path, monkeypatch):
    monkeypatch.setattr(kaggle, "MAX_ROWS", 3)
    monkeypatch.setattr(kaggle, "MAX_LABEL_ROWS", 6)
    columns = load_schema("kaggle15").columns()
    row = ",".join(["50"] * len(columns)) + "\n"
    path = tmp_path / "labels.csv"
    path.write_text(",".join(columns) + "\n" + row * 5)
    assert len(read_kaggle_csv(path, use_cache=False)) == 5
    path.write_text(",".join(columns) + "\n" + row * 7)
    with pytest.raises(DataFormatError, match=rf"^{path}: over 6 lines after the header, the limit for a "
                                              "label-only Kaggle CSV"):
        read_kaggle_csv(path, use_cache=False)


# ---- F12 --------------------------------------------------------------------------------------------
def test_mat_logical_points_are_refused(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(tmp_path / "a.mat", {"pt3d_68": np.ones((3, 68)) > 0})
    with pytest.raises(DataFormatError, match=r"field 'pt3d_68': expected a \(3, 68\) array of real numbers, got "
                                              r"logical"):
        read(tmp_path, load_images=False)


# ---- F13 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(0, 0), (-480, -640), (480, "640"), (480.0, 640), (True, 640), (480,), "480x640"])
def test_asf_image_size_must_be_two_positive_integers(tmp_path, size):
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\), two positive integers"):
        read_asf(tmp_path / "01-1m.asf", load_images=False, image_size=size)


# ---- F14 --------------------------------------------------------------------------------------------
def _dlib(path, box_inside: str, part0: str = "<part name='00' x='10' y='10'/>"):
    parts = part0 + "".join(f"<part name='{i:02d}' x='{10 + i}' y='10'/>" for i in range(1, 68))
    path.write_text(f"<dataset><images><image file='a.jpg'><box top='1' left='1' width='90' height='90'>"
                    f"{box_inside}{parts}</box></image></images></dataset>")
    return path


@pytest.mark.parametrize("inside, part0, what", [
    ("201 107", "<part name='00' x='10' y='10'/>", r"<box> holds text '201 107'"),
    ("", "<part name='00' x='10' y='10'><![CDATA[junk]]></part>", r"part '00' holds text 'junk'"),
    ("", "<part name='00' x='10' y='10'><x>1</x></part>", r"part '00' holds a <x>"),
])
def test_dlib_stray_text_is_refused(tmp_path, inside, part0, what):
    path = _dlib(tmp_path / "a.xml", inside, part0)
    with pytest.raises(DataFormatError, match=what):
        read_dlib_xml(path, load_images=False)
    data = read_dlib_xml(path, load_images=False, skip_bad=True)  # one bad box: listed with skip_bad
    assert len(data) == 0 and data.skipped_count == 1


def test_dlib_text_in_image_is_refused_and_comments_and_labels_are_fine(tmp_path):
    path = _dlib(tmp_path / "a.xml", "<label>face</label><!-- a note -->\n  ")
    assert len(read_dlib_xml(path, load_images=False)) == 1
    path.write_text(path.read_text().replace("<image file='a.jpg'>", "<image file='a.jpg'>10 10"))
    with pytest.raises(DataFormatError, match=r"image 'a.jpg' holds text '10 10'"):
        read_dlib_xml(path, load_images=False)
