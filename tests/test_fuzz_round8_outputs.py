"""Round 8 of fresh bad inputs for ``predict``'s outputs and messages (synthetic files only):

- F1: drawing a video took the H.264 encoder (an ffmpeg child process, x264 with its defaults:
  40 frames of look-ahead, a thread per core) to 2.0 GB on a 4K video and 3.5 GB on a 30 MP one.
  Now x264 runs on one thread without look-ahead (``X264_OPTIONS``), gets yuv420p frames, and a
  video over ``DRAW_VIDEO_PIXELS`` is drawn scaled down (keypoints with it; the JSON keeps the
  video's pixels). Tested on the mechanism: the ffmpeg arguments and a small limit. What ffmpeg
  prints is no longer a console line: its failure is a WriteError naming the video.
- F7: a truncated LZW TIFF's header pass printed Pillow's "Corrupt EXIF data" with no file name;
  a zero-byte .mp4 let FFmpeg print "[mov,mp4,...] moov atom not found" straight to the console.
  Now the first is left to the named read, the second goes into the failure line.
- F8: ``Result.save`` to a name over 255 bytes raised a raw OSError (Errno 36) from the error
  handler of ``atomic_path``; now a WriteError naming the output.
- F10: ``predict_paths`` took batch_size=0, max_pixels=-1 (every image "over the limit of -1
  pixels") and inputs=[] (an empty report); now each is refused naming the argument.
- F13: ``--max-side 16`` passed argparse and the haar detector refused "max_side must be at
  least 48"; now said as --max-side (and --min-face) for the detector in use; cnn takes 16.
- F15a: a library's warning over several lines (torch's on ``export --opset 9``) was printed over
  several lines; the CLI's warnings are one line.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from facekeypoints.atomic import WriteError, atomic_path
from facekeypoints.infer import files as files_module
from facekeypoints.infer.files import drawn_video_size, predict_paths, predict_video, x264_command
from facekeypoints.infer.video import open_video
from fakes import grace_hopper_copy as photo, run_cli, still_clip as clip

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 512x600, one face haar finds


def odd_clip(path: Path, size=(161, 121), frames: int = 3) -> Path:
    """A lossless FFV1 .mkv of odd size (OpenCV's MJPG writer makes its sides even)."""
    import subprocess

    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=s={size[0]}x{size[1]}:r=10", "-frames:v", str(frames), "-c:v", "ffv1",
                    "-pix_fmt", "yuv444p", str(path)], check=True)
    return path


def run_fd(argv, capfd) -> tuple[int, str, str]:
    """The CLI with file-descriptor capture: FFmpeg and libpng write to fd 2, past sys.stderr."""
    from facekeypoints.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "--debug" not in err, err
    return code, out, err


# ---- F1: the drawn video's encoder has a bounded memory -------------------------------------------------
def test_the_encoder_runs_x264_on_one_thread_without_look_ahead_on_yuv420p_frames(tmp_path):
    command = x264_command(tmp_path / "x.mp4", 29.97, (64, 48))
    assert command[command.index("-pix_fmt") + 1] == "yuv420p" and command[command.index("-s") + 1] == "64x48"
    assert command[command.index("-c:v") + 1] == "libx264" and command[command.index("-r") + 1] == "2997/100"
    for flag, value in (("-threads", "1"), ("-tune", "zerolatency"), ("-preset", "veryfast")):
        assert command[command.index(flag) + 1] == value, command
    assert command[-1] == str(tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="even frame size"):
        files_module._H264Writer(tmp_path / "y.mp4", 10.0, (63, 48))


def test_what_the_encoder_says_is_a_write_error_naming_the_video_not_a_console_line(tmp_path, capfd):
    writer = files_module._H264Writer(tmp_path / "wide.mp4", 10.0, (20000, 4))  # wider than x264 takes
    with pytest.raises(WriteError, match=r"wide\.mp4: could not be written \(the H\.264 encoder said: invalid "
                                         r"width x height"):
        for _ in range(3):
            writer.write(np.zeros((4, 20000, 3), np.uint8))
        writer.release()
    assert capfd.readouterr().err == ""
    assert drawn_video_size(20000, 4)[0] <= files_module.DRAW_VIDEO_SIDE  # never asked of it by predict


def test_a_video_whose_encoder_fails_is_a_failure_and_leaves_no_movie(det, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(files_module, "X264_OPTIONS", ["-preset", "no-such-preset"])
    video = clip(tmp_path / "in" / "c.avi")
    report = predict_paths(det, [video, photo(tmp_path / "in" / "a.jpg")], tmp_path / "out", progress=False)
    (failed, why), = report.failures
    assert failed == str(video) and "the H.264 encoder said" in why and "@ 0x" not in why, why
    assert report.images == 1 and not (tmp_path / "out" / "c_keypoints.mp4").exists()
    assert (tmp_path / "out" / "c.jsonl").exists()  # the frames' results are kept
    assert "[libx264" not in capfd.readouterr().err


@pytest.mark.parametrize("width, height", [(3840, 2160), (6000, 5000), (7680, 4320), (30000, 1100), (1100, 30000)])
def test_a_large_video_is_drawn_within_the_pixel_limit_keeping_its_shape(width, height):
    w, h = drawn_video_size(width, height)
    assert w % 2 == 0 and h % 2 == 0 and w * h <= files_module.DRAW_VIDEO_PIXELS
    assert max(w, h) <= files_module.DRAW_VIDEO_SIDE  # x264 refuses a side over 16384
    assert w * h > 0.97 * files_module.DRAW_VIDEO_PIXELS or max(w, h) > files_module.DRAW_VIDEO_SIDE - 2
    assert abs(w / h - width / height) / (width / height) < 0.01


@pytest.mark.parametrize("size, want", [((1, 1), (2, 2)), ((321, 241), (322, 242)), ((1920, 1080), (1920, 1080))])
def test_a_video_within_the_limit_keeps_its_size_odd_sides_padded(size, want):
    assert drawn_video_size(*size) == want


def test_a_video_over_the_limit_is_drawn_scaled_down_and_its_json_keeps_its_pixels(det, tmp_path, monkeypatch):
    monkeypatch.setattr(files_module, "DRAW_VIDEO_PIXELS", 80 * 60)
    video = odd_clip(tmp_path / "in" / "big.mkv", size=(161, 121))
    report = predict_video(det, video, tmp_path / "out", progress=False)
    assert not report.failures and report.frames == 3
    capture = cv2.VideoCapture(str(tmp_path / "out" / "big_keypoints.mp4"))
    w, h, n = (int(capture.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT,
                                                cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert (w, h) == drawn_video_size(161, 121, 80 * 60) and w * h <= 80 * 60 and n == 3
    first = json.loads((tmp_path / "out" / "big.jsonl").read_text().splitlines()[0])
    assert first["image_size"] == {"height": 121, "width": 161}


def test_an_odd_sized_video_is_drawn_padded_to_even_sides(det, tmp_path):
    video = odd_clip(tmp_path / "odd.mkv", frames=2)
    report = predict_video(det, video, tmp_path / "out", progress=False)
    assert not report.failures
    capture = cv2.VideoCapture(str(tmp_path / "out" / "odd_keypoints.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (122, 162, 3)


def test_keypoints_are_drawn_where_they_lie_on_the_scaled_down_frame(det):
    bgr = cv2.imread(str(GRACE_HOPPER))
    result = det(bgr[..., ::-1].copy())
    assert len(result) == 1
    h, w = bgr.shape[:2]
    size = drawn_video_size(w, h, limit=w * h // 4)
    drawn = files_module._drawn_frame(result, bgr, size)
    assert drawn.shape == (size[1], size[0], 3)
    scale = np.array(size) / (w, h)
    for x, y in result[0].keypoints * scale:  # the point colour (255, 200, 0) at each scaled keypoint
        assert np.abs(drawn[int(round(y)), int(round(x))].astype(int) - (255, 200, 0)).max() < 40


# ---- F7: no console line without a file name --------------------------------------------------------
def _truncated_lzw_tiff(path: Path) -> Path:
    rgb = np.random.default_rng(0).integers(0, 255, (300, 256, 3), np.uint8)
    Image.fromarray(rgb).save(path, compression="tiff_lzw")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])  # the IFD, at the end, is cut off
    return path


def test_a_truncated_tiff_says_nothing_without_its_name(det, model, tmp_path, capfd):
    import warnings

    from facekeypoints.data.images import image_size

    bad, good = _truncated_lzw_tiff(tmp_path / "half_lzw.tif"), photo(tmp_path / "a.jpg")
    with warnings.catch_warnings(record=True) as caught:  # the header pass warns, naming no file
        warnings.simplefilter("always")
        image_size(bad)
    assert any("EXIF" in str(w.message) and str(bad) not in str(w.message) for w in caught)
    code, out, err = run_fd(["predict", bad, good, "-o", "-", "--quiet", "--model", model], capfd)
    assert code == 1 and len(out.splitlines()) == 1, err  # the good photo's result
    for line in err.splitlines():
        if line.startswith("warning:") or "EXIF" in line:
            assert str(bad) in line, err
    assert f"  {bad}: " in err  # its failure line


def test_a_zero_byte_video_puts_ffmpeg_s_words_into_its_failure_line(model, tmp_path, capfd):
    zero, good = tmp_path / "zero.mp4", photo(tmp_path / "a.jpg")
    zero.write_bytes(b"")
    code, out, err = run_fd(["predict", zero, good, "-o", "-", "--quiet", "--model", model], capfd)
    assert code == 1 and len(out.splitlines()) == 1, err
    assert not [line for line in err.splitlines() if line.startswith("[")], err  # FFmpeg's own unnamed line
    failure, = [line for line in err.splitlines() if "zero.mp4" in line]
    assert "cannot open this video" in failure and "moov atom not found" in failure and " @ 0x" not in failure


def test_open_video_names_the_file_with_what_ffmpeg_said(tmp_path, capfd):
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.mp4: OpenCV cannot open this video.*moov atom not found"):
        open_video(zero)
    assert "moov" not in capfd.readouterr().err


# ---- F8: a name over the file-name limit ------------------------------------------------------------
def test_saving_to_a_name_over_255_bytes_is_a_write_error_naming_the_output(det, tmp_path):
    result = det(np.zeros((64, 64, 3), np.uint8))
    target = tmp_path / ("a" * 300 + ".png")
    with pytest.raises(WriteError, match="over the 255 bytes") as caught:
        result.save(target, image=np.zeros((64, 64, 3), np.uint8))
    assert str(target) in str(caught.value) and "nothing was written" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_atomic_path_refuses_a_long_name_before_the_block_runs(tmp_path):
    ran = []
    with pytest.raises(WriteError, match="could not be written"):
        with atomic_path(tmp_path / ("b" * 256)) as tmp:
            ran.append(tmp)
    assert ran == [] and list(tmp_path.iterdir()) == []


def test_a_failed_write_whose_target_cannot_even_be_looked_at_is_still_a_write_error(tmp_path, monkeypatch):
    import errno

    from facekeypoints import atomic

    def no_room(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_exists = Path.exists

    def exists(self, *args, **kwargs):  # the target's stat fails too (it raised and hid the WriteError)
        if self.name == "out.txt":
            raise OSError(errno.ENAMETOOLONG, "File name too long")
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", no_room)
    monkeypatch.setattr(Path, "exists", exists)
    with pytest.raises(WriteError, match=r"out\.txt: could not be written \(No space left on device\); nothing"):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# ---- F10: predict_paths' arguments ---------------------------------------------------------------
@pytest.mark.parametrize("inputs, options, error, words", [
    ([], {}, ValueError, "inputs is empty"),
    ([""], {}, ValueError, "empty path"),
    ([3], {}, TypeError, "inputs holds 3"),
    (["a.jpg"], {"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
    (["a.jpg"], {"batch_size": True}, TypeError, "batch_size must be an integer"),
    (["a.jpg"], {"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
    (["a.jpg"], {"max_pixels": -1}, ValueError, "max_pixels must be at least 1, got -1"),
    (["a.jpg"], {"max_pixels": 0}, ValueError, "max_pixels must be at least 1, got 0"),
])
def test_predict_paths_refuses_arguments_that_cannot_be_right(det, tmp_path, monkeypatch, inputs, options, error,
                                                                  words):
    photo(tmp_path / "a.jpg")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=words):
        predict_paths(det, inputs, tmp_path / "out", progress=False, **options)
    assert not (tmp_path / "out").exists()  # refused before any work, the folder not even claimed


def test_predict_paths_still_takes_no_limit_and_a_batch_of_one(det, tmp_path):
    report = predict_paths(det, [photo(tmp_path / "a.jpg")], "-", progress=False, batch_size=1, max_pixels=None)
    assert report.images == 1 and not report.failures


def test_predict_video_refuses_a_max_pixels_under_one(det, tmp_path):
    with pytest.raises(ValueError, match="max_pixels must be at least 1"):
        predict_video(det, clip(tmp_path / "c.avi"), tmp_path / "out", max_pixels=-5, progress=False)


# ---- F13: --max-side per detector ----------------------------------------------------------------
def test_max_side_under_the_haar_bound_is_said_as_the_flag(model, tmp_path, capsys):
    code, _, err = run_cli(["predict", photo(tmp_path / "a.jpg"), "--max-side", "16", "-o", "-", "--quiet",
                            "--model", model], capsys)
    assert code == 2 and "--max-side must be at least 48" in err and "haar" in err
    assert "max_side" not in err.replace("--max-side", "")
    code, _, err = run_cli(["predict", tmp_path / "a.jpg", "--min-face", "4", "-o", "-", "--quiet",
                            "--model", model], capsys)
    assert code == 2 and "--min-face must be at least 8" in err and "min_face" not in err.replace("--min-face", "")


def test_max_side_16_is_taken_by_the_cnn_detector(model, tmp_path, capsys):
    code, out, err = run_cli(["predict", photo(tmp_path / "a.jpg"), "--detector", "cnn", "--max-side", "16",
                              "-o", "-", "--quiet", "--model", model], capsys)
    assert code == 0 and json.loads(out)["source"].endswith("a.jpg"), err


def test_the_max_side_help_says_each_detector_s_bound(capsys):
    from facekeypoints.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--help"])
    assert "haar 48, cnn 16" in " ".join(capsys.readouterr().out.split())


# ---- F15a: one line per warning --------------------------------------------------------------------
def test_a_warning_over_several_lines_is_printed_as_one():
    from facekeypoints import cli

    assert cli._one_line_warning("first line.\nsecond line\n\n  third\n", UserWarning, "x.py", 1) == \
        "warning: first line. second line third\n"


def test_saving_into_an_over_long_folder_name_is_a_named_write_error(tmp_path, det):
    from facekeypoints.atomic import WriteError

    result = det(photo(tmp_path / "a.jpg"))
    target = tmp_path / ("d" * 300) / "a.json"
    with pytest.raises(WriteError, match=r"is 300 bytes long"):
        result.save(target)
    assert result.save(tmp_path / "new" / "a.json").is_file()  # the folder is still made when it can be
