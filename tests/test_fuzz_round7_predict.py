"""Round 7 of fresh bad inputs for ``predict`` and the inference API: a video with damaged frames
was decoded with the damage patched over and FFmpeg's complaint on the console naming no file; a
single image array given to predict_batch was read as many grey images; a grey frame drawn for a
``color="bgr"`` result came back mirrored; transparency was blended over white for files but dropped
for PIL images and arrays (and ignored in grey PNGs); CIELab TIFFs were decoded as if RGB; grey
crops with a channel axis were an OpenCV error; a folder given as an image was "no such file".
Each now reads right, or is a warning or error that names what is wrong (synthetic files only)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facekeypoints.data.images import read_image
from facekeypoints.infer.files import predict_paths
from facekeypoints.infer.inputs import to_rgb
from facekeypoints.infer.predictor import KeypointDetector
from fakes import mean_face_checkpoint


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"), backend="torch")


def _damaged_clip(path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(30):
        frame = np.full((120, 160, 3), i * 8, np.uint8)
        cv2.putText(frame, str(i), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 400] = np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_a_damaged_video_frame_is_named_in_a_warning(tmp_path, det, capfd):
    clip = tmp_path / "damaged.avi"
    _damaged_clip(clip)
    with pytest.warns(UserWarning, match=r"damaged\.avi frame \d+: the image decoder warned: \[mjpeg\] .*"
                                         r"the damage patched over, so its keypoints may be wrong"):
        report = predict_paths(det, [clip], tmp_path / "out", draw=False, progress=False)
    assert report.frames == 30 and not report.failures  # every frame still predicted and written
    assert "[mjpeg @" not in capfd.readouterr().err  # FFmpeg's own line is not left on the console


def test_one_image_array_given_to_predict_batch_is_refused(det):
    image = np.zeros((120, 160, 3), np.uint8)
    for one in (image, image[..., 0], image[..., :1], np.zeros((120, 160, 4), np.uint8), torch.zeros(3, 120, 160)):
        with pytest.raises(TypeError, match=r"looks like a single image; .*detector\(image\), or pass \[image\]"):
            det.predict_batch(one)
    assert len(det.predict_batch(np.stack([image, image]))) == 2  # (N, H, W, 3)
    assert len(det.predict_batch(np.zeros((2, 120, 160), np.uint8))) == 2  # (N, H, W) grey


def test_a_grey_frame_of_a_bgr_result_is_drawn_unmirrored(det, tmp_path):
    grey = np.tile(np.arange(160, dtype=np.uint8), (120, 1))  # brighter to the right
    result = det(grey, color="bgr", boxes=[[40, 20, 120, 100]])
    drawn = result.draw(grey)
    assert drawn.shape == (120, 160, 3) and drawn[0, 0].tolist() == [0, 0, 0] and drawn[0, 159].tolist() == [159] * 3
    saved = cv2.imread(str(result.save(tmp_path / "g.png", image=grey)))
    assert saved[0, 0].tolist() == [0, 0, 0] and saved[0, 159].tolist() == [159] * 3


def test_transparency_is_white_whatever_the_input_kind(tmp_path):
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # hidden colour under full transparency
    rgba[:, 4:, 3] = 255  # the right half is opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    expected = read_image(tmp_path / "a.png")
    assert expected[0, 0].tolist() == [255, 255, 255] and expected[0, 7].tolist() == [10, 20, 30]
    for given, color in ((Image.open(tmp_path / "a.png"), "rgb"), (rgba, "rgb"), (rgba[..., [2, 1, 0, 3]], "bgr"),
                         (Image.fromarray(rgba, "RGBA").convert("LA"), "rgb")):
        rgb = to_rgb(given, color)[0]
        assert rgb[0, 0].tolist() == [255, 255, 255], (type(given), color)
    assert (to_rgb(rgba)[0] == expected).all() and (to_rgb(Image.open(tmp_path / "a.png"))[0] == expected).all()
    grey = np.full((6, 8), 90, np.uint8)
    grey[:, :4] = 0
    Image.fromarray(grey, "L").save(tmp_path / "g.png", transparency=0)  # grey level 0 is transparent (tRNS)
    assert read_image(tmp_path / "g.png")[0, 0].tolist() == [255] * 3 and read_image(tmp_path / "g.png")[0, 7].tolist() == [90] * 3
    assert to_rgb(Image.open(tmp_path / "g.png"))[0][0, 0].tolist() == [255] * 3


def test_a_cielab_tiff_is_read_in_its_real_colours(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[:, :6] = (200, 40, 40)
    rgb[:, 6:] = (40, 60, 220)
    Image.fromarray(rgb).convert("LAB").save(tmp_path / "lab.tif")
    assert np.abs(read_image(tmp_path / "lab.tif").astype(int) - rgb).max() <= 12  # OpenCV's was off by about 55


def test_grey_crops_with_a_channel_axis_are_read_and_others_named(det):
    crops = np.random.default_rng(0).integers(0, 256, (2, 96, 96), np.uint8)
    assert np.allclose(det.predict_crops(crops[..., None]), det.predict_crops(crops))
    with pytest.raises(ValueError, match=r"crops must be .* \(N, H, H, 3\) uint8, got uint8 \(2, 96, 96, 2\)"):
        det.predict_crops(np.zeros((2, 96, 96, 2), np.uint8))


def test_a_folder_given_as_an_image_says_it_is_a_folder(det, tmp_path):
    with pytest.raises(ValueError, match="is a folder, not an image"):
        det(tmp_path)
