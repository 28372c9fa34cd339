"""Video: one Result per frame, tracking, re-detection and One Euro smoothing."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints import KeypointDetector
from facekeypoints.cli import main
from facekeypoints.infer.bench import demo_frame, write_still_clip
from fakes import FakeRunner, mean_face_checkpoint
from facekeypoints.infer.video import OneEuroFilter, keypoint_jitter

FRAMES = 24


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A still photo written FRAMES times with pixel noise (std 3), at 320x240 to keep tests fast."""
    small = cv2.resize(demo_frame(), (320, 240), interpolation=cv2.INTER_AREA)
    return write_still_clip(tmp_path_factory.mktemp("video") / "still.avi", small, frames=FRAMES)


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"))


def test_one_result_per_frame_from_a_path_or_a_capture(detector, clip):
    results = list(detector.stream(clip))
    assert len(results) == FRAMES and all(len(r) == 1 for r in results)
    assert results[5].source.endswith("#frame=5") and results[0].image_size == (240, 320)
    capture = cv2.VideoCapture(str(clip))
    assert len(list(detector.stream(capture))) == FRAMES
    assert capture.isOpened()  # a capture we were given is the caller's to release
    capture.release()


def test_tracking_runs_the_detector_only_every_n_frames(detector, clip, monkeypatch):
    calls = []
    real = detector.detector.detect
    monkeypatch.setattr(detector.detector, "detect", lambda image: calls.append(1) or real(image))
    list(detector.stream(clip, redetect_every=10))
    assert len(calls) == 3  # frames 0, 10 and 20; the face is followed from its keypoints in between


def test_a_face_that_leaves_is_dropped_and_found_again(detector, tmp_path):
    """A clip that is blank for a while: re-detection drops the face and finds it when it returns."""
    frame = cv2.resize(demo_frame(), (320, 240), interpolation=cv2.INTER_AREA)
    path = tmp_path / "gap.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for i in range(12):
        writer.write(cv2.cvtColor(frame if i < 4 or i >= 8 else np.zeros_like(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    counts = [len(r) for r in detector.stream(path, redetect_every=2)]
    assert counts == [1] * 4 + [0] * 4 + [1] * 4


def test_keypoints_that_are_not_face_shaped_trigger_detection(detector, clip, monkeypatch):
    calls = []
    real = detector.detector.detect
    monkeypatch.setattr(detector.detector, "detect", lambda image: calls.append(1) or real(image))
    all_at_one_spot = FakeRunner(detector.card, lambda x: np.zeros((len(x), 15, 2), np.float32))
    monkeypatch.setattr(detector, "runner", all_at_one_spot)
    results = list(detector.stream(clip, redetect_every=100))
    assert len(calls) == FRAMES  # the track fails the face check on every frame, so the detector runs
    assert all(len(r) == 1 for r in results)


def test_smoothing_reduces_jitter(clip, tmp_path):
    """A model that reads the pixels moves its keypoints with the frames' noise; the filter calms them."""
    det = KeypointDetector(mean_face_checkpoint(tmp_path / "wobbly.pt", wobble=0.01))
    settled = 8  # the first frames re-frame the face from the detector's box to its keypoints
    raw = keypoint_jitter(list(det.stream(clip, smooth=False))[settled:])
    smooth = keypoint_jitter(list(det.stream(clip, smooth=True))[settled:])
    assert raw > 0.01, "the clip should jitter without smoothing"
    assert smooth < raw / 2


def test_a_still_face_keeps_its_crop(detector, clip):
    """Without smoothing, the mean-face model's keypoints do not move at all once the face is tracked."""
    assert keypoint_jitter(list(detector.stream(clip, smooth=False))[3:]) < 1e-6


def test_one_euro_filter_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    t = np.arange(120) / 30.0
    still = rng.normal(0, 1.0, (120, 1, 2))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    out = np.array([f.filter(x, ti) for x, ti in zip(still, t)])
    assert np.abs(np.diff(out, axis=0)).mean() < np.abs(np.diff(still, axis=0)).mean() / 4
    ramp = np.stack([t * 300, t * 0], -1)[:, None, :]  # 300 px/s
    lag = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        lag[beta] = ramp[-1, 0, 0] - [f.filter(x, ti, scale=100.0) for x, ti in zip(ramp, t)][-1][0, 0]
    assert lag[1.0] < lag[0.0] / 3  # speed opens the filter, so a moving face does not trail behind
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_cli_predict_writes_an_annotated_video(tmp_path, clip, detector):
    out = tmp_path / "out"
    assert main(["predict", str(clip), "-o", str(out), "--model", detector.runner.source, "--quiet"]) == 0
    lines = (out / "still.jsonl").read_text().splitlines()
    assert len(lines) == FRAMES
    video = cv2.VideoCapture(str(out / "still_keypoints.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    codec = int(video.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
    video.release()
    assert codec in ("h264", "avc1"), codec  # what browsers play, not OpenCV's mp4v


def test_a_schema_without_alignment_points_is_detected_on_every_frame(clip, tmp_path):
    from facekeypoints.infer.bench import random_checkpoint

    det = KeypointDetector(random_checkpoint("fcnn", tmp_path / "nose.pt", schema="nose1"))
    assert not det.alignable and not det.refine
    results = list(det.stream(clip))
    assert len(results) == FRAMES and all(len(r) == 1 and r.keypoints.shape == (1, 1, 2) for r in results)


def _truncated(clip: Path, keep: float) -> bytes:
    data = clip.read_bytes()
    return data[:int(len(data) * keep)]


BROKEN_VIDEOS = {
    "empty.avi": lambda clip: b"",
    "random.mp4": lambda clip: np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    "text.avi": lambda clip: b"hello",
    "header_only.avi": lambda clip: _truncated(clip, 0.01),
    "half.avi": lambda clip: _truncated(clip, 0.5),
}


@pytest.mark.parametrize("name", list(BROKEN_VIDEOS))
def test_a_broken_video_is_reported_and_the_other_inputs_are_written(clip, tmp_path, capsys, name):
    """Nothing is lost: the photo beside a broken video gets its results, the video gets a line that
    names it and says what is wrong (a truncated one keeps the frames it had), and the exit code is 1."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / name).write_bytes(BROKEN_VIDEOS[name](clip))
    cv2.imwrite(str(inputs / "photo.jpg"), cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR))
    code = main(["predict", str(inputs), "-o", str(tmp_path / "out.jsonl"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    failure = next(line for line in err.splitlines() if name in line)
    assert "truncated" in failure or "not a video" in failure, failure
    lines = [line for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum('photo.jpg"' in line for line in lines) == 1
    if name == "half.avi":  # the frames before the damage are kept, and the message counts them
        kept = sum(f"{name}#frame=" in line for line in lines)
        assert 0 < kept < FRAMES and f"only {kept} of its {FRAMES} frames" in failure


def test_video_frames_over_the_pixel_limit_are_refused_before_decoding(clip, tmp_path, capsys):
    assert main(["predict", str(clip), "-o", str(tmp_path / "out"), "--max-pixels", "1000", "--quiet"]) == 1
    assert "320x240 = 76800 pixels, over the limit of 333 pixels for video frames" in capsys.readouterr().err
    # a frame is held about three times over, so a video's frames get a third of --max-pixels
    assert main(["predict", str(clip), "-o", str(tmp_path / "out2"), "--max-pixels", str(3 * 76800 - 1),
                 "--quiet"]) == 1
    assert main(["predict", str(clip), "-o", str(tmp_path / "out3"), "--max-pixels", str(3 * 76800), "--quiet"]) == 0
