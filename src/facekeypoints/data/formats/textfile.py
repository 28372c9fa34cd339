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

__all__ = ["read_text", "load_json", "short"]


def read_text(path: Path) -> str:
    """The file's text; empty and binary files are bad input."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError(path, "file is empty")
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
