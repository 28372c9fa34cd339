"""Round 13 of bad inputs for ``predict`` and the inference API: a file name that is no UTF-8 crashed
OpenCV (a segmentation fault, every result lost); after a failed read that lost no frame (an MP4's
"partial file"), every later frame took the next one's index; a trimmed MP4 (edit list) was
"truncated"; good frames after 25 bad ones were dropped and called missing; an interrupted Kaggle CSV
said only "interrupted"; an interrupted video into one file was counted as 0 inputs; Result.save()
replaced its source after a chdir; box_frame took absurd values; macOS's ._* files failed a folder;
the progress bar printed names raw and needed a stderr (synthetic files only)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.infer import kaggle
from facekeypoints.infer.files import _H264Writer, predict_paths
from facekeypoints.infer.inputs import opencv_path
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.video import IncompleteVideoWarning
from facekeypoints.schema import load_schema
from fakes import grace_hopper_copy, mean_face_checkpoint, still_clip
from test_fuzz_round12_predict import _clip_with_bad_frames


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"), backend="torch")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _h264_clip(path: Path, frames: int = 60) -> Path:
    """A faststart H.264 .mp4 of ``frames`` frames at 30 fps (moving, so the encoder stores real data)."""
    frame = np.full((120, 160, 3), 90, np.uint8)
    writer = _H264Writer(path, 30.0, (160, 120))
    for i in range(frames):
        writer.write(np.roll(frame + np.random.default_rng(i).integers(0, 60, frame.shape, dtype=np.uint8), i, 1))
    writer.release()
    return path


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _incomplete(stream) -> tuple[list, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(stream)
    return results, [str(w.message) for w in caught if w.category is IncompleteVideoWarning]


# P1: a name that is no UTF-8 is one failure, named escaped; OpenCV never sees it

def test_a_name_that_is_no_utf8_is_one_failure_and_the_rest_are_done(det, tmp_path):
    folder = tmp_path / "in"
    grace_hopper_copy(folder / "good.jpg")
    raw = os.fsencode(folder)
    (Path(os.fsdecode(raw + b"/bad\xffname"))).write_bytes((folder / "good.jpg").read_bytes())  # a JPEG, no suffix
    still_clip(folder / "vid.avi").rename(os.fsdecode(raw + b"/v\xffid.avi"))
    report = predict_paths(det, [folder], tmp_path / "out", progress=False)
    assert report.images == 1 and len(report.failures) == 2
    text = str(report)
    assert "bad\\xffname: its name is not valid UTF-8 text" in text and "v\\xffid.avi: its name is not" in text
    assert _records(tmp_path / "out" / "predictions.jsonl")[0]["source"].endswith("good.jpg")


def test_opencv_path_refuses_a_name_that_is_no_utf8(det):
    with pytest.raises(ValueError, match=r"x\\xffy\.avi: its name is not valid UTF-8 text"):
        opencv_path(os.fsdecode(b"x\xffy.avi"))
    assert opencv_path(Path("d/\u00e9t\u00e9.avi")) == "d/\u00e9t\u00e9.avi"


# P2: a failed read that lost no frame leaves the indices alone

class _Capture:
    """A capture of ``frames`` frames at 30 fps whose reads in ``stalls`` fail once without using up
    their frame (as FFmpeg's "partial file" does) and whose frames in ``lost`` fail and are gone."""

    def __init__(self, frames: int, stalls=(), lost=()):
        self.frames, self.stalls, self.lost, self.next, self.shown = frames, set(stalls), set(lost), 0, 0.0
        self.name = "fake.mp4"

    def isOpened(self):  # noqa: N802
        return True

    def read(self):
        while self.next in self.lost:
            self.lost.discard(self.next)
            self.next += 1
            return False, None
        if self.next in self.stalls:
            self.stalls.discard(self.next)
            return False, None
        if self.next >= self.frames:
            return False, None
        self.shown, self.next = self.next / 30, self.next + 1
        return True, np.full((120, 160, 3), 128, np.uint8)

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_COUNT: self.frames, cv2.CAP_PROP_FPS: 30.0,
                cv2.CAP_PROP_POS_MSEC: 1000 * self.shown}.get(prop, 0.0)


def test_a_failed_read_that_lost_no_frame_keeps_every_index(det):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no frame is said to be skipped
        results = list(det.stream(_Capture(10, stalls=[5])))
    assert [r.frame for r in results] == list(range(10))
    assert [round(r.time_s * 30) for r in results] == list(range(10))


def test_frames_lost_are_told_from_the_times(det):
    results, said = _incomplete(det.stream(_Capture(10, stalls=[2], lost=[5, 6])))
    assert [r.frame for r in results] == [0, 1, 2, 3, 4, 7, 8, 9]
    assert len(said) == 1 and "frames 5-6 could not be decoded and were skipped" in said[0]


def test_a_cut_h264_mp4_keeps_its_indices(det, tmp_path):
    whole = _h264_clip(tmp_path / "h264.mp4")
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.6)])
    results, said = _incomplete(det.stream(cut))
    assert results and [r.frame for r in results] == [round(r.time_s * 30) for r in results]
    assert [r.frame for r in results] == list(range(len(results)))  # nothing was lost before the cut
    assert len(said) == 1 and "missing (the file is truncated or damaged)" in said[0] and "skipped" not in said[0]


# P3: a trimmed MP4 (an edit list) is whole

def test_a_trimmed_mp4_with_an_edit_list_is_whole(det, tmp_path):
    whole = _h264_clip(tmp_path / "h264.mp4")
    trimmed = tmp_path / "trim.mp4"
    subprocess.run([_ffmpeg(), "-loglevel", "error", "-y", "-ss", "0.5", "-i", str(whole), "-c", "copy", str(trimmed)],
                   check=True)
    capture = cv2.VideoCapture(str(trimmed))
    declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    report = predict_paths(det, [trimmed], tmp_path / "out", draw=False, progress=False)
    assert report.failures == [] and 0 < report.frames < declared  # the samples before the edit are not shown


# P4: reading goes on to the declared end; when it gives up it says the rest was not read

def test_good_frames_after_thirty_bad_ones_are_read(det, tmp_path):
    clip = _clip_with_bad_frames(tmp_path / "bad30.avi", tuple(range(5, 35)), frames=40)
    with pytest.warns(UserWarning, match="frames 5-34: could not be decoded, skipped"):
        report = predict_paths(det, [clip], tmp_path / "out", draw=False, progress=False)
    assert [r["frame"] for r in _records(tmp_path / "out" / "bad30.jsonl")] == [0, 1, 2, 3, 4, 35, 36, 37, 38, 39]
    [(_, message)] = report.failures
    assert "frames 5-34 could not be decoded and were skipped" in message and "missing" not in message


def test_reading_that_gives_up_says_the_rest_was_not_read(det, tmp_path, monkeypatch):
    from facekeypoints.infer import video

    monkeypatch.setattr(video, "MAX_BAD_FRAMES", 3)
    monkeypatch.setattr(video, "MAX_FAILING_SECONDS", 0.0)
    clip = _clip_with_bad_frames(tmp_path / "bad.avi", tuple(range(5, 35)), frames=40)
    results, said = _incomplete(det.stream(clip))
    assert len(results) == 5
    assert len(said) == 1 and "the last 35 were not read (reading stopped after" in said[0], said


# P6: an interrupted Kaggle CSV keeps the rows finished, or says nothing was written

class _StopsAfter:
    """A detector whose predict_crops is interrupted on its call number ``calls``."""

    def __init__(self, calls: int):
        self.calls, self.schema = calls, load_schema("kaggle15")

    def predict_crops(self, crops):
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        return np.full((len(crops), 15, 2), 48.0, np.float32)


def _test_csv(path: Path, rows: int) -> Path:
    pixels = " ".join(["128"] * 96 * 96)
    path.write_text("ImageId,Image\n" + "".join(f"{i + 1},{pixels}\n" for i in range(rows)))
    return path


def test_an_interrupted_kaggle_csv_keeps_the_rows_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(kaggle, "CHUNK_ROWS", 2)
    test = _test_csv(tmp_path / "test.csv", 5)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt) as stopped:
        kaggle.predict_kaggle_csv(_StopsAfter(3), test, out_csv=out)
    assert stopped.value.partial == f"results for 4 of 5 rows of {test} written to {out} (partial)"
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == ["1", "2", "3", "4"]
    with pytest.raises(KeyboardInterrupt) as stopped:  # without an output file, it says so
        kaggle.predict_kaggle_csv(_StopsAfter(2), test)
    assert stopped.value.partial.startswith("nothing was written (2 of 5 rows")


# P7: an interrupted video into one file counts its frames

class _Interrupted:
    """``det`` whose stream() stops (Ctrl-C) after ``frames`` frames."""

    def __init__(self, det, frames: int):
        self.det, self.frames = det, frames

    def __getattr__(self, name):
        return getattr(self.det, name)

    def stream(self, source, **options):
        for i, result in enumerate(self.det.stream(source, **options)):
            if i == self.frames:
                raise KeyboardInterrupt
            yield result


@pytest.mark.parametrize("out", ["out.jsonl", "out.json"])
def test_an_interrupted_video_into_one_file_counts_its_frames(det, tmp_path, out):
    clip = still_clip(tmp_path / "clip.avi", frames=6)
    with pytest.raises(KeyboardInterrupt) as stopped:
        predict_paths(_Interrupted(det, 3), [clip], tmp_path / out, progress=False)
    assert f"results for 0 of 1 inputs and 3 frames of {clip} (of 6) written to {tmp_path / out} (partial)" \
        == stopped.value.partial


# P9 and P5: the progress bar shows names escaped, and needs no stderr

def test_the_progress_bar_shows_a_video_name_escaped(det, tmp_path, capsys):
    clip = still_clip(tmp_path / "a\nb\x1b[31mred.avi", frames=2)
    predict_paths(det, [clip], tmp_path / "out", draw=False, progress=True)
    err = capsys.readouterr().err
    assert "a\\nb\\x1b[31mred.avi" in err and "\x1b[31m" not in err


def test_progress_bars_need_no_stderr(det, tmp_path, monkeypatch):
    photo = grace_hopper_copy(tmp_path / "in" / "a.jpg")
    monkeypatch.setattr(sys, "stderr", None)  # 2>&-
    report = predict_paths(det, [photo], tmp_path / "out", progress=True)
    assert report.images == 1 and report.failures == []


# P10: save() refuses its source photo after a chdir

def test_save_refuses_the_source_after_a_chdir(det, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo = grace_hopper_copy(Path("chd") / "a.jpg")
    before = photo.read_bytes()
    result = det(str(photo))
    monkeypatch.chdir(tmp_path / "chd")
    with pytest.raises(ValueError, match="a.jpg: is the source image of this result"):
        result.save("a.jpg", image=np.zeros((600, 512, 3), np.uint8))
    assert (tmp_path / "chd" / "a.jpg").read_bytes() == before


# P11: box_frame must be plausible, and a bool is no number

@pytest.mark.parametrize("box_frame", [(0, 0, 1e9), (0, 0, 1e-9), (2, 0, 1), (0, -1.5, 1), (True, 0, 1)])
def test_box_frame_must_be_a_plausible_frame(det, box_frame):
    with pytest.raises(ValueError, match=r"box_frame must be \(dx, dy, side\).*0\.5 to 3"):
        KeypointDetector(det.runner.source, backend="torch", box_frame=box_frame)


# P12: macOS's metadata files are no photos

def test_macos_metadata_is_passed_over(det, tmp_path):
    folder = tmp_path / "mac"
    grace_hopper_copy(folder / "a.jpg")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(100))  # an AppleDouble resource fork
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._b.jpg").write_bytes(bytes(10))
    (folder / "__MACOSX" / "c.jpg").write_bytes(bytes(10))
    report = predict_paths(det, [folder], tmp_path / "out", progress=False)
    assert report.images == 1 and report.failures == []
    assert str(folder / "._a.jpg") in report.ignored and any("__MACOSX" in item for item in report.left_out)


def test_predict_on_an_interrupted_kaggle_csv_keeps_the_rows_finished_in_its_output(tmp_path, monkeypatch, capsys):
    """The CLI hands its output file to the Kaggle path, so Ctrl-C keeps the finished rows there."""
    from facekeypoints import cli

    import facekeypoints.infer.predictor as predictor

    monkeypatch.setattr(kaggle, "CHUNK_ROWS", 2)
    monkeypatch.setattr(predictor, "KeypointDetector", lambda *a, **k: _StopsAfter(3))  # cli imports it from there
    test, out = _test_csv(tmp_path / "test.csv", 5), tmp_path / "out.csv"
    code = cli.main(["predict", str(test), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 130 and "written to" in err and "(partial)" in err, err
    assert len(out.read_text().splitlines()) == 1 + 4


def test_export_takes_an_upper_case_suffix(tmp_path, capsys):
    from facekeypoints import cli

    assert cli.main(["export", "-o", str(tmp_path / "model.ONNX")]) == 0, capsys.readouterr().err
    assert (tmp_path / "model.ONNX").stat().st_size > 0


def test_export_of_a_slim_checkpoint_takes_an_upper_case_suffix(tmp_path, capsys):
    from facekeypoints import cli
    from facekeypoints.models.checkpoint import load_checkpoint

    out = tmp_path / "model.PT"
    assert cli.main(["export", "--format", "pt", "-o", str(out)]) == 0, capsys.readouterr().err
    assert load_checkpoint(out).card.schema.name == "kaggle15"
