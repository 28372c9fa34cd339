"""The text of small annotation files (.pts, .asf, JSON), and JSON parsed from it.

Empty, binary, non-UTF-8 and unparsable files are DataFormatErrors naming the file, so every
reader of these formats fails the same way on them.

Examples
--------
>>> short(list(range(100)))
'[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16...'
"""
from __future__ import annotations

import json
from pathlib import Path

from facekeypoints.data.dataset import DataFormatError

__all__ = ["read_text", "load_json", "short", "encoding_problem"]

# byte-order marks of the encodings that spreadsheet programs offer besides UTF-8 ("Unicode text");
# UTF-32's come first because UTF-16 LE's mark is the start of UTF-32 LE's
_WIDE_MARKS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
               (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def encoding_problem(head: bytes) -> str | None:
    """What is wrong with text that starts with ``head`` when it is UTF-16 or UTF-32 rather than
    UTF-8 (told by its byte-order mark, or by every other byte being NUL), else None.

    >>> encoding_problem("x,y".encode("utf-16"))
    'text is UTF-16 encoded; save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8 FILE > NEW)'
    >>> encoding_problem(b"x,y") is None
    True
    """
    name = next((name for mark, name in _WIDE_MARKS if head.startswith(mark)), None)
    sample = head[:256]
    if name is None and len(sample) >= 4 and (sample[1::2].count(0) > 0.9 * len(sample[1::2])
                                                or sample[0::2].count(0) > 0.9 * len(sample[0::2])):
        name = "UTF-16"
    if name is None:
        return None
    return f"text is {name} encoded; save it as UTF-8 (e.g. iconv -f {name} -t UTF-8 FILE > NEW)"


def read_text(path: Path) -> str:
    """The file's text; empty and binary files are bad input."""
    raw = path.read_bytes()
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


def load_json(path: Path) -> object:
    """The JSON document in ``path`` (Python's json also reads NaN and Infinity: callers check numbers)."""
    try:
        return json.loads(read_text(path))
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
