"""Turn whatever the caller passes (path, numpy array, PIL image, tensor) into one RGB uint8 array.

RGB versus BGR is the classic mistake (face-alignment PR #239, #312), so the colour order of a
numpy array is an explicit argument: ``color="rgb"`` (default) or ``"bgr"`` for OpenCV frames.
Files and PIL images know their own colour order and ignore it.

Examples
--------
>>> import numpy as np
>>> bgr = np.zeros((4, 5, 3), np.uint8); bgr[..., 0] = 255          # blue in OpenCV's order
>>> rgb, source = to_rgb(bgr, color="bgr"); rgb[0, 0].tolist(), source
([0, 0, 255], '<array 4x5>')
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from facekeypoints.data.images import ALPHA_MODES, key_over_white, over_white, pil_over_white, read_image

__all__ = ["to_rgb", "opencv_path", "shown_name"]


def shown_name(path) -> str:
    r"""A file name as printed: bytes that are no UTF-8 (held as lone surrogates) as ``\xff``, control
    characters escaped (``one_line``), so it is one line that any terminal or log takes."""
    from facekeypoints.data.dataset import printable

    return printable(os.fsdecode(os.fspath(path)))


def opencv_path(path) -> str:
    """``str(path)`` for an OpenCV call that opens a file by name; a name that is not valid UTF-8
    (its bytes held as lone surrogates) is a ValueError naming it escaped: OpenCV crashes the
    process (a segmentation fault) on such a name instead of failing."""
    name = os.fspath(path)
    try:
        name.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{shown_name(name)}: its name is not valid UTF-8 text, which OpenCV cannot open; "
                         "rename the file") from None
    return name


def _from_tensor(tensor) -> np.ndarray:
    """(C, H, W) or (H, W) tensor, uint8 or float in [0, 1] (torchvision's convention) -> HWC uint8."""
    if getattr(tensor, "is_meta", False):  # torch's own error: "Cannot copy out of meta tensor"
        raise ValueError(f"a tensor on the meta device (shape {tuple(tensor.shape)}) holds no pixels; "
                         "pass one with data")
    layout = str(getattr(tensor, "layout", "torch.strided"))
    if layout != "torch.strided":  # numpy() refuses it, which read as if the dtype were wrong
        raise ValueError(f"a sparse tensor ({layout}) cannot be an image; pass a dense one: tensor.to_dense()")
    tensor = tensor.detach().cpu()
    if 0 in tensor.shape:  # checked here: transposed, its shape would not be the one the caller passed
        raise ValueError(f"an empty tensor of shape {tuple(tensor.shape)}; an image needs height and width > 0")
    try:
        arr = tensor.numpy()
    except TypeError:  # a dtype numpy lacks (bfloat16): floats are widened, as the model's input is float32
        if not tensor.is_floating_point():
            raise ValueError(f"a {tensor.dtype} tensor cannot be an image; pass uint8 or floats in [0, 1]") from None
        arr = tensor.float().numpy()
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8 and arr.size:
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"a {arr.dtype} tensor must hold floats in [0, 1] (or be uint8 0..255)")
        if not np.isfinite(arr).all():  # NaN passed the range check below and became black
            raise ValueError(f"a {arr.dtype} tensor holds NaN or infinite values; an image needs floats in [0, 1]")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"a {arr.dtype} tensor must hold floats in [0, 1] (or be uint8 0..255)")
        arr = np.round(arr * 255).astype(np.uint8)
    return arr


def _from_pil(image) -> np.ndarray:
    """A PIL image -> (H, W, 3) RGB uint8, the pixels ``read_image`` gives for its file. 16-bit and
    float modes are scaled as ``read_image`` scales the same file (65535 and 1.0 -> 255):
    ``convert("RGB")`` saturates them, so a 16-bit face came out white and no face was found. EXIF
    orientation is applied, as ``read_image`` applies it to the file: Image.open does not, and a
    phone photo on its side found no face. Transparency is blended over white, a 16-bit grey
    image's transparent level included."""
    from PIL import ImageOps

    _load(image)
    # exif_transpose gives a copy, which forgets the file's format and TIFF tags: a mode "I" image needs them
    source = getattr(image, "format", None), getattr(image, "tag_v2", None)
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        try:
            return key_over_white(_deep_grey(image, *source), image.info.get("transparency"))
        except ValueError as err:
            raise ValueError(f"a PIL image in mode {image.mode}: {err}") from None
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return pil_over_white(image)  # as read_image reads the file
    return np.asarray(image.convert("RGB"))


def _load(image) -> None:
    """Decode a PIL image's pixels now (``Image.open`` defers them), so that what goes wrong is said.

    A file closed before its pixels were read (the image used after its ``with`` block) failed with
    a bare AssertionError inside Pillow. An uncompressed TIFF turned a quarter by its orientation
    tag (5 to 8) came out scrambled: Pillow (13 at least) maps such a file's pixels from disk at
    the size it has after turning, so it is read here without the mapping (which Pillow skips for
    an image without a file name), as from a file object; other TIFFs load as before."""
    if not getattr(image, "tile", None):  # loaded already, or made in memory
        return
    if getattr(image, "fp", True) is None:
        name = getattr(image, "filename", "") or "a PIL image"
        raise ValueError(f"{name}: the PIL image's file was closed before its pixels were read (used after its "
                         "`with Image.open(...)` block); call image.load() inside the block, or pass the path")
    if getattr(image, "format", None) == "TIFF" and getattr(image, "filename", ""):
        saved, image.filename = image.filename, ""
        try:
            image.load()
        finally:
            image.filename = saved
    else:
        image.load()


def _deep_grey(image, file_format: str | None, tags) -> np.ndarray:
    """A PIL image in mode "I" (32-bit integers), "I;16*" or "F" -> its grey samples in a type
    ``to_uint8`` scales as ``read_image`` scales the file: 16-bit unsigned (65535 -> 255), uint8, or
    floats (1.0 -> 255). Mode "I" does not say the samples' range, so its source does: from a file,
    Pillow holds 16-bit samples in it (a PGM, scaled by its maxval to 0..65535; a 16-bit PNG in
    older Pillow), and a TIFF's tags give its depth; made in memory (``Image.fromarray`` of int32),
    values 0..255 are 8-bit ones. Anything else is a ValueError naming the ambiguity, not a
    picture near black (255 read as 16-bit) or white."""
    arr = np.asarray(image)
    if image.mode == "F" or image.mode == "I;16S" or not arr.size:
        return arr  # to_uint8 takes floats in 0..1 and refuses signed samples, as for the file
    if image.mode.startswith("I;16"):
        return arr.astype(np.uint16)  # "I;16B" is big-endian
    lo, hi = int(arr.min()), int(arr.max())
    if file_format == "TIFF" and tags is not None:
        bits, signed = int(max(np.ravel(tags.get(258, 32)))), 2 in np.ravel(tags.get(339, 1))
        if signed or bits > 16:  # as read_image refuses the file
            raise ValueError(f"{'int' if signed else 'uint'}{bits} pixels have no standard brightness range; "
                             "save the image with 8- or 16-bit unsigned pixels")
    if file_format:
        if lo < 0 or hi > 65535:
            raise ValueError(f"values {lo}..{hi} from a {file_format} file are outside the 16-bit range "
                             "its samples are held in")
        return arr.astype(np.uint16)
    if 0 <= lo and hi <= 255:
        return arr.astype(np.uint8)
    raise ValueError(f"32-bit integer values {lo}..{hi} and no file to say their range (16-bit samples? "
                     "other numbers?); convert it: image.convert(\"I;16\") for 16-bit samples, or pass a uint8 "
                     "array")


def _to_three_channels(arr: np.ndarray, color: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 in ``color`` order -> (H, W, 3) RGB (alpha over white)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"an image must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.shape[2] == 4:  # transparent pixels over white, as read_image reads a file
        return over_white(arr, order=color)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if color == "bgr" else np.ascontiguousarray(arr)


# a URL (scheme://...): nothing is downloaded, so one is refused as typed (Path() would turn // into /)
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def to_rgb(image, color: str = "rgb") -> tuple[np.ndarray, str]:
    """Any supported input -> ((H, W, 3) uint8 RGB, a description of the source for Result.source).

    Accepts a path (str, Path or another os.PathLike), a PIL image, a numpy uint8 array (H, W),
    (H, W, 3) or (H, W, 4) in ``color`` order, or a torch tensor (C, H, W) RGB (uint8, or float in [0, 1]). Transparent
    pixels (alpha, of any input kind) are blended over white, as ``read_image`` does for files.
    """
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):  # PathLike: Path and any object with __fspath__
        image = os.fsdecode(os.fspath(image))
        try:
            return read_image(image), image
        except FileNotFoundError:
            if URL.match(image):  # named as given: read_image's Path() turned http:// into http:/
                raise ValueError(f"{image}: URLs are not read (nothing is downloaded); save the image to a file "
                                 "first") from None
            if Path(image).is_dir():  # not "no such image file": it is there, and is a folder
                raise ValueError(f"{image}: is a folder, not an image; predict_paths() or `facekeypoints predict` "
                                 "reads the images in a folder") from None
            raise
    module = type(image).__module__
    if module.startswith("PIL."):
        if 0 in image.size:  # OpenCV failed on it with an assertion
            raise ValueError(f"a PIL image of size {image.size[0]}x{image.size[1]}; an image needs width and height > 0")
        return _from_pil(image), str(getattr(image, "filename", "") or "<PIL image>")
    if module.startswith("torch"):
        arr, color = _from_tensor(image), "rgb"
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise TypeError(f"cannot read an image from {type(image).__name__}; "
                        "pass a path, numpy array, PIL image or tensor")
    if arr.ndim < 2 or min(arr.shape[:2]) == 0:  # first: an empty float array is not a dtype problem
        raise ValueError(f"an image must be (H, W) or (H, W, C) with H, W > 0, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"numpy images must be uint8 (0..255), got {arr.dtype}; "
                         "convert with (img * 255).round().astype(np.uint8) if it holds floats in [0, 1]")
    return _to_three_channels(arr, color), f"<array {arr.shape[0]}x{arr.shape[1]}>"
