"""Round 9 of bad-input fuzzing, predict's files: the output folder as an input folder, linked
folders, a pipe closed early, files that are no image, and standard input or URLs as inputs."""
from __future__ import annotations

import io
import os
import sys

import pytest

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.images import decode_image, read_image
from facekeypoints.data.walk import walk_files
from facekeypoints.infer.files import predict_paths
from fakes import grace_hopper_copy, run_cli, still_clip


def run(argv, capsys) -> tuple[int, str, str]:
    return run_cli(argv, capsys, forbidden=("Traceback",))


# ---- 1: -o the input folder itself -------------------------------------------------------------------
def test_output_folder_that_is_the_input_folder_is_refused_before_any_work(tmp_path, model, capsys):
    folder = tmp_path / "t"
    still_clip(folder / "clip.mp4")
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["predict", folder, "-o", folder, "--model", model, "--quiet", *extra], capsys)
        assert code == 2 and f"-o {folder}: is the input folder {folder} itself" in err, err
        assert "choose another -o folder" in err
        assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4"]  # nothing written, no claim left
    # the video given as a file, -o its own folder: its outputs are no inputs of a later run
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["predict", folder / "clip.mp4", "-o", folder, "--model", model, "--quiet", *extra],
                           capsys)
        assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["clip.jsonl", "clip.mp4", "clip_keypoints.mp4"]


def test_an_output_that_would_go_into_an_input_folder_inside_the_output_folder_fails(tmp_path, model, capsys):
    par = tmp_path / "par"
    grace_hopper_copy(par / "new" / "new" / "x.jpg")  # drawn as par/new/x.jpg: inside the input folder
    grace_hopper_copy(par / "new" / "y.jpg")  # drawn as par/y.jpg
    code, _, err = run(["predict", par / "new", "-o", par, "--model", model, "--quiet"], capsys)
    assert code == 1, err
    assert f"{par / 'new' / 'new' / 'x.jpg'}: its output {par / 'new' / 'x.jpg'} would go into the input folder" in err
    assert not (par / "new" / "x.jpg").exists() and (par / "y.jpg").is_file()


# ---- 2: a linked folder does not take over the real folder's names -----------------------------------
class _Listing:
    """``os.scandir`` with its entries in a chosen order, as another disk could list them."""

    def __init__(self, scandir, path, reverse):
        with scandir(path) as entries:
            self.entries = iter(sorted(entries, key=lambda e: e.name, reverse=reverse))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.entries)

    def close(self):
        pass


@pytest.mark.parametrize("reverse", [False, True])
def test_a_linked_folder_gives_the_real_paths_whatever_the_listing_order(tmp_path, monkeypatch, reverse):
    top = tmp_path / "t"
    (top / "photos").mkdir(parents=True)
    (top / "photos" / "p1.jpg").write_bytes(b"x")
    for links in ("aa_links", "zz_links"):  # one listed before the real folder, one after
        (top / links).mkdir()
        (top / links / "photos_link").symlink_to("../photos")
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": _Listing(scandir, path, reverse))
    assert walk_files(top) == [top / "photos" / "p1.jpg"]


# ---- 3: a pipe closed early stops the run, with what was found so far -------------------------------
class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_stops_a_video_run_at_once(tmp_path, det, monkeypatch):
    first, second = still_clip(tmp_path / "a.mp4"), still_clip(tmp_path / "b.mp4")
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    with pytest.raises(BrokenPipeError) as stop:  # not a failure of a.mp4, then of b.mp4 against the dead pipe
        predict_paths(det, [first, second], "-", progress=False)
    assert stop.value.report.failures == []


def test_a_closed_pipe_carries_the_failures_found_before_it(tmp_path, det, monkeypatch):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_text("not an image")
    grace_hopper_copy(tmp_path / "in" / "b.jpg")
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    with pytest.raises(BrokenPipeError) as stop:
        predict_paths(det, [tmp_path / "in"], "-", progress=False)
    assert [path for path, _ in stop.value.report.failures] == [str(tmp_path / "in" / "a.png")]



def test_the_cli_exits_1_when_its_reader_closed_the_pipe_after_failures(tmp_path, model, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_text("not an image")
    grace_hopper_copy(tmp_path / "in" / "b.jpg")
    pipe = _ClosedPipe()
    pipe.fileno = lambda: 1  # a real stdout's; dup2 onto it is left out so the test's own stdout stays
    monkeypatch.setattr(sys, "stdout", pipe)
    monkeypatch.setattr(os, "dup2", lambda *a: None)
    code, _, err = run(["predict", tmp_path / "in", "-o", "-", "--model", model, "--quiet"], capsys)
    assert code == 1 and "a.png" in err and "closed by its reader before the run ended" in err, err

# ---- 4: what a file that is no image is, instead of "--max-pixels 0 decodes it anyway" ----------------
def test_a_file_that_is_no_image_is_named_for_what_it_is(tmp_path):
    cases = {
        "text.png": (b"hello, not an image\n", "it is text named .png, not an image"),
        "v.svg": (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>\n', "SVG/XML text"),
        "x.heic": (b"\0\0\0\x18ftypheic" + bytes(40), "a HEIC/HEIF image, which OpenCV does not read"),
    }
    still_clip(tmp_path / "clip.mp4").rename(tmp_path / "clip.jpg")
    cases["clip.jpg"] = (None, "an MP4/QuickTime video (ftyp box) named .jpg")
    for name, (data, words) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(DataFormatError) as err:
            read_image(tmp_path / name)
        assert words in str(err.value) and "its size cannot be read from its header" in str(err.value), err.value
        # no --max-pixels advice; a video named as an image is told to rename it (a hint: the service drops it)
        assert err.value.hint == ("give it a video suffix such as .mp4" if name == "clip.jpg" else None), err.value
        assert "anyway" not in str(err.value), err.value
    with pytest.raises(DataFormatError, match="it is text, not an image"):
        decode_image(b"hello, not an image")


def test_an_image_format_whose_size_is_unknown_keeps_the_hint(tmp_path):
    path = tmp_path / "x.hdr"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n" + bytes(16))
    with pytest.raises(DataFormatError, match="decodes it anyway"):
        read_image(path)


# ---- 5: standard input and URLs are no inputs, said as typed ------------------------------------------
def test_standard_input_and_urls_are_refused_as_typed(tmp_path, model, capsys):
    code, _, err = run(["predict", "-", "https://example.com/a.jpg", "-o", tmp_path / "a.jsonl", "--model", model,
                        "--quiet"], capsys)
    assert code == 1, err
    assert "  -: reading from standard input is not supported; save the image to a file first" in err, err
    assert "  https://example.com/a.jpg: URLs are not read (nothing is downloaded); save the file first" in err, err
    assert "https:/example" not in err


def test_stream_refuses_a_url_as_typed(det):
    with pytest.raises(ValueError, match=r"^http://127\.0\.0\.1:9/x\.mp4: URLs are not read"):
        next(iter(det.stream("http://127.0.0.1:9/x.mp4")))
    with pytest.raises(ValueError, match="^-: reading from standard input is not supported"):
        next(iter(det.stream("-")))
