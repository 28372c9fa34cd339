"""Kaggle submissions: read ``IdLookupTable.csv`` and write ``RowId,Location`` in its order.

The lookup table asks for one coordinate per row (``RowId,ImageId,FeatureName``); a submission
answers every row, in order. Predictions outside the 96 x 96 image are clipped to [0, 95] as the
competition's scoring expects, and every clipped value is counted and named in the report.

Examples
--------
>>> rows = read_id_lookup("../shared/data/fkd15-ytf/IdLookupTable.csv")          # doctest: +SKIP
>>> report = write_submission(predictions, rows, "submission.csv")                # doctest: +SKIP
>>> report.rows, report.clipped                                                   # doctest: +SKIP
(27124, 3)
"""
from __future__ import annotations

import csv
import difflib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facekeypoints.atomic import atomic_path
from facekeypoints.data.formats.csvfile import open_csv, read_chunks
from facekeypoints.data.dataset import DataFormatError, KeypointData, user_path
from facekeypoints.data.formats.checks import text_int
from facekeypoints.schema import load_schema

__all__ = ["read_id_lookup", "write_submission", "SubmissionReport"]

_LOOKUP_COLUMNS = ("RowId", "ImageId", "FeatureName")
# Kaggle's IdLookupTable.csv is 862 KB, 27,124 rows; past these limits a file is refused (named) as
# it is read, so a wrong or huge file (3 M rows took 1.7 GB) cannot take gigabytes
MAX_LOOKUP_BYTES = 10_000_000  # uncompressed
MAX_LOOKUP_ROWS = 200_000


@dataclass(frozen=True)
class SubmissionReport:
    """What ``write_submission`` wrote: ``rows`` answers, ``clipped`` of them moved into the image."""

    path: str
    rows: int
    clipped: int
    clipped_row_ids: tuple[int, ...]


def _lookup_text(path: Path) -> Iterator[list[str]]:
    """The CSV's rows, parsed as they are asked for; over ``MAX_LOOKUP_BYTES`` is an error."""
    chunks, size = [], 0
    with open_csv(path) as stream:
        for chunk in read_chunks(stream, path):  # UTF-16, binary and corrupt archives are named errors
            size += len(chunk)
            if size > MAX_LOOKUP_BYTES:
                raise DataFormatError(path, f"over {MAX_LOOKUP_BYTES / 1e6:g} MB of text, the limit for an "
                                      "IdLookupTable (Kaggle's is 862 KB, 27124 rows)")
            chunks.append(chunk)
    raw = b"".join(chunks)
    del chunks
    if not raw.strip():
        raise DataFormatError(path, "empty file")
    if b"\x00" in raw:
        raise DataFormatError(path, "binary data (NUL byte), not a CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataFormatError(path, f"not UTF-8 text (line {line})") from None
    return csv.reader(io.StringIO(text, newline=""))


def read_id_lookup(path: str | Path) -> list[tuple[int, int, str]]:
    """Read Kaggle's ``IdLookupTable.csv`` (plain, .gz or .zip) as (row_id, image_id, feature_name)
    tuples in file order. Feature names must be kaggle15 columns (``left_eye_center_x``, ...);
    RowIds must be unique integers. Rows are numbered from 1 at the first data row."""
    path = Path(path)
    lines = _lookup_text(path)
    try:
        header = [name.strip() for name in next(lines)]
    except csv.Error as err:
        raise DataFormatError(path, f"header: not a readable CSV line ({err})") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:  # which copy holds the values meant is unknown
        raise DataFormatError(path, f"header: duplicate columns {repeated}; keep one of each")
    missing = [c for c in _LOOKUP_COLUMNS if c not in header]
    unknown = [c for c in header if c not in _LOOKUP_COLUMNS + ("Location",)]
    if missing or unknown:
        raise DataFormatError(path, f"columns must be RowId,ImageId,FeatureName[,Location]; "
                              f"missing {missing}, unknown {unknown}")
    col = [header.index(c) for c in _LOOKUP_COLUMNS]
    features = set(load_schema("kaggle15").columns())
    rows: list[tuple[int, int, str]] = []
    seen: dict[int, int] = {}
    number = 0
    while True:
        number += 1
        try:
            line = next(lines, None)
        except csv.Error as err:  # a field over csv's size limit, a stray NUL
            raise DataFormatError(path, f"not a readable CSV line ({err})", row=number) from None
        if line is None:
            break
        if not line:
            continue  # csv yields [] for a blank line: no data on it
        if len(rows) >= MAX_LOOKUP_ROWS:
            raise DataFormatError(path, f"over {MAX_LOOKUP_ROWS} rows, the limit for an IdLookupTable (Kaggle's has "
                                  "27124)", row=number)
        short_location = header[-1] == "Location" and len(line) == len(header) - 1  # Kaggle's rows omit it
        if len(line) != len(header) and not short_location:
            raise DataFormatError(path, f"has {len(line)} fields, the header has {len(header)}", row=number)
        row_id, image_id = (_integer(path, line[c], number, name) for c, name in zip(col[:2], _LOOKUP_COLUMNS))
        feature = line[col[2]].strip()
        if feature not in features:
            close = difflib.get_close_matches(feature, sorted(features), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataFormatError(path, f"unknown feature {feature!r}{hint}", row=number, field="FeatureName")
        if row_id in seen:
            raise DataFormatError(path, f"duplicate RowId {row_id} (also on row {seen[row_id]})", row=number,
                                  field="RowId")
        seen[row_id] = number
        rows.append((row_id, image_id, feature))
    if not rows:
        raise DataFormatError(path, "no data rows (the file holds only a header)")
    return rows


def _integer(path: Path, text: str, row: int, field: str) -> int:
    try:
        return text_int(text)
    except ValueError:
        raise DataFormatError(path, f"not an integer: {text!r}", row=row, field=field) from None


def _image_ids(image_ids) -> list[int]:
    """``image_ids`` as ints: int() would truncate 1.7 to 1, and a str "12" would be two ids."""
    if isinstance(image_ids, (str, bytes)) or not isinstance(image_ids, (list, tuple, range, np.ndarray)):
        raise TypeError(f"image_ids must be a list of integer ImageIds, got {type(image_ids).__name__}")
    for k, i in enumerate(image_ids):
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"image_ids[{k}] must be an integer ImageId, got {type(i).__name__} {i!r}")
    return [int(i) for i in image_ids]


def _image_size(image_size) -> tuple[int, int]:
    """``image_size`` as (height, width), both positive ints: (0, 0) would clip every value to -1,
    NaN would turn clipping off."""
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in image_size)):
        raise TypeError(f"image_size must be (height, width), two ints, got {image_size!r}")
    if min(image_size) < 1:
        raise ValueError(f"image_size must be (height, width), both positive, got {tuple(image_size)}")
    return int(image_size[0]), int(image_size[1])


def _lookup_rows(lookup_rows) -> list[tuple[int, int, str]]:
    """``lookup_rows`` as read_id_lookup gives them: (RowId, ImageId, FeatureName) triples."""
    if isinstance(lookup_rows, (str, bytes)) or not isinstance(lookup_rows, (list, tuple)):
        raise TypeError(f"lookup_rows must be a list of (RowId, ImageId, FeatureName) from read_id_lookup, "
                        f"got {type(lookup_rows).__name__}")
    if not lookup_rows:  # a submission of no rows is only its header, which Kaggle refuses
        raise ValueError("lookup_rows is empty: a submission answers the rows of an IdLookupTable (read_id_lookup), "
                         "and none were given")
    for k, row in enumerate(lookup_rows):
        if not (isinstance(row, (tuple, list)) and len(row) == 3 and isinstance(row[2], str)
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in row[:2])):
            raise ValueError(f"lookup_rows[{k}] must be (RowId, ImageId, FeatureName), two ints and a str, "
                             f"got {row!r}")
    return list(lookup_rows)


def _prediction_table(predictions: KeypointData | np.ndarray, image_ids: Sequence[int] | None
                      ) -> tuple[np.ndarray, dict[int, int]]:
    """((N, 15, 2) float predictions, {ImageId: index})."""
    if isinstance(predictions, KeypointData):
        if predictions.schema.name != "kaggle15":
            raise ValueError(f"predictions must use schema kaggle15, not {predictions.schema.name!r}")
        keypoints = predictions.keypoints
        if image_ids is None:
            try:
                ids = [int(i) for i in predictions.ids]
            except ValueError:
                raise ValueError("predictions.ids must be Kaggle ImageIds (integers); pass image_ids=") from None
    else:
        keypoints = np.asarray(predictions, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[1:] != (15, 2):
            raise ValueError(f"predictions must be (N, 15, 2), got {keypoints.shape}")
        if image_ids is None:
            raise ValueError("an array of predictions needs image_ids= (the ImageId of each row)")
    if image_ids is not None:
        ids = _image_ids(image_ids)
    if len(ids) != len(keypoints):
        raise ValueError(f"{len(ids)} image ids for {len(keypoints)} predictions")
    index = {image_id: k for k, image_id in enumerate(ids)}
    if len(index) != len(ids):
        counts = Counter(ids)
        repeated = [image_id for image_id in index if counts[image_id] > 1]
        raise ValueError(f"image ids are not unique: {repeated[0]} is given {counts[repeated[0]]} times "
                         f"({len(repeated)} repeated ids in all)")
    return keypoints, index


def write_submission(predictions: KeypointData | np.ndarray, lookup_rows: Sequence[tuple[int, int, str]],
                     path: str | Path, *, image_ids: Sequence[int] | None = None,
                     image_size: tuple[int, int] = (96, 96), lookup_source: str = "lookup") -> SubmissionReport:
    """Write a Kaggle submission ``RowId,Location``, one line per lookup row, in lookup order.

    ``predictions`` is KeypointData in schema kaggle15 whose ids are ImageIds, or an (N, 15, 2)
    array of pixel coordinates with ``image_ids`` (N,). ``lookup_rows`` comes from
    ``read_id_lookup``. x is clipped to [0, W - 1] and y to [0, H - 1] for ``image_size`` (H, W);
    the report counts clipped values and lists their RowIds. A lookup row whose ImageId was not
    predicted, or whose prediction is NaN, raises ValueError.
    """
    keypoints, index = _prediction_table(predictions, image_ids)
    columns = {name: k for k, name in enumerate(load_schema("kaggle15").columns())}
    height, width = _image_size(image_size)
    lookup_rows = _lookup_rows(lookup_rows)
    path = user_path(path)
    unknown = [(row_id, image_id) for row_id, image_id, _ in lookup_rows if image_id not in index]
    if unknown:  # every one counted, not only the first: a lookup of another test file shows at once
        row_id, image_id = unknown[0]
        raise ValueError(f"{lookup_source}: field 'ImageId': {len(unknown)} of {len(lookup_rows)} rows ask for "
                         f"ImageIds the test file has no face for (the first: RowId {row_id}, ImageId {image_id}); "
                         f"is it the lookup table of this test file?")
    answers, clipped = [], []
    for row_id, image_id, feature in lookup_rows:
        if feature not in columns:
            raise ValueError(f"lookup RowId {row_id} asks for unknown feature {feature!r}")
        value = float(keypoints[index[image_id]].reshape(-1)[columns[feature]])
        if not np.isfinite(value):  # inf would be clipped into a plausible-looking number
            raise ValueError(f"prediction for ImageId {image_id} {feature} (RowId {row_id}) is "
                             f"{'NaN' if np.isnan(value) else value}")
        limit = (width if feature.endswith("_x") else height) - 1
        inside = min(max(value, 0.0), float(limit))
        if inside != value:
            clipped.append(row_id)
        answers.append(f"{row_id},{inside:.4f}\n")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as out:
        out.write("RowId,Location\n")
        out.writelines(answers)
    return SubmissionReport(path=str(path), rows=len(answers), clipped=len(clipped), clipped_row_ids=tuple(clipped))
