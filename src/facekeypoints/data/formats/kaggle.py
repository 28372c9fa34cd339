"""Kaggle Facial Keypoints Detection CSV files: ``training.csv``, ``test.csv`` and label-only files.

``training.csv`` holds 30 coordinate columns (``<keypoint>_x``, ``<keypoint>_y`` of schema
kaggle15) and ``Image``: 9216 space-separated grey values of a 96x96 face. ``test.csv`` holds
``ImageId`` (an integer >= 1, each once) and ``Image``; label-only files hold the 30 coordinates
alone. An empty coordinate is a missing label (NaN). Files may be plain, gzip-compressed or the one CSV inside a zip archive.

IdLookupTable.csv and submissions are in ``facekeypoints.data.formats.submission``.
The Image column is parsed with numpy over the raw bytes, block by block, and every check on it
is vectorised; results are cached by the file's content (see ``facekeypoints.data.cache``).
Rows are numbered from 1 at the first data row (the line after the header); each line is one row.
Labelled rows that repeat an earlier row's image are kept, with one warning naming them on every
read (a photo set can hold one frame under two names; training refuses a split that puts copies on
both sides). A coordinate must be
a finite number no more than one image size (96 px) beyond the image's edges, or any image's
without an Image column (see ``facekeypoints.data.formats.checks``). Lines may end in LF, CR LF
or, in old Mac files, CR. A field may be enclosed in one pair of double quotes, as CSV writers
quote ("1 2 3 ..."), but may not hold a comma or a line break: a line whose quotes do not close on
it is one bad row, and each further line of such a field is one more.

Examples
--------
>>> data = read_kaggle_csv("../shared/data/fkd15-ytf/training.zip")    # doctest: +SKIP
>>> data.images.shape, data.keypoints.shape                              # doctest: +SKIP
((3045, 96, 96), (3045, 15, 2))
"""
from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facekeypoints.data import cache
from facekeypoints.data.formats.csvfile import (line_blocks, open_for_writing, open_sized, parse_header, read_ahead,
                                                read_chunks)
from facekeypoints.data.dataset import DataFormatError, KeypointData, user_path
from facekeypoints.data.formats.checks import check_flags, describe, implausible, text_float, text_int
from facekeypoints.data.formats.pixels import PIXELS, PixelParser, format_pixels
from facekeypoints.schema import load_schema

__all__ = ["read_kaggle_csv", "write_kaggle_csv", "IMAGE_SHAPE"]

IMAGE_SHAPE = (96, 96)
_READER_VERSION = 7  # bump when parsing changes, so cached results of the old parser are not reused


# ---- which column is which -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    ncols: int
    coord_cols: tuple[int, ...]  # file column of each schema coordinate, schema order; () if label-free
    image_col: int | None
    id_col: int | None


def _kaggle_layout(names: list[str], path: Path) -> _Layout:
    coords = load_schema("kaggle15").columns()
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataFormatError(path, f"header: duplicate columns {dup}")
    unknown = [n for n in names if n not in coords and n not in ("Image", "ImageId")]
    present = [c for c in coords if c in names]
    missing = [c for c in coords if c not in names] if present else []
    if unknown or missing:
        parts = [f"unknown columns {unknown}"] if unknown else []
        parts += [f"missing columns {missing}"] if missing else []
        raise DataFormatError(path, "header: " + "; ".join(parts) + " (a Kaggle CSV has the 30 kaggle15 coordinate "
                              "columns and/or Image, and ImageId in test.csv)")
    if not present and "Image" not in names:
        raise DataFormatError(path, f"header: neither keypoint columns nor an Image column; columns are {names}")
    col = {n: i for i, n in enumerate(names)}
    return _Layout(len(names), tuple(col[c] for c in present), col.get("Image"), col.get("ImageId"))


# ---- reading ---------------------------------------------------------------------------------------
def _unquote(field: bytes) -> bytes:
    """A field less one pair of surrounding double quotes ("66.5" and "" are valid CSV; "" inside is
    one quote), else as it is."""
    inner = field.strip()
    quoted = len(inner) >= 2 and inner[:1] == b'"' and inner[-1:] == b'"'
    return inner[1:-1].replace(b'""', b'"') if quoted else field


class _RowError(Exception):
    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without CR LF) of every line of a block that ends with a newline."""
    ends = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    has_cr = (ends > starts) & (buf[ends - 1] == 13)
    return starts, ends - has_cr


_MAX_HINT_ROWS = 16384  # 151 MB of images: the real Kaggle training.csv (7049 rows) fits without growing
# bytes in one line: a row is about 36 KB (9216 grey values); a 100 MB line (line ends lost) is refused
# as soon as it is this long, before its parsing's temporaries (~15x the line) could take gigabytes
MAX_LINE = 4 << 20
# lines after the header: 64,000 rows of images take 590 MB (the real training.csv has 7049); a
# larger file, or one padded with blank lines, is refused when its lines pass this many
MAX_ROWS = 64_000
# the same for a label-only file (no Image column), whose rows take ~0.4 KB each, not 9 KB
MAX_LABEL_ROWS = 500_000  # 1 M rows, all bad with skip_bad, peaked at 740 MB


class _KaggleRows:
    """Parses blocks of data lines into keypoints, images and ids, in file order."""

    def __init__(self, path: Path, layout: _Layout, skip_bad: bool, text_size: int):
        self.path, self.layout, self.skip_bad = path, layout, skip_bad
        self.coord_names = load_schema("kaggle15").columns()
        self.size = IMAGE_SHAPE if layout.image_col is not None else None  # label-only files: size unknown
        self.row = 0
        self.keypoints: list[np.ndarray] = []
        self.ids: list[str] = []
        self.rows: list[int] = []  # the row number of each kept row
        self.first_row_of_id: dict[int, int] = {}
        self.skipped: list[tuple[int, str, str]] = []
        self.pending_blank: list[int] = []
        self.n = 0
        self.pixel_parser = PixelParser()
        if layout.image_col is None:
            self.images = None
        else:  # a row needs at least 2 * 9216 - 1 bytes, which bounds the row count from above; a zip
            # archive's declared size can lie (16 TiB was tried), so the hint is capped and the array grows
            capacity = min(text_size // (2 * PIXELS - 1) + 1, _MAX_HINT_ROWS) if text_size >= 0 else 1024
            self.images = np.empty((capacity, *IMAGE_SHAPE), np.uint8)  # untouched pages cost no memory

    def report(self, problems: dict[int, tuple[str | None, str]]) -> None:
        for row in sorted(problems):
            field, reason = problems[row]
            if not self.skip_bad:
                raise DataFormatError(self.path, reason, row=row, field=field)
            self.skipped.append((row, field or "", reason))

    def feed(self, block: bytes) -> None:
        """Parse a block of whole lines, each one row."""
        buf = np.frombuffer(block, np.uint8)
        starts, ends = _line_bounds(buf)
        rows = np.arange(self.row + 1, self.row + 1 + len(starts))
        self.row += len(starts)
        limit = MAX_ROWS if self.layout.image_col is not None else MAX_LABEL_ROWS  # read when used: tests patch it
        if self.row > limit:
            kind = "a Kaggle CSV with images" if self.layout.image_col is not None else "a label-only Kaggle CSV"
            raise DataFormatError(self.path, f"over {limit} lines after the header, the limit for {kind} "
                                  "(Kaggle's training.csv has 7049 rows)")
        problems = _open_quotes(buf, starts, ends)  # keyed by local line index
        self._blank_lines(ends == starts, rows, problems)
        commas = np.flatnonzero(buf == 44)
        first_comma = np.searchsorted(commas, starts)
        nfields = np.searchsorted(commas, ends) - first_comma + 1
        for i in np.flatnonzero((nfields != self.layout.ncols) & (ends > starts)):
            line = block[starts[i]:ends[i]]
            quoted = " (a quoted field holding a comma is not supported)" if b'"' in line else ""
            if b"\r" in line:  # line ends are told from the first line's; a lone CR after CR LF or LF ends none
                quoted += (" (it holds a lone CR: the file mixes line ends, and lines are split only where they "
                           "end as the first line does; save it with one kind of line end)")
            problems.setdefault(i, (None, f"has {nfields[i]} fields, the header has {self.layout.ncols}{quoted}"))
        live = np.array([i not in problems for i in range(len(starts))], dtype=bool)
        live &= ends > starts
        lines = np.flatnonzero(live)
        pixels, position, field_start, field_end = self._pixels(buf, lines, starts, ends, commas, first_comma,
                                                                problems)
        candidates = [(i, j) for j, i in enumerate(lines.tolist()) if i not in problems]
        fields = [self._split(block, starts[i], ends[i], field_start[j], field_end[j]) for i, j in candidates]
        coords, coord_problems = self._coordinates(fields)
        kept, ids = [], []
        for k, (i, j) in enumerate(candidates):
            try:
                if k in coord_problems:
                    raise coord_problems[k]
                ids.append(self._image_id(fields[k], int(rows[i])))
                kept.append(k)
            except _RowError as err:
                problems[i] = (err.field, err.reason)
        self.report({int(rows[i]): v for i, v in problems.items()})
        self.ids += ids
        self.rows += [int(rows[candidates[k][0]]) for k in kept]
        if kept:
            points = coords[kept].astype(np.float32)
            self.keypoints.append(points.reshape(len(kept), len(self.coord_names) // 2, 2))
        if self.images is not None and kept:
            take = position[[candidates[k][1] for k in kept]]
            self._store(pixels if len(take) == len(pixels) else pixels[take])

    def _blank_lines(self, blank: np.ndarray, rows: np.ndarray, problems: dict) -> None:
        """Empty lines are errors unless only empty lines follow them (a file's trailing newlines)."""
        filled = np.flatnonzero(~blank)
        if not len(filled):
            self.pending_blank += rows[blank].tolist()
            return
        self.report({row: (None, "empty line") for row in self.pending_blank})
        self.pending_blank = rows[filled[-1] + 1:].tolist()
        for i in np.flatnonzero(blank[:filled[-1]]):
            problems[i] = (None, "empty line")

    def _pixels(self, buf, lines, starts, ends, commas, first_comma, problems):
        """(pixels of the Image fields that parsed, row of ``pixels`` for each line or -1,
        Image field starts, ends) for ``lines``."""
        k, last = self.layout.image_col, self.layout.ncols - 1
        if k is None:
            fill = np.zeros(len(lines), np.int64)
            return None, fill, fill, fill
        field_start = starts[lines] if k == 0 else commas[first_comma[lines] + k - 1] + 1
        field_end = ends[lines] if k == last else commas[first_comma[lines] + k]
        # a quoted Image field ("1 2 3 ...", valid CSV; pixels hold no comma) is read inside its quotes
        long = field_end - field_start >= 2
        quoted = long & (buf[np.where(long, field_start, 0)] == 34) & (buf[np.where(long, field_end - 1, 0)] == 34)
        good, pixels, pixel_problems = self.pixel_parser.parse(buf, field_start + quoted, field_end - quoted)
        for j, reason in pixel_problems.items():
            stray = b'"' in buf[field_start[j]:field_end[j]].tobytes()
            problems[int(lines[j])] = ("Image", reason + (" (a quoted field needs a quote at both ends, and no "
                                                          "quote inside)" if stray else ""))
        position = np.full(len(lines), -1)
        position[good] = np.arange(len(good))
        return pixels, position, field_start, field_end

    def _split(self, block: bytes, start: int, end: int, img_start: int, img_end: int) -> list[bytes]:
        """The fields of one line; the long Image field is left out (b"") so it is never copied."""
        lay = self.layout
        if lay.image_col is None:
            return [_unquote(f) for f in block[start:end].split(b",")]
        head = block[start:img_start].split(b",")[:-1] if lay.image_col else []
        tail = block[img_end:end].split(b",")[1:] if lay.image_col < lay.ncols - 1 else []
        return [_unquote(f) for f in head] + [b""] + [_unquote(f) for f in tail]

    def _coordinates(self, fields: list[list[bytes]]) -> tuple[np.ndarray, dict[int, _RowError]]:
        """(R, 30) float64 coordinates of R lines (NaN where empty) and {line: error} for bad ones:
        text, "nan" or "inf" spelt out, a value implausible for the image (``checks``), half a point."""
        cols, names, nan = self.layout.coord_cols, self.coord_names, math.nan
        if not cols:
            return np.full((len(fields), len(names)), nan), {}
        texts = [f[c] for f in fields for c in cols]
        problems: dict[int, _RowError] = {}
        try:
            flat = [float(t) if t.strip() else nan for t in texts]
            joined = b"".join(texts)
            if b"n" in joined or b"N" in joined or b"_" in joined:  # "nan", "inf", "6_6": on the slow path
                raise ValueError
        except ValueError:
            flat = []
            for n, text in enumerate(texts):
                value = self._number(text)
                if isinstance(value, str):
                    problems.setdefault(n // len(cols), _RowError(names[n % len(cols)], value))
                    value = nan
                flat.append(value)
        # explicit shapes: a block whose every line is bad has R = 0, and -1 cannot be inferred from 0
        values = np.array(flat, np.float64).reshape(len(fields), len(cols))
        bad = implausible(values.reshape(len(fields), len(cols) // 2, 2), self.size).reshape(values.shape)
        for k, c in zip(*np.nonzero(bad & ~np.isnan(values))):  # NaN here is an empty cell
            problems.setdefault(int(k), _RowError(names[c], describe(float(values[k, c]), int(c) % 2, self.size)))
        missing = np.isnan(values).reshape(len(fields), len(cols) // 2, 2)
        for k, point in zip(*np.nonzero(missing[..., 0] != missing[..., 1])):
            problems.setdefault(int(k), _RowError(names[2 * point][:-2],
                                                  "only one of x and y is given; a keypoint needs both or neither"))
        return values, problems

    @staticmethod
    def _number(text: bytes) -> float | str:
        """The float in ``text`` (NaN if empty), or a description of why it is not one."""
        shown = text.strip().decode("utf-8", "replace")
        try:
            value = text_float(text) if text.strip() else math.nan
        except ValueError:
            return f"not a number: {shown!r}"
        if text.strip() and not math.isfinite(value):
            return f"not a finite number: {shown!r} (leave the cell empty for a missing keypoint)"
        return value

    def _image_id(self, fields: list[bytes], row: int) -> str:
        """The ImageId of a line (checked to be a new integer), or its row number without that column."""
        if self.layout.id_col is None:
            return str(row)
        text = fields[self.layout.id_col].strip()
        try:
            image_id = text_int(text)
        except ValueError:
            raise _RowError("ImageId", f"not an integer: {text.decode('utf-8', 'replace')!r}") from None
        if image_id < 1:  # Kaggle's ImageIds count from 1; said here, not later as faces the lookup cannot find
            raise _RowError("ImageId", f"must be an integer >= 1, got {image_id}")
        if image_id in self.first_row_of_id:
            raise _RowError("ImageId", f"duplicate ImageId {image_id} (also on row {self.first_row_of_id[image_id]})")
        self.first_row_of_id[image_id] = row
        return str(image_id)

    def _store(self, pixels: np.ndarray) -> None:
        need = self.n + len(pixels)
        if need > len(self.images):  # only when the size hint was wrong (e.g. gzip of unknown size)
            # past the hint's cap, room for MAX_ROWS at once: untouched pages cost nothing, and a
            # doubling's copy of a large array would hold it twice
            rows = max(need, 2 * len(self.images)) if need <= _MAX_HINT_ROWS else max(need, MAX_ROWS)
            grown = np.empty((rows, *IMAGE_SHAPE), np.uint8)
            grown[:self.n] = self.images[:self.n]
            self.images = grown
        self.images[self.n:need] = pixels.reshape(-1, *IMAGE_SHAPE)
        self.n = need

    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(keypoints (N, 15, 2) float32, images (N, 96, 96) uint8 or None)."""
        keypoints = np.concatenate(self.keypoints) if self.keypoints else np.zeros((0, 15, 2), np.float32)
        images = self.images
        if images is not None:
            images.resize((self.n, *IMAGE_SHAPE), refcheck=False)  # shrinks in place, no copy
        return keypoints, images


def _open_quotes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> dict[int, tuple[None, str]]:
    """{line: problem} for each line of ``buf`` (``starts``..``ends``) whose quotes do not close on it:
    an odd number of them, as a quoted field's "" inside it is two. No field of a Kaggle CSV holds a
    line break, so lines are never joined: one quote missing costs its own line, not the next rows."""
    quotes = np.flatnonzero(buf == 34)
    if not len(quotes):  # the usual block
        return {}
    odd = (np.searchsorted(quotes, ends) - np.searchsorted(quotes, starts)) % 2 == 1
    return {int(i): (None, _NOT_CLOSED) for i in np.flatnonzero(odd)}


_NOT_CLOSED = ("a quoted field is not closed on this line (a Kaggle CSV holds no line breaks inside a field; a "
               "field that runs over lines counts one bad row per line)")


def _parse_kaggle(path: Path, skip_bad: bool) -> dict[str, np.ndarray]:
    """Parse a Kaggle CSV into the arrays that are also what the cache stores."""
    with open_sized(path) as (stream, size), read_ahead(read_chunks(stream, path)) as chunks:
        blocks = line_blocks(chunks, max_line=MAX_LINE, path=path)
        first = next(blocks, b"")
        if not first.strip():
            raise DataFormatError(path, "empty file")
        layout = _kaggle_layout(parse_header(first, path), path)
        rows = _KaggleRows(path, layout, skip_bad, size)
        rest = first[first.index(b"\n") + 1:]
        if rest:
            rows.feed(rest)
        for block in blocks:
            rows.feed(block)
    if rows.row == len(rows.pending_blank):
        raise DataFormatError(path, "no data rows (the file holds only a header)")
    keypoints, images = rows.result()
    arrays = {
        "keypoints": keypoints,
        "ids": np.array(rows.ids, dtype=str),
        "rows": np.array(rows.rows, dtype=np.int64),
        "skipped_row": np.array([r for r, _, _ in rows.skipped], dtype=np.int64),
        "skipped_field": np.array([f for _, f, _ in rows.skipped], dtype=str),
        "skipped_reason": np.array([m for _, _, m in rows.skipped], dtype=str),
    }
    if images is not None:
        arrays["images"] = images
    return arrays


def _to_data(arrays: dict[str, np.ndarray], path: Path) -> KeypointData:
    """KeypointData from parsed or cached arrays; raises ValueError if they are inconsistent."""
    expected = {"keypoints", "ids", "rows", "skipped_row", "skipped_field", "skipped_reason"}
    if not expected <= set(arrays) <= expected | {"images"}:
        raise ValueError(f"unexpected arrays {sorted(arrays)}")
    keypoints, images = arrays["keypoints"], arrays.get("images")
    n = len(keypoints)
    if (keypoints.dtype != np.float32 or keypoints.shape != (n, 15, 2) or arrays["ids"].shape != (n,)
            or arrays["rows"].shape != (n,)):
        raise ValueError(f"keypoints {keypoints.dtype} {keypoints.shape}, ids {arrays['ids'].shape}, rows "
                         f"{arrays['rows'].shape}")
    if images is not None and (images.dtype != np.uint8 or images.shape != (n, *IMAGE_SHAPE)):
        raise ValueError(f"images {images.dtype} {images.shape}")
    skipped = [str(DataFormatError(path, reason, row=int(row), field=field or None)) for row, field, reason in
               zip(arrays["skipped_row"], arrays["skipped_field"].tolist(), arrays["skipped_reason"].tolist())]
    if images is not None:
        _warn_repeated_images(keypoints, images, arrays["rows"], path)
    return KeypointData(schema=load_schema("kaggle15"), keypoints=keypoints, images=images,
                        ids=arrays["ids"].tolist(), source=str(path), skipped=skipped)


_SHOWN_REPEATS = 5


def _warn_repeated_images(keypoints: np.ndarray, images: np.ndarray, rows: np.ndarray, path: Path) -> None:
    """One warning naming the labelled rows whose image an earlier labelled row has: they are kept
    (one photo's two faces, two labellers, or a photo set's frame under two names, as ytf68 holds),
    and training refuses a split that puts copies on both sides. Run on every read, cached or not."""
    first: dict[bytes, int] = {}
    repeats = []
    for i in np.flatnonzero(~np.isnan(keypoints).all(axis=(1, 2))).tolist():  # test rows ask for no labels
        earlier = first.setdefault(hashlib.blake2b(images[i].tobytes(), digest_size=16).digest(), i)
        if earlier != i:
            repeats.append(f"row {rows[i]} repeats row {rows[earlier]}")
    if repeats:
        shown = ", ".join(repeats[:_SHOWN_REPEATS]) + (", ..." if len(repeats) > _SHOWN_REPEATS else "")
        rows_repeat = "1 row repeats" if len(repeats) == 1 else f"{len(repeats)} rows repeat"
        warnings.warn(f"{path}: {rows_repeat} the image of an earlier row ({shown}); all are kept (training refuses "
                      "a split that puts copies on both sides)", stacklevel=4)


def read_kaggle_csv(path: str | Path, *, skip_bad: bool = False, use_cache: bool = True) -> KeypointData:
    """Read a Kaggle ``training.csv``, ``test.csv`` or label-only CSV (plain, ``.gz`` or ``.zip``).

    Returns KeypointData (schema kaggle15): keypoints (N, 15, 2) float32 pixels, NaN where a label is
    empty (all NaN for test.csv); images (N, 96, 96) uint8, or None without an Image column; ids are
    the ImageId when the file has one, else the 1-based data row number.

    With ``skip_bad`` a bad row is left out and its error message appended to ``data.skipped``;
    otherwise the first bad row raises DataFormatError (file, row, field, what is wrong). With
    ``use_cache`` the parsed arrays are stored under the sha256 of the file's bytes and reused.
    Labelled rows whose image an earlier row has are kept and named in one UserWarning.
    """
    check_flags(skip_bad=skip_bad, use_cache=use_cache)
    path = user_path(path)
    if not use_cache:
        return _to_data(_parse_kaggle(path, skip_bad), path)
    before = _file_state(path)
    digest = cache.file_digest(path)
    key = f"kaggle15-v{_READER_VERSION}-{'skipbad' if skip_bad else 'strict'}-{digest}"
    try:
        return _to_data(cache.load(key), path)
    except cache.CacheMiss:
        pass
    except ValueError as err:  # readable but not what this reader writes: never trusted
        warnings.warn(f"ignoring inconsistent cache entry {key} ({err}); rebuilding it", stacklevel=2)
    arrays = _parse_kaggle(path, skip_bad)
    data = _to_data(arrays, path)
    # the file is read twice, to hash and to parse: a download or a save landing in between would
    # store one content's rows under another's digest, for every later read of either (its size, time
    # and inode tell, without hashing it a third time)
    if _file_state(path) != before:
        raise DataFormatError(path, "the file changed while it was read (a download or save still going on?); "
                              "read it again once it is complete")
    cache.save(key, arrays)
    return data


def _file_state(path: Path) -> tuple[int, int, int]:
    found = os.stat(path)
    return found.st_size, found.st_mtime_ns, found.st_ino


# ---- writing ---------------------------------------------------------------------------------------
def write_kaggle_csv(data: KeypointData, path: str | Path) -> Path:
    """Write ``data`` in Kaggle's training.csv layout: 30 coordinate columns (4 decimals, empty when
    NaN) and, when ``data.images`` is a (N, 96, 96) uint8 array, the Image column.

    The schema must be kaggle15 (convert first with ``data.to_schema("kaggle15")``). A ``.zip`` or
    ``.gz`` path is compressed. Returns the path written.
    """
    if not isinstance(data, KeypointData):
        raise TypeError(f"write_kaggle_csv needs KeypointData (e.g. KeypointData.from_arrays('kaggle15', "
                        f"keypoints)), got {type(data).__name__}")
    path = user_path(path)
    schema = load_schema("kaggle15")
    if data.schema.name != schema.name:
        raise ValueError(f"write_kaggle_csv needs schema kaggle15, got {data.schema.name!r}; "
                         "convert with data.to_schema('kaggle15')")
    images = data.images
    if images is not None and not (isinstance(images, np.ndarray) and images.dtype == np.uint8
                                   and images.shape[1:] == IMAGE_SHAPE):
        shape = images.shape if isinstance(images, np.ndarray) else f"a list of {len(images)} arrays"
        raise ValueError(f"Kaggle CSV images must be (N, 96, 96) uint8 grey, got {shape}")
    header = schema.columns() + (["Image"] if images is not None else [])
    table = data.keypoints.reshape(len(data), 2 * schema.num_keypoints)  # not -1: N may be 0
    # NaN is written empty (missing); inf would be written as text its own reader refuses
    bad = np.argwhere(np.isinf(table))
    if len(bad):
        row, col = bad[0]
        raise ValueError(f"keypoints hold {len(bad)} infinite coordinates, which a Kaggle CSV cannot hold; the "
                         f"first at data row {row + 1}, column {header[col]!r}")
    # what read_kaggle_csv refuses (more than one image size past the 96 x 96 image, or FAR without
    # images) is refused here too, before a file that cannot be read back is written
    size = IMAGE_SHAPE if images is not None else None
    with np.errstate(invalid="ignore"):
        far = np.argwhere(implausible(table.reshape(len(data), -1, 2), size).reshape(table.shape) & ~np.isnan(table))
    if len(far):
        row, col = far[0]
        raise ValueError(f"{path}: data row {row + 1}, column {header[col]!r}: "
                         f"{describe(float(table[row, col]), int(col % 2), size)}, which read_kaggle_csv refuses "
                         f"({len(far)} such coordinates in all); nothing was written")
    coords = table.tolist()
    with open_for_writing(path) as out:
        out.write((",".join(header) + "\n").encode())
        for start in range(0, len(data), 256):  # bounded memory for the pixel text
            stop = min(start + 256, len(data))
            pixels = format_pixels(images[start:stop]) if images is not None else [None] * (stop - start)
            for values, text in zip(coords[start:stop], pixels):
                line = ",".join("" if math.isnan(v) else f"{v:.4f}" for v in values).encode()
                out.write(line + (b"," + text if text is not None else b"") + b"\n")
    return path
