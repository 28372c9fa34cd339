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
import itertools
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from facekeypoints.data.formats.checks import check_flags, describe, first_implausible, text_float
from facekeypoints.data.formats.csvfile import open_csv, read_chunks
from facekeypoints.data.formats.textfile import short
from facekeypoints.data.dataset import DataFormatError, KeypointData, user_path
from facekeypoints.data.images import read_image
from facekeypoints.data.walk import same_file
from facekeypoints.schema import load_schema

__all__ = ["read_ytf68_csv", "read_udacity_csv", "attach_person"]

_POINTS = 68
_MAX_LINE = 1 << 20  # bytes
# the real train.csv is 2.8 MB of 3462 rows (~0.8 KB each); these bound memory (text, lines, results)
_MAX_BYTES = 128_000_000
_MAX_ROWS = 200_000
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # the lines as the csv module counts them


class _Rows:
    """The data rows of a checked CSV, parsed again from its lines each time they are iterated: a list
    of every row's fields took ~9 times the file's size in memory (138 string objects a ytf68 row)."""

    def __init__(self, physical: list[str], count: int):
        self.physical, self.count = physical, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return itertools.islice(csv.reader(self.physical), 1, 1 + self.count)


def _unclosed_quote(lines: list[str]) -> bool:
    """Whether the CSV record made of ``lines`` ends inside a quoted field (its quote never closes)."""
    try:
        list(csv.reader(lines, strict=True))
    except csv.Error as err:
        return "unexpected end of data" in str(err)
    return False


def _csv_rows(path: Path) -> tuple[list[str], _Rows, list[tuple[int, int]]]:
    """(header, data rows, the first and last line of each data row) of a small CSV; empty, binary,
    non-UTF-8 and header-only files are errors, and so is a quote that is never closed (it would
    make the rest of the file one field)."""
    with open_csv(path) as stream:
        chunks, size = [], 0
        for chunk in read_chunks(stream, path):  # a corrupt .gz or .zip is a DataFormatError
            size += len(chunk)
            if size > _MAX_BYTES:  # e.g. a .gz that unpacks to gigabytes: refused before it is all read
                raise DataFormatError(path, f"over {_MAX_BYTES / 1e6:g} MB of CSV text, the size limit for a ytf68 or "
                                      "Udacity CSV (a row of 68 points is about 1 KB)")
            chunks.append(chunk)
    raw = b"".join(chunks)
    del chunks
    if not raw.strip():
        raise DataFormatError(path, "empty file")
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        raise DataFormatError(path, f"binary data (NUL byte at offset {offset}), not a CSV text file")
    raw = raw.replace(b"\r\r\n", b"\n")  # CR CR LF: a CR LF file saved again with Windows line ends
    raw = raw.rstrip(b"\r\n\t ") + b"\n"  # trailing blank lines hold no rows (20 M of them took 1.6 GB as rows)
    lines = raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")  # as splitlines counts them, no list made
    if lines - 1 > _MAX_ROWS:  # a row costs ~1 KB in memory however short its line (1 M took 2.1 GB)
        raise DataFormatError(path, f"{lines - 1} lines after the header, over the limit of {_MAX_ROWS} rows for a "
                              "ytf68 or Udacity CSV")
    lengths = [len(line) for line in raw.splitlines()]  # a row is about 1 KB; one of megabytes is no row of ours
    row = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[row] > _MAX_LINE:
        raise DataFormatError(path, f"a line of {lengths[row]} bytes, over {_MAX_LINE}: not a ytf68 CSV row", row=row)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        row = raw[:err.start].count(b"\n")
        raise DataFormatError(path, f"not UTF-8 text ({err.reason} at byte {err.start})", row=row) from None
    del raw
    physical = _PHYSICAL_LINE.findall(text)  # StringIO(text).readlines() held 4 bytes a character more
    del text
    reader = csv.reader(physical)
    header, spans, filled = [], [], 0  # filled: the records up to the last one not blank
    try:
        for record in reader:  # only checked here: _Rows parses them again as they are used
            spans.append((spans[-1][1] + 1 if spans else 1, reader.line_num))
            header = record if len(spans) == 1 else header
            filled = len(spans) if record else filled
    except csv.Error as err:  # e.g. a field over the csv module's size limit
        start = spans[-1][1] + 1 if spans else 1
        why = (f"; this row runs from line {start} to line {reader.line_num}: a quote opened on line {start} and "
               "not closed?") if reader.line_num > start else ""
        raise DataFormatError(path, f"not a readable CSV line ({err}){why}", row=len(spans)) from None
    if spans and _unclosed_quote(physical[spans[-1][0] - 1:]):
        first, last = spans[-1]
        raise DataFormatError(path, f"line {first}: a quote opened on this line is never closed, so lines "
                              f"{first}-{last} would be one field; close it or remove it", row=len(spans) - 1 or None)
    if filled < 2:  # trailing blank lines hold no rows
        raise DataFormatError(path, "no data rows (the file holds only a header)")
    return [name.strip() for name in header], _Rows(physical, filled - 1), spans[1:filled]


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


def _require_file(image_path: Path, name: str, missing_ok: bool = False) -> None:
    """A row's image must be a file (or, with ``missing_ok``, be missing); a name the system will not
    look up (one too long), or a folder, is a bad row too."""
    try:
        found = image_path.is_file()
    except OSError as err:  # is_file says False for a missing file but raises for a name over the limit
        raise DataFormatError("", f"image file cannot be looked up ({err.strerror or err}): "
                              f"{short(str(image_path))}", field=name) from None
    if not found and image_path.is_dir():
        raise DataFormatError("", f"{image_path} is a folder, not an image file", field=name)
    if not found and not missing_ok:
        raise DataFormatError("", f"image file not found: {image_path}", field=name)


def _load(image_path: Path, name: str) -> np.ndarray:
    _require_file(image_path, name)
    try:
        return read_image(image_path)
    except (DataFormatError, OSError) as err:  # re-raised without a path so the caller names the CSV row
        why = err.reason if isinstance(err, DataFormatError) else f"cannot read image: {err.strerror or err}"
        raise DataFormatError("", f"{image_path}: {why}", field=name, hint=getattr(err, "hint", None)) from None


def _read_rows(path: Path, header: list[str], lines: list[list[str]], spans: list[tuple[int, int]],
               columns: tuple[int, int | None, list[int]], image_root: Path, load_images: bool,
               skip_bad: bool) -> KeypointData:
    """KeypointData (ibug68) from parsed CSV rows; a row error names the CSV, row and field.

    ``spans`` holds each row's first and last line: a row over several lines (a quoted field with
    line breaks) is named with its lines, so that no line goes unaccounted for when it is skipped.
    An image named on two rows is an error on the second: its face would count twice.
    """
    image_col, person_col, coord_cols = columns
    images, ids, person, paths, skipped = [], [], [], [], []
    keypoints = np.empty((len(spans), 2 * _POINTS), np.float32)  # row by row: Python floats took ~4 KB a row
    first_row: dict[str, tuple[int, str]] = {}  # an image's real path -> its first row and name
    for row, (line, (first, last)) in enumerate(zip(lines, spans), start=1):
        try:
            if len(line) != len(header):
                raise DataFormatError("", f"has {len(line)} fields, the header has {len(header)}")
            name = line[image_col].strip()
            if not name:
                raise DataFormatError("", "empty image name", field=header[image_col])
            image_path = image_root / name
            if (same := same_file(image_path)) in first_row:
                row_before, name_before = first_row[same]
                link = f" (the same file as {name_before!r})" if name_before != name else ""
                raise DataFormatError("", f"repeats the image {name!r} of row {row_before}{link}: its face would "
                                      "count twice", field=header[image_col])
            values = _coordinates(line, coord_cols, header)
            image = _load(image_path, header[image_col]) if load_images else None
            if not load_images:  # labels alone need no photo: a caller that reads it (evaluate) names one missing
                _require_file(image_path, header[image_col], missing_ok=True)
            _check_range(values, coord_cols, header, image.shape[:2] if load_images else None)
        except DataFormatError as err:
            reason = err.reason
            if first != last:  # the line breaks shown as \n: a message is one line
                reason += (f" (this row runs over lines {first}-{last}: a quoted field holds line breaks; a stray "
                           "quote?)")  # its line breaks are shown as \n by DataFormatError
            located = DataFormatError(path, reason, row=row, field=err.field, hint=err.hint)
            if not skip_bad:
                raise located from None
            skipped.append(str(located))
            continue
        first_row[same] = row, name
        keypoints[len(ids)] = values
        images.append(image)
        ids.append(name)
        person.append((line[person_col].strip() or None) if person_col is not None else None)
        paths.append(str(image_path))
    return KeypointData(
        schema=load_schema("ibug68"), keypoints=keypoints[:len(ids)].reshape(-1, _POINTS, 2),
        images=images if load_images else None, ids=ids, person=person, paths=paths, source=str(path),
        skipped=skipped)


def read_ytf68_csv(path: str | Path, *, load_images: bool = True, skip_bad: bool = False) -> KeypointData:
    """Read a ytf68 ``train.csv`` or ``unlabeled.csv`` (schema ibug68).

    Returns keypoints (N, 68, 2) float32 pixels (NaN for unlabelled rows), images a list of N
    (H, W, 3) RGB uint8 arrays (None with ``load_images=False``), ids the ``image`` column,
    person filled, paths the image files. A missing or unreadable image file is a bad row (with
    ``load_images=False`` a missing one is not: the labels are read, for a caller to name the photo).
    """
    check_flags(load_images=load_images, skip_bad=skip_bad)
    path = user_path(path)
    header, lines, spans = _csv_rows(path)
    columns = _ytf68_columns(header, path)
    return _read_rows(path, header, lines, spans, columns, path.parent / "images", load_images, skip_bad)


def _udacity_image_dir(path: Path, names: list[str], required: bool) -> Path:
    """The folder beside the CSV that holds its images: ``training_frames_keypoints/`` or ``training/``.
    When both are there, the one that holds any of ``names`` (the CSV's image names); when both hold
    one, which photo the labels belong to is unknown: an error naming both, never the first one taken
    without a word. With neither there, an error if ``required`` (images loaded), else the first
    (labels alone: their photos are then missing)."""
    candidates = list(dict.fromkeys([path.with_suffix(""), path.parent / path.stem.removesuffix("_frames_keypoints")]))
    found = [folder for folder in candidates if folder.is_dir()]
    if not found and not required:
        return candidates[0]
    if not found:
        raise DataFormatError(path, f"no image folder beside the CSV (looked for "
                              f"{', '.join(str(c) for c in candidates)}); put the images in one of those folders "
                              "(in Python, image_dir= names another)")
    if len(found) == 2 and same_file(found[0]) != same_file(found[1]):
        both = next((name for name in names if all((folder / name).is_file() for folder in found)), None)
        if both is not None:
            raise DataFormatError(path, f"both image folders beside the CSV hold {both!r} ({found[0]} and "
                                  f"{found[1]}): which photo the labels belong to is unknown; remove or rename "
                                  "one folder, or pass image_dir= (Python)")
        # the one that holds the CSV's images, not an empty or unrelated folder that happens to sort first
        found = [folder for folder in found if any((folder / name).is_file() for name in names)] or found
    return found[0]


def read_udacity_csv(path: str | Path, *, image_dir: str | Path | None = None, load_images: bool = True,
                     skip_bad: bool = False) -> KeypointData:
    """Read an Udacity P1_Facial_Keypoints CSV (``training_frames_keypoints.csv``), schema ibug68.

    Header: a blank first cell, then ``0`` .. ``135`` (x0, y0, ..., x67, y67). Returns keypoints
    (N, 68, 2) float32, images a list of N (H, W, 3) RGB uint8 arrays from ``image_dir`` (default:
    the folder beside the CSV, see the module notes), ids the image file names.
    """
    check_flags(load_images=load_images, skip_bad=skip_bad)
    path = user_path(path)
    header, lines, spans = _csv_rows(path)
    numbered = [str(i) for i in range(2 * _POINTS)]
    if len(header) != 2 * _POINTS + 1 or header[1:] != numbered:
        raise DataFormatError(path, f"Udacity CSV header must be a name column then 0..135; got "
                              f"{len(header)} columns starting {header[:4]}")
    names = [line[0].strip() for line in lines if line]
    root = Path(image_dir) if image_dir is not None else _udacity_image_dir(path, names, required=load_images)
    header = ["image"] + [f"{axis}{i}" for i in range(_POINTS) for axis in ("x", "y")]  # names for messages
    columns = (0, None, list(range(1, 2 * _POINTS + 1)))
    return _read_rows(path, header, lines, spans, columns, root, load_images, skip_bad)


def attach_person(data: KeypointData, csv_path: str | Path) -> KeypointData:
    """A copy of ``data`` whose ``person`` comes from the ``person`` column of ``csv_path``, row by row.

    The CSV must have exactly ``len(data)`` rows in the same order (fkd15-ytf/training.csv row i
    is ytf68/train.csv row i), and ``data`` must not have skipped rows; otherwise ValueError.
    """
    if not isinstance(data, KeypointData):
        raise TypeError(f"attach_person: data must be KeypointData, got {type(data).__name__}")
    csv_path = user_path(csv_path, "csv_path")
    if not csv_path.is_file():
        raise FileNotFoundError(f"attach_person: csv_path {csv_path}: no such file")
    header, lines, _ = _csv_rows(csv_path)
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
