"""Round 14 of bad inputs for ``predict``: frames a damaged H.264 video's decoder dropped without a
failed read were silent and every later frame took the wrong index; an AVI with B-frames had every
time shifted by the decoder's delay; healthy MKV/WebM with longer audio, FLV with B-frames and
variable-rate AVIs were called truncated (OpenCV's count is the container's, not the video
stream's); videos named .qt/.3g2/... in a folder were ignored; ``export`` of an .onnx file said "not
a PyTorch file" (synthetic files only, made with imageio-ffmpeg's ffmpeg)."""
from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pytest

from facekeypoints.cli import main
from facekeypoints.infer.files import predict_paths
from facekeypoints.infer.onnx import export_onnx
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.video import IncompleteVideoWarning, _stream_facts
from fakes import mean_face_checkpoint

TESTSRC = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=3"]


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> KeypointDetector:
    return KeypointDetector(mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt"), backend="torch")


def _ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *map(str, args)], check=True)


def _read(det, path: Path) -> tuple[list, list[str], list[str]]:
    """(results, IncompleteVideoWarning lines, other warning lines) of stream(path)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(det.stream(path))
    said = [(w.category is IncompleteVideoWarning, str(w.message)) for w in caught]
    return results, [m for bad, m in said if bad], [m for bad, m in said if not bad]


def _damaged_mkv(tmp_path: Path, to: Path) -> Path:
    """A 30-frame H.264 MKV (10 fps) with 1500 zero bytes at 30% of the file: the decoder drops frames."""
    whole = tmp_path / "whole.mkv"
    _ffmpeg(*TESTSRC, "-c:v", "libx264", "-pix_fmt", "yuv420p", whole)
    data = bytearray(whole.read_bytes())
    at = int(len(data) * 0.3)
    data[at:at + 1500] = bytes(1500)
    to.parent.mkdir(exist_ok=True)
    to.write_bytes(bytes(data))
    return to


def test_frames_the_decoder_drops_after_damage_are_skipped_and_the_rest_keep_their_indices(det, tmp_path):
    damaged = _damaged_mkv(tmp_path, tmp_path / "damaged.mkv")
    results, incomplete, _ = _read(det, damaged)
    assert len(results) < 30 and incomplete and "of its 30 frames" in incomplete[0]
    assert all(r.frame == round(r.time_s * 10) for r in results)  # each frame keeps its own index


def test_an_avi_with_b_frames_starts_at_zero(det, tmp_path):
    path = tmp_path / "bf.avi"
    _ffmpeg(*TESTSRC, "-c:v", "libx264", "-bf", "3", "-pix_fmt", "yuv420p", path)
    results, incomplete, _ = _read(det, path)
    assert not incomplete and len(results) == 30
    assert [round(r.time_s, 3) for r in results] == [round(i / 10, 3) for i in range(30)]


@pytest.mark.parametrize("suffix,audio", [(".mkv", "aac"), (".webm", "libopus")])
def test_a_video_with_longer_audio_is_whole(det, tmp_path, suffix, audio):
    path = tmp_path / f"longaudio{suffix}"
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    _ffmpeg(*TESTSRC, "-f", "lavfi", "-i", "sine=duration=5", "-c:v", codec, "-pix_fmt", "yuv420p", "-c:a", audio,
            path)
    results, incomplete, _ = _read(det, path)
    assert not incomplete and len(results) == 30


def test_a_truncated_mkv_is_still_reported(det, tmp_path):
    whole = tmp_path / "whole.mkv"
    _ffmpeg(*TESTSRC, "-c:v", "mjpeg", whole)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    results, incomplete, _ = _read(det, cut)
    assert 0 < len(results) < 25 and incomplete and "missing" in incomplete[0]


def _vfr_mjpeg(path: Path) -> Path:
    """30 MJPEG frames at 0.0-0.9 s and 3.0-4.9 s (a 2 s gap: a variable frame rate)."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=5", "-vf",
            "select='lt(n\\,10)+gte(n\\,30)'", "-fps_mode", "passthrough", "-c:v", "mjpeg", path)
    return path


def test_a_variable_rate_avi_is_whole(det, tmp_path):
    avi = tmp_path / "vfr.avi"
    _ffmpeg("-i", _vfr_mjpeg(tmp_path / "vfr.mkv"), "-c", "copy", avi)
    results, incomplete, _ = _read(det, avi)
    assert not incomplete and len(results) == 30


def test_the_count_of_a_variable_rate_mkv_is_its_frames(tmp_path):
    # OpenCV's count is duration x rate (50); the incomplete-video message now says the stream's 30
    assert _stream_facts(str(_vfr_mjpeg(tmp_path / "vfr.mkv"))).frames == 30


def test_mp4_family_suffixes_in_a_folder_are_videos(det, tmp_path):
    clip = tmp_path / "clip.mp4"
    _ffmpeg(*TESTSRC, "-t", "0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", clip)
    folder = tmp_path / "in"
    folder.mkdir()
    for suffix in (".qt", ".3g2", ".f4v"):
        (folder / f"clip{suffix}").write_bytes(clip.read_bytes())
    (folder / "clip.bin").write_bytes(clip.read_bytes())  # a video under a suffix no reader knows
    report = predict_paths(det, [folder], tmp_path / "out", draw=False, progress=False)
    assert report.frames == 15 and not report.ignored
    assert [Path(p).name for p, _ in report.failures] == ["clip.bin"] and "video" in report.failures[0][1]


def test_export_of_an_onnx_file_says_it_is_one(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    with pytest.raises(ValueError, match="already an ONNX model"):
        export_onnx(model, tmp_path / "out.onnx")
    assert main(["export", "--model", str(model), "-o", str(tmp_path / "out.onnx")]) != 0
    assert "already an ONNX model" in capsys.readouterr().err


def test_written_records_of_a_damaged_video_keep_their_indices(det, tmp_path):
    _damaged_mkv(tmp_path, tmp_path / "in" / "damaged.mkv")
    report = predict_paths(det, [tmp_path / "in"], tmp_path / "out", draw=False, progress=False)
    assert report.failures and "damaged.mkv" in report.failures[0][0]
    records = [json.loads(line) for line in (tmp_path / "out" / "damaged.jsonl").read_text().splitlines()]
    assert all(r["frame"] == round(r["time_s"] * 10) for r in records)
