"""YouTube Faces 68-point CSVs: the ytf68 layout and the original Udacity P1 layout (schema ibug68).

ytf68 (``train.csv``): columns ``image, person, x0, y0, ..., x67, y67``; ``image`` is a path
relative to the ``images/`` folder beside the CSV. ``unlabeled.csv`` has ``image, person`` only,
so its keypoints are all NaN. Udacity P1_Facial_Keypoints (``training_frames_keypoints.csv``): a
blank first header cell over the image file names, then columns ``0`` .. ``135`` holding x0, y0,
..., x67, y67; the images sit in the folder named like the CSV (``training_frames_keypoints/``)
or like its stem without ``_frames_keypoints`` (``training/``), or in ``image_dir=``.

Coordinates are 0-based pixels and are kept as they are, even slightly outside the image; more
than one image size outside it is an error (the rule is in ``facekeypoints.data.formats.checks``).
Images are RGB uint8 arrays of varying size, so ``data.images`` is a list. Rows are numbered
from 1 at the first data row (the line after the header).

Examples
--------
>>> data = read_ytf68_csv("../shared/data/ytf68/train.csv", load_images=False)  # doctest: +SKIP
>>> data.keypoints.shape, data.person[0]                                       # doctest: +SKIP
((3045, 68, 2), 'Luis_Fonsi')
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from facekeypoints.data.formats.checks import describe, first_implausible, text_float
from facekeypoints.data.formats.csvfile import open_csv, read_chunks
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.images import read_image
from facekeypoints.schema import load_schema

__all__ = ["read_ytf68_csv", "read_udacity_csv", "attach_person"]

_POINTS = 68
_MAX_LINE = 1 << 20  # bytes


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) of a small CSV; empty, binary, non-UTF-8 and header-only files are errors."""
    with open_csv(path) as stream:
        raw = b"".join(read_chunks(stream, path))  # a corrupt .gz or .zip is a DataFormatError
    if not raw.strip():
        raise DataFormatError(path, "empty file")
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        raise DataFormatError(path, f"binary data (NUL byte at offset {offset}), not a CSV text file")
    raw = raw.replace(b"\r\r\n", b"\n")  # CR CR LF: a CR LF file saved again with Windows line ends
    raw = raw.rstrip(b"\r\n\t ") + b"\n"  # trailing blank lines hold no rows (20 M of them took 1.6 GB as rows)
    lengths = [len(line) for line in raw.splitlines()]  # a row is about 1 KB; one of megabytes is no row of ours
    row = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[row] > _MAX_LINE:
        raise DataFormatError(path, f"a line of {lengths[row]} bytes, over {_MAX_LINE}: not a ytf68 CSV row", row=row)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        row = raw[:err.start].count(b"\n")
        raise DataFormatError(path, f"not UTF-8 text ({err.reason} at byte {err.start})", row=row) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = list(reader)
    except csv.Error as err:  # e.g. a field over the csv module's size limit
        raise DataFormatError(path, f"not a readable CSV line ({err})", row=reader.line_num - 1) from None
    while lines and not lines[-1]:
        lines.pop()  # trailing blank lines hold no rows
    if len(lines) < 2:
        raise DataFormatError(path, "no data rows (the file holds only a header)")
    return [name.strip() for name in lines[0]], lines[1:]


def _ytf68_columns(header: list[str], path: Path) -> tuple[int, int | None, list[int]]:
    """(image column, person column or None, the 136 coordinate columns x0, y0, ... or [])."""
    coords = [f"{axis}{i}" for i in range(_POINTS) for axis in ("x", "y")]
    unknown = [n for n in header if n not in coords and n not in ("image", "person")]
    present = [c for c in coords if c in header]
    missing = [c for c in coords if c not in header] if present else []
    missing += [] if "image" in header else ["image"]
    dup = sorted({n for n in header if header.count(n) > 1})
    if unknown or missing or dup:
        raise DataFormatError(path, f"ytf68 CSV columns are image, person, x0, y0, ..., x67, y67; unknown "
                              f"{unknown}, missing {missing}, duplicate {dup}")
    person = header.index("person") if "person" in header else None
    return header.index("image"), person, [header.index(c) for c in present]


def _coordinates(line: list[str], cols: list[int], header: list[str]) -> list[float]:
    values = []
    for c in cols:
        text = line[c].strip()
        try:
            value = text_float(text) if text else math.nan
        except ValueError:
            raise DataFormatError("", f"not a number: {text!r}", field=header[c]) from None
        if text and not math.isfinite(value):  # NaN spelt out is no missing mark: that is an empty cell
            raise DataFormatError("", f"not a finite number: {text!r} (leave the cell empty for a missing "
                                  "keypoint)", field=header[c])
        values.append(value)
    for k in range(0, len(values), 2):
        if math.isnan(values[k]) != math.isnan(values[k + 1]):
            raise DataFormatError("", "only one of x and y is given; a keypoint needs both or neither",
                                  field=f"{header[cols[k]]}/{header[cols[k + 1]]}")
    return values or [math.nan] * (2 * _POINTS)


def _check_range(values: list[float], cols: list[int], header: list[str], size: tuple[int, int] | None) -> None:
    """A coordinate far outside the image (see ``checks``) is an error naming its column."""
    found = first_implausible(np.reshape(values, (-1, 2)), size, missing=np.isnan(values[::2]))
    if found is not None:
        k, axis = found
        raise DataFormatError("", describe(values[2 * k + axis], axis, size), field=header[cols[2 * k + axis]])


def _load(image_path: Path, name: str) -> np.ndarray:
    if not image_path.is_file():
        raise DataFormatError("", f"image file not found: {image_path}", field=name)
    try:
        return read_image(image_path)
    except (DataFormatError, OSError) as err:  # re-raised without a path so the caller names the CSV row
        why = err.reason if isinstance(err, DataFormatError) else f"cannot read image: {err.strerror or err}"
        raise DataFormatError("", f"{image_path}: {why}", field=name, hint=getattr(err, "hint", None)) from None


def _read_rows(path: Path, header: list[str], lines: list[list[str]], columns: tuple[int, int | None, list[int]],
               image_root: Path, load_images: bool, skip_bad: bool) -> KeypointData:
    """KeypointData (ibug68) from parsed CSV rows; a row error names the CSV, row and field."""
    image_col, person_col, coord_cols = columns
    keypoints, images, ids, person, paths, skipped = [], [], [], [], [], []
    for row, line in enumerate(lines, start=1):
        try:
            if len(line) != len(header):
                raise DataFormatError("", f"has {len(line)} fields, the header has {len(header)}")
            name = line[image_col].strip()
            if not name:
                raise DataFormatError("", "empty image name", field=header[image_col])
            values = _coordinates(line, coord_cols, header)
            image_path = image_root / name
            image = _load(image_path, header[image_col]) if load_images else None
            if not load_images and not image_path.is_file():
                raise DataFormatError("", f"image file not found: {image_path}", field=header[image_col])
            _check_range(values, coord_cols, header, image.shape[:2] if load_images else None)
        except DataFormatError as err:
            located = DataFormatError(path, err.reason, row=row, field=err.field, hint=err.hint)
            if not skip_bad:
                raise located from None
            skipped.append(str(located))
            continue
        keypoints.append(values)
        images.append(image)
        ids.append(name)
        person.append((line[person_col].strip() or None) if person_col is not None else None)
        paths.append(str(image_path))
    return KeypointData(
        schema=load_schema("ibug68"), keypoints=np.asarray(keypoints, np.float32).reshape(-1, _POINTS, 2),
        images=images if load_images else None, ids=ids, person=person, paths=paths, source=str(path),
        skipped=skipped)


def read_ytf68_csv(path: str | Path, *, load_images: bool = True, skip_bad: bool = False) -> KeypointData:
    """Read a ytf68 ``train.csv`` or ``unlabeled.csv`` (schema ibug68).

    Returns keypoints (N, 68, 2) float32 pixels (NaN for unlabelled rows), images a list of N
    (H, W, 3) RGB uint8 arrays (None with ``load_images=False``), ids the ``image`` column,
    person filled, paths the image files. A missing or unreadable image file is a bad row.
    """
    path = Path(path)
    header, lines = _csv_rows(path)
    columns = _ytf68_columns(header, path)
    return _read_rows(path, header, lines, columns, path.parent / "images", load_images, skip_bad)


def _udacity_image_dir(path: Path) -> Path:
    candidates = [path.with_suffix(""), path.parent / path.stem.removesuffix("_frames_keypoints")]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise DataFormatError(path, f"no image folder beside the CSV (looked for {[str(c) for c in candidates]}); "
                          "pass image_dir=")


def read_udacity_csv(path: str | Path, *, image_dir: str | Path | None = None, load_images: bool = True,
                     skip_bad: bool = False) -> KeypointData:
    """Read an Udacity P1_Facial_Keypoints CSV (``training_frames_keypoints.csv``), schema ibug68.

    Header: a blank first cell, then ``0`` .. ``135`` (x0, y0, ..., x67, y67). Returns keypoints
    (N, 68, 2) float32, images a list of N (H, W, 3) RGB uint8 arrays from ``image_dir`` (default:
    the folder beside the CSV, see the module notes), ids the image file names.
    """
    path = Path(path)
    header, lines = _csv_rows(path)
    numbered = [str(i) for i in range(2 * _POINTS)]
    if len(header) != 2 * _POINTS + 1 or header[1:] != numbered:
        raise DataFormatError(path, f"Udacity CSV header must be a name column then 0..135; got "
                              f"{len(header)} columns starting {header[:4]}")
    root = Path(image_dir) if image_dir is not None else _udacity_image_dir(path)
    header = ["image"] + [f"{axis}{i}" for i in range(_POINTS) for axis in ("x", "y")]  # names for messages
    columns = (0, None, list(range(1, 2 * _POINTS + 1)))
    return _read_rows(path, header, lines, columns, root, load_images, skip_bad)


def attach_person(data: KeypointData, csv_path: str | Path) -> KeypointData:
    """A copy of ``data`` whose ``person`` comes from the ``person`` column of ``csv_path``, row by row.

    The CSV must have exactly ``len(data)`` rows in the same order (fkd15-ytf/training.csv row i
    is ytf68/train.csv row i), and ``data`` must not have skipped rows; otherwise ValueError.
    """
    csv_path = Path(csv_path)
    header, lines = _csv_rows(csv_path)
    if "person" not in header:
        raise DataFormatError(csv_path, f"no 'person' column (columns: {header[:5]}...)")
    if data.skipped:
        raise ValueError(f"{data.source} was read with {len(data.skipped)} rows skipped, so its rows no "
                         f"longer line up with {csv_path}; read it without skip_bad")
    if len(lines) != len(data):
        raise ValueError(f"{csv_path} has {len(lines)} rows but {data.source or 'the data'} has {len(data)}; "
                         "a person sidecar must match row for row")
    col = header.index("person")
    person = []
    for row, line in enumerate(lines, start=1):
        name = line[col].strip() if col < len(line) else ""
        if not name:
            raise DataFormatError(csv_path, "empty person", row=row, field="person")
        person.append(name)
    return replace(data, person=person)
