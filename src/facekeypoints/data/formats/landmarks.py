"""Readers and writers of landmark files that hold one face each, read singly or as a folder.

Formats: iBUG ``.pts`` (1-based in the file), IMM ``.asf`` (coordinates relative to the image size),
menpo ``.ljson`` (points stored ``[y, x]``) and AFLW2000-3D ``.mat``. Every reader returns
:class:`KeypointData` with 0-based pixel coordinates and, unless ``load_images=False``, the RGB
uint8 images found beside the annotation. Files listing many faces (dlib XML, COCO JSON) are read
by :mod:`facekeypoints.data.formats.landmark_sets`.

Every reader takes labels to refer to the picture as shown, EXIF orientation applied (as ``read_image``,
OpenCV and photo viewers show it): points are never turned, and image sizes (headers, a COCO file's
width and height, IMM's relative coordinates) are those of the turned picture.

Examples
--------
>>> from facekeypoints.data.formats.landmarks import read_pts
>>> data = read_pts("../shared/data/samples/300w-pts", load_images=False)  # doctest: +SKIP
>>> data.keypoints.shape  # doctest: +SKIP
(17, 68, 2)
"""
from __future__ import annotations

import errno
import glob
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from facekeypoints.atomic import atomic_path
from facekeypoints.data.dataset import DataFormatError, KeypointData, user_path
from facekeypoints.data.formats.checks import (FAR, check_flags, check_points, first_implausible, implausible,
                                               json_number, text_float, text_int)
from facekeypoints.data.formats.textfile import load_json, read_text, short
from facekeypoints.data.images import image_size as header_size
from facekeypoints.data.images import read_image
from facekeypoints.data.walk import data_files, distinct_files, not_found, unreadable
from facekeypoints.schema import load_schema

__all__ = [
    "IMAGE_SUFFIXES", "read_pts", "write_pts", "read_asf", "read_ljson", "read_aflw_mat", "labels_file", "check_face",
]

IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".ppm", ".bmp", ".webp", ".tif", ".tiff")
_NAN_BOX = (np.nan, np.nan, np.nan, np.nan)
# bytes: a one-face label file (.pts, .asf, .ljson) of 68 points is 1-4 KB; parsing text takes many
# times its size in memory (a 120 MB .pts once took 8.7 GB), so a larger file is refused unread
MAX_LABEL_BYTES = 10_000_000


@dataclass
class _Face:
    """One parsed face before the faces are gathered into a KeypointData."""

    keypoints: np.ndarray  # (K, 2), 0-based pixels
    id: str
    image_path: Path | None
    pixels: np.ndarray | None = None
    person: str | None = None
    box: tuple[float, float, float, float] = _NAN_BOX


# ---- shared helpers ------------------------------------------------------------------------------
def _refuse_large(path: Path, limit: int | None = None, what: str = "a one-face label file") -> None:
    """DataFormatError naming the file and the limit when it is over ``limit`` bytes (default
    ``MAX_LABEL_BYTES``): checked before the file is read, so memory stays bounded."""
    limit = MAX_LABEL_BYTES if limit is None else limit
    try:
        size = path.stat().st_size
    except OSError:
        return  # reading it names the problem
    if size > limit:
        raise DataFormatError(path, f"file is {size} bytes, over the size limit of {limit / 1e6:g} MB for {what}")


def _lines(text: str) -> list[str]:
    """A label file's lines, ended by a line feed, CR LF or CR only: str.splitlines also ends lines at a form
    feed, U+0085 and the like, which then cut a point's line in two and moved every line number after."""
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _size(pixels: np.ndarray | None) -> tuple[int, int] | None:
    """(height, width) of a loaded image; None when labels are read alone (the size is unknown)."""
    return None if pixels is None else pixels.shape[:2]


_listings = threading.local()  # .names: folder -> {lower-case name: names}, while _read_each runs


def _names_by_lower(folder: Path) -> dict[str, list[str]] | None:
    """The folder's file names grouped by their lower-case form (listed once per folder while a
    folder is read), or None when it cannot be listed."""
    cache = getattr(_listings, "names", None)
    if cache is not None and folder in cache:
        return cache[folder]
    try:
        names: dict[str, list[str]] | None = {}
        for name in os.listdir(folder):
            names.setdefault(name.lower(), []).append(name)
    except OSError:  # e.g. a folder that may be entered but not listed: try the usual spellings
        names = None
    if cache is not None:
        cache[folder] = names
    return names


def _image_beside(annotation: Path) -> Path | None:
    """The image with the annotation's stem and a known image suffix in any case (``x.Jpg``), or
    None. Two different images with that stem (x.jpg and x.png) are an error: which one was
    labelled is unknown."""
    stem = annotation.stem
    listing = _names_by_lower(annotation.parent)
    candidates: list[Path] = []
    for suffix in IMAGE_SUFFIXES:
        if listing is None:
            candidates += [annotation.with_suffix(suffix), annotation.with_suffix(suffix.upper())]
        else:
            candidates += [annotation.parent / name for name in listing.get((stem + suffix).lower(), [])
                           if name[:len(stem)] == stem]
    found: list[Path] = []
    for candidate in candidates:
        try:  # x.jpg and x.JPG are one file where names ignore case
            if candidate.is_file() and not any(os.path.samefile(candidate, f) for f in found):
                found.append(candidate)
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:  # a spelling tried for a long stem: no such file
                continue
            raise unreadable(candidate, err) from None
    if len(found) > 1:
        raise DataFormatError(annotation, f"{len(found)} images could be the one labelled here: "
                                          f"{', '.join(f.name for f in found)}; keep only one beside it")
    return found[0] if found else None


def _photo_or_none(annotation: Path) -> Path | None:
    """``_image_beside``, None where it is in doubt (two candidates: reading the file names that)."""
    try:
        return _image_beside(annotation)
    except DataFormatError:
        return None


def check_face(where: str | Path | Callable[[], str], face: str, points: np.ndarray, size: tuple[int, int]) -> None:
    """``check_points`` for face ``face`` (its (K, 2) points) read apart from its image (labels only),
    once the image's ``size`` (height, width) is known: the readers' rule when they load the image. NaN
    marks a point the file leaves missing (the readers checked the rest against FAR already). ``where``:
    the file to name, or a function giving it, called only when a point fails (finding a face's own
    label file lists its folder: not a cost to pay per face). Here, beside the .pts reader, because a
    .pts file's point is named by its own line and value (the file counts from 1)."""
    points = np.asarray(points)
    missing = np.isnan(points).any(axis=1)
    if first_implausible(points, size, missing) is None:
        return
    path = where() if callable(where) else where
    if str(path).lower().endswith(".pts"):  # 1-based in the file: named by its own line and value, as read_pts does
        try:
            kp, lines = _parse_pts_text(Path(path))
        except (DataFormatError, OSError):  # changed since it was read: named as below
            kp = None
        if kp is not None and kp.shape == points.shape:
            check_points(path, kp + 1.0, size, names=lines)
    check_points(path, points, size, missing=missing, names=[f"face {face!r}, point {k}" for k in range(len(points))])


def labels_file(source: str | Path | None, face: str) -> str:
    """The file that labels ``face`` of data read from ``source``, for a message: ``source`` itself where it
    is a file (COCO, dlib XML, a CSV), else the face's own label file in that folder (``ds/b.pts``)."""
    if not source or not Path(source).is_dir():
        return str(source or "data")
    stem = Path(source) / face
    try:
        found = [f for f in stem.parent.glob(glob.escape(stem.name) + ".*") if f.suffix.lower() not in IMAGE_SUFFIXES]
    except OSError:  # a folder that cannot be listed: its name still says where
        found = []
    return str(found[0]) if len(found) == 1 else str(source)


def _require_image(annotation: Path, image: Path | None, named: str | None = None,
                   hint: str = "its labels alone can be read (data info does; load_images=False in Python)") -> Path:
    if image is not None and image.is_file():
        return image
    looked = named or f"{annotation.stem}{{{','.join(IMAGE_SUFFIXES)}}}"
    raise DataFormatError(annotation, f"image not found: looked for {looked} in {annotation.parent}; {hint}")


def _files(path: Path, suffix: str) -> tuple[list[Path], list[DataFormatError]]:
    """(``path`` itself, or every ``*suffix`` file under the folder ``path``, recursive and sorted;
    what is wrong with the folder, for the reader to raise or list as skipped).

    The suffix matches in any case (``a.PTS``), as a single file's does in ``detect_format``.
    ``data_files`` walks the folder: linked folders are followed (each real folder once, so a link
    loop ends), a link to nothing is listed too, for the reader to report, macOS's ``__MACOSX``
    folders and ``._*`` resource forks are passed over, and a folder that cannot be listed is a
    problem. So are two files for one face (``a.pts`` and ``a.PTS``): both are left out; and a file
    that leads to the same file as another (``b.pts`` a link to ``a.pts``) and labels no other photo
    (``b.jpg`` missing, or the same file as ``a.jpg``): it is left out.
    """
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as err:  # e.g. a folder on the way that may not be searched
        raise unreadable(path, err) from None
    if is_dir:
        problems: list[DataFormatError] = []
        files = distinct_files([f for f in data_files(path, problems) if f.name.lower().endswith(suffix)], problems,
                               _photo_or_none)
        if not files and not problems:
            raise DataFormatError(path, f"folder holds no {suffix} files")
        by_face: dict[tuple[Path, str], list[Path]] = {}
        for f in files:
            by_face.setdefault((f.parent, f.name[:-len(suffix)]), []).append(f)
        for (_, face), same in by_face.items():
            if len(same) > 1:
                problems.append(DataFormatError(same[0], f"{' and '.join(f.name for f in same)} both label "
                                                         f"the face {face!r}; keep one"))
        return [f for f in files if len(by_face[f.parent, f.name[:-len(suffix)]]) == 1], problems
    if not is_file:
        raise not_found(path)
    return [path], []


def _face_id(file: Path, root: Path) -> str:
    """File path relative to the folder read, without suffix (the stem for a single file)."""
    if root.is_dir():
        return file.relative_to(root).with_suffix("").as_posix()
    return file.stem


def _stack(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """(N, H, W, C) when every image has one shape, else the list (KeypointData accepts both)."""
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return images


def _gather(schema: str, faces: list[_Face], source: Path, load_images: bool,
            skipped: list[str] | None = None, skipped_unlisted: int = 0) -> KeypointData:
    """Faces -> KeypointData; keypoints (N, K, 2), images stacked when they share one shape."""
    if faces:
        keypoints = np.stack([f.keypoints for f in faces])
    else:  # every file was skipped: still a valid, empty dataset that lists why
        keypoints = np.zeros((0, load_schema(schema).num_keypoints, 2))
    return KeypointData.from_arrays(
        schema, keypoints,
        images=_stack([f.pixels for f in faces]) if load_images else None,
        ids=[f.id for f in faces], person=[f.person for f in faces],
        paths=[str(f.image_path) if f.image_path else None for f in faces],
        boxes=np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4),
        source=str(source), skipped=list(skipped or []), skipped_unlisted=skipped_unlisted,
    )


def _read_each(path: str | Path, suffix: str, schema: str, parse: Callable[[Path, Path], _Face],
               load_images: bool, skip_bad: bool) -> KeypointData:
    """Parse one file or a folder of files; with ``skip_bad`` bad files are listed in ``skipped``."""
    check_flags(load_images=load_images, skip_bad=skip_bad)
    root = user_path(path)
    outer = getattr(_listings, "names", None)
    _listings.names = {} if outer is None else outer  # each folder is listed once to find images
    try:
        return _read_files(root, suffix, schema, parse, load_images, skip_bad)
    finally:
        _listings.names = outer


def _read_files(root: Path, suffix: str, schema: str, parse: Callable[[Path, Path], _Face],
                load_images: bool, skip_bad: bool) -> KeypointData:
    faces, skipped = [], []
    files, problems = _files(root, suffix)
    for problem in problems:  # a folder that cannot be listed, two files for one face
        if not skip_bad:
            raise problem
        skipped.append(str(problem))
    for file in files:
        try:
            try:
                is_file = file.is_file()
            except OSError as err:  # e.g. a folder that can be listed but not entered (no x permission)
                raise unreadable(file, err) from None
            if not is_file:
                raise DataFormatError(file, "is a link to nothing (broken or looping), or not a file")
            faces.append(parse(file, root))
        except DataFormatError as err:
            if not skip_bad:
                raise
            skipped.append(str(err))
    return _gather(schema, faces, root, load_images, skipped)


# ---- iBUG .pts -----------------------------------------------------------------------------------
def _parse_pts_text(path: Path) -> tuple[np.ndarray, list[str]]:
    """((K, 2) 0-based points of one .pts file (the file counts from 1), the line of each point)."""
    _refuse_large(path, what="a .pts file (68 points are under 2 KB)")
    lines = _lines(read_text(path))
    header: dict[str, str] = {}
    opened = closed = None
    points: list[tuple[float, float]] = []  # the first 68 only: any other count is an error below
    point_lines: list[str] = []
    found = 0  # point lines, all of them checked and counted
    for no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if closed is not None:
            raise DataFormatError(path, f"line {no}: text after the closing brace: {text[:40]!r}")
        if opened is None:
            if text == "{":
                opened = no
            elif ":" in text:
                key, value = text.split(":", 1)
                if key.strip() in header:  # which one would be meant?
                    raise DataFormatError(path, f"line {no}: {key.strip()!r} is given twice", field=key.strip())
                header[key.strip()] = value.strip()
            else:
                raise DataFormatError(path, f"line {no}: expected 'key: value' or '{{', got {text[:40]!r}")
        elif text == "}":
            closed = no
        else:
            fields = text.split()
            if len(fields) != 2:
                raise DataFormatError(path, f"line {no}: expected two numbers 'x y', got {text[:40]!r}")
            try:
                point = text_float(fields[0]), text_float(fields[1])
            except ValueError:
                raise DataFormatError(path, f"line {no}: not a number in {text[:40]!r}") from None
            found += 1
            if found <= 68:
                points.append(point)
                point_lines.append(f"line {no}")
    if opened is None or closed is None:
        raise DataFormatError(path, f"line {len(lines)}: missing {'{' if opened is None else '}'} brace")
    try:
        n_points = text_int(header["n_points"])
    except (KeyError, ValueError):
        raise DataFormatError(path, "header lacks a valid 'n_points: <int>' line", field="n_points") from None
    if found != n_points:
        raise DataFormatError(path, f"line {closed}: n_points says {n_points} but {found} points "
                              f"were found between lines {opened} and {closed}")
    if n_points != 68:
        raise DataFormatError(path, f"{n_points} points; iBUG .pts files must have 68 (schema ibug68)",
                              field="n_points")
    # float64: a value past float32's range (1e300) is checked as written, not as inf after a cast
    return np.asarray(points, dtype=np.float64) - 1.0, point_lines  # 1-based file -> 0-based pixels


def read_pts(path: str | Path, *, load_images: bool = True, skip_bad: bool = False) -> KeypointData:
    """Read an iBUG ``.pts`` file or a folder of them (recursive, sorted) as ibug68.

    Returns KeypointData with keypoints (N, 68, 2), 0-based (the file's 1-based values minus 1).
    The image is the file with the same stem and a suffix in ``IMAGE_SUFFIXES``.
    """
    def parse(file: Path, root: Path) -> _Face:
        kp, lines = _parse_pts_text(file)
        image = _image_beside(file)
        pixels = read_image(_require_image(file, image)) if load_images else None
        check_points(file, kp + 1.0, _size(pixels), names=lines)  # the file's own values in the message
        return _Face(kp.astype(np.float32), _face_id(file, root), image, pixels)

    return _read_each(path, ".pts", "ibug68", parse, load_images, skip_bad)


def write_pts(keypoints: np.ndarray, path: str | Path, *, decimals: int = 3) -> None:
    """Write (K, 2) 0-based keypoints as an iBUG ``.pts`` file (1-based, ``decimals`` places).

    Reading the file back gives the keypoints rounded to ``decimals`` places. Missing (NaN)
    points cannot be written in this format and raise ValueError.
    """
    if isinstance(keypoints, (str, bytes, os.PathLike)):  # write_pts(path, keypoints): arguments swapped
        raise TypeError(f"write_pts(keypoints, path): keypoints must be a (68, 2) array, got "
                        f"{type(keypoints).__name__} {keypoints!r}; are the arguments swapped?")
    path = user_path(path)
    # bool is an int, but decimals=True would mean 1 place; past 10 places float32 labels hold only noise
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"decimals must be an int, got {type(decimals).__name__} {decimals!r}")
    if not 0 <= decimals <= 10:
        raise ValueError(f"decimals must be in 0..10, got {decimals}")
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"write_pts needs (K, 2) keypoints, got {kp.shape}")
    if len(kp) != 68:  # read_pts reads the 68-point iBUG schema only
        raise ValueError(f"{path}: an iBUG .pts file holds 68 points, got {len(kp)}")
    if not np.isfinite(kp).all():
        bad = sorted(set(np.flatnonzero(~np.isfinite(kp).all(axis=1)).tolist()))
        raise ValueError(f"{path}: .pts cannot store missing points; keypoints {bad} are not finite")
    far = implausible(kp + 1.0).any(axis=1)  # what read_pts refuses as no coordinate of any image
    if far.any():
        raise ValueError(f"{path}: keypoints {np.flatnonzero(far).tolist()[:10]} are beyond +-{FAR:g} pixels, "
                         "which read_pts refuses")
    rows = "\n".join(f"{x:.{decimals}f} {y:.{decimals}f}" for x, y in kp + 1.0)
    with atomic_path(path) as tmp:
        tmp.write_text(f"version: 1\nn_points: {len(kp)}\n{{\n{rows}\n}}\n")


# ---- IMM .asf ------------------------------------------------------------------------------------
def _parse_asf_text(path: Path) -> tuple[np.ndarray, str | None]:
    """(58, 2) relative coordinates and the host image's name (None when absent)."""
    _refuse_large(path, what="an .asf file (58 points are about 3 KB)")
    body = [(no, line.strip()) for no, line in enumerate(_lines(read_text(path)), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not body:
        raise DataFormatError(path, "no data lines (only comments)")
    no, text = body[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # int() fails on "²" and on 5000 digits
        raise DataFormatError(path, f"line {no}: expected the number of points, got {text[:40]!r}")
    n = int(text)
    if n != 58:
        raise DataFormatError(path, f"line {no}: {n} points; IMM .asf files must have 58 (schema imm58)")
    if len(body) < 1 + n:
        raise DataFormatError(path, f"line {body[-1][0]}: file ends after {len(body) - 1} of {n} points")
    rel = np.full((n, 2), np.nan, dtype=np.float64)
    for no, text in body[1:1 + n]:
        fields = text.split()
        if len(fields) < 7:  # some IMM files add three <user> fields
            raise DataFormatError(path, f"line {no}: expected 7 fields "
                                  f"(path type x y point# from to), got {len(fields)}")
        try:
            x, y, index = text_float(fields[2]), text_float(fields[3]), text_int(fields[4])
        except ValueError:
            raise DataFormatError(path, f"line {no}: not a number in {text[:60]!r}") from None
        if not (0 <= x <= 1 and 0 <= y <= 1):  # fractions of the image size; NaN fails too
            raise DataFormatError(path, f"line {no}: relative coordinates must lie in [0, 1], got x = "
                                  f"{fields[2]}, y = {fields[3]}", field=f"point {index}")
        if not 0 <= index < n or not np.isnan(rel[index]).all():
            raise DataFormatError(path, f"line {no}: point number {index} out of range or repeated")
        rel[index] = x, y
    after = body[1 + n:]  # at most the host image's name: anything else is a point or a line too many
    if len(after) > 1 or (after and _looks_like_point(after[0][1])):
        shown = ", ".join(f"line {no}: {text[:40]!r}" for no, text in after[:3])
        raise DataFormatError(path, f"line {after[0][0]}: {len(after)} data line{'s' if len(after) > 1 else ''} "
                              f"after the {n} points the file declares, where only the host image's name may "
                              f"follow ({shown})")
    return rel, after[0][1] if after else None


def _looks_like_point(text: str) -> bool:
    """Whether an .asf line reads as a point line (path type x y point# from to [...]), not a file name."""
    fields = text.split()
    try:
        return len(fields) >= 7 and all(np.isfinite(text_float(f)) for f in fields[:7])
    except ValueError:
        return False


def _check_image_size(image_size: object) -> tuple[int, int] | None:
    """``image_size`` as (height, width) of two positive integers, or None; else a ValueError."""
    if image_size is None:
        return None
    try:
        height, width = image_size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v > 0
                 for v in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_size must be (height, width), two positive integers, got {short(image_size)}")
    return int(height), int(width)


def read_asf(path: str | Path, *, load_images: bool = True, skip_bad: bool = False,
             image_size: tuple[int, int] | None = None) -> KeypointData:
    """Read an IMM ``.asf`` file or a folder of them as imm58, keypoints (N, 58, 2) in pixels.

    ``.asf`` stores x, y relative to the image, so they are scaled by the host image's width
    and height. The size comes from the image; ``image_size=(height, width)`` supplies it when
    reading labels only (``load_images=False``) without decoding the images.
    The person is the number before ``-`` in the file name (``01-1m.asf`` -> ``"01"``).
    ``image_size`` must be two positive integers; anything else is a ValueError.
    """
    image_size = _check_image_size(image_size)

    def parse(file: Path, root: Path) -> _Face:
        rel, host = _parse_asf_text(file)
        # the host image the file names is the one its coordinates are relative to; another one (the
        # image beside it, maybe of another size) would scale them wrongly, so none stands in for it
        image = file.parent / host if host else _image_beside(file)
        try:
            found = image is not None and image.is_file()
        except OSError as err:  # is_file says False for a missing file but raises for a name over the limit
            raise DataFormatError(file, f"host image {short(host)} cannot be looked up ({err.strerror or err})") \
                from None
        if load_images or image_size is None:
            hint = ("its points are fractions of the photo's width and height, so they cannot be read without "
                    "it: put the photo there, or leave this face out with --skip-bad (in Python, "
                    "load_images=False with image_size=(height, width) supplies the size)")
            named = f"{host} (the host image the file names)" if host else None
            photo = _require_image(file, image, named=named, hint=hint)
            pixels = read_image(photo) if load_images else None
            height, width = pixels.shape[:2] if load_images else _photo_size(photo)
            if image_size is not None and tuple(image_size) != (height, width):
                raise DataFormatError(file, f"image_size={tuple(image_size)} but {image} is {(height, width)}")
        else:
            pixels, (height, width) = None, image_size
            image = image if found else None  # labels only, the size given: a missing image is not needed
        kp = (rel * (width, height)).astype(np.float32)
        person = file.stem.split("-", 1)[0] if "-" in file.stem else None
        return _Face(kp, _face_id(file, root), image, pixels if load_images else None, person)

    return _read_each(path, ".asf", "imm58", parse, load_images, skip_bad)


def _photo_size(photo: Path) -> tuple[int, int]:
    """(height, width) of a photo as shown, from its header (labels only: no pixels decoded), or
    decoded where the header does not tell (its reading names what is wrong)."""
    try:
        width, height = header_size(photo)
    except OSError:
        width = height = 0
    return (height, width) if width * height else read_image(photo).shape[:2]


# ---- AFLW2000-3D .mat ----------------------------------------------------------------------------
def _mat_points(file: Path, pts: object) -> np.ndarray:
    """(68, 2) float64 x, y from a MATLAB ``pt3d_68`` value: 2 or 3 rows of 68 real numbers."""
    if not isinstance(pts, np.ndarray) or pts.ndim != 2 or pts.shape[1] != 68 or pts.shape[0] < 2:
        got = "absent" if pts is None else f"shape {getattr(pts, 'shape', type(pts).__name__)}"
        raise DataFormatError(file, f"expected a (3, 68) array, got {got}", field="pt3d_68")
    if pts.dtype.kind not in "iuf":  # text, a struct, a cell array, complex numbers
        raise DataFormatError(file, f"expected a (3, 68) array of real numbers, got {pts.dtype} values",
                              field="pt3d_68")
    return pts[:2].T.astype(np.float64)


def _mat_damage(file: Path) -> str | None:
    """Why a MATLAB v5 file is cut short or damaged, from its variables' headers (each states its byte
    count), or None. scipy's whosmat stops listing at the cut without a word, so a truncated file
    looked like one without pt3d_68. Other versions (v4, v7.3 HDF5) are not walked: None."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            header = f.read(128)
            if len(header) < 128 or header[124:126] not in (b"\x00\x01", b"\x01\x00") or \
                    header[126:128] not in (b"IM", b"MI"):
                return None
            order = "<" if header[126:128] == b"IM" else ">"
            pos, number = 128, 0
            while pos < size:
                f.seek(pos)
                tag = f.read(8)
                if len(tag) < 8:
                    return (f"the file ends {size - pos} bytes into the header of variable {number + 1} "
                            f"(at byte {pos} of {size}): it is truncated") if tag.strip(b"\x00") else None
                kind, count = np.frombuffer(tag, f"{order}u4")
                end = pos + 8 + int(count)
                if end > size:
                    return (f"variable {number + 1} declares {int(count)} bytes from byte {pos + 8}, but the file "
                            f"ends at byte {size}: it is truncated")
                pos, number = (end + -end % 8 if kind == 14 else end), number + 1  # miMATRIX is padded to 8 bytes
    except OSError:
        return None  # reading it names the problem
    return None


def read_aflw_mat(path: str | Path, *, load_images: bool = True, skip_bad: bool = False) -> KeypointData:
    """Read AFLW2000-3D ``.mat`` files (field ``pt3d_68``, 3 x 68; x and y rows) as ibug68 (N, 68, 2).

    Needs scipy (it comes with scikit-image). Coordinates are used as stored.
    """
    try:
        from scipy.io import loadmat, whosmat
    except ImportError:
        raise ImportError("reading .mat files needs scipy: pip install scipy") from None

    def parse(file: Path, root: Path) -> _Face:
        try:
            # the variables' shapes come from their headers: only pt3d_68 is loaded, and only once its
            # header says it is a small dense array (a 1.5 MB file had declared gigabytes elsewhere)
            found = {name: (shape, kind) for name, shape, kind in whosmat(str(file))}
            shape, kind = found.get("pt3d_68", (None, None))
            if kind is not None and (kind == "sparse" or len(shape) != 2 or shape[1] != 68 or shape[0] not in (2, 3)):
                raise DataFormatError(file, f"expected a (3, 68) array, got shape {shape} ({kind} data"
                                      f"{'; save it dense' if kind == 'sparse' else ''})", field="pt3d_68")
            if kind == "logical":  # loadmat gives it as 0/1 uint8, which would pass for coordinates
                raise DataFormatError(file, "expected a (3, 68) array of real numbers, got logical (true/false) "
                                      "values", field="pt3d_68")
            if kind is None and (damage := _mat_damage(file)):  # cut before pt3d_68: not "absent"
                raise DataFormatError(file, f"truncated or damaged MATLAB file: {damage}")
            mat = loadmat(str(file), variable_names=["pt3d_68"]) if kind is not None else {}
        except DataFormatError:
            raise
        except Exception as err:  # scipy raises several types for files that are not MATLAB files
            if damage := _mat_damage(file):
                raise DataFormatError(file, f"truncated or damaged MATLAB file: {damage} ({err})") from None
            raise DataFormatError(file, f"not a readable MATLAB file ({err})") from None
        kp = _mat_points(file, mat.get("pt3d_68"))
        image = _image_beside(file)
        pixels = read_image(_require_image(file, image)) if load_images else None
        check_points(file, kp, _size(pixels), field="pt3d_68")  # AFLW2000 has no missing points: no NaN
        return _Face(kp.astype(np.float32), _face_id(file, root), image, pixels)

    return _read_each(path, ".mat", "ibug68", parse, load_images, skip_bad)


# ---- menpo .ljson --------------------------------------------------------------------------------
def _group_points(path: Path, group: object, prefix: str) -> list:
    """The points list of one ljson group ``{"landmarks": {"points": [...]}}``; ``prefix`` names the group."""
    if not isinstance(group, dict) or not isinstance(group.get("landmarks"), dict):
        raise DataFormatError(path, f"expected an object with a 'landmarks' object, got {short(group)}",
                              field=prefix.rstrip("."))
    points = group["landmarks"].get("points")
    if not isinstance(points, list):
        raise DataFormatError(path, f"expected a list of [y, x] points, got {short(points)}",
                              field=f"{prefix}landmarks.points")
    return points


def _ljson_points(path: Path, doc: object) -> tuple[str, list]:
    """(where it is, the 68 [y, x] points) of an ljson v2 or v3 document."""
    if not isinstance(doc, dict):
        raise DataFormatError(path, "ljson must hold a JSON object")
    if isinstance(doc.get("groups"), dict):  # v3: named groups
        groups = {name: _group_points(path, g, f"groups.{name}.") for name, g in doc["groups"].items()}
        prefix = {name: f"groups.{name}." for name in groups}
    elif isinstance(doc.get("landmarks"), dict):  # v2: one group
        groups, prefix = {"landmarks": _group_points(path, doc, "")}, {"landmarks": ""}
    else:
        raise DataFormatError(path, "no landmarks found (expected ljson v2 'landmarks' or v3 'groups')")
    with68 = [name for name, pts in groups.items() if len(pts) == 68]
    if not with68:
        sizes = {name: len(pts) for name, pts in groups.items()}
        raise DataFormatError(path, f"no 68-point group; groups and point counts: {sizes}")
    first = groups[with68[0]]
    if any(not _same_points(first, groups[name]) for name in with68[1:]):  # which one is meant is not ours to guess
        raise DataFormatError(path, f"several different 68-point groups ({with68}); keep one in the file")
    return f"{prefix[with68[0]]}landmarks.points", groups[with68[0]]


def _point_values(points: list) -> np.ndarray | None:
    """(K, 2) float64 of ``[y, x]`` points (null: NaN), or None when one is not a pair of numbers."""
    out = np.full((len(points), 2), np.nan)
    for i, pt in enumerate(points):
        if pt is None:
            continue
        if not isinstance(pt, list) or len(pt) != 2:
            return None
        for j, value in enumerate(pt):
            if value is None:
                continue
            try:
                out[i, j] = json_number(value)
            except ValueError:
                return None
    return out


def _same_points(a: list, b: list) -> bool:
    """Whether two groups hold the same points by value (100 and 100.0 alike, null as null); groups
    holding something other than numbers are compared as written."""
    va, vb = _point_values(a), _point_values(b)
    if va is None or vb is None:
        return json.dumps(a) == json.dumps(b)
    return bool(np.array_equal(va, vb, equal_nan=True))


def _ljson_array(path: Path, points: list, where: str) -> np.ndarray:
    """(68, 2) x, y of ``[y, x]`` points; ``null`` or ``[null, null]`` is a missing point (NaN)."""
    kp = np.full((68, 2), np.nan)
    for i, pt in enumerate(points):
        if pt is None or pt == [None, None]:
            continue
        if not isinstance(pt, list) or len(pt) != 2:
            raise DataFormatError(path, f"point {i} is not [y, x]: {short(pt)}", field=where)
        try:
            kp[i] = json_number(pt[1]), json_number(pt[0])
        except ValueError as err:
            raise DataFormatError(path, f"point {i}: {err}", field=where) from None
    return kp


def read_ljson(path: str | Path, *, load_images: bool = True, skip_bad: bool = False) -> KeypointData:
    """Read menpo ``.ljson`` files (v2/v3; the 68-point group) as ibug68 (N, 68, 2).

    menpo stores points as ``[y, x]``; they are swapped to (x, y). ``null`` points become NaN.
    """
    def parse(file: Path, root: Path) -> _Face:
        _refuse_large(file, what="an .ljson file (68 points are about 4 KB)")
        where, points = _ljson_points(file, load_json(file))
        kp = _ljson_array(file, points, where)
        image = _image_beside(file)
        pixels = read_image(_require_image(file, image)) if load_images else None
        check_points(file, kp, _size(pixels), missing=np.isnan(kp).any(axis=1), field=where)
        return _Face(kp.astype(np.float32), _face_id(file, root), image, pixels)

    return _read_each(path, ".ljson", "ibug68", parse, load_images, skip_bad)
