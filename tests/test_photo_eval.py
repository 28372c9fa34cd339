"""`facekeypoints evaluate PHOTOS` (issue 12): the whole pipeline scored on labelled photos of any layout."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.evaluate.metrics import nme
from facekeypoints.data import read
from facekeypoints.evaluate.photos import evaluate_photos, model_for, region_nme, yaw_proxy
from facekeypoints.schema import load_schema

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """The shipped 68-point model's own keypoints on grace_hopper, used as labels: scoring the
    pipeline against them must give a small error whatever file layout holds them."""
    return KeypointDetector("ibug68")(str(GRACE_HOPPER)).keypoints[0]


def _pts(folder: Path, points: np.ndarray) -> Path:
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "face.jpg")
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in points)  # .pts counts from 1
    (folder / "face.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    return folder


def _ytf68(folder: Path, points: np.ndarray) -> Path:
    (folder / "images").mkdir(parents=True)
    shutil.copy(GRACE_HOPPER, folder / "images" / "face.jpg")
    header = "image,person," + ",".join(f"x{i},y{i}" for i in range(68))
    (folder / "train.csv").write_text(f"{header}\nface.jpg,grace,{','.join(f'{v:.3f}' for v in points.ravel())}\n")
    return folder / "train.csv"


def _dlib_xml(folder: Path, points: np.ndarray) -> Path:
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "face.jpg")
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    parts = "".join(f"<part name='{i:02d}' x='{x:.0f}' y='{y:.0f}'/>" for i, (x, y) in enumerate(points))
    (folder / "faces.xml").write_text(
        "<?xml version='1.0'?>\n<dataset><images><image file='face.jpg'>"
        f"<box top='{y1:.0f}' left='{x1:.0f}' width='{x2 - x1:.0f}' height='{y2 - y1:.0f}'>{parts}</box>"
        "<box top='1' left='1' width='20' height='20'/></image></images></dataset>\n")
    return folder / "faces.xml"


def _coco(folder: Path, points: np.ndarray) -> Path:
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "face.jpg")
    doc = {"images": [{"id": 1, "file_name": "face.jpg"}],
           "annotations": [{"image_id": 1, "keypoints": [v for x, y in points for v in (x, y, 2)]}]}
    (folder / "faces.json").write_text(json.dumps(doc))
    return folder / "faces.json"


def _score(path: Path, model: str | None = None, boxes: str = "labels") -> dict:
    data = read(path)
    labels = boxes == "labels"
    detector = KeypointDetector(model or model_for(data.schema.name), detector=None if labels else boxes,
                                box_frame="landmarks" if labels else None)
    return evaluate_photos(data, detector, boxes=boxes)


@pytest.mark.parametrize("layout", [_pts, _ytf68, _dlib_xml, _coco])
def test_every_photo_layout_is_scored(labels, tmp_path, layout):
    path = layout(tmp_path / "data", labels)
    report = _score(path)
    assert report["schema"] == "ibug68" and report["scored"] == 1  # the 68-point data picks the 68-point model
    assert report["nme"] < 0.05, report["nme"]  # its own keypoints (3.6%): framed from them, not from Haar
    assert set(report["regions"]) == {"jaw", "brows", "nose", "eyes", "mouth"}
    assert sum(b["faces"] for b in report["by_turn"].values()) == 1
    if layout is _dlib_xml:
        assert report["unlabelled"] == 1  # the box without parts is counted, not scored


def test_detector_boxes_and_the_15_point_model(labels, tmp_path, capsys):
    path = _pts(tmp_path / "data", labels)
    report = _score(path, "kaggle15", boxes="haar")
    assert report["schema"] == "kaggle15" and report["scored"] == 1 and report["missed"] == 0
    assert report["nme"] < 0.08  # 6.4%: kaggle15 points derived from the 68-point labels
    assert main(["evaluate", str(path), "--boxes", "haar"]) == 0
    out = capsys.readouterr().out
    assert "NME by region: jaw" in out and "FR@10" in out and "boxes: haar, then refinement" in out


def test_nme_is_normalised_by_each_schemas_own_points():
    ibug = load_schema("ibug68")
    truth = np.zeros((1, 68, 2))
    truth[0, 36], truth[0, 45] = (0.0, 0.0), (50.0, 0.0)  # outer eye corners 50 px apart
    truth[0, 39], truth[0, 42] = (20.0, 0.0), (30.0, 0.0)  # inner corners: not the normaliser
    assert nme(truth + [5.0, 0.0], truth, ibug)[0] == pytest.approx(0.1)
    kaggle = load_schema("kaggle15")
    t15 = np.zeros((1, 15, 2))
    t15[0, 0], t15[0, 1] = (60.0, 0.0), (20.0, 0.0)  # eye centres 40 px apart
    assert nme(t15 + [4.0, 0.0], t15, kaggle)[0] == pytest.approx(0.1)


def test_region_errors_land_in_their_region():
    schema = load_schema("ibug68")
    truth = np.random.default_rng(0).uniform(0, 100, (3, 68, 2))
    truth[:, 36], truth[:, 45] = (0.0, 0.0), (100.0, 0.0)
    pred = truth.copy()
    pred[:, :17] += [10.0, 0.0]  # only the jaw is off, by 10% of the eye distance
    regions = region_nme(pred, truth, schema)
    assert regions["jaw"] == pytest.approx(0.1) and all(v == 0 for k, v in regions.items() if k != "jaw")


def test_the_turn_proxy_follows_the_nose():
    k15 = np.zeros((2, 15, 2))
    k15[:, 0], k15[:, 1] = (60.0, 50.0), (20.0, 50.0)  # left and right eye centres
    k15[0, 10] = (40.0, 80.0)  # nose tip under the eyes' midpoint: frontal
    k15[1, 10] = (50.0, 80.0)  # half-way to the left eye: turned
    assert yaw_proxy(k15).tolist() == pytest.approx([0.0, 0.5])


def test_a_dataset_without_labelled_faces_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(GRACE_HOPPER, folder / "face.jpg")
    (folder / "faces.xml").write_text("<?xml version='1.0'?>\n<dataset><images><image file='face.jpg'>"
                                      "<box top='1' left='1' width='20' height='20'/></image></images></dataset>\n")
    assert main(["evaluate", str(folder / "faces.xml")]) == 2
    assert "no face could be scored (1 faces without labelled points)" in capsys.readouterr().err


def test_faces_that_cannot_be_scored_are_counted_not_fatal(labels, tmp_path, capsys):
    folder = _pts(tmp_path / "data", labels)
    collapsed = labels.copy()
    collapsed[45] = collapsed[36]  # the outer eye corners coincide: no scale for NME
    shutil.copy(GRACE_HOPPER, folder / "same.jpg")
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in collapsed)
    (folder / "same.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    report = _score(folder)
    assert report["scored"] == 2 and report["rows_with_nme"] == 1 and np.isfinite(report["nme"])
    assert main(["evaluate", str(folder), "--json"]) == 0
    assert "Infinity" not in capsys.readouterr().out  # strict JSON
    assert main(["evaluate", str(folder), "--boxes", "none"]) == 2
    assert "--boxes 'none' is not one of labels" in capsys.readouterr().err


def test_report_draws_the_curve_the_regions_and_the_best_and_worst_faces(labels, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    for n, shift in enumerate((0.0, 6.0, 14.0)):  # three copies of one face, labelled ever further off
        shutil.copy(GRACE_HOPPER, folder / f"face{n}.jpg")
        body = "\n".join(f"{x + 1 + shift:.3f} {y + 1:.3f}" for x, y in labels)
        (folder / f"face{n}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    out = tmp_path / "report"
    assert main(["evaluate", str(folder), "--report", str(out)]) == 0
    page = (out / "index.html").read_text()
    for name in ("ced.png", "regions.png", "best_1.jpg", "worst_1.jpg", "worst_3.jpg"):
        assert (out / name).stat().st_size > 1000 and name in page, name
    # the face whose labels sit furthest from it is the worst, the one labelled by the model the best
    assert '<img src="best_1.jpg"><figcaption>face0: NME' in page
    assert '<img src="worst_1.jpg"><figcaption>face2: NME' in page
    assert not (out / "best_4.jpg").exists()  # three faces, three pictures each way
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(folder), "--report", str(tmp_path / "file")]) == 2  # refused before the work
    assert "exists and is not a folder" in capsys.readouterr().err
