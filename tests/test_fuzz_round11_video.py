"""Round 11 (video): a scene cut runs the detector (no phantom faces on the frames after a cut),
tracked faces say so, and each frame's time is the capture's (variable frame rates), in the .jsonl too."""
from __future__ import annotations

import json
import math
import subprocess
import warnings

import cv2
import numpy as np
import pytest

from facekeypoints import KeypointDetector
from facekeypoints.infer import video
from facekeypoints.infer.bench import demo_frame
from facekeypoints.infer.files import predict_video
from fakes import ListCapture, mean_face_checkpoint, still_clip


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"))


def _face() -> np.ndarray:
    """The demo photo (one face) as a 320x240 BGR frame."""
    return cv2.resize(demo_frame(), (320, 240), interpolation=cv2.INTER_AREA)[..., ::-1].copy()


def _counting(detector, monkeypatch) -> list:
    calls = []
    real = detector.detector.detect
    monkeypatch.setattr(detector.detector, "detect", lambda image: calls.append(1) or real(image))
    return calls


# --- 1. scene cuts -----------------------------------------------------------------------------


@pytest.mark.parametrize("redetect_every", [10, 30])
def test_a_cut_to_a_flat_frame_leaves_no_phantom_face(detector, redetect_every):
    """The auditor's case: 3 frames of a face, then 12 of a flat colour. The face was followed on its
    keypoint shape alone for up to redetect_every - 1 frames, keeping its detector score."""
    face = _face()
    frames = [face] * 3 + [np.full_like(face, (80, 120, 200))] * 12
    counts = [len(r) for r in detector.stream(ListCapture(frames), redetect_every=redetect_every)]
    assert counts == [1] * 3 + [0] * 12


def test_a_cut_to_another_face_finds_it_at_once(detector):
    face = _face()
    moved = np.roll(face, -80, axis=1)  # the face a quarter of the frame away: another shot
    results = list(detector.stream(ListCapture([face] * 3 + [moved] * 3), redetect_every=100))
    assert [len(r) for r in results] == [1] * 6
    assert not results[3].faces[0].tracked  # detected on the cut, not followed into it
    assert abs(results[3].faces[0].box[0] - results[2].faces[0].box[0]) > 60


def test_a_still_clip_does_not_redetect_every_frame(detector, tmp_path, monkeypatch):
    calls = _counting(detector, monkeypatch)
    assert len(list(detector.stream(still_clip(tmp_path / "still.avi", frames=24), redetect_every=100))) == 24
    assert len(calls) == 1  # frame 0 only: pixel noise is no cut


def test_a_panning_camera_is_not_a_cut(detector, monkeypatch):
    """A pan of 8 px a frame at 320x240 (a face crossing the frame in 1.3 s at 30 fps) is motion."""
    big = cv2.resize(demo_frame(), (480, 360))[..., ::-1].copy()
    frames = [big[60:300, 40 + 8 * i:360 + 8 * i] for i in range(12)]
    calls = _counting(detector, monkeypatch)
    assert len(list(detector.stream(ListCapture(frames), redetect_every=100))) == 12
    assert len(calls) == 1


def test_tracked_faces_say_so_and_keep_the_score_of_their_last_detection(detector, tmp_path):
    results = list(detector.stream(still_clip(tmp_path / "still.avi", frames=12), redetect_every=10))
    tracked = [r.faces[0].tracked for r in results]
    assert tracked == [False] + [True] * 9 + [False, True]
    assert results[5].faces[0].box_score == results[0].faces[0].box_score
    assert results[5].to_dict()["faces"][0]["tracked"] is True
    assert results[10].to_dict()["faces"][0]["tracked"] is False


# --- 2. frame times ----------------------------------------------------------------------------


def test_each_frame_has_the_captures_time(detector):
    times = [0.0, 500.0, 540.0, 580.0, 1080.0, 1120.0]  # variable frame rate, in ms
    results = list(detector.stream(ListCapture([_face()] * 6, times)))
    assert [r.time_s for r in results] == pytest.approx([t / 1000 for t in times])
    row = results[4].to_dict()
    assert row["frame"] == 4 and row["time_s"] == 1.08
    assert {"source", "image_size", "schema", "faces", "timings"} <= row.keys()  # every field kept


@pytest.mark.parametrize("times", [None, [0.0] * 5, [math.nan] * 5, [0.0, 40.0, 40.0, 20.0, 160.0]])
def test_a_capture_without_times_falls_back_to_index_over_fps(detector, times):
    results = list(detector.stream(ListCapture([_face()] * 5, times, fps=25.0)))
    got = [r.time_s for r in results]
    assert all(b > a for a, b in zip(got, got[1:]))  # always increasing
    if times is None or not any(t > 0 for t in times):
        assert got == pytest.approx([i / 25 for i in range(5)])
    else:
        # a repeated or earlier time half a frame after the one before (round 16: a whole frame shifted
        # every later one), then the video's own times again
        assert got == pytest.approx([0.0, 0.04, 0.06, 0.08, 0.16])


def test_the_smoother_gets_the_frame_times(detector, monkeypatch):
    seen = []
    real = video.OneEuroFilter.filter
    monkeypatch.setattr(video.OneEuroFilter, "filter", lambda self, x, t, scale=1.0: seen.append(t) or
                        real(self, x, t, scale))
    list(detector.stream(ListCapture([_face()] * 3, [0.0, 500.0, 540.0])))
    assert seen == pytest.approx([0.0, 0.5, 0.54])


def _vfr_clip(tmp_path):
    import imageio_ffmpeg

    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), _face())
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{photo}'\nduration {0.04 if i % 3 else 0.5}\n" for i in range(9)))
    out = tmp_path / "vfr.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
                   check=True)
    return out


def test_a_variable_rate_video_keeps_its_times_in_the_jsonl_and_warns_about_the_drawing(detector, tmp_path):
    clip = _vfr_clip(tmp_path)
    capture, expected = cv2.VideoCapture(str(clip)), []
    while capture.read()[0]:
        expected.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    capture.release()
    assert max(np.diff(expected)) > 5 * min(np.diff(expected)), "the clip should be variable-rate"
    with pytest.warns(UserWarning, match="not evenly spaced.*constant.*time_s"):
        predict_video(detector, clip, tmp_path / "out", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "vfr.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(len(expected)))
    assert [r["time_s"] for r in rows] == pytest.approx(expected, abs=1e-3)


def test_an_evenly_spaced_video_draws_without_a_warning(detector, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_video(detector, still_clip(tmp_path / "still.avi", frames=6), tmp_path / "out", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "still.jsonl").read_text().splitlines()]
    assert [r["time_s"] for r in rows] == pytest.approx([i / 30 for i in range(6)], abs=1e-3)
