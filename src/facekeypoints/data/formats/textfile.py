"""The text of small annotation files (.pts, .asf, JSON), and JSON parsed from it.

Empty, binary, non-UTF-8 and unparsable files, and files the system will not read (no permission,
an I/O error), are DataFormatErrors naming the file, so every reader of these formats fails the same
way on them (and ``skip_bad`` lists them).

Examples
--------
>>> short(list(range(100)))
'[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16...'
"""
from __future__ import annotations

import json
from pathlib import Path

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.walk import unreadable

__all__ = ["read_text", "read_head", "load_json", "short", "encoding_problem"]

# byte-order marks of the encodings that spreadsheet programs offer besides UTF-8 ("Unicode text");
# UTF-32's come first because UTF-16 LE's mark is the start of UTF-32 LE's
_WIDE_MARKS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
               (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def encoding_problem(head: bytes) -> str | None:
    """What is wrong with text that starts with ``head`` when it is UTF-16 or UTF-32 rather than
    UTF-8 (told by its byte-order mark, or by every other byte being NUL) or zero bytes, else None.

    >>> encoding_problem("x,y".encode("utf-16"))
    'text is UTF-16 encoded; save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8 FILE > NEW)'
    >>> encoding_problem(b"x,y") is None
    True
    """
    name = next((name for mark, name in _WIDE_MARKS if head.startswith(mark)), None)
    sample = head[:256]
    odd_nul, even_nul = (half.count(0) > 0.9 * len(half) for half in (sample[1::2], sample[0::2]))
    if name is None and len(sample) >= 4 and odd_nul and even_nul:  # not UTF-16: a file of zeros
        return (f"its first {len(sample)} bytes are {'all' if not sample.strip(bytes(1)) else 'nearly all'} zero "
                "(NUL): binary data, not text (an incomplete or preallocated download?)")
    if name is None and len(sample) >= 4 and (odd_nul or even_nul):
        name = "UTF-16"
    if name is None:
        return None
    return f"text is {name} encoded; save it as UTF-8 (e.g. iconv -f {name} -t UTF-8 FILE > NEW)"


def read_text(path: Path) -> str:
    """The file's text; empty, binary and unreadable files are bad input."""
    try:
        raw = path.read_bytes()
    except OSError as err:  # no permission, a folder, an I/O error: named, as any bad file
        raise unreadable(path, err) from None
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        raise DataFormatError(path, "file is empty")
    if problem := encoding_problem(raw[:4096]):
        raise DataFormatError(path, problem)
    if b"\x00" in raw[:4096]:
        raise DataFormatError(path, "binary file where a text annotation was expected")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not UTF-8 text (byte {err.start})") from None


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of the file (to tell its format); unreadable files are bad input."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as err:
        raise unreadable(path, err) from None


class _RepeatedKey(Exception):
    """A JSON object names one key twice (json would keep the last value without a word)."""


def _refuse_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook``: the object as a dict, unless a key is given twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return obj


def load_json(path: Path) -> object:
    """The JSON document in ``path`` (Python's json also reads NaN and Infinity: callers check numbers).

    A key repeated in one object is an error: which of its values was meant is unknown.
    """
    text = read_text(path)  # its own errors name the file once
    try:
        return json.loads(text, object_pairs_hook=_refuse_repeated_keys)
    except _RepeatedKey as err:
        raise DataFormatError(path, f"key {short(err.args[0])} repeated in one JSON object; which value is "
                              "meant is unclear: keep one") from None
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"line {err.lineno}: invalid JSON ({err.msg})") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise DataFormatError(path, f"invalid JSON ({err})") from None
    except RecursionError:
        raise DataFormatError(path, "invalid JSON (nested too deeply)") from None


def short(value: object) -> str:
    """``repr(value)`` cut to 60 characters, for messages about values of any size."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
