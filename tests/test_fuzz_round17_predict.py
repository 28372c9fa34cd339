"""Round 17 of bad inputs for ``predict``: a later run read an earlier run's output folder (drawings,
drawn videos, temporaries) as inputs; two runs whose outputs met replaced each other's drawings; an
over-long name crashed the run; one image that made ``predict_batch`` raise lost every later image;
one file given twice was predicted twice; a video stream without frames was "truncated"; a link to
nothing without a media suffix was "not an image" (synthetic files only)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.infer.detectors import HaarDetector
from facekeypoints.infer.files import predict_paths
from facekeypoints.infer.kaggle import predict_kaggle_csv
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.models.weights import resolve_checkpoint
from fakes import grace_hopper_copy, still_clip

LONG = "x" * 300


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# P1: an earlier run's output folder inside an input folder, and our temporaries, are left out

def test_earlier_output_folders_inside_an_input_folder_are_left_out(det, tmp_path):
    folder = tmp_path / "in"
    grace_hopper_copy(folder / "face.jpg")
    still_clip(folder / "clip.avi")
    predict_paths(det, [folder], folder / "k1", progress=False)
    predict_paths(det, [folder / "clip.avi"], folder / "v", progress=False)  # video only: no predictions.jsonl
    assert not (folder / "v" / "predictions.jsonl").exists() and (folder / "v" / "clip_keypoints.mp4").exists()
    (folder / f".face.jpg.{os.getpid()}-7.tmp").write_bytes(b"half a drawing")  # a run still writing
    report = predict_paths(det, [folder], folder / "k2", progress=False)
    assert (report.images, report.frames, report.failures, report.ignored) == (1, 3, [], [])
    said = str(report)
    assert "k1: 4 files another facekeypoints run wrote" in said  # round 18: only what it wrote, not the folder
    assert "v: 2 files another facekeypoints run wrote" in said
    assert ".face.jpg." in said and "a temporary file of a facekeypoints run" in said
    assert sorted(p.name for p in (folder / "k2").iterdir()) == ["clip.jsonl", "clip_keypoints.mp4", "face.jpg",
                                                                 "predictions.jsonl"]


# P2: a drawing another run put in place meanwhile is kept, and this run's goes beside it

class _Intruder:
    """A detector that, while predicting, has "another run" write ``target``."""

    def __init__(self, det, target: Path):
        self.det, self.target = det, target

    def predict_batch(self, images):
        aside = self.target.with_name("elsewhere.tmp")
        aside.write_bytes(b"another run's drawing")
        os.replace(aside, self.target)  # as another run puts its drawing in place
        return self.det.predict_batch(images)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_drawing_written_meanwhile_is_kept_and_ours_goes_beside_it(det, tmp_path, overwrite):
    photo = grace_hopper_copy(tmp_path / "in" / "y.jpg")
    out = tmp_path / "out"
    if overwrite:
        out.mkdir()
        (out / "y.jpg").write_bytes(b"an earlier run's drawing")
    with pytest.warns(RuntimeWarning, match="another run of facekeypoints wrote this file"):
        report = predict_paths(_Intruder(det, out / "y.jpg"), [photo], out, progress=False, overwrite=overwrite)
    assert (out / "y.jpg").read_bytes() == b"another run's drawing"
    assert cv2.imread(str(out / "y-2.jpg")) is not None
    assert _records(out / "predictions.jsonl")[0]["drawing"] == "y-2.jpg"
    assert str(out / "y-2.jpg") in report.written and not report.failures


# P3: an over-long name is a failure of its own, with a one-line reason; the other inputs are done

def test_an_over_long_input_name_is_one_failure(det, tmp_path):
    photo = grace_hopper_copy(tmp_path / "face.jpg")
    long_file, long_folder = tmp_path / f"{LONG}.jpg", f"{tmp_path / LONG}/"
    report = predict_paths(det, [photo, long_file, long_folder], tmp_path / "r.jsonl", progress=False)
    assert report.images == 1 and len(report.failures) == 2
    assert all("bytes long, over the" in why for _, why in report.failures)
    assert len(_records(tmp_path / "r.jsonl")) == 1


def test_an_over_long_model_video_csv_or_output_folder_name_says_so(det, tmp_path):
    for call in (lambda: resolve_checkpoint(str(tmp_path / f"{LONG}.pt")),
                 lambda: list(det.stream(str(tmp_path / f"{LONG}.mp4"))),
                 lambda: predict_kaggle_csv(det, tmp_path / f"{LONG}.csv"),
                 lambda: predict_paths(det, [grace_hopper_copy(tmp_path / "face.jpg")], f"{tmp_path / LONG}/",
                                       progress=False)):
        with pytest.raises(ValueError, match="bytes long, over the"):
            call()


# P4: an image that makes predict_batch raise is one failure, named; the rest of its batch is done

class _NanOnSquare:
    """A face detector that gives a NaN box on square photos (a detector bug), Haar's on the others."""
    haar = HaarDetector()

    def detect(self, image):
        return np.array([[np.nan, 0, 10, 10, 1]]) if image.shape[0] == image.shape[1] else self.haar.detect(image)


def test_an_image_the_detector_fails_on_is_one_failure_and_its_batch_goes_on(model, tmp_path):
    folder = tmp_path / "bd"
    for name in ("a.jpg", "b.jpg", "zzz.jpg"):
        grace_hopper_copy(folder / name)
    cv2.imwrite(str(folder / "sq.png"), np.full((64, 64, 3), 128, np.uint8))
    bad = KeypointDetector(model, backend="torch", detector=_NanOnSquare())
    report = predict_paths(bad, [folder], tmp_path / "out", progress=False)
    assert report.images == 3 and [p for p, _ in report.failures] == [str(folder / "sq.png")]
    assert "NaN" in report.failures[0][1]
    assert [Path(r["source"]).name for r in _records(tmp_path / "out" / "predictions.jsonl")] == \
        ["a.jpg", "b.jpg", "zzz.jpg"]


# P5: one file given twice, or a folder and a file in it, is predicted once; the repeat is said

def test_a_file_given_twice_is_predicted_once(det, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grace_hopper_copy(tmp_path / "sub" / "face.jpg")
    report = predict_paths(det, ["sub/face.jpg", "sub/face.jpg", "./sub/face.jpg"], "o1/", progress=False)
    assert report.images == 1 and len(report.left_out) == 2 and "given twice" in str(report)
    assert len(_records(tmp_path / "o1" / "predictions.jsonl")) == 1
    report = predict_paths(det, ["sub", "sub/face.jpg", "sub"], "o2.jsonl", progress=False)
    assert report.images == 1 and len(report.left_out) == 2 and not report.failures
    assert "sub/face.jpg (given twice)" in str(report) and "sub (given twice)" in str(report)


# P6: a video whose video stream holds no frames says so

def test_a_video_stream_without_frames_says_so(det, tmp_path):
    import imageio_ffmpeg

    path = tmp_path / "z2.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=s=64x64:d=1", "-f", "lavfi", "-i", "sine=d=3", "-map", "0", "-map", "1", "-c:v", "libx264",
                    "-ss", "2", str(path)], check=True)
    report = predict_paths(det, [path], tmp_path / "out", progress=False)
    assert len(report.failures) == 1
    assert "its video stream holds no frames" in report.failures[0][1]
    assert "truncated" not in report.failures[0][1]


# P8: a link to nothing or a pipe in a folder is a failure, whatever its suffix

def test_a_broken_link_or_pipe_without_a_media_suffix_is_a_failure(det, tmp_path):
    folder = tmp_path / "ns"
    grace_hopper_copy(folder / "face.jpg")
    os.symlink("nowhere", folder / "brokenlink")
    os.mkfifo(folder / "fifo_noext")
    report = predict_paths(det, [folder], tmp_path / "ns.jsonl", progress=False)
    assert report.images == 1 and not report.ignored
    assert dict(report.failures) == {str(folder / "brokenlink"): "a broken link",
                                     str(folder / "fifo_noext"): "not a regular file (a pipe or a device)"}


def test_hard_links_are_names_of_their_own_and_each_is_predicted(det, tmp_path):
    grace_hopper_copy(tmp_path / "in" / "a.jpg")
    os.link(tmp_path / "in" / "a.jpg", tmp_path / "in" / "b.jpg")
    report = predict_paths(det, [tmp_path / "in"], tmp_path / "out.jsonl", progress=False)
    assert report.images == 2 and not report.left_out
