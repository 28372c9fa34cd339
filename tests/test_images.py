"""data.images.read_image, the one image-file reader: orientation, paths, depth, alpha, colour
spaces, the pixel limit and broken files."""
from __future__ import annotations

import re
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from facekeypoints.data.dataset import DataFormatError
from fakes import png_bomb
from facekeypoints.data.images import image_size, read_image
from facekeypoints.infer.inputs import to_rgb

RED = (255, 0, 0)


def _marked(h: int = 24, w: int = 40, channels: int = 3) -> np.ndarray:
    """Black (H, W) RGB(A) picture with a red 6x6 block in its top-left corner, opaque."""
    image = np.zeros((h, w, channels), np.uint8)
    image[:6, :6, :3] = RED
    if channels == 4:
        image[..., 3] = 255
    return image


def _with_orientation(path, pixels: np.ndarray, orientation: int, **save) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **save)


def _corner_is_red(image: np.ndarray, corner: str) -> bool:
    rows = slice(0, 4) if corner[0] == "t" else slice(-4, None)
    cols = slice(0, 4) if corner[1] == "l" else slice(-4, None)
    block = image[rows, cols].reshape(-1, 3).astype(int)
    return bool((np.abs(block - RED) < 40).all())


# Orientation 6: shown turned a quarter clockwise (top-left -> top-right); 8: anticlockwise.
@pytest.mark.parametrize("orientation, corner", [(6, "tr"), (8, "bl")])
def test_exif_orientation_turns_a_jpeg(tmp_path, orientation, corner):
    path = tmp_path / "phone.jpg"
    _with_orientation(path, _marked(), orientation, quality=95)
    image = read_image(path)
    assert image.shape == (40, 24, 3)
    assert _corner_is_red(image, corner)
    assert not _corner_is_red(image, "tl")


@pytest.mark.parametrize("suffix, save", [(".png", {}), (".webp", {"lossless": True})])
def test_exif_orientation_is_honoured_with_alpha_too(tmp_path, suffix, save):
    # Transparent files take OpenCV's IMREAD_UNCHANGED path, which ignores EXIF orientation.
    pixels = _marked(channels=4)
    pixels[-1, -1, 3] = 0  # bottom-right transparent: white once composited, then turned to bottom-left
    path = tmp_path / f"sticker{suffix}"
    _with_orientation(path, pixels, 6, **save)
    image = read_image(path)
    assert image.shape == (40, 24, 3)
    assert _corner_is_red(image, "tr")
    assert image[-1, 0].tolist() == [255, 255, 255] and image[-1, -1].tolist() == [0, 0, 0]


def test_non_ascii_path(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "фото ü.png"
    Image.fromarray(pixels).save(path)
    assert np.array_equal(read_image(path), pixels)


def test_16_bit_grey_is_scaled_to_8_bits(tmp_path):
    k = np.arange(255, dtype=np.uint16).reshape(15, 17)
    deep = k * 257
    deep[0, 0] = 65535
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), deep)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (15, 17, 3)
    expected = k.astype(np.uint8)
    expected[0, 0] = 255
    assert all(np.array_equal(image[..., c], expected) for c in range(3))


def test_transparent_pixels_are_composited_over_white(tmp_path):
    rgba = np.array([[[200, 0, 0, 0], [10, 20, 30, 255]],
                     [[0, 0, 0, 128], [90, 160, 250, 255]]], np.uint8)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(path).astype(int)
    assert image[0, 0].tolist() == [255, 255, 255]  # the hidden red does not show
    assert image[0, 1].tolist() == [10, 20, 30] and image[1, 1].tolist() == [90, 160, 250]
    assert np.abs(image[1, 0] - 127).max() <= 1  # half-transparent black: mid grey


def test_cmyk_jpeg_comes_back_rgb(tmp_path):
    colour = (200, 60, 30)
    path = tmp_path / "print.jpg"
    Image.new("RGB", (16, 16), colour).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = read_image(path)
    assert image.shape == (16, 16, 3)
    assert np.abs(image[8, 8].astype(int) - colour).max() <= 8


def test_grey_png_gives_three_equal_channels(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    path = tmp_path / "grey.png"
    assert cv2.imwrite(str(path), grey)
    image = read_image(path)
    assert image.shape == (6, 8, 3)
    assert all(np.array_equal(image[..., c], grey) for c in range(3))


@pytest.fixture
def bomb(tmp_path):
    """A 100-byte PNG declaring 50000 x 50000 RGB pixels (7.5 GB decoded)."""
    return png_bomb(tmp_path / "bomb.png")


def test_decompression_bomb_is_refused_from_its_header(bomb, monkeypatch):
    def no_decoding(*args):
        raise AssertionError("read_image decoded a file its header had refused")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"bomb\.png: image is 50000x50000 = 2500000000 pixels, "
                                              r"over the limit of \d+ pixels; a larger max_pixels \(predict.s --max-pixels\) reads it"):
        read_image(bomb)
    assert time.perf_counter() - start < 1.0
    # The size is read although Pillow's own bomb check would refuse this header; its limit is restored.
    assert image_size(bomb) == (50000, 50000) and Image.MAX_IMAGE_PIXELS == pillow_limit


def test_max_pixels_none_lifts_the_limit(tmp_path):
    path = tmp_path / "small.png"
    assert cv2.imwrite(str(path), np.full((10, 12, 3), 7, np.uint8))
    with pytest.raises(DataFormatError, match="120 pixels, over the limit of 100"):
        read_image(path, max_pixels=100)
    assert read_image(path, max_pixels=None).shape == (10, 12, 3)


def _truncated_jpeg(path):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noise)
    path.write_bytes(data.tobytes()[: data.size // 2])


@pytest.mark.parametrize("name, make", [
    ("cut.jpg", _truncated_jpeg),
    ("noise.jpg", lambda p: p.write_bytes(np.random.default_rng(2).bytes(4096))),
    ("empty.jpg", lambda p: p.write_bytes(b"")),
])
def test_broken_files_raise_data_format_error_naming_the_file(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    with pytest.raises(DataFormatError, match=re.escape(str(path)) + ": cannot decode image"):
        read_image(path)


def test_an_opencv_decoder_error_names_the_file(tmp_path, monkeypatch):
    # OpenCV raises (rather than returning None) for e.g. its own size limit when max_pixels=None.
    def fail(*args):
        raise cv2.error("OpenCV(4) loadsave.cpp:79: error: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS")

    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setattr(cv2, "imdecode", fail)
    with pytest.raises(DataFormatError, match=r"big\.png: cannot decode image: .*CV_IO_MAX_IMAGE_PIXELS"):
        read_image(path, max_pixels=None)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        read_image(tmp_path / "nothing.png")


def test_predictor_inputs_read_files_upright(tmp_path):
    path = tmp_path / "phone.jpg"
    _with_orientation(path, _marked(), 6, quality=95)
    rgb, source = to_rgb(str(path))
    assert rgb.shape == (40, 24, 3) and _corner_is_red(rgb, "tr") and source == str(path)
