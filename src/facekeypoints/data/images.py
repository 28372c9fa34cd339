"""The one image-file reader: every photo the package opens goes through ``read_image``.

What it guarantees, whatever the file:
- (H, W, 3) RGB uint8, so callers never branch on colour order, depth or channel count;
- EXIF orientation applied (phone photos stand upright, as every viewer shows them);
- any path, non-ASCII included (the bytes are read by Python and decoded by OpenCV);
- 16-bit images scaled to 8 bits, grey expanded to RGB, CMYK JPEGs converted, and transparent
  pixels composited over white (as browsers show them), not left as whatever colour they hide;
- a pixel-count limit checked from the file's header before any pixel is decoded, so a small
  file declaring a huge image (a decompression bomb) is refused at once, not after gigabytes.

Pillow reads the header (it only parses the first bytes and never decodes here); OpenCV decodes.

Examples
--------
>>> import numpy as np, cv2, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
>>> _ = cv2.imwrite(path, np.full((4, 6), 200, np.uint8))
>>> image = read_image(path); image.shape, image.dtype, image[0, 0].tolist()
((4, 6, 3), dtype('uint8'), [200, 200, 200])
>>> read_image(path, max_pixels=10)
Traceback (most recent call last):
...
facekeypoints.data.dataset.DataFormatError: ...grey.png: image is 6x4 = 24 pixels, over the limit of 10 pixels (max_pixels)
"""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from facekeypoints.data.dataset import DataFormatError

__all__ = ["read_image", "image_size", "MAX_PIXELS"]

# 180 megapixels: above every camera photo we know of (phones reach 200 MP only in special
# modes), and about 0.5 GB as RGB. Pillow's own bomb limit is the same order (2 x 89.5 MP).
MAX_PIXELS = 180_000_000


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding pixels; (0, 0) if Pillow does not know the format."""
    return _header(path)[:2]


def _header(path: str | Path) -> tuple[int, int, bool]:
    """(width, height, has transparency) from the header; (0, 0, False) for formats Pillow does not know."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns about large images; the caller decides
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.size[0], im.size[1], im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return 0, 0, False


def read_image(path: str | Path, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB uint8 (see the module docstring for what is handled).

    ``max_pixels``: refuse images with more pixels than this (checked from the header before
    decoding); None: no limit. Errors are ``FileNotFoundError`` or ``DataFormatError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    w, h, transparent = _header(path)
    if max_pixels is not None and w * h > max_pixels:
        raise DataFormatError(path, f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} pixels "
                                    "(max_pixels)")
    data = np.fromfile(path, dtype=np.uint8)
    image = _decode(data, transparent) if data.size else None
    if image is None:
        raise DataFormatError(path, "cannot decode image (empty, truncated, or not an image format OpenCV reads)")
    if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:  # a format Pillow could not size
        raise DataFormatError(path, f"image is {image.shape[1]}x{image.shape[0]} pixels, over the limit of "
                                    f"{max_pixels} pixels (max_pixels)")
    return image


def _decode(data: np.ndarray, transparent: bool) -> np.ndarray | None:
    """Encoded bytes -> (H, W, 3) RGB uint8, or None when OpenCV cannot decode them."""
    # IMREAD_COLOR | IMREAD_ANYDEPTH applies EXIF orientation and keeps 16 bits; only an alpha
    # channel needs IMREAD_UNCHANGED, which ignores orientation (rare together: PNGs carry no EXIF).
    if transparent:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if image is not None and image.ndim == 3 and image.shape[2] == 4:
            return _over_white(_to_uint8(image))
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    return None if image is None else cv2.cvtColor(_to_uint8(image), cv2.COLOR_BGR2RGB)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit or float pixels -> uint8 over the same range (65535 -> 255, 1.0 -> 255)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    return (np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _over_white(bgra: np.ndarray) -> np.ndarray:
    """(H, W, 4) BGRA uint8 -> (H, W, 3) RGB with transparent pixels blended over white."""
    alpha = bgra[..., 3:].astype(np.float32) / 255.0
    bgr = bgra[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return cv2.cvtColor(bgr.round().astype(np.uint8), cv2.COLOR_BGR2RGB)
