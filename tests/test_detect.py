"""Face detection settings: small faces in large photos, and the CLI options that reach them."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from facekeypoints.cli import main
from facekeypoints.data.images import read_image
from facekeypoints.infer.detectors import HaarDetector
from fakes import mean_face_checkpoint

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _composite(face_px: int = 60, size=(1200, 1600)) -> tuple[np.ndarray, list[np.ndarray]]:
    """Four copies of Grace Hopper, each face about ``face_px`` wide, on a large grey photo; returns
    (image, boxes the default detector finds on each copy at full size, scaled)."""
    photo = read_image(GRACE_HOPPER)
    full = HaarDetector(max_side=600).detect(photo)[0, :4]  # her face in the original photo
    scale = face_px / (full[2] - full[0])
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full(size + (3,), 120, np.uint8)
    boxes = []
    for y, x in ((100, 150), (100, 1100), (800, 150), (800, 1100)):
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        boxes.append(full * scale + [x, y, x, y])
    return canvas, boxes


def _found(detections: np.ndarray, boxes: list[np.ndarray]) -> int:
    centres = (detections[:, :2] + detections[:, 2:4]) / 2
    return sum(any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for cx, cy in centres) for b in boxes)


def test_min_face_finds_small_faces_in_a_large_photo_that_max_side_loses():
    image, boxes = _composite(face_px=60)
    assert _found(HaarDetector().detect(image), boxes) == 0  # shrunk to 240 px, a 60 px face is 9 px
    assert _found(HaarDetector(min_face=30).detect(image), boxes) == 4
    frame = cv2.resize(image, (640, 480))  # on a small image min_face changes nothing
    np.testing.assert_array_equal(HaarDetector(min_face=200).detect(frame), HaarDetector().detect(frame))


@pytest.mark.parametrize("kwargs, message", [({"min_face": 4}, "min_face must be at least 8"),
                                             ({"scale_factor": 1.0}, "scale_factor must be > 1")])
def test_bad_haar_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HaarDetector(**kwargs)


def test_cli_min_face_reaches_the_detector(tmp_path):
    image, _ = _composite(face_px=60)
    cv2.imwrite(str(tmp_path / "group.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    model = mean_face_checkpoint(tmp_path / "mean.pt")
    counts = {}
    for extra in ([], ["--min-face", "30"]):
        out = tmp_path / f"out{len(extra)}.json"
        assert main(["predict", str(tmp_path / "group.jpg"), "-o", str(out), "--model", str(model), "--quiet",
                     *extra]) == 0
        counts[len(extra)] = len(json.loads(out.read_text())[0]["faces"])
    assert counts == {0: 0, 2: 4}


def test_dlib_hog_finds_grace_hopper_and_a_missing_extra_says_what_to_install(monkeypatch):
    pytest.importorskip("dlib", reason="the dlib extra (dlib-bin) is not installed")
    from facekeypoints.infer.detectors import DlibDetector, make_detector

    photo = read_image(GRACE_HOPPER)
    found = DlibDetector().detect(photo)
    haar = HaarDetector(max_side=600).detect(photo)[0]
    centre = (found[0, :2] + found[0, 2:4]) / 2
    assert len(found) == 1 and haar[0] <= centre[0] <= haar[2] and haar[1] <= centre[1] <= haar[3]
    monkeypatch.setitem(__import__("sys").modules, "dlib", None)  # as if the extra were not installed
    with pytest.raises(ValueError, match=r"pip install 'facekeypoints\[dlib\]'"):
        make_detector("dlib")


def test_cli_detector_dlib(tmp_path):
    pytest.importorskip("dlib", reason="the dlib extra (dlib-bin) is not installed")
    model = mean_face_checkpoint(tmp_path / "mean.pt")
    out = tmp_path / "out.json"
    assert main(["predict", str(GRACE_HOPPER), "--detector", "dlib", "-o", str(out), "--model", str(model),
                 "--quiet"]) == 0
    assert len(json.loads(out.read_text())[0]["faces"]) == 1


def test_each_box_source_frames_faces_its_own_way(tmp_path):
    from facekeypoints import KeypointDetector
    from facekeypoints.data import framing

    model = mean_face_checkpoint(tmp_path / "mean.pt")  # answers the template: keypoints show the frame
    photo = read_image(GRACE_HOPPER)
    box = [[150, 120, 350, 320]]
    by_source = {name: KeypointDetector(model, detector=None, refine=False, box_frame=name)(photo, boxes=box)
                 for name in framing.BOX_FRAMES}
    eyes = {name: r[0]["left_eye_center"][1] for name, r in by_source.items()}
    assert eyes["landmarks"] < eyes["dlib"] < eyes["haar"]  # their frames sit higher above the box centre
    assert KeypointDetector(model).box_frame == framing.BOX_FRAMES["haar"]
    with pytest.raises(ValueError, match="box_frame 'yolo' is not one of"):
        KeypointDetector(model, box_frame="yolo")
