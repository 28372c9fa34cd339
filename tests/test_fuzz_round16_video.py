"""Round 16 (video): the drawing keeps the video's time over a time stamp gone wrong and a video that
speeds up later, a drawing another run wrote meanwhile is not replaced, a repeated time stamp does
not shift every later frame, a run that put its results aside says so without blaming --overwrite,
the benchmark scripts check their arguments first, and an exhausted capture is no damaged file."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints import KeypointDetector
from facekeypoints.infer import files, video
from facekeypoints.infer.bench import demo_frame, write_still_clip
from fakes import ListCapture, mean_face_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"))


class _CountingWriter:
    """Stands for _H264Writer: counts the copies of each frame (frames are their own number here)."""

    def __init__(self, path, fps, size, held=None, sar=None):
        self.path, self.fps, self.written, self.frames = path, fps, path, []

    def write(self, frame):
        self.frames.append(int(frame))

    def release(self):
        pass

    def abort(self):
        pass


def _draw(monkeypatch, times, fps=25.0):
    """The frames (their numbers, each copy) _Drawing writes for frames at ``times`` (s), one index apart."""
    monkeypatch.setattr(files, "_H264Writer", _CountingWriter)
    drawing = files._Drawing(Path("x.mp4"), fps, (4, 4))
    for i, t in enumerate(times):
        drawing.add(i, 1, t)
    drawing.release()
    return drawing, drawing._writer.frames


# --- P1: one time stamp that jumps ----------------------------------------------------------------


def test_a_time_stamp_that_jumps_holds_one_frame_not_every_later_one(monkeypatch):
    times = [i * 0.04 for i in range(20)] + [3600.8 + i * 0.04 for i in range(20)]
    drawing, frames = _draw(monkeypatch, times)
    counts = np.bincount(frames, minlength=40)
    assert drawing.rate == 25 and counts[19] == 1 + 250  # held up to 10 s past its own frame
    assert list(counts[:19]) == [1] * 19 and list(counts[20:]) == [1] * 20  # was 251 copies each after the jump
    assert len(frames) == 290  # was 5040


# --- P3: a video that speeds up after its first frames -----------------------------------------


def test_a_video_that_speeds_up_later_keeps_its_time(monkeypatch):
    times = [i * 0.2 for i in range(10)] + [2 + i / 30 for i in range(190)]  # 5 fps, then 30 fps
    drawing, frames = _draw(monkeypatch, times)
    seconds = len(frames) / drawing.rate
    assert seconds == pytest.approx(times[-1] + 1 / drawing.rate, abs=0.1)  # was 40 s at 5 fps for 8.3 s
    assert frames == sorted(frames) and drawing.dropped == 200 - len(set(frames))


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def test_a_drawn_video_that_speeds_up_later_keeps_its_time_and_says_what_it_left_out(detector, tmp_path):
    still = write_still_clip(tmp_path / "still.avi", cv2.resize(demo_frame(), (160, 120)), frames=40, fps=25)
    clip = tmp_path / "slowstart.mkv"  # 10 frames 0.2 s apart, then 30 frames 1/30 s apart: 2.97 s
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(still), "-vf",
                    "setpts='if(lt(N,10),N*0.2,2+(N-10)/30)/TB'", "-c:v", "libx264", "-fps_mode", "passthrough",
                    str(clip)], check=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files.predict_video(detector, clip, tmp_path / "out", progress=False)
    drawn = cv2.VideoCapture(str(tmp_path / "out" / "slowstart_keypoints.mp4"))
    seconds = drawn.get(cv2.CAP_PROP_FRAME_COUNT) / drawn.get(cv2.CAP_PROP_FPS)
    drawn.release()
    assert seconds == pytest.approx(3.0, abs=0.15)  # was 8 s: the 30-fps part drawn at 5 fps
    said = [str(w.message) for w in caught if "drawn at a constant" in str(w.message)]
    assert len(said) == 1 and "frames that came between two of its frames are left out of it" in said[0], said


# --- P4: a repeated time stamp ---------------------------------------------------------------------


def test_a_repeated_time_stamp_does_not_shift_every_later_frame(detector):
    times = [40.0 * (n - n // 10) for n in range(25)]  # every tenth frame repeats the one before's time
    results = list(detector.stream(ListCapture([demo_frame()[..., ::-1].copy()] * 25, times, fps=25.0)))
    got = [r.time_s for r in results]
    assert all(b > a for a, b in zip(got, got[1:]))
    assert got[11:19] == pytest.approx([t / 1000 for t in times[11:19]])  # the capture's own times again
    assert got[-1] == pytest.approx(times[-1] / 1000)  # was 2 frames late, one more for each repeat
    assert times[9] / 1000 < got[10] < times[11] / 1000


# --- P2 and P5: another run wrote the outputs while this one ran -----------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_drawing_another_run_wrote_meanwhile_is_kept_and_ours_goes_beside_it(detector, tmp_path, monkeypatch,
                                                                                overwrite):
    clip = write_still_clip(tmp_path / "clip.avi", cv2.resize(demo_frame(), (160, 120)), frames=5)
    out = tmp_path / "out"
    if overwrite:  # an earlier run's files, which --overwrite replaces
        out.mkdir()
        (out / "clip.jsonl").write_text("earlier\n")
        (out / "clip_keypoints.mp4").write_bytes(b"earlier")
    real = files._Drawing.release

    def other_run_first(self):  # another run (given --overwrite) finishes while this one draws
        for name in ("clip.jsonl", "clip_keypoints.mp4"):
            (out / f"{name}.other").write_text("the other run's\n")
            os.replace(out / f"{name}.other", out / name)
        real(self)

    monkeypatch.setattr(files._Drawing, "release", other_run_first)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = files.predict_video(detector, clip, out, progress=False, overwrite=overwrite)
    assert (out / "clip_keypoints.mp4").read_text() == "the other run's\n"  # was replaced by this run's
    assert (out / "clip.jsonl").read_text() == "the other run's\n"
    assert sorted(report.written) == [str(out / "clip-2.jsonl"), str(out / "clip_keypoints-2.mp4")]
    drawn = cv2.VideoCapture(str(out / "clip_keypoints-2.mp4"))
    assert drawn.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    drawn.release()
    said = [str(w.message) for w in caught if "another run" in str(w.message)]
    assert len(said) == 2 and all("--overwrite" not in text for text in said), said  # P5: none was given
    assert any(str(out / "clip_keypoints-2.mp4") in text for text in said), said


# --- P6: the benchmark scripts check their arguments before any work --------------------------------


@pytest.mark.parametrize("script, args, said", [
    ("bench_serve.py", ["load", "--seconds", "0", "--clients", "1"], "--seconds: must be a finite number over 0"),
    ("bench_serve.py", ["load", "--seconds", "nan"], "--seconds: must be a finite number over 0"),
    ("bench_serve.py", ["load", "--clients", "0"], "--clients: must be 1 or more, got 0"),
    ("bench_serve.py", ["malformed", "--workers", "0"], "--workers: must be 1 or more, got 0"),
    ("bench_serve.py", ["malformed", "--uploads", "-3"], "--uploads: must be 1 or more, got -3"),
    ("bench_detect.py", ["--json", ""], "--json is empty; give a value"),
    ("bench_peers.py", ["--json", ""], "--json is empty; give a value"),
])
def test_benchmark_scripts_refuse_bad_arguments_in_one_line_before_any_work(script, args, said):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and said in done.stderr, done.stderr  # was a service started, then a traceback
    assert "Traceback" not in done.stderr and "load average" not in done.stderr


# --- P7: a capture already at its end ---------------------------------------------------------------


def test_a_capture_read_to_its_end_is_said_to_be_at_its_end_not_damaged(detector, tmp_path):
    clip = write_still_clip(tmp_path / "clip.avi", cv2.resize(demo_frame(), (160, 120)), frames=4)
    capture = cv2.VideoCapture(str(clip))
    while capture.read()[0]:
        pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(detector.stream(capture)) == []
    capture.release()
    said = [(w.category, str(w.message)) for w in caught]
    assert not any(category is video.IncompleteVideoWarning for category, _ in said), said  # was "truncated or damaged"
    assert any("the capture is at its end (frame 4 of 4): nothing left to read" in text for _, text in said), said


# --- P8: damaged frames of an H.264 stream --------------------------------------------------------


def test_damaged_h264_frames_are_named_alike_on_every_run(detector, tmp_path):
    still = write_still_clip(tmp_path / "still.avi", cv2.resize(demo_frame(), (160, 120)), frames=30, fps=25)
    clean = tmp_path / "clean.h264"
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(still), "-c:v", "libx264", "-f", "h264", str(clean)],
                   check=True)
    data, rng = bytearray(clean.read_bytes()), np.random.default_rng(1)
    for at in rng.integers(2000, len(data), 30):
        data[at] = int(rng.integers(256))
    damaged = tmp_path / "damaged.h264"
    damaged.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the damage FFmpeg saw while opening it
        capture, _, _ = video.open_video(damaged)
    assert capture.get(cv2.CAP_PROP_N_THREADS) == 1  # was a thread per core: FFmpeg's frame threads
    capture.release()
    named = []
    for _ in range(3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            list(detector.stream(damaged))
        named.append(sorted(str(w.message).split(":")[0] for w in caught if "damaged data" in str(w.message)))
    assert named[0] and named[0] == named[1] == named[2], named  # was another subset on each run
