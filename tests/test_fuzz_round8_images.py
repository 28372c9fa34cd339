"""Round 8 of fresh inputs for the image readers: every input kind gives the pixels of the plain
file (transparency over white, orientation applied, brightness scaled as ``read_image`` scales
it), or a one-line error naming what is wrong (synthetic files only, a few pixels each).

Cases:
- F2  an RGBA TIFF's colours were multiplied by alpha twice (OpenCV's 8-bit TIFF reading gives
      them premultiplied, and a TIFF's associated alpha stores them so), 8- and 16-bit, and a
      grey TIFF with associated alpha ("La") was read without its alpha, or refused from Pillow;
- F3  a 16-bit grey PNG's transparent level (tRNS): black from the file, all white from Pillow;
- F4  an uncompressed RGBA or grey TIFF turned a quarter (orientation 5 to 8) came scrambled out
      of ``Image.open`` (Pillow maps its pixels at the turned size);
- F5  a PIL mode "I" image of 8-bit values was read as 16-bit (near black); other in-memory
      values are an error naming the ambiguity, a 16-bit PGM from its file is read as the file is;
- F6  float TIFFs in 0..1 were refused from a path (grey: "cannot decode"; RGB: "size cannot be
      read", Pillow cannot size it): read, with the pixel limit still from the header;
- F9  a PIL image used after its ``with`` block, a meta or sparse tensor, an os.PathLike object:
      a clear error, or (PathLike) read as the path it is;
- F14 Result.draw/save took float images (255-valued marks, a black file and OpenCV's console
      warning): refused as ``to_rgb`` refuses them; an RGBA image was saved with red and blue swapped;
- F15b a capture's BGRA frame is blended over white; README says a video's alpha is not read.
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.images import _orient, decode_image, read_image
from facekeypoints.infer.inputs import to_rgb
from facekeypoints.infer.results import Result
from facekeypoints.infer.video import _frame_rgb
from facekeypoints.schema import load_schema

README = Path(__file__).resolve().parents[1] / "README.md"
COLOUR, ALPHA = (208, 133, 53), 128
OVER_WHITE = [231, 194, 154]  # COLOUR at ALPHA over white: c * a / 255 + 255 - a


def _tiff(path, samples: np.ndarray, *, extra: int | None = None, orientation: int | None = None) -> Path:
    """A one-strip, uncompressed little-endian TIFF of ``samples`` (H, W) or (H, W, C), written by
    hand: ExtraSamples, SampleFormat and Orientation as given (no TIFF writer is a dependency)."""
    samples = np.ascontiguousarray(samples, samples.dtype.newbyteorder("<"))
    h, w = samples.shape[:2]
    spp = 1 if samples.ndim == 2 else samples.shape[2]
    entries = {256: (4, [w]), 257: (4, [h]), 258: (3, [8 * samples.dtype.itemsize] * spp), 259: (3, [1]),
               262: (3, [2 if spp >= 3 else 1]), 273: (4, [0]), 277: (3, [spp]), 278: (4, [h]),
               279: (4, [samples.nbytes]), 284: (3, [1]),
               339: (3, [{"u": 1, "i": 2, "f": 3}[samples.dtype.kind]] * spp)}
    if orientation is not None:
        entries[274] = (3, [orientation])
    if extra is not None:
        entries[338] = (3, [extra])
    outside = 8 + 2 + 12 * len(entries) + 4  # where values over 4 bytes go, after the directory
    blobs = b""
    fields = []
    for tag in sorted(entries):
        kind, values = entries[tag]
        raw = struct.pack("<" + ("H" if kind == 3 else "I") * len(values), *values)
        if len(raw) > 4:
            fields.append((tag, kind, len(values), struct.pack("<I", outside + len(blobs))))
            blobs += raw + b"\0" * (len(raw) % 2)
        else:
            fields.append((tag, kind, len(values), raw.ljust(4, b"\0")))
    pixels_at = outside + len(blobs)
    directory = struct.pack("<H", len(fields)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<I", pixels_at) if tag == 273 else value)
        for tag, kind, count, value in fields) + b"\0\0\0\0"
    Path(path).write_bytes(b"II*\0" + struct.pack("<I", 8) + directory + blobs + samples.tobytes())
    return Path(path)


def _rgba(depth: int, associated: bool) -> np.ndarray:
    """4x4 pixels of COLOUR at ALPHA, at 8 or 16 bits, colours premultiplied when ``associated``."""
    scale = 1 if depth == 8 else 257
    colour, alpha = np.array(COLOUR) * scale, ALPHA * scale
    if associated:
        colour = np.round(colour * alpha / (255 * scale))
    pixels = np.zeros((4, 4, 4), np.uint8 if depth == 8 else np.uint16)
    pixels[..., :3], pixels[..., 3] = colour, alpha
    return pixels


def _close(a, b, tol: int = 1) -> bool:
    return int(np.abs(np.asarray(a, int) - np.asarray(b, int)).max()) <= tol


# ---- F2: a TIFF's alpha, unassociated and associated ---------------------------------------------------
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("extra", [2, 1], ids=["unassociated", "associated"])
def test_an_rgba_tiff_blends_its_colour_once(tmp_path, depth, extra):
    path = _tiff(tmp_path / "a.tif", _rgba(depth, associated=extra == 1), extra=extra)
    assert _close(read_image(path)[0, 0], OVER_WHITE)
    assert _close(decode_image(path.read_bytes())[0, 0], OVER_WHITE)
    with Image.open(path) as im:
        assert _close(to_rgb(im)[0][0, 0], OVER_WHITE)


def test_a_grey_tiff_with_associated_alpha_is_blended_from_the_file_and_from_pillow(tmp_path):
    grey = np.zeros((3, 5, 2), np.uint8)
    grey[..., 0], grey[..., 1] = 104, ALPHA  # 208 premultiplied by 128/255
    path = _tiff(tmp_path / "la.tif", grey, extra=1)
    assert _close(read_image(path)[0, 0], [231] * 3)
    with Image.open(path) as im:  # Pillow's "La" converts to nothing but "LA"
        assert _close(to_rgb(im)[0][0, 0], [231] * 3)


def test_a_16_bit_grey_tiff_with_alpha_is_refused_in_one_line(tmp_path):
    grey = np.zeros((3, 5, 2), np.uint16)
    grey[..., 0], grey[..., 1] = 50000, 30000
    path = _tiff(tmp_path / "la16.tif", grey, extra=2)
    with pytest.raises(DataFormatError, match=r"la16\.tif: cannot use image: its transparency cannot be read"):
        read_image(path)


# ---- F3: a 16-bit grey PNG's transparent level ------------------------------------------------------------
@pytest.mark.parametrize("key", [7, 0])
def test_a_16_bit_grey_png_key_is_white_from_the_file_and_from_pillow(tmp_path, key):
    grey = np.full((4, 6), 40000, np.uint16)
    grey[:, :2] = key
    path = tmp_path / "g16key.png"
    Image.fromarray(grey).save(path, transparency=key)
    want = [255, 255, 156, 156]  # 40000 / 257 rounds to 156
    assert read_image(path)[0, :4, 0].tolist() == want
    with Image.open(path) as im:
        assert to_rgb(im)[0][0, :4, 0].tolist() == want


def test_an_8_bit_grey_png_key_is_unchanged(tmp_path):
    grey = np.full((2, 4), 90, np.uint8)
    grey[:, 0] = 3
    path = tmp_path / "g8key.png"
    Image.fromarray(grey).save(path, transparency=3)
    assert read_image(path)[0, :, 0].tolist() == [255, 90, 90, 90]
    with Image.open(path) as im:
        assert to_rgb(im)[0][0, :, 0].tolist() == [255, 90, 90, 90]


# ---- F4: a TIFF turned a quarter, through Image.open ------------------------------------------------------
@pytest.mark.parametrize("kind", ["rgba", "grey", "grey16"])
@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_a_turned_tiff_from_pillow_equals_the_file(tmp_path, kind, orientation):
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if kind == "rgba":
        samples, extra = np.dstack([stored, np.full((5, 7), 255, np.uint8)]), 2
    else:
        stored = np.repeat(stored[..., :1], 3, axis=2)
        samples, extra = stored[..., 0], None
        if kind == "grey16":
            samples = samples.astype(np.uint16) * 257
    path = _tiff(tmp_path / "turned.tif", samples, extra=extra, orientation=orientation)
    want = _orient(stored, orientation)
    assert np.array_equal(read_image(path), want)
    assert np.array_equal(to_rgb(Image.open(path))[0], want)
    assert np.array_equal(to_rgb(Image.open(path.open("rb")))[0], want)  # from a file object too


# ---- F5: PIL mode "I" ----------------------------------------------------------------------------------------
def test_a_mode_i_image_of_8_bit_values_reads_as_the_uint8_array():
    grey = np.arange(0, 256, 17, dtype=np.uint8).reshape(2, 8)
    image = Image.fromarray(grey.astype(np.int32))
    assert image.mode == "I"
    assert np.array_equal(to_rgb(image)[0], to_rgb(grey)[0])


@pytest.mark.parametrize("values", [[0, 300], [-1, 3]])
def test_a_mode_i_image_of_other_values_names_the_ambiguity(values):
    with pytest.raises(ValueError, match=r"mode I: 32-bit integer values .* no file to say their range.*I;16"):
        to_rgb(Image.fromarray(np.array([values], np.int32)))


def test_a_16_bit_pgm_through_pillow_reads_as_its_file(tmp_path):
    path = tmp_path / "deep.pgm"
    path.write_bytes(b"P5\n3 1\n1000\n" + np.array([0, 500, 1000], ">u2").tobytes())
    with Image.open(path) as im:
        assert im.mode == "I"
        assert np.array_equal(to_rgb(im)[0], read_image(path))
    assert read_image(path)[0, :, 0].tolist() == [0, 128, 255]
    with Image.open(path) as im, pytest.raises(ValueError, match="no file to say their range"):
        to_rgb(im.rotate(180))  # a copy forgets its file
    with Image.open(path) as im:
        assert to_rgb(im.rotate(180).convert("I;16"))[0][0, :, 0].tolist() == [255, 128, 0]


# ---- F6: float TIFFs ------------------------------------------------------------------------------------------
def test_float_tiffs_in_0_to_1_are_read_from_a_path(tmp_path):
    grey = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    rgb = np.dstack([grey, 1 - grey, np.full_like(grey, 0.5)])
    want_grey = np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    assert np.array_equal(read_image(_tiff(tmp_path / "g.tif", grey)), want_grey)
    assert np.array_equal(read_image(_tiff(tmp_path / "rgb.tif", rgb)), (rgb * 255).round().astype(np.uint8))
    cv2.imwrite(str(tmp_path / "cv.tif"), rgb[..., ::-1])  # OpenCV's own float TIFF: Pillow cannot size it
    assert np.array_equal(read_image(tmp_path / "cv.tif"), (rgb * 255).round().astype(np.uint8))
    turned = read_image(_tiff(tmp_path / "t.tif", grey, orientation=6))
    assert np.array_equal(turned, _orient(want_grey, 6))


def test_float_tiffs_keep_the_pixel_limit_from_their_header(tmp_path):
    cv2.imwrite(str(tmp_path / "cv.tif"), np.zeros((20, 30, 3), np.float32))
    with pytest.raises(DataFormatError, match=r"30x20 = 600 pixels, over the limit of 500"):
        read_image(tmp_path / "cv.tif", max_pixels=500)
    with pytest.raises(DataFormatError, match=r"decoded as 32-bit RGB"):  # 4 bytes a sample
        read_image(tmp_path / "cv.tif", max_pixels=1000)


def test_a_float_tiff_outside_0_to_1_is_refused_in_one_line(tmp_path):
    path = _tiff(tmp_path / "hdr.tif", np.full((3, 4), 2.5, np.float32))
    with pytest.raises(DataFormatError, match=r"hdr\.tif: cannot use image: float32 pixels outside 0\.\.1"):
        read_image(path)


def test_a_float_tiff_with_alpha_is_blended(tmp_path):
    rgba = np.zeros((2, 2, 4), np.float32)
    rgba[..., :3], rgba[..., 3] = np.array(COLOUR) / 255, ALPHA / 255
    assert _close(read_image(_tiff(tmp_path / "fa.tif", rgba, extra=2))[0, 0], OVER_WHITE)


# ---- F9: inputs given a clear error, or read --------------------------------------------------------------
def test_a_pil_image_used_after_its_with_block_says_so(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (4, 3), (10, 20, 30)).save(path)
    with Image.open(path) as image:
        pass
    with pytest.raises(ValueError, match=r"p\.png: the PIL image's file was closed before its pixels were read"):
        to_rgb(image)
    with Image.open(path) as loaded:
        loaded.load()
    assert to_rgb(loaded)[0][0, 0].tolist() == [10, 20, 30]  # loaded inside the block: still fine


def test_meta_and_sparse_tensors_are_named():
    with pytest.raises(ValueError, match="meta device"):
        to_rgb(torch.empty((3, 8, 8), dtype=torch.uint8, device="meta"))
    with pytest.raises(ValueError, match=r"sparse tensor \(torch\.sparse_coo\).*to_dense"):
        to_rgb(torch.zeros((3, 8, 8), dtype=torch.uint8).to_sparse())


def test_an_os_pathlike_object_is_read_as_its_path(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (4, 3), (10, 20, 30)).save(path)

    class Where:
        def __fspath__(self):
            return str(path)

    rgb, source = to_rgb(Where())
    assert rgb[0, 0].tolist() == [10, 20, 30] and source == str(path)


# ---- F14: draw and save take uint8 only -----------------------------------------------------------------
def _result(color: str = "rgb") -> Result:
    return Result(image_size=(16, 20), faces=[], schema=load_schema("nose1"), color=color)


@pytest.mark.parametrize("bad, message", [(np.zeros((16, 20, 3), np.float32), "needs a uint8 image"),
                                          (np.zeros((16, 20, 2), np.uint8), r"needs an image of shape")])
def test_draw_and_save_refuse_what_to_rgb_refuses(tmp_path, bad, message):
    with pytest.raises(ValueError, match=f"draw\\(\\) {message}"):
        _result().draw(bad)
    with pytest.raises(ValueError, match=f"save\\(\\) {message}"):
        _result().save(tmp_path / "x.png", image=bad)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("color", ["rgb", "bgr"])
def test_an_rgba_image_is_drawn_and_saved_over_white_in_its_colours(tmp_path, color):
    four = np.zeros((16, 20, 4), np.uint8)
    four[..., 0], four[..., 3] = 255, 255  # red in RGBA, blue in BGRA
    four[0, 1, 3] = 0
    result = _result(color)
    drawn = result.draw(four)
    assert drawn.shape == (16, 20, 3) and drawn[0, 0].tolist() == [255, 0, 0] and drawn[0, 1].tolist() == [255] * 3
    result.save(tmp_path / "x.png", image=four)
    want = [255, 0, 0] if color == "rgb" else [0, 0, 255]
    assert read_image(tmp_path / "x.png")[0, 0].tolist() == want


# ---- F15b: video alpha ------------------------------------------------------------------------------------------
def test_a_bgra_frame_is_blended_over_white_and_the_readme_says_video_alpha_is_not_read():
    frame = np.zeros((4, 5, 4), np.uint8)
    frame[..., 0], frame[..., 3] = 200, 255
    frame[0, 0, 3] = 0
    rgb = _frame_rgb(frame, "clip.mov", 0)
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [0, 0, 200]
    text = " ".join(README.read_text().split())
    assert "a video's alpha channel is not read" in text
