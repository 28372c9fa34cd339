"""Round 19 of bad inputs: video streams (issue 10)."""
from __future__ import annotations

import subprocess
import warnings

import cv2
import numpy as np
import pytest

from facekeypoints.infer.predictor import KeypointDetector
from fakes import grace_hopper_copy, still_clip


@pytest.fixture(scope="module")
def det():
    return KeypointDetector()


def test_a_face_after_a_scene_cut_starts_its_own_smoothing(det, tmp_path):
    face = cv2.imread(str(grace_hopper_copy(tmp_path / "gh.jpg")))[40:400, 80:440]
    writer = cv2.VideoWriter(str(tmp_path / "cut.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    for i in range(20):  # a dark shot, then a cut to a light one whose face overlaps the first one's place
        frame = np.full((480, 640, 3), 40 if i < 10 else 200, np.uint8)
        if i < 10:
            frame[100:340, 100:340] = cv2.resize(face, (240, 240))
        else:
            frame[160:360, 160:360] = cv2.resize(face, (200, 200))
        writer.write(frame)
    writer.release()
    smoothed = list(det.stream(tmp_path / "cut.avi"))
    raw = list(det.stream(tmp_path / "cut.avi", smooth=False))
    assert len(smoothed[10]) == len(raw[10]) == 1
    # the new shot's face starts a filter of its own: on its first frame the smoothed points are the raw ones
    np.testing.assert_allclose(smoothed[10].faces[0].keypoints, raw[10].faces[0].keypoints, atol=1e-6)


def test_a_stream_whose_time_stamps_start_late_is_not_called_truncated(det, tmp_path):
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    clip = still_clip(tmp_path / "clip.avi", frames=10)
    for args in ([ffmpeg, "-loglevel", "error", "-y", "-i", str(clip), "-c:v", "libx264", str(tmp_path / "p.ts")],
                 [ffmpeg, "-loglevel", "error", "-y", "-copyts", "-i", str(tmp_path / "p.ts"), "-c", "copy",
                  str(tmp_path / "late.mkv")]):  # an MKV keeping the transport stream's times (start 1.4 s)
        subprocess.run(args, check=True)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        frames = list(det.stream(tmp_path / "late.mkv"))
    assert len(frames) == 10
    assert not [w for w in said if "missing" in str(w.message) or "truncated" in str(w.message)], \
        [str(w.message) for w in said]


def test_a_capture_that_is_not_open_is_said_to_be_so_not_damaged(det):
    capture = cv2.VideoCapture()  # as VideoCapture(0) is on a machine without a camera
    with pytest.raises(ValueError, match="the capture given is not open"):
        list(det.stream(capture))


def test_a_frame_a_custom_capture_gives_as_none_is_skipped_and_the_stream_goes_on(det):
    from facekeypoints.infer.bench import demo_frame
    from fakes import ListCapture

    class GapCapture(ListCapture):
        def read(self):
            ok, frame = super().read()
            return ok, (None if ok and self.i == 2 else frame)

    bgr = cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        frames = list(det.stream(GapCapture([bgr] * 3)))
    assert [f.frame for f in frames] == [0, 2]  # each frame keeps its index
    assert any("frame 1: read() gave no image" in str(w.message) for w in said), [str(w.message) for w in said]
