"""Round 7 of fresh bad inputs for ``predict`` and the inference API: a video with damaged frames
was decoded with the damage patched over and FFmpeg's complaint on the console naming no file; a
single (H, W, 3) array given to predict_batch was read as H grey images. Each is now a warning that
names the video and frame, or an error that says what to do (synthetic files only)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facekeypoints.infer.files import predict_paths
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
    for one in (image, image[..., 0], np.zeros((120, 160, 4), np.uint8)):
        with pytest.raises(TypeError, match=r"looks like a single image; .*detector\(image\), or pass \[image\]"):
            det.predict_batch(one)
    assert len(det.predict_batch(np.stack([image, image]))) == 2  # (N, H, W, 3)
    assert len(det.predict_batch(np.zeros((2, 120, 160), np.uint8))) == 2  # (N, H, W) grey
