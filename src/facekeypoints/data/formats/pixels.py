"""Kaggle's pixel text ("23 11 7 ... 169", 9216 grey values of a 96x96 image) <-> uint8 arrays.

Both directions are vectorised over a whole block of rows: a Python loop over 9216 values per row
would make a 100 MB training.csv take tens of seconds instead of under one.

Examples
--------
>>> import numpy as np
>>> text = b"x," + b" ".join([b"7"] * PIXELS) + b"\\n"
>>> buf = np.frombuffer(text, np.uint8)
>>> good, pixels, problems = parse_pixels(buf, np.array([2]), np.array([len(text) - 1]))
>>> good.tolist(), pixels.shape, int(pixels[0, 0]), problems
([0], (1, 9216), 7, {})
"""
from __future__ import annotations

import numpy as np

__all__ = ["PIXELS", "PixelParser", "parse_pixels", "format_pixels"]

PIXELS = 96 * 96


def _describe_byte(value: int) -> str:
    return repr(chr(value)) if 32 <= value < 127 else f"byte 0x{value:02x}"


def _first_per_field(positions: np.ndarray, field_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(field index, first position) for every field that holds one of the sorted ``positions``."""
    field = np.searchsorted(field_start, positions, side="right") - 1
    fields, first = np.unique(field, return_index=True)
    return fields, positions[first]


class PixelParser:
    """Parses the pixel fields of one block of CSV text after another.

    Its work arrays are kept and reused from block to block: allocating them afresh would make the
    first 100 MB file of a process page-fault about a gigabyte of new memory, which costs more
    than the parsing itself.
    """

    def __init__(self) -> None:
        self._work: dict[str, np.ndarray] = {}

    def _buffer(self, name: str, size: int, dtype) -> np.ndarray:
        held = self._work.get(name)
        if held is None or len(held) < size:
            held = self._work[name] = np.empty(size + size // 4, dtype)  # headroom for a longer block
        return held[:size]

    def parse(self, buf: np.ndarray, field_start: np.ndarray, field_end: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Parse the pixel fields ``buf[field_start[i]:field_end[i]]`` of R rows.

        ``buf`` is a (B,) uint8 view of CSV text; fields are sorted and do not overlap.
        Returns (good, pixels, problems): ``good`` the (G,) indices of fields that parsed,
        ``pixels`` their (G, 9216) uint8 values (a view valid until the next call: copy it), and
        ``problems`` {field index: what is wrong} for the others: a character that is neither a
        digit nor a space, a count other than 9216, a value above 255.
        """
        n = max(len(buf) + 1, 4)  # one more byte, a space, ends the last number; the look-backs need 4
        text = self._buffer("text", n, np.uint8)
        text.fill(32)
        for start, end in zip(field_start.tolist(), field_end.tolist()):
            text[start:end] = buf[start:end]  # bytes outside the fields stay spaces
        digit_value = np.subtract(text, 48, out=self._buffer("digit_value", n, np.uint8))  # wraps below '0'
        digit = np.less(digit_value, 10, out=self._buffer("digit", n, bool))
        scratch = self._buffer("scratch", n, bool)
        problems = self._bad_characters(text, digit, scratch, field_start)
        last_digit = self._buffer("last_digit", n, bool)  # the last digit of each number
        last_digit[-1] = False
        np.logical_and(digit[:-1], np.logical_not(digit[1:], out=scratch[:-1]), out=last_digit[:-1])
        counts = np.array([np.count_nonzero(last_digit[s:e]) for s, e in zip(field_start.tolist(),
                                                                             field_end.tolist())], dtype=np.int64)
        for i in np.flatnonzero(counts != PIXELS):
            problems.setdefault(int(i), f"holds {counts[i]} pixel values, expected {PIXELS} (96 x 96)")
        values = self._number_values(text, digit, digit_value, last_digit, scratch)
        for i, message in _out_of_range(values, text, digit, counts, field_start).items():
            problems.setdefault(i, message)
        ok = np.ones(len(field_start), bool)
        ok[list(problems)] = False
        good = np.flatnonzero(ok)
        if len(good) < len(field_start):
            values = values[np.repeat(ok, counts)]
        pixels = self._buffer("pixels", len(values), np.uint8)
        np.copyto(pixels, values, casting="unsafe")  # every value is now known to be <= 255
        return good, pixels.reshape(len(good), PIXELS), problems

    @staticmethod
    def _bad_characters(text, digit, scratch, field_start) -> dict[int, str]:
        """{field: the first character in it that is neither a digit nor a space}."""
        allowed = np.logical_or(np.equal(text, 32, out=scratch), digit, out=scratch)
        if allowed.all():
            return {}
        problems = {}
        for i, pos in zip(*_first_per_field(np.flatnonzero(~allowed), field_start)):
            problems[int(i)] = (f"{_describe_byte(int(text[pos]))} at character {pos - field_start[i] + 1} "
                                "is not a digit or a space")
        return problems

    def _number_values(self, text, digit, digit_value, last_digit, scratch) -> np.ndarray:
        """(T,) uint16 value of every number, in text order; numbers of 4+ digits give at least 256.

        A number of up to 3 digits gets its value at its last digit, from that digit and the two
        before it (masked where they belong to no number or to the previous one); the values at
        last digits are then picked with one boolean mask. No per-digit gather.
        """
        n = len(text)
        masked = np.multiply(digit_value, digit, out=self._buffer("masked", n, np.uint8))  # 0 where not a digit
        value = self._buffer("value", n, np.uint16)
        np.copyto(value, masked)
        small = self._buffer("small", n, np.uint8)[:n - 1]
        np.add(value[1:], np.multiply(masked[:-1], 10, out=small), out=value[1:])
        hundreds = np.multiply(masked[:-2], digit[1:-1], out=small[:n - 2])  # only with a digit in between
        np.add(value[2:], np.multiply(hundreds, 100, out=self._buffer("hundreds", n - 2, np.uint16),
                                      dtype=np.uint16), out=value[2:])
        values = np.compress(last_digit, value, out=self._buffer("values", int(np.count_nonzero(last_digit)),
                                                                 np.uint16))
        four = np.logical_and(digit[3:], digit[2:-1], out=scratch[:n - 3])  # 4 digits ending here
        for lag in (digit[1:-2], digit[:-3], last_digit[3:]):
            np.logical_and(four, lag, out=four)
        if four.any():  # rare: leading zeros ("0012") or a huge number
            ends, starts = np.flatnonzero(last_digit), _number_starts(digit)
            for k in np.flatnonzero(four[ends[ends >= 3] - 3]) + np.count_nonzero(ends < 3):
                digits = bytes(text[starts[k]:ends[k] + 1]).lstrip(b"0")
                values[k] = int(digits or b"0") if len(digits) < 4 else 256  # int() refuses 5000 digits
        return values


def parse_pixels(buf: np.ndarray, field_start: np.ndarray, field_end: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """One-off ``PixelParser().parse``: (good (G,), pixels (G, 9216) uint8, problems {field: reason})."""
    return PixelParser().parse(buf, field_start, field_end)


def _out_of_range(values, text, digit, counts, field_start) -> dict[int, str]:
    """{field: its first value above 255}, for the fields of ``counts`` numbers each."""
    too_big = np.flatnonzero(values > 255)
    if not len(too_big):
        return {}
    starts = _number_starts(digit)[too_big]
    first_of_field = np.concatenate(([0], np.cumsum(counts)[:-1]))
    problems = {}
    fields, first = _first_per_field(starts, field_start)  # one message per field, however many values
    for i, start, k in zip(fields, first, too_big[np.searchsorted(starts, first)]):
        run = digit[start:start + 13]
        length = 13 if run.all() else int(np.argmin(run))
        number = bytes(text[start:start + length]).decode()
        shown = number if length <= 12 else number[:9] + "..."  # 5000 digits are not shown
        problems[int(i)] = f"value {shown} (pixel {k - first_of_field[i] + 1}) is outside 0..255"
    return problems


def _number_starts(digit: np.ndarray) -> np.ndarray:
    """Index of the first digit of every number, in text order (vectorised: a number may be long)."""
    starts = np.flatnonzero(digit[1:] & ~digit[:-1]) + 1
    return np.concatenate(([0], starts)) if digit[0] else starts


_TEXT = np.zeros((256, 4), np.uint8)  # ASCII of each value and a space, zero-padded to 4 bytes
for _v in range(256):
    _s = f"{_v} ".encode()
    _TEXT[_v, :len(_s)] = np.frombuffer(_s, np.uint8)


def format_pixels(images: np.ndarray) -> list[bytes]:
    """(N, H, W) uint8 images -> N byte strings of H*W space-separated values (no trailing space)."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    lines = []
    for row in flat:
        chars = _TEXT[row].ravel()
        lines.append(chars[chars != 0][:-1].tobytes())
    return lines
