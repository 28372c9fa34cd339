"""CSV text stored plain, gzip-compressed or as the one CSV inside a zip archive (as Kaggle ships it).

Large files are read in blocks of whole lines, optionally decompressed by a helper thread while
the caller parses the previous block.

Examples
--------
>>> with open_csv("../shared/data/fkd15-ytf/training.zip") as stream:   # doctest: +SKIP
...     stream.readline()[:17]
b'left_eye_center_x'
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import itertools
import lzma
import queue
import stat
import threading
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from facekeypoints.atomic import atomic_path
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.textfile import encoding_problem

__all__ = ["open_csv", "open_sized", "open_for_writing", "read_chunks", "read_ahead", "line_blocks",
           "parse_header", "csv_header", "BLOCK"]

_WRITE_LEVEL = 1
BLOCK = 1 << 19  # bytes read at a time: bounds a parser's temporaries (~15x this) and its queue
MAX_HEADER = 1 << 20  # bytes: a header line longer than this is no CSV header (a Kaggle row is ~36 KB)


# what a damaged archive raises: zipfile alone uses most of these, for a bad header, an unknown or
# encrypted compression method, a bad CRC, a seek past the end, an LZMA member
_ARCHIVE_ERRORS = (OSError, EOFError, RuntimeError, NotImplementedError, zlib.error, lzma.LZMAError,
                   zipfile.BadZipFile)


def _zip_member(raw: BinaryIO, path: Path) -> tuple[BinaryIO, int]:
    """(the one CSV member of the zip archive ``raw``, opened; its uncompressed size)."""
    try:
        archive = zipfile.ZipFile(raw)
    except _ARCHIVE_ERRORS as err:
        raise DataFormatError(path, f"not a readable zip archive ({err})") from None
    entries = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    csvs = [i for i in entries if i.filename.lower().endswith(".csv")]
    if len(csvs) != 1:
        found = [i.filename for i in (csvs or entries)]
        raise DataFormatError(path, f"a zip archive must hold exactly one .csv file, it holds {found}")
    try:
        return archive.open(csvs[0]), csvs[0].file_size
    except _ARCHIVE_ERRORS as err:
        raise DataFormatError(path, f"cannot open {csvs[0].filename} in the zip archive ({err})") from None


def name_suffix(path: str | Path) -> str:
    """``path``'s suffix in lower case, a dot-file's whole name included: pathlib gives ``o/.zip`` none,
    but the writer and the reader must both take it as a zip (``data convert -o o/.zip``)."""
    return Path("_" + Path(path).name).suffix.lower()


@contextlib.contextmanager
def open_sized(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """(binary stream of the CSV text, its uncompressed size or -1 when unknown).

    A pipe or a device is refused before it is opened: opening a FIFO blocks until a writer comes,
    and its stream cannot be read twice (the zip and gzip checks look at its start first)."""
    with contextlib.suppress(OSError):  # nothing there, no permission: open() names it below
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise DataFormatError(path, "not a regular file (a pipe or a device); save the data to a file first")
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        suffix = name_suffix(path)
        if magic.startswith(b"PK\x03\x04") or suffix == ".zip":
            member, size = _zip_member(raw, path)
            with member:
                yield member, size
        elif magic.startswith(b"\x1f\x8b"):
            with gzip.open(raw) as stream:
                yield stream, -1
        elif suffix == ".gz":
            raise DataFormatError(path, "not a gzip file (name ends in .gz but the gzip header is missing)")
        else:
            yield raw, path.stat().st_size


@contextlib.contextmanager
def open_csv(path: str | Path) -> Iterator[BinaryIO]:
    """Binary stream of a CSV stored plain, gzip-compressed (``.gz``) or alone in a ``.zip``."""
    with open_sized(Path(path)) as (stream, _size):
        yield stream


def read_chunks(stream: BinaryIO, path: Path) -> Iterator[bytes]:
    """The stream's bytes in blocks; a NUL byte in the first block means a binary file, not a CSV."""
    first = True
    while True:
        try:
            chunk = stream.read(BLOCK)
        except _ARCHIVE_ERRORS as err:
            raise DataFormatError(path, f"cannot read compressed data ({err})") from None
        if first and (problem := encoding_problem(chunk)):
            raise DataFormatError(path, problem)
        if first and b"\x00" in chunk:
            offset = chunk.index(b"\x00")
            raise DataFormatError(path, f"binary data (NUL byte at offset {offset}), not a CSV text file")
        if not chunk:
            return
        first = False
        yield chunk


@contextlib.contextmanager
def read_ahead(chunks: Iterator[bytes], depth: int = 2) -> Iterator[Iterator[bytes]]:
    """Iterate ``chunks`` from a helper thread, so decompression (which releases the GIL) overlaps
    the caller's parsing. The thread is stopped and joined on exit, before the stream closes."""
    pending: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                pending.put(item, timeout=0.05)
                return

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                put(chunk)
            put(None)
        except BaseException as err:  # handed to the consumer, which raises it
            put(err)

    def consume() -> Iterator[bytes]:
        while (item := pending.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=produce, name="csv-read-ahead", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


def _lone_cr_to_lf(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, with every CR made LF when the file ends its lines with a lone CR (old Mac), and
    every CR dropped when it ends them with CR CR LF.

    The first line end decides, once per file, so LF and CR LF files pass untouched at no cost (a
    stray CR inside one of their lines is then a bad character in that row, not a line end).
    """
    chunks = iter(chunks)
    for chunk in chunks:
        cr, lf = chunk.find(b"\r"), chunk.find(b"\n")
        if cr < 0 and lf < 0:  # still inside the first line
            yield chunk
            continue
        if cr < 0 or 0 <= lf < cr:
            old_mac = doubled = False
        else:
            end = chunk[cr:cr + 3]
            if len(end) < 3:  # the line end may go on in the next chunk: its first bytes tell
                following = next(chunks, b"")
                end += following[:3 - len(end)]
                chunks = itertools.chain([following], chunks)
            doubled = end == b"\r\r\n"  # CR CR LF: a CR LF file saved again with Windows line ends
            old_mac = not doubled and end[:2] != b"\r\n"
        for block in itertools.chain([chunk], chunks):
            if doubled:  # its CRs are all line-end padding: dropping each one is safe across chunk edges
                yield block.replace(b"\r", b"")
            else:
                yield block.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if old_mac else block
        return


def line_blocks(chunks: Iterator[bytes], *, max_line: int | None = None, path: Path | None = None
                ) -> Iterator[bytes]:
    """Blocks of whole lines (each ends with a newline; one is added after a final unterminated line).

    A line ends at LF or CR LF, or at CR in a file whose first line ends so (made LF here).
    With ``max_line`` (at least the chunk size), a line longer than that many bytes is a
    DataFormatError naming ``path``, the line and the limit, raised as soon as the line is that
    long: a file whose line ends were lost is one huge line, never to be held whole.
    """
    carry: list[bytes] = []  # the unfinished line, possibly spanning several chunks
    carried = lines = 0  # bytes in carry; lines ended before it (for the message)
    for chunk in _lone_cr_to_lf(chunks):
        cut = chunk.rfind(b"\n") + 1
        if max_line is not None:  # only a line that spans chunks can be longer than a chunk
            end = chunk.find(b"\n") if cut else len(chunk)
            if carried + end > max_line:
                raise DataFormatError(path or "<csv>", f"line {lines + 1} is over {max_line} bytes, the limit "
                                      "for one line of this CSV (were its line ends lost?)")
            lines += chunk.count(b"\n", 0, cut)
        if not cut:
            carry.append(chunk)
            carried += len(chunk)
            continue
        yield b"".join((*carry, memoryview(chunk)[:cut]))  # one copy, however the chunk is cut
        carry = [chunk[cut:]]
        carried = len(carry[0])
    if any(carry):
        yield b"".join((*carry, b"\n"))


def parse_header(first_block: bytes, path: Path) -> list[str]:
    """Column names (stripped) of the first line of ``first_block``; a UTF-8 byte-order mark is dropped."""
    line = first_block.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"header line is not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        return [name.strip() for name in next(csv.reader([text]))]
    except csv.Error as err:
        raise DataFormatError(path, f"header line is not CSV ({err})") from None


def csv_header(path: str | Path) -> list[str]:
    """Column names of a CSV's first line (plain, .gz or .zip). Raises DataFormatError if empty or binary."""
    path = Path(path)
    with open_sized(path) as (stream, _size):
        head = b""
        for chunk in read_chunks(stream, path):  # up to the first line end, at most MAX_HEADER bytes
            head += chunk
            if b"\n" in head or b"\r" in head:
                break
            if len(head) > MAX_HEADER:
                raise DataFormatError(path, f"the first line is over {MAX_HEADER} bytes: not a CSV header")
        first = next(line_blocks(iter([head])), b"")
    if not first.removeprefix(b"\xef\xbb\xbf").strip():
        raise DataFormatError(path, "empty file")
    return parse_header(first, path)


@contextlib.contextmanager
def open_for_writing(path: Path) -> Iterator[BinaryIO]:
    """Plain file, gzip for ``.gz``, or a zip holding ``<stem>.csv`` for ``.zip`` (as Kaggle ships),
    written atomically (``atomic_path``).

    Compression level 1: on pixel text it is 6x faster than the default and only ~30% larger.
    """
    path = Path(path)
    suffix = name_suffix(path)
    member_name = Path(path.stem).with_suffix(".csv").name if path.suffix else "data.csv"  # "o/.zip" has no stem
    with atomic_path(path) as tmp:  # a full disk or a kill leaves the previous file, not half a new one
        if suffix == ".zip":
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=_WRITE_LEVEL) as archive:
                with archive.open(member_name, "w", force_zip64=True) as member:
                    yield member
        elif suffix == ".gz":
            with gzip.open(tmp, "wb", compresslevel=_WRITE_LEVEL) as stream:
                yield stream
        else:
            with open(tmp, "wb") as stream:
                yield stream
