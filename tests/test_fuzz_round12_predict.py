"""Round 12 of bad inputs for ``predict`` and the inference API: one undecodable frame ended a video
(the good frames after it were lost, and the message blamed truncation); stream() dropped frames of a
damaged video without a word; a short truncated AVI counted as whole (the frame-count tolerance
swallowed a third of it); a folder "ignored" images OpenCV reads (a JPEG named .HEIC) and formats
it cannot (.tga), exit 0; failure lines printed names raw (a line break split them); Result.save()
replaced its own source photo; a drawing took another input's name, and no record named its
drawing; box and image mistakes were numpy's words; a Ctrl-C during a video did not say its drawn
video was dropped (synthetic files only)."""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facekeypoints.infer.files import PredictReport, predict_paths
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.video import IncompleteVideoWarning
from fakes import grace_hopper_copy, mean_face_checkpoint, still_clip

FRAMES = 10


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"), backend="torch")


def _jpeg_starts(data: bytes) -> list[int]:
    """Where each MJPG frame's JPEG data starts in an .avi."""
    starts, at = [], data.find(b"\xff\xd8\xff")
    while at >= 0:
        starts.append(at)
        at = data.find(b"\xff\xd8\xff", at + 1)
    return starts


def _clip_with_bad_frames(path: Path, bad: tuple[int, ...], frames: int = FRAMES) -> Path:
    """An MJPG .avi whose frames ``bad`` hold no JPEG data (zeroed; the container is intact)."""
    still_clip(path, frames=frames)
    data = bytearray(path.read_bytes())
    starts = _jpeg_starts(bytes(data))
    assert len(starts) == frames
    for k in bad:
        end = starts[k + 1] - 8 if k + 1 < frames else data.rfind(b"idx1")  # up to the next chunk's header
        data[starts[k]:end] = bytes(end - starts[k])
    path.write_bytes(bytes(data))
    return path


def _cut_clip(path: Path, frames: int, keep: int) -> Path:
    """An MJPG .avi declaring ``frames`` frames, cut where frame ``keep`` begins."""
    still_clip(path, frames=frames)
    data = path.read_bytes()
    path.write_bytes(data[:_jpeg_starts(data)[keep] - 8])
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# P1: a frame that cannot be decoded is skipped, and the frames after it are read

@pytest.mark.parametrize("bad", [(4,), (0,), (3, 4, 5)])
def test_an_undecodable_frame_is_skipped_and_the_rest_are_read(det, tmp_path, bad):
    clip = _clip_with_bad_frames(tmp_path / "in" / "clip.avi", bad)
    with pytest.warns(UserWarning, match=r"clip\.avi frames? [\d-]+: could not be decoded, skipped"):
        report = predict_paths(det, [clip], tmp_path / "out", progress=False)
    assert report.frames == FRAMES - len(bad)
    frames = [r["frame"] for r in _records(tmp_path / "out" / "clip.jsonl")]
    assert frames == [i for i in range(FRAMES) if i not in bad]  # each named by its own index
    [(path, message)] = report.failures  # said, and the exit code says so
    assert path == str(clip)
    assert f"only {FRAMES - len(bad)} of its {FRAMES} frames could be decoded" in message
    assert ("frames 3-5 could not be decoded and were skipped" if len(bad) > 1
            else f"frame {bad[0]} could not be decoded and was skipped") in message
    assert "truncated" not in message and "patched over" not in message
    drawn = cv2.VideoCapture(str(tmp_path / "out" / "clip_keypoints.mp4"))
    assert drawn.get(cv2.CAP_PROP_FRAME_COUNT) == FRAMES  # the drawing keeps time over the skipped frames
    drawn.release()


# P4: stream() says what the command line says

def test_stream_warns_where_frames_are_missing(det, tmp_path):
    cases = {_clip_with_bad_frames(tmp_path / "bad.avi", (4,)): r"bad\.avi: only 9 of its 10 frames .*frame 4 could "
                                                               r"not be decoded and was skipped",
             _cut_clip(tmp_path / "cut.avi", FRAMES, 6): r"cut\.avi: only 6 of its 10 frames .*the last 4 are missing "
                                                        r"\(the file is truncated or damaged\)",
             _clip_with_bad_frames(tmp_path / "none.avi", tuple(range(FRAMES))): r"none\.avi: no frame could be decoded"}
    for clip, expected in cases.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            n = sum(1 for _ in det.stream(clip))
        said = [str(w.message) for w in caught if w.category is IncompleteVideoWarning]
        assert len(said) == 1, (clip, [str(w.message) for w in caught])
        assert re.search(expected, said[0]), said[0]
        assert n == {"bad.avi": 9, "cut.avi": 6, "none.avi": 0}[clip.name]


def test_a_whole_video_gives_no_warning(det, tmp_path):
    clip = still_clip(tmp_path / "whole.avi", frames=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteVideoWarning)
        assert len(list(det.stream(clip))) == 4


# P5: an exact frame count has no tolerance

def test_a_short_truncated_avi_is_reported(det, tmp_path):
    clip = _cut_clip(tmp_path / "three.avi", 3, 2)
    report = predict_paths(det, [clip], tmp_path / "out", draw=False, progress=False)
    assert report.frames == 2
    [(_, message)] = report.failures
    assert message.startswith("only 2 of its 3 frames could be decoded: the last is missing")


# P6: a folder takes what OpenCV reads, and fails what it names as an image but cannot read

def test_a_folder_takes_decodable_files_and_fails_unreadable_image_formats(det, tmp_path):
    photos = tmp_path / "photos"
    grace_hopper_copy(photos / "a.jpg")
    grace_hopper_copy(photos / "f.HEIC")  # a JPEG under another name
    (photos / "c.tga").write_bytes(b"\0\0\x02" + bytes(200))  # a format OpenCV does not read
    (photos / "notes.txt").write_text("P3 a sidecar, not an image\n")
    (photos / "thumbs.db").write_bytes(bytes(64))
    report = predict_paths(det, [photos], "-", progress=False)
    assert report.images == 2
    assert [Path(p).name for p, _ in report.failures] == ["c.tga"]
    assert sorted(Path(p).name for p in report.ignored) == ["notes.txt", "thumbs.db"]
    assert "ignored 2 files that are not images or videos OpenCV reads" in str(report)


# P7: one line per failure, names escaped once

def test_failure_lines_show_odd_names_escaped_once(det, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "bad\nname.jpg").write_text("not an image")
    (photos / "esc\x1b[31mred.jpg").write_text("not an image")
    report = predict_paths(det, [photos], "-", progress=False)
    text = str(report)
    assert "\x1b" not in text and len(text.splitlines()) == 4
    lines = text.splitlines()[2:]
    assert lines[0].startswith(f"  {photos}/bad\\nname.jpg: cannot decode image"), lines
    assert all(line.count("name.jpg") + line.count("red.jpg") == 1 for line in lines)
    assert str(PredictReport(left_out=["a\nb (the output folder)"])).splitlines()[1] == "left out: a\\nb (the output folder)"


# P8: save() never replaces its own source photo

def test_save_refuses_the_source_photo(det, tmp_path):
    photo = grace_hopper_copy(tmp_path / "photo.jpg")
    before = photo.read_bytes()
    result = det(photo)
    for target in (photo, tmp_path / "." / "photo.jpg"):
        with pytest.raises(ValueError, match=r"photo\.jpg: is the source image of this result; save\(\) would "
                                             r"replace it"):
            result.save(target)
    assert photo.read_bytes() == before
    assert result.save(tmp_path / "drawn.jpg").is_file()


# P9: a drawing never takes another input's name; each record names its drawing

def test_a_drawing_does_not_take_another_inputs_name(det, tmp_path):
    photos = tmp_path / "photos"
    grace_hopper_copy(photos / "a.gif.png")
    Image.new("RGB", (64, 48)).save(photos / "a.gif")  # draws to a.gif.png by default
    out = tmp_path / "out"
    predict_paths(det, [photos], out, progress=False)
    records = {Path(r["source"]).name: r["drawing"] for r in _records(out / "predictions.jsonl")}
    assert records == {"a.gif": "a-2.gif.png", "a.gif.png": "a.gif.png"}
    assert cv2.imread(str(out / "a.gif.png")).shape[:2] == cv2.imread(str(photos / "a.gif.png")).shape[:2]
    assert (out / "a-2.gif.png").is_file()


def test_no_drawing_field_without_drawings(det, tmp_path):
    grace_hopper_copy(tmp_path / "photos" / "a.jpg")
    predict_paths(det, [tmp_path / "photos"], tmp_path / "out", draw=False, progress=False)
    assert "drawing" not in _records(tmp_path / "out" / "predictions.jsonl")[0]


# P11: mistakes named in the API's own words

def test_draw_given_a_path_and_boxes_given_a_dict_are_named(det, tmp_path):
    photo = grace_hopper_copy(tmp_path / "face.jpg")
    result = det(photo)
    with pytest.raises(TypeError, match=r"draw\(\) needs the image's pixels \(a uint8 array\), got the path"):
        result.draw(str(photo))
    with pytest.raises(TypeError, match=r"draw\(\) needs a uint8 image array, got ndarray of <U"):
        result.draw(np.array([["a"]]))
    with pytest.raises(TypeError, match=r"boxes for .*face\.jpg must be numbers.*got dict"):
        det(photo, boxes={"a": 1})

    class Words:
        def detect(self, image):
            return [[1, 2, 30, "x"]]

    with pytest.raises(ValueError, match=r"Words\.detect\(\) on .*face\.jpg must be numbers.*'x'"):
        KeypointDetector(mean_face_checkpoint(tmp_path / "m.pt"), detector=Words(), backend="torch")(photo)


# P13: a Ctrl-C midway says the drawn video was dropped

def test_an_interrupted_video_says_its_drawing_was_dropped(det, tmp_path, monkeypatch):
    clip = still_clip(tmp_path / "in" / "clip.avi", frames=6)
    real = KeypointDetector.stream

    def stream(self, source, **options):
        for i, result in enumerate(real(self, source, **options)):
            if i == 3:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(KeypointDetector, "stream", stream)
    with pytest.raises(KeyboardInterrupt) as caught:
        predict_paths(det, [clip], tmp_path / "out", progress=False)
    assert "results for 3 frames of" in caught.value.partial
    assert f"the drawn video {tmp_path / 'out' / 'clip_keypoints.mp4'} was not written" in caught.value.partial
    assert not (tmp_path / "out" / "clip_keypoints.mp4").exists()


# ---- P10: an output on a read-only file system is refused with that reason, not "permission denied" ------------
def test_an_output_on_a_read_only_file_system_names_it(tmp_path, monkeypatch):
    import collections

    from facekeypoints import atomic

    real_statvfs = os.statvfs
    Flags = collections.namedtuple("Flags", "f_flag")
    monkeypatch.setattr(atomic.os, "access", lambda *a, **k: False)  # as a read-only mount answers, even for root
    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Flags(os.ST_RDONLY) if Path(p) == tmp_path
                        else real_statvfs(p))
    with pytest.raises(ValueError, match="read-only file system"):
        atomic.check_target(tmp_path / "out.json")
    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Flags(0))
    with pytest.raises(ValueError, match="permission denied"):
        atomic.check_target(tmp_path / "out.json")
