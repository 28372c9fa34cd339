"""The one image-file reader: every photo the package opens goes through ``read_image``.

What it guarantees, whatever the file:
- (H, W, 3) RGB uint8, so callers never branch on colour order, depth or channel count;
- EXIF orientation applied (phone photos stand upright, as every viewer shows them);
- any path, non-ASCII included (the bytes are read by Python and decoded by OpenCV);
- 16-bit images scaled to 8 bits, PGM/PPM scaled by their declared white level (maxval: a
  12-bit PGM is not read nearly black), grey expanded to RGB, CMYK JPEGs converted, and transparent
  pixels composited over white (as browsers show them), not left as whatever colour they hide
  (a TIFF's associated, premultiplied alpha included, and a 16-bit grey PNG's transparent level);
- float TIFFs holding 0..1 scaled to 0..255 (other floats are an error, not a guessed picture);
- a pixel-count limit checked from the file's header before any pixel is decoded, so a small
  file declaring a huge image (a decompression bomb) is refused at once, not after gigabytes; and,
  from the same header, a limit on the decoded size, since 16 bits and alpha take more memory a pixel;
- a multi-page TIFF or an animated GIF, WebP or PNG gives its first page or frame, with a warning
  naming the file and how many there are.

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
facekeypoints.data.dataset.DataFormatError: ...grey.png: image is 6x4 = 24 pixels, over the limit of 10 pixels; a larger max_pixels (predict's --max-pixels) reads it
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from facekeypoints.data.dataset import DataFormatError, user_path
from facekeypoints.data.walk import unreadable

__all__ = ["read_image", "decode_image", "image_size", "image_orientation", "decoder_output", "decoder_warnings",
           "over_white", "key_over_white", "pil_over_white", "to_uint8", "MAX_PIXELS", "OVER_LIMIT", "QUARTER_TURNS"]

OVER_LIMIT = "over the limit of"  # in every pixel-limit error: a caller tells them from undecodable files

# 100 megapixels: above nearly every camera photo (phones' 108 and 200 MP modes aside: raise it
# for those), and what keeps a whole `predict` run under 1 GB: with drawing, a 100 MP JPEG peaked
# at 0.69 GB RSS, a 100 MP BMP at 0.98 GB, a small photo at 0.11 GB (`/usr/bin/time -f %M
# facekeypoints predict`, ONNX Runtime, cached export); OpenCV's decoder alone holds two copies of
# the pixels (0.6 GB).
# Pillow's own bomb limit is the same order (89.5 MP warns).
MAX_PIXELS = 100_000_000
_PILLOW_LIMIT = threading.Lock()
# libpng's default user limit on a side (PNG_USER_WIDTH_MAX, and the same for height), which OpenCV
# keeps: a valid 1000001 x 1 PNG fails to decode with "Invalid IHDR data"
PNG_MAX_SIDE = 1_000_000
# Formats whose further frames are other pictures (pages, animation); a phone JPEG's second image
# (MPO) is a preview of the same photo, and an icon's are the same icon at other sizes.
_MULTI_FRAME = {"TIFF": "pages", "GIF": "frames", "WEBP": "frames", "PNG": "frames"}


class _Header(NamedTuple):
    """What the header tells before any pixel is decoded; (0, 0, ...) when Pillow does not know the format."""
    width: int  # as stored, before the orientation is applied
    height: int
    transparent: bool = False
    orientation: int = 1  # EXIF, 1..8
    sample_bytes: int = 1  # per channel, as OpenCV decodes it: 2 for 16-bit files
    maxval: int | None = None  # a PGM/PPM's white level when it is not 255 or 65535, or the file is plain text
    frames: int = 1  # pages or animation frames (only those of _MULTI_FRAME formats are counted)
    format: str = ""
    lab: bool = False  # CIELab colours (a TIFF), which OpenCV decodes as if they were RGB
    associated: bool = False  # a TIFF whose alpha is associated (ExtraSamples 1): colours stored premultiplied
    unchanged: bool = False  # a TIFF of floats or 32-bit or signed integers, which OpenCV decodes only unchanged
    refused: str = ""  # why Pillow could not parse the header (its own words), when it could not
    said: tuple[str, ...] = ()  # what Pillow logged or warned while parsing it (``_pillow_words``)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as ``read_image`` returns the picture, i.e. with its EXIF orientation applied
    (a quarter turn swaps them), from the file's header without decoding pixels; (0, 0) if Pillow
    does not know the format."""
    header = _header(path)
    return (header.height, header.width) if header.orientation in QUARTER_TURNS else (header.width, header.height)


def image_orientation(path: str | Path) -> int:
    """The file's EXIF orientation 1..8 (1: as stored), which ``read_image`` applies."""
    return _header(path).orientation


QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that show the picture turned 90 degrees: width and height swap


def _header(path) -> _Header:
    """What the file's header says (see ``_Header``); Pillow parses it, decoding no pixels."""
    with _pillow_words() as words:
        header = _parse_header(path)
    return header._replace(said=tuple(words))


_PILLOW_WORDS = threading.RLock()


@contextlib.contextmanager
def _pillow_words():
    """Pillow's log lines while the block runs (its plugins log a damaged header's faults: "More
    samples per pixel than can be decoded: 2048"), kept for the file's own message: on stderr they
    would name no file. Yields a list that holds them once the block ends. Only this thread's lines
    are kept (others pass on as they came); the handler swap is process-wide, hence the lock.
    Pillow's warnings ("Corrupt EXIF data") are not caught here: ``warnings.catch_warnings`` swaps
    the filters of every thread, and the service reads images in several, so they reach the caller,
    which names them (``predict``'s folder runs do)."""
    words: list[str] = []
    logger, me = logging.getLogger("PIL"), threading.get_ident()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == me and record.levelno >= logging.WARNING:
                words.append(record.getMessage())
            elif logger.parent is not None:  # as propagation would have passed it on
                logger.parent.handle(record)

    keep = Keep()
    with _PILLOW_WORDS:
        logger.addHandler(keep)
        propagate, logger.propagate = logger.propagate, False
        try:
            yield words
        finally:
            logger.removeHandler(keep)
            logger.propagate = propagate


def _parse_header(path) -> _Header:
    """``_header``, with Pillow's words going where Pillow sends them."""
    from PIL import UnidentifiedImageError

    try:
        with _open(path) as im:
            (w, h), transparent = im.size, im.mode in ALPHA_MODES or "transparency" in im.info
            raw_exif = im.info.get("exif")  # raw bytes: getexif() on a PNG decodes it
            tiff_orientation = im.tag_v2.get(274, 1) if im.format == "TIFF" else None
            maxval, bits, kind = _maxval(im), _bits(im), im.format or ""
            plain = kind == "PPM" and bool(im.tile) and im.tile[0].codec_name == "ppm_plain"  # OpenCV clips its samples
            frames = _frames(im)
            lab = im.mode == "LAB"
            associated, unchanged = _tiff_samples(im.tag_v2) if kind == "TIFF" else (False, False)
    except Exception as err:  # noqa: BLE001 - Pillow's plugins fail in many ways (see _frames)
        header = _png_header(path)
        header = header if header.width else _tiff_header(path)
        text = str(err).strip()
        why = "" if isinstance(err, UnidentifiedImageError) else (text.splitlines()[0][:200] if text
                                                                   else type(err).__name__)
        return header._replace(refused=why)
    if kind == "PNG":  # Pillow shows a 16-bit RGB PNG as 8-bit "RGB": IHDR has the depth
        bits = 8 * _png_header(path).sample_bytes
    elif maxval is not None:
        bits = 8 if maxval <= 255 else 16
    orientation = _orientation(raw_exif) if tiff_orientation is None else _valid_orientation(tiff_orientation)
    if tiff_orientation is not None and orientation in QUARTER_TURNS:  # Pillow gives a TIFF's size turned already
        w, h = h, w
    return _Header(w, h, transparent, orientation, _sample_bytes(bits),
                   None if maxval in (None, 255, 65535) and not plain else maxval, frames, kind, lab,
                   associated, unchanged)


# Pillow's modes with an alpha channel: "RGBa" and "La" are its premultiplied ones (a TIFF's associated alpha)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # Pillow modes that carry transparency


def _sample_bytes(bits: int) -> int:
    return 1 if bits <= 8 else 2 if bits <= 16 else 4 if bits <= 32 else 8


def _tiff_samples(tags) -> tuple[bool, bool]:
    """(associated alpha, samples OpenCV decodes only unchanged) from a TIFF directory: ExtraSamples
    (338) 1 is alpha stored premultiplied (2: unassociated, 0: unspecified data); SampleFormat (339)
    3 is floats, 2 signed integers, and BitsPerSample (258) over 16 are 32- or 64-bit samples."""
    try:
        extra = [int(v) for v in np.ravel(tags.get(338, ()))]
        formats = [int(v) for v in np.ravel(tags.get(339, 1))]
        bits = int(max(np.ravel(tags.get(258, 1))))
    except (TypeError, ValueError):
        return False, False
    return bool(extra) and extra[0] == 1, 2 in formats or 3 in formats or bits > 16


def _tiff_header(source) -> _Header:
    """What a TIFF's first directory says when Pillow will not open the file (it has no mode for
    float RGB, which OpenCV decodes); (0, 0, ...) for anything else. Pillow's own tag reader parses
    the directory, so the pixel limit holds for these files too."""
    from PIL import TiffImagePlugin

    try:
        with contextlib.ExitStack() as stack:
            f = source if hasattr(source, "seek") else stack.enter_context(open(source, "rb"))
            f.seek(0)
            head = f.read(8)
            if head[:4] not in (b"II*\0", b"MM\0*"):  # classic TIFF only (BigTIFF's header is longer)
                return _Header(0, 0)
            tags = TiffImagePlugin.ImageFileDirectory_v2(head)
            f.seek(tags.next)
            tags.load(f)
            width, height = int(tags[256]), int(tags[257])
            bits = int(max(np.ravel(tags.get(258, 1))))
            extra = [int(v) for v in np.ravel(tags.get(338, ()))]
            orientation = _valid_orientation(tags.get(274, 1))
    except (KeyError, TypeError, ValueError, OSError, SyntaxError, EOFError, struct.error):
        return _Header(0, 0)
    if width <= 0 or height <= 0:
        return _Header(0, 0)
    associated, unchanged = _tiff_samples(tags)
    return _Header(width, height, bool(extra) and extra[0] in (1, 2), orientation, _sample_bytes(bits),
                   format="TIFF", associated=associated, unchanged=unchanged)


def _open(source):
    """``PIL.Image.open`` without Pillow's own bomb check, which would refuse a huge header without
    telling its size: the limit is ours to apply (max_pixels). Its switch is process-wide: lifted
    only while a header is parsed."""
    from PIL import Image

    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _maxval(im) -> int | None:
    """A PGM/PPM's declared white level, where Pillow keeps it: in its ppm decoders' arguments
    (rawmode, maxval). None for the raw decoder it uses at 255 (and grey 65535), bitmaps and PFM."""
    if im.format != "PPM" or im.mode not in ("L", "I", "RGB") or not im.tile:
        return None
    args = im.tile[0].args
    return args[1] if isinstance(args, tuple) and len(args) == 2 else None


def _bits(im) -> int:
    """Bits per sample as stored, from Pillow's mode and, for TIFF, BitsPerSample: Pillow shows a
    16-bit RGB TIFF as 8-bit "RGB" (PNG and PPM with a maxval are sized by ``_header``)."""
    if im.format == "TIFF":
        return int(max(np.ravel(im.tag_v2.get(258, 8))))  # one per channel
    if im.format == "PPM" and im.mode == "I":  # a 16-bit PGM, held in 32-bit integers
        return 16
    return {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}.get(im.mode, 8)


# Pillow's format plugins, parsing a damaged file, raise more than the documented OSError and
# ValueError: TypeError ("Missing dimensions", a TIFF's next page), IndexError (a GIF's LZW data),
# RuntimeError (AVIF), NotImplementedError (DDS), KeyError, struct.error... A list of them never
# held up against a fuzzer, so a header Pillow fails on, for any reason, is a header it cannot read.


def _frames(im) -> int:
    """Pages or animation frames of a ``_MULTI_FRAME`` file, 1 for other formats; 1 too when Pillow
    cannot count them (a damaged later page), as OpenCV still decodes the first."""
    if im.format not in _MULTI_FRAME:
        return 1
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - any kind (see above), from a later page
        return 1


def _png_header(source) -> _Header:
    """What a PNG's IHDR chunk says (size, alpha, bit depth), which Pillow will not read when a later
    chunk is damaged or oversized (a bad CRC, a zTXt over its limit) though OpenCV decodes the
    pixels; (0, 0, ...) for anything else. Written by hand: the chunk is 8 fixed fields."""
    if hasattr(source, "seek"):
        source.seek(0)
        head = source.read(26)
    else:
        with open(source, "rb") as f:
            head = f.read(26)
    if len(head) < 26 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return _Header(0, 0)
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    # colour types 4 and 6 carry alpha; a tRNS chunk may add it later, which only Pillow's path sees
    return _Header(width, height, head[25] in (4, 6), 1, 2 if head[24] == 16 else 1, format="PNG")


def _check_png_chunks(path, source, size: int) -> None:
    """DataFormatError when a PNG chunk's declared length runs past the end of the file (or over
    the format's 2**31 - 1): libpng, inside OpenCV, allocates the declared length before it finds
    the bytes missing (4 GB for a 5 KB file whose IDAT says 0xFFFFFFFF), and OpenCV decodes no
    truncated PNG anyway. Walks the chunks' 8-byte headers, reading no chunk data."""
    with contextlib.ExitStack() as stack:
        f = source if hasattr(source, "seek") else stack.enter_context(open(source, "rb"))
        offset = 8  # after the signature
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(8)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            left = max(size - offset - 12, 0)  # the chunk's data, between its header and its CRC
            if length > min(left, 2**31 - 1):
                name = kind.decode("ascii") if kind.isalpha() else "0x" + kind.hex()
                raise DataFormatError(path, f"cannot decode image (damaged or truncated): its PNG chunk {name} at "
                                            f"byte {offset} declares {length} bytes, but the file has {left} left")
            if kind == b"IEND":
                return
            offset += 12 + length


def _orientation(raw_exif: bytes | None) -> int:
    """EXIF orientation 1..8 from raw EXIF bytes; 1 (as stored) when absent or unreadable."""
    from PIL import Image

    if not raw_exif:
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw_exif)
        value = exif.get(0x0112, 1)
    except Exception:  # a broken EXIF block leaves the picture as stored, as viewers do
        return 1
    return _valid_orientation(value)


def _valid_orientation(value) -> int:
    """An orientation tag's value as 1..8; 1 (as stored) for anything else."""
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def read_image(path: str | Path, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB uint8 (see the module docstring for what is handled).

    ``max_pixels``: refuse images with more pixels than this (checked from the header before
    decoding); None: no limit. Errors are ``FileNotFoundError`` or ``DataFormatError`` naming the file,
    a file the system will not read (no permission, an I/O error) included.
    """
    path = user_path(path)
    _check_max_pixels(max_pixels)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
        return _read(path, path, lambda: np.fromfile(path, dtype=np.uint8), path.stat().st_size, max_pixels)
    except FileNotFoundError:
        raise
    except OSError as err:
        if err.filename is not None and str(err.filename) != str(path):  # e.g. the decoder's temporary file
            raise
        raise unreadable(path, err) from None


def _check_max_pixels(max_pixels) -> None:
    """None or an int of at least 1: NaN compares False with every size (no limit at all), and -1 or
    True would refuse every image as over a limit nobody meant."""
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"max_pixels must be an int or None (no limit), got {type(max_pixels).__name__} "
                        f"{max_pixels!r}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, or None for no limit, got {max_pixels}")


def decode_image(data: bytes, *, max_pixels: int | None = MAX_PIXELS, name: str = "<upload>",
                 notes: list | None = None) -> np.ndarray:
    """``read_image`` for encoded bytes held in memory (an upload): the same checks and result;
    errors name ``name``. With ``notes`` (a list), what would be a warning (pages left unused) is
    appended there instead, without advice: a server thread tells its client, not the console."""
    return _read(name, io.BytesIO(data), lambda: np.frombuffer(data, dtype=np.uint8), len(data), max_pixels, notes)


def _read(path, source, load, size: int, max_pixels: int | None, notes: list | None = None) -> np.ndarray:
    """The checks and decoding behind ``read_image`` and ``decode_image``: ``source`` is what Pillow
    reads the header from (a path or a file object), ``load()`` gives the encoded bytes."""
    header = _header(source)
    if header.format == "PNG" and max(header.width, header.height) > PNG_MAX_SIDE:  # what libpng would refuse
        raise DataFormatError(path, f"the PNG is {header.width}x{header.height} pixels; OpenCV's PNG decoder "
                                    f"(libpng) reads at most {PNG_MAX_SIDE} pixels a side", hint="shrink or split it")
    if max_pixels is not None:
        _check_size(path, header, size, max_pixels, source)
    if header.format == "PNG":
        _check_png_chunks(path, source, size)
    said: list[str] = []  # what the decoder printed: a warning if the image is read, part of the error if not
    try:
        # every decode, libjpeg's too ("Corrupt JPEG data: ..."), writes to fd 2 only inside the capture:
        # outside it, its lines would land in another thread's capture and be credited to that image
        with decoder_output() as said:
            said += header.said  # Pillow's words on the header: the file's too
            # OpenCV returns such PGM/PPM files' stored values unscaled (binary ones; ASCII up to 255
            # clipped), and a CIELab TIFF's colours as if they were RGB: Pillow decodes both right
            if header.maxval or header.lab:
                with _pillow_words() as words:
                    image = _decode_with_pillow(source)
                said += words
            else:
                data = load()
                image = _decode(data, header) if data.size else None
    except cv2.error as err:  # e.g. OpenCV's own size limit when max_pixels=None
        # its last line, without the "OpenCV(4.x) /path/of/its/build/loadsave.cpp:99: error:" prefix
        why = re.sub(r"^OpenCV\([^)]*\) \S+: error: ", "", str(err).strip().splitlines()[-1])
        raise DataFormatError(path, f"cannot decode image: {why}{_decoder_said(said)}") from None
    except ValueError as err:  # pixels of a type with no brightness range (to_uint8)
        raise DataFormatError(path, f"cannot use image: {err}{_decoder_said(said)}") from None
    if image is None:  # a decoder that said why found its format: the file is damaged, not of another kind
        raise DataFormatError(path, "cannot decode image" + (f" (damaged or truncated){_decoder_said(said)}" if said
                                    else " (empty, truncated, or not an image format OpenCV reads)"))
    if said:  # read despite what the decoder said
        _tell(_decoder_note(path, said), notes, "the image was read; check it looks right")
    if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:  # a format Pillow could not size
        raise DataFormatError(path, f"image is {image.shape[1]}x{image.shape[0]} pixels, {OVER_LIMIT} "
                                    f"{max_pixels} pixels", hint=_RAISE_LIMIT)
    if header.frames > 1:  # the first is predicted, as every decoder here gives it; the rest must not vanish unsaid
        kind = _MULTI_FRAME[header.format]
        _tell(f"{path}: has {header.frames} {kind}; only the first is used", notes,
              "split it into single images, or give a video")
    return image


def _tell(note: str, notes: list | None, advice: str) -> None:
    """A note for the caller's list (a server words the advice for its own client), or else a
    warning with ``advice`` for command-line and Python users, pointing at read_image's caller."""
    if notes is not None:
        notes.append(note)
    else:
        warnings.warn(f"{note} ({advice})", stacklevel=4)


def _decoder_note(path, said: list[str]) -> str:
    return f"{path}: the image decoder warned: {'; '.join(said)[:500]}"


def _decoder_said(said: list[str]) -> str:
    """The decoder's own words for an error message ('; the decoder said: ...'), or nothing."""
    return f"; the decoder said: {'; '.join(said)[:500]}" if said else ""


_STDERR = threading.Lock()

# The lines the decoders inside OpenCV write to fd 2, by their own prefixes; any other line caught
# while a decoder runs is another thread's (a server's log, an application's own output) and goes on
# to the real stderr, unchanged.
_DECODER_LINE = re.compile(rb"""\s*(?:
    libpng\ (?:warning|error)                                   # libpng: "libpng warning: tEXt: CRC error"
  | \[[^]\n]+\ @\ 0x[0-9a-fA-F]+\]                              # FFmpeg: "[mjpeg @ 0x55de2ab21980] error y=3"
  | Last\ message\ repeated\ \d+\ times                          # FFmpeg, after a repeated line
  | \[\s*(?:FATAL|ERROR|WARN|INFO|DEBUG|VERBOSE)\s*:              # OpenCV's log: "[ WARN:0@0.012] global ..."
  | OpenCV\ TIFF:|TIFF\w+:                                        # libtiff: "TIFFReadDirectory: Warning, ..."
  | (?:Corrupt\ JPEG\ data|Premature\ end\ of\ JPEG\ file|Invalid\ JPEG\ file\ structure|Not\ a\ JPEG\ file
     |Unsupported\ marker\ type|Bogus\ marker\ length|Warning:\ unknown\ JFIF)  # libjpeg
  | (?:libwebp|WebP)\b                                           # libwebp
)""", re.X)


@contextlib.contextmanager
def decoder_output():
    """libpng, libtiff and FFmpeg, inside OpenCV, print their warnings (a chunk's CRC error, data
    they patched over) straight to the process's stderr, naming no file; so the decoder's stderr
    is caught while the block runs. Yields a list that holds, once the block ends (however it
    ends), the decoders' lines caught (``_DECODER_LINE``). Process-wide, hence the lock: two
    threads decoding at once wait; what other threads wrote meanwhile is written on to stderr."""
    said: list[str] = []
    with _STDERR:
        if sys.stderr is not None:  # None when the process started without one (2>&-, pythonw)
            sys.stderr.flush()
        try:  # before the temporary file is opened: with fd 2 closed, that file would take it
            saved = os.dup(2)
        except OSError:  # no stderr: the decoders' lines are still caught, for the notes
            saved = None
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                yield said
            finally:
                if saved is not None:
                    os.dup2(saved, 2)
                    os.close(saved)
                elif caught.fileno() != 2:
                    os.close(2)  # closed again, as it was
                caught.seek(0)
                others, lines, theirs, going_on = [], [], False, False
                for line in caught.read().splitlines(keepends=True):
                    if theirs and line.startswith(b">"):  # OpenCV's error goes on over "> " lines, the reason first
                        more = line.decode("utf-8", "replace").lstrip(">").strip().rstrip(":")
                        lines[-1] += (" " if going_on else ": ") + more
                        going_on = True
                    elif theirs and not line.strip():  # the blank line that ends it
                        continue
                    elif not _DECODER_LINE.match(line):
                        others.append(line)
                        theirs = False
                    elif line.strip():
                        lines.append(line.decode("utf-8", "replace").strip())
                        theirs, going_on = True, False
                said.extend(_decoder_words(line) for line in lines)
                if others and saved is not None:
                    _write_stderr(b"".join(others))


def _decoder_words(line: str) -> str:
    """A decoder's line without what means nothing to a reader: FFmpeg's address ("[mjpeg @ 0x55de2ab21980]
    error y=3" -> "[mjpeg] error y=3"), OpenCV's log prefix of thread, time, source line and function
    ("[ WARN:2@417.645] global grfmt_tiff.cpp:122 TIFF_Warning TIFFReadDirectory: ..." -> "TIFFReadDirectory: ...")."""
    line = re.sub(r" @ 0x[0-9a-fA-F]+\]", "]", line)
    line = re.sub(r"^\[\s*[A-Z]+:[^\]]*\]\s+(?:global\s+)?\S+(?::\d+|\s+\(\d+\))\s+[\w:~]+\s+(?=\S)", "", line)
    # OpenCV's error text, "OpenCV(4.14.0) /io/opencv/modules/imgcodecs/src/grfmt_gif.cpp:395: error:
    # (-2:Unspecified error) in function 'bool cv::GifDecoder::lzwDecode()'", and libtiff's "/io/opencv/
    # 3rdparty/libtiff/tif_dir.c:1954: : ": the paths of the machine OpenCV was built on, no reason
    line = re.sub(r"OpenCV\([^)]*\) \S+:\d+: error: \(-?\d+:([^)]*)\)", r"\1:", line)
    line = re.sub(r" in function '[^']*'", "", line)
    line = re.sub(r"/\S+\.(?:c|cc|cpp|h|hpp):\d+:(?:\s*:)?\s*", "", line)
    return re.sub(r"^imdecode_\(''\): ", "", line).replace(":: ", ": ")


def _write_stderr(data: bytes) -> None:
    """``data`` written to fd 2 as it came; a stderr that cannot take it (a full disk) loses only it."""
    try:
        while data:
            data = data[os.write(2, data):]
    except OSError:
        pass


@contextlib.contextmanager
def decoder_warnings(path, notes: list | None = None, advice: str = "the image was read; check it looks right"):
    """``decoder_output`` passed on as a warning (or a note in ``notes``) that names ``path``."""
    with decoder_output() as said:
        yield
    if said:
        _tell(_decoder_note(path, said), notes, advice)


def _check_size(path, header: _Header, size: int, max_pixels: int, source=None) -> None:
    """Refuse, from the header, an image over ``max_pixels`` or whose decoded pixels take more
    memory than ``max_pixels`` of 8-bit RGB: OpenCV decodes 16-bit samples as 16 bits and alpha as a
    fourth channel before they become 8-bit RGB, so a 99 MP 16-bit RGB TIFF took 1.27 GB in a
    predict run, a 99 MP RGBA PNG 1.11 GB. No cheaper decoding serves every format (OpenCV's
    IMREAD_REDUCED_* shrinks only JPEGs), so the limit is on bytes: a 16-bit RGB image may have
    half the pixels, an 8-bit RGBA one three quarters, a JPEG 2000 (32-bit samples) a quarter."""
    w, h = header.width, header.height
    if w * h > max_pixels:
        raise DataFormatError(path, f"image is {w}x{h} = {w * h} pixels, {OVER_LIMIT} {max_pixels} pixels",
                              hint=_RAISE_LIMIT)
    if w * h == 0 and size > 0:  # decoding it could take any memory
        what = _what_it_is(path, source)
        if what:  # no image OpenCV decodes: lifting the limit would not read it either
            if "read its frames" in what:  # a video named as one: its header is beside the point
                raise DataFormatError(path, f"is {what}")
            what, _, rename = what.partition("; give it ")  # renaming is advice for files, not for uploads
            why = f" ({header.refused})" if header.refused and "damaged" in what else ""
            raise DataFormatError(path, "cannot decode image: its size cannot be read from its header, and it is "
                                        + what + why, hint=f"give it {rename}" if rename else None)
        raise DataFormatError(path, "cannot decode image: its size cannot be read from its header (not an image, "
                                    "damaged, or a format such as Radiance HDR or OpenEXR), so its pixels were not "
                                    "decoded", hint="predict's --max-pixels 0, or max_pixels=None in Python, decodes it anyway")
    channels = 4 if header.transparent else 3  # grey is decoded as three channels
    # OpenJPEG decodes every JPEG 2000 sample to 32 bits before OpenCV's 8-bit copy: a 99 MP .jp2
    # took 1.5 GB to read, the same picture as PNG 0.64 GB
    sample_bytes = 4 if header.format == "JPEG2000" else header.sample_bytes
    decoded = w * h * channels * sample_bytes
    if decoded > 3 * max_pixels:
        what = f"{8 * sample_bytes}-bit {'RGBA' if header.transparent else 'RGB'}"
        raise DataFormatError(path, f"image is {w}x{h}, decoded as {what}: {_size(decoded)}, {OVER_LIMIT} "
                                    f"{_size(3 * max_pixels)} allowed ({max_pixels} 8-bit RGB pixels)",
                              hint=f"max_pixels={math.ceil(decoded / 3)} (predict's --max-pixels "
                                   f"{math.ceil(decoded / 3)}) reads it")


# The first bytes of the formats OpenCV decodes (those whose size Pillow reads never get this far);
# PNM and PFM ("P1".."P7", "PF", "Pf") need white space after, BMP a known info header size after "BM"
_OPENCV_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\0", b"MM\0*", b"II+\0", b"MM\0+", b"GIF8",
                 b"\0\0\0\x0cjP  ", b"\xff\x4f\xff\x51", b"\x76\x2f\x31\x01", b"#?RADIANCE", b"#?RGBE",
                 b"\x59\xa6\x6a\x95") + tuple(m + w for m in [b"P%d" % n for n in range(1, 8)] + [b"PF", b"Pf"]
                                               for w in (b" ", b"\t", b"\r", b"\n"))
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")


def _what_it_is(path, source) -> str | None:
    """What a file whose size Pillow cannot read is, from its first bytes, when it is no image
    OpenCV decodes ("an MP4/QuickTime video (ftyp box) named .jpg", "text", ...); None when
    it starts as one (damaged, or a format such as Radiance HDR), or cannot be read."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
            head = source.read(512)
        else:
            with open(path if source is None else source, "rb") as f:
                head = f.read(512)
    except OSError:
        return None
    suffix = os.path.splitext(str(path))[1]
    # said where the name claims an image OpenCV reads ("text named .png"); x.heic is named as it is
    named = f" named {suffix}" if suffix.lower() in (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff",
                                                      ".webp", ".pgm", ".ppm", ".pnm", ".pbm", ".jp2", ".gif") else ""
    if head.startswith(_OPENCV_MAGIC) or head[:4] == b"RIFF" and head[8:12] == b"WEBP" or \
            head[:2] == b"BM" and head[14:18] in [n.to_bytes(4, "little") for n in (12, 40, 52, 56, 64, 108, 124)]:
        return None
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIF_BRANDS:
            return f"a HEIC/HEIF image{named}, which OpenCV does not read; convert it to JPEG or PNG"
        if head[8:12] in (b"avif", b"avis"):
            if _opencv_reads("AVIF"):  # its header would have been read were it whole
                return f"a damaged or truncated AVIF image{named}"
            return f"an AVIF image{named}, which this OpenCV does not read; convert it to JPEG or PNG"
        if head[8:12] in (b"M4A ", b"M4B ", b"M4P "):  # Apple's audio brands: no picture in it at all
            return f"an MPEG-4 audio file{named} (ftyp {head[8:12].decode().strip()}): sound only, no image or video"
        return _video("an MP4/QuickTime video (ftyp box)", named, suffix, (".mp4", ".m4v", ".mov", ".qt", ".3gp",
                                                                          ".3g2", ".f4v"), ".mp4")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return _video("an AVI video", named, suffix, (".avi", ".divx"), ".avi")
    if head[:4] == b"\x1aE\xdf\xa3":
        return _video("a Matroska/WebM video", named, suffix, (".mkv", ".webm"), ".mkv")
    if head[:4] == b"DDS ":
        return f"a DDS texture{named}, which OpenCV does not read; convert it to PNG"
    if head[:5] == b"%PDF-":
        return f"a PDF document{named}, not an image"
    if head[:4] == b"PK\x03\x04":
        return f"a zip archive{named}, not an image"
    text = _as_text(head)
    if text is not None and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        if "<svg" in text.lower():
            return f"SVG/XML text{named} (a vector drawing, which OpenCV does not read)"
        return f"{'XML text' if text.lstrip().startswith('<?xml') else 'text'}{named}, not an image"
    return "not an image format OpenCV reads (its first bytes match none)"


def _video(what: str, named: str, suffix: str, its_suffixes: tuple, rename: str) -> str:
    """What to say of a video read as an image: renaming helps a video named as an image in a folder
    (predict then takes it as a video); one already named as a video was given to an image reader."""
    if suffix.lower() in its_suffixes:
        return (f"{what}, not an image; read its frames with KeypointDetector.stream() or "
                f"`facekeypoints predict`, which take videos")
    advice = f"a video suffix such as {rename}" if rename == ".mp4" else f"the suffix {rename}"
    return f"{what}{named}, not an image; give it {advice}"


@functools.cache
def _opencv_reads(codec: str) -> bool:
    """Whether this OpenCV build has a reader for ``codec`` ("AVIF"), from its build information."""
    return re.search(rf"^\s*{codec}:\s*(?!NO\b)\S", cv2.getBuildInformation(), re.M) is not None


def _as_text(head: bytes) -> str | None:
    """``head`` as UTF-8 text (a byte order mark dropped), or None when it is not: only the last
    character may be cut off by the bytes read, so bytes not UTF-8 elsewhere (a JPEG's \\xff\\xd8
    before garbage) are not text."""
    for cut in range(min(4, len(head))):
        try:
            return head[:len(head) - cut].decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError:
            continue
    return None


_RAISE_LIMIT = "a larger max_pixels (predict's --max-pixels) reads it"


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10**6 else f"{n} bytes"


def _decode_with_pillow(source) -> np.ndarray | None:
    """A PGM/PPM whose maxval is not 255 or 65535 (10- or 12-bit sensor data), or a plain-text one,
    or a CIELab TIFF -> (H, W, 3) RGB uint8, decoded by Pillow, which scales samples by maxval (to
    0..255, or to 0..65535 in mode "I") and converts Lab colours."""
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        with _open(source) as im:
            if im.format == "PPM":
                _check_samples(im)
            # checked against max_pixels from the header already
            if im.mode == "LAB":  # turned by its orientation tag, as OpenCV turns the TIFFs it reads
                from PIL import ImageOps

                image = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            else:
                image = np.asarray(im)
    except ValueError:  # _check_samples' finding, or Pillow's own: said as the file's fault
        raise
    except Exception:  # noqa: BLE001 - truncated or damaged (any kind, see _frames): as OpenCV's failures
        return None
    if image.dtype != np.uint8:
        image = to_uint8(image.astype(np.uint16))  # mode "I" holds 16-bit samples in 32-bit integers
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)


def _check_samples(im) -> None:
    """A binary PGM/PPM sample above the declared maxval is a damaged file, but Pillow's decoder
    clips it to white without a word, so the stored samples are compared with maxval first (plain
    text files Pillow refuses itself: "Channel value too large")."""
    tile = im.tile[0]
    if tile.codec_name != "ppm":
        return
    maxval = tile.args[1]
    count = im.size[0] * im.size[1] * (3 if im.mode == "RGB" else 1)
    im.fp.seek(tile.offset)
    samples = np.frombuffer(im.fp.read(count * (1 if maxval < 256 else 2)), ">u1" if maxval < 256 else ">u2")
    if samples.size and int(samples.max()) > maxval:
        raise ValueError(f"sample value {int(samples.max())} is above the file's declared maximum (maxval) "
                         f"{maxval}: the file is damaged or its header is wrong")


def _decode(data: np.ndarray, header: _Header) -> np.ndarray | None:
    """Encoded bytes -> (H, W, 3) RGB uint8, or None when OpenCV cannot decode them."""
    # IMREAD_COLOR | IMREAD_ANYDEPTH applies EXIF orientation and keeps 16 bits; only an alpha
    # channel needs IMREAD_UNCHANGED, which ignores orientation (WebP and PNG can carry both), so
    # that path applies the header's orientation itself. OpenCV turns TIFFs by their own tag in
    # every mode, so a TIFF's is not applied twice.
    if header.unchanged:  # IMREAD_COLOR fails on a grey float TIFF (an assertion); unchanged reads every kind
        return _decode_unchanged(data, header)
    if header.transparent:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        still_to_turn = 1 if header.format == "TIFF" else header.orientation
        if image is not None and image.ndim == 3 and image.shape[2] == 4:
            return _orient(over_white(to_uint8(image), premultiplied=_premultiplied(image, header)), still_to_turn)
        if image is not None and image.ndim == 2:
            # grey with a transparent grey level (tRNS), or a grey+alpha TIFF: OpenCV gives no alpha for them
            return _orient(_grey_over_white(data, image), still_to_turn)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        return None
    image = to_uint8(image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second copy of a large photo


def _premultiplied(image: np.ndarray, header: _Header) -> bool:
    """Whether OpenCV's 4-channel decoding holds colours already multiplied by alpha: a TIFF it
    decodes to 8 bits goes through libtiff's RGBA reader, which premultiplies unassociated alpha
    (and takes unspecified extra samples as associated); at 16 bits and over it gives the samples
    as stored, premultiplied only where the file's alpha is associated (ExtraSamples 1). Blending
    such colours over white as if they were not halved a half-transparent pixel's colour twice."""
    return header.format == "TIFF" and (image.dtype == np.uint8 or header.associated)


def _grey_over_white(data: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """A transparent grey image OpenCV decoded without its transparency -> RGB over white, the
    transparency read by Pillow: 8-bit (and 1-, 2-, 4-bit) grey with a tRNS level and 8-bit grey
    TIFFs with alpha are Pillow's to blend; a 16-bit grey PNG's transparent level is applied here
    (Pillow's convert("RGBA") saturates 16-bit grey to white)."""
    from PIL import UnidentifiedImageError

    try:
        with _open(io.BytesIO(data.tobytes())) as im:
            if grey.dtype == np.uint8 and not (im.mode == "I" or im.mode.startswith("I;16")):
                return pil_over_white(im)
            key = im.info.get("transparency")
    except Exception as err:  # noqa: BLE001 - Pillow fails in many ways (see _frames)
        # e.g. a TIFF of 16-bit grey with alpha, which Pillow has no mode for
        why = ("not a kind it knows" if isinstance(err, UnidentifiedImageError)
               else str(err).strip() or type(err).__name__)
        raise ValueError(f"its transparency cannot be read: OpenCV decodes this grey image without it, and Pillow "
                         f"cannot open the file ({why}); save it as an 8-bit or PNG image") from None
    return key_over_white(grey, key)


def _decode_unchanged(data: np.ndarray, header: _Header) -> np.ndarray | None:
    """A TIFF of floats (or of integers with no standard range) -> (H, W, 3) RGB uint8: floats in
    0..1 scaled to 0..255 (``to_uint8``; other values and types are a ValueError naming them),
    grey expanded, alpha blended over white. OpenCV gives the samples as stored and turns the image
    by its orientation tag."""
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.ndim == 3 and image.shape[2] == 4:
        if header.transparent:
            return over_white(to_uint8(image), premultiplied=header.associated)
        image = image[..., :3]  # unspecified extra samples are not alpha
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2 and (image.ndim != 3 or image.shape[2] != 3):
        raise ValueError(f"a TIFF of {image.shape[2]} channels; an image needs 1, 3 or 4")
    image = to_uint8(image)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8: 5-8 swap the axes (a quarter turn), then flip rows and/or columns."""
    if orientation in (5, 6, 7, 8):
        image = image.swapaxes(0, 1)
    rows, cols = orientation in (3, 4, 7, 8), orientation in (2, 3, 6, 7)
    return np.ascontiguousarray(image[::-1 if rows else 1, ::-1 if cols else 1])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit or float pixels -> uint8 over the same range (65535 -> 255, 1.0 -> 255); files and
    Python images (``facekeypoints.infer.inputs``) share it, so both give the same picture. Signed
    integers, floats outside 0..1 and NaN or infinite floats have no agreed brightness: a
    ValueError says so, rather than a picture guessed (an int16 TIFF read as floats came out all
    white; NaN became black)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:  # rounded, saturated, row by row: no float copy of a large photo
        return cv2.convertScaleAbs(image, alpha=1.0 / 257.0)
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError(f"{image.dtype} pixels include NaN or infinite values, which have no brightness")
    if image.dtype.kind == "f" and image.size and 0.0 <= float(image.min()) and float(image.max()) <= 1.0:
        return (image * 255.0).round().astype(np.uint8)
    what = f"{image.dtype} pixels" + (" outside 0..1" if image.dtype.kind == "f" else "")
    raise ValueError(f"{what} have no standard brightness range; save the image with 8- or 16-bit unsigned pixels")


def over_white(four: np.ndarray, order: str = "bgr", premultiplied: bool = False) -> np.ndarray:
    """(H, W, 4) uint8 BGRA (``order="bgr"``, OpenCV's) or RGBA -> (H, W, 3) RGB with transparent
    pixels blended over white, in 16-bit integers a row band at a time (float32 copies of a 40 MP
    photo took 1.5 GB). Every input kind goes through here, so a transparent face is the same face
    read from a file, a PIL image or an array. ``premultiplied``: the colours are stored already
    multiplied by alpha (a TIFF's associated alpha), so only white's share is added."""
    out = np.empty(four.shape[:2] + (3,), np.uint8)
    for top in range(0, four.shape[0], 512):
        band = four[top:top + 512]
        alpha = band[..., 3:].astype(np.uint16)
        if premultiplied:  # colour + 255 * (1 - alpha); a colour above its alpha (damaged) stops at white
            out[top:top + 512] = np.minimum(band[..., :3].astype(np.uint16) + (255 - alpha), 255).astype(np.uint8)
            continue
        mixed = band[..., :3].astype(np.uint16) * alpha + 255 * (255 - alpha)  # at most 65025
        out[top:top + 512] = ((mixed + 127) // 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out) if order == "bgr" else out


def pil_over_white(im) -> np.ndarray:
    """A PIL image with transparency (an alpha mode, or a transparent colour or palette entry) ->
    (H, W, 3) RGB uint8 over white. Pillow converts its premultiplied "La" only to "LA" first."""
    if im.mode == "La":
        im = im.convert("LA")
    return over_white(np.asarray(im.convert("RGBA")), order="rgb")


def key_over_white(grey: np.ndarray, key) -> np.ndarray:
    """(H, W) grey samples (8 or 16 bits, or what ``to_uint8`` takes) and their transparent level
    (a PNG's tRNS key, as Pillow's ``info["transparency"]`` holds it; None: none) -> (H, W, 3) RGB
    uint8: pixels at that level white, the rest scaled as ``to_uint8`` scales them. The file and
    a PIL image of it share this, so both give the same picture."""
    out = cv2.cvtColor(to_uint8(grey), cv2.COLOR_GRAY2RGB)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        out[grey == key] = 255
    return out
