"""Round 15 (video): a face that leaves without a cut is dropped, a frame of another size is
detected afresh, a capture not at its start keeps its frame numbers, a photo given to stream() is
read as a photo, raw MJPEG/H.264 streams are videos, the drawing keeps the video's time, the
search-limit warning names its file, and a failed drawing still counts the video's .jsonl."""
from __future__ import annotations

import json
import subprocess
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from facekeypoints import KeypointDetector
from facekeypoints.infer import video
from facekeypoints.infer.bench import demo_frame, write_still_clip
from facekeypoints.infer.detectors import HaarDetector
from facekeypoints.infer.files import predict_paths, predict_video
from fakes import ListCapture, mean_face_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt")


@pytest.fixture(scope="module")
def detector(checkpoint) -> KeypointDetector:
    return KeypointDetector(checkpoint)


def _face_bgr(side: int = 200) -> np.ndarray:
    """The demo face, cropped around it, as a side x side BGR patch."""
    frame = demo_frame()  # 480x640, the face in the middle
    return cv2.resize(frame[40:440, 120:520], (side, side), interpolation=cv2.INTER_AREA)[..., ::-1].copy()


def _canvas(*places, grey: int = 90) -> np.ndarray:
    """A 640x480 grey BGR frame with the face pasted at each (x, y) of ``places``."""
    frame = np.full((480, 640, 3), grey, np.uint8)
    face = _face_bgr()
    for x, y in places:
        frame[y:y + 200, x:x + 200] = face
    return frame


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# --- P1: a face that leaves without a scene cut ---------------------------------------------------


def test_a_face_that_leaves_without_a_cut_is_dropped_at_once(detector):
    frames = [_canvas((40, 60))] * 4 + [_canvas()] * 6
    assert not video._scene_cut(frames[4][..., ::-1], video._scene_cut(frames[3][..., ::-1], None)[1])[0]
    counts = [len(r) for r in detector.stream(ListCapture(frames), redetect_every=100)]
    assert counts == [1] * 4 + [0] * 6  # was [1] * 10: a shrinking phantom face on the grey


def test_a_face_that_jumps_without_a_cut_is_found_at_its_new_place(detector):
    frames = [_canvas((40, 60))] * 4 + [_canvas((420, 150))] * 4
    results = list(detector.stream(ListCapture(frames), redetect_every=100))
    assert [len(r) for r in results] == [1] * 8
    assert all(r.faces[0].box[0] > 300 for r in results[4:])  # not the phantom at the old place


def test_a_face_moving_over_texture_is_still_followed(detector, monkeypatch):
    """Motion is no change of what a face's box holds: the detector does not run on every frame."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (480, 900, 3)).astype(np.uint8), (0, 0), 3)
    face, frames = _face_bgr(), []
    for i in range(12):
        frame = texture[:, :640].copy()
        frame[60:260, 40 + 4 * i:240 + 4 * i] = face
        frames.append(frame)
    calls = []
    real = detector.detector.detect
    monkeypatch.setattr(detector.detector, "detect", lambda image: calls.append(1) or real(image))
    assert [len(r) for r in detector.stream(ListCapture(frames), redetect_every=100)] == [1] * 12
    assert len(calls) == 1


# --- P15: a frame of another size ----------------------------------------------------------------


def test_a_frame_of_another_size_is_detected_afresh(detector):
    big = _canvas((40, 60))
    small = cv2.resize(big, (400, 300), interpolation=cv2.INTER_AREA)  # the face at 5/8 of its place and size
    results = list(detector.stream(ListCapture([big, big, small, small]), redetect_every=100))
    assert [len(r) for r in results] == [1] * 4
    before, after = results[1].faces[0], results[2].faces[0]
    assert not after.tracked  # was followed in the 640x480 frame's pixels
    assert (after.box[:2] + after.box[2:4]) / 2 == pytest.approx((before.box[:2] + before.box[2:4]) / 2 * 0.625,
                                                                   abs=12)


# --- P14: a capture that is not at its start ----------------------------------------------------


@pytest.mark.parametrize("moved", ["set", "read"])
def test_a_capture_moved_on_keeps_its_frame_numbers_and_times(detector, tmp_path, moved):
    clip = write_still_clip(tmp_path / "still.avi", cv2.resize(demo_frame(), (320, 240)), frames=12, fps=10)
    capture = cv2.VideoCapture(str(clip))
    if moved == "set":
        capture.set(cv2.CAP_PROP_POS_FRAMES, 5)
    else:
        capture.read(), capture.read(), capture.read(), capture.read(), capture.read()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was: "only 7 of its 12 frames could be decoded ... truncated"
        results = list(detector.stream(capture))
    capture.release()
    assert [r.frame for r in results] == list(range(5, 12))
    assert results[0].time_s == pytest.approx(0.5, abs=0.01) and results[0].source.endswith("#frame=5")


# --- P20: a photo given to stream() -------------------------------------------------------------


def test_a_photo_given_to_stream_is_read_as_a_photo(detector, tmp_path):
    rgb = cv2.resize(demo_frame(), (320, 240))
    turned = tmp_path / "turned.jpg"  # stored on its side: EXIF orientation 6 turns it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb))).save(turned, exif=exif)
    clear = tmp_path / "clear.png"  # a face in the colours, alpha 0 everywhere: white
    Image.fromarray(np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])).save(clear)
    for path in (turned, clear):
        streamed, called = list(detector.stream(path)), detector(path)
        assert len(streamed) == 1 and streamed[0].image_size == called.image_size
        assert len(streamed[0]) == len(called)
    assert detector(turned).image_size == (240, 320) and len(detector(clear)) == 0


# --- P3: raw MJPEG and H.264 streams are videos -------------------------------------------------


def test_raw_mjpeg_and_h264_streams_are_videos(detector, tmp_path):
    frame = cv2.resize(demo_frame(), (320, 240))[..., ::-1]
    (tmp_path / "in").mkdir()
    mjpeg = tmp_path / "in" / "clip.mjpeg"  # JPEGs one after another
    mjpeg.write_bytes(b"".join(cv2.imencode(".jpg", np.roll(frame, 2 * i, axis=1))[1].tobytes() for i in range(5)))
    h264 = tmp_path / "in" / "clip.h264"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-f", "mjpeg", "-i", str(mjpeg), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-f", "h264", str(h264)], check=True)
    report = predict_paths(detector, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert (report.images, report.frames, report.failures, report.ignored) == (0, 10, [], [])
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "clip.jsonl", "clip_keypoints.mp4", "clip-2.jsonl", "clip-2_keypoints.mp4"}


# --- P7: a header rate that is not the frames' -----------------------------------------------------


def test_a_video_whose_header_rate_is_wrong_is_drawn_at_its_frames_rate(detector, tmp_path):
    clip = write_still_clip(tmp_path / "ten.avi", cv2.resize(demo_frame(), (320, 240)), frames=10, fps=10)
    fast = tmp_path / "fast.avi"  # the same frames 0.1 s apart, its header saying 600 fps
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-c:v", "copy", "-r", "240000", str(fast)],
                   check=True)
    check = cv2.VideoCapture(str(fast))
    header = check.get(cv2.CAP_PROP_FPS)
    check.release()
    if abs(header - 10) < 1:
        pytest.skip(f"this FFmpeg wrote the header rate {header}, not a wrong one")
    predict_video(detector, fast, tmp_path / "out", progress=False)
    drawn = cv2.VideoCapture(str(tmp_path / "out" / "fast_keypoints.mp4"))
    seconds = drawn.get(cv2.CAP_PROP_FRAME_COUNT) / drawn.get(cv2.CAP_PROP_FPS)
    drawn.release()
    assert seconds == pytest.approx(1.0, abs=0.15)  # was 10 frames at 600 fps: 0.02 s


# --- P16: the search-limit warning names its file ---------------------------------------------


def test_the_search_limit_warning_names_each_photo_and_the_video(checkpoint, tmp_path):
    det = KeypointDetector(checkpoint, detector=HaarDetector(min_face=8))
    (tmp_path / "in").mkdir()
    flat = np.full((2160, 3840, 3), 90, np.uint8)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / "in" / name), flat)
    cv2.imwrite(str(tmp_path / "in" / "small.jpg"), flat[:240, :320])
    writer = cv2.VideoWriter(str(tmp_path / "in" / "k4.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (3840, 2160))
    writer.write(flat), writer.write(flat)
    writer.release()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_paths(det, [tmp_path / "in"], tmp_path / "out.jsonl", progress=False)
    said = [str(w.message) for w in caught if "cannot be found" in str(w.message)]
    assert sorted(text.split(": ")[0] for text in said) == [str(tmp_path / "in" / n) for n in ("a.jpg", "b.jpg",
                                                                                                   "k4.avi")]


# --- P19: a drawing that fails, an encoder that cannot start ---------------------------------


@pytest.mark.parametrize("encoder", ["/bin/false", "/nonexistent/ffmpeg"])
def test_a_failed_drawing_still_counts_and_names_the_videos_results(detector, tmp_path, monkeypatch, encoder):
    (tmp_path / "in").mkdir()
    clip = write_still_clip(tmp_path / "in" / "clip.avi", cv2.resize(demo_frame(), (320, 240)), frames=3)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", encoder)
    report = predict_paths(detector, [clip], tmp_path / "out", progress=False)
    jsonl = tmp_path / "out" / "clip.jsonl"  # the frames read before the drawing failed (it stops the video)
    frames = [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()]
    assert report.written == [str(jsonl)] and frames == list(range(len(frames))) and frames  # was: wrote 0 files
    [(failed, why)] = report.failures
    assert failed == str(clip) and "H.264 encoder" in why and f"FFmpeg at {encoder}" in why.replace(", ", " at ")
    assert f"the results of its {len(frames)} frame{'s' * (len(frames) > 1)} were written to {jsonl}" in why, why
    assert "Errno" not in why and not (tmp_path / "out" / "clip_keypoints.mp4").exists()
