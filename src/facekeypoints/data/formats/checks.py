"""Plausibility checks on coordinates, shared by every reader, so an absurd label fails where it is read.

The rule: a coordinate is a finite number no more than one image size beyond any edge of its
image, i.e. ``-W <= x <= 2 W`` and ``-H <= y <= 2 H`` for a W x H image. Real annotations stray a
little past the border (a face cut by the frame, AFLW2000 jaw points under the chin) but never by
a whole image; a value that far out is a unit mix-up (relative vs pixels), a shifted column or a
corrupt file. When the image size is unknown (labels read without their images) the bound is
``FAR`` pixels either way: wider than any photo, and float32 still resolves 0.01 px there.

NaN is a number no file may hold: each format marks a missing point its own way (an empty CSV
cell, JSON ``null``, COCO ``v = 0``, an absent dlib part), and a reader passes those as ``missing``.

Examples
--------
>>> import numpy as np
>>> implausible(np.array([[10.0, 20.0], [1e30, 5.0], [-97.0, 0.0]]), (96, 96)).tolist()
[[False, False], [True, False], [True, False]]
>>> describe(1e30, 0, (96, 96))
'x = 1e+30 is more than one image size (96 px) beyond the edge of the 96 x 96 image'
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np

from facekeypoints.data.dataset import DataFormatError

__all__ = ["FAR", "limits", "implausible", "describe", "first_implausible", "check_points", "json_number",
           "text_float", "text_int", "check_flags"]


def check_flags(**flags) -> None:
    """TypeError naming the first keyword that is not a bool (numpy's counts): a reader given
    ``skip_bad="no"`` or ``load_images=0`` took it as true or false without a word.

    >>> check_flags(skip_bad=True, load_images=False)
    >>> check_flags(skip_bad="no")
    Traceback (most recent call last):
    ...
    TypeError: skip_bad must be True or False, got str 'no'
    """
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def check_count(name: str, value, *, none: bool = False, most: int | None = None) -> int | None:
    """``value`` as an int if it is a whole number >= 1 (not a bool, a float or a string) and at most
    ``most`` (given); None when ``none`` allows it. TypeError or ValueError naming ``name`` otherwise."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        allowed = " or None" if none else ""
        raise TypeError(f"{name} must be a whole number >= 1{allowed}, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most} on this machine, got {value!r}")
    return int(value)


def _plain(text: str | bytes) -> str | bytes:
    """``text`` if it is written as data files write numbers; else ValueError. Python's float() and
    int() also take digit separators ("6_6.5" is 66.5, ImageId "1_0" is 10) and non-ASCII digits."""
    if (b"_" if isinstance(text, bytes) else "_") in text or not text.isascii():
        raise ValueError(f"not a plain number: {text!r}")
    return text


def text_float(text: str | bytes) -> float:
    """float(text) for a number as written in a text file: no digit separators, ASCII digits only.

    >>> text_float(" 66.5 "), text_float(b"-1e3")
    (66.5, -1000.0)
    >>> text_float("6_6.5")
    Traceback (most recent call last):
    ...
    ValueError: not a plain number: '6_6.5'
    """
    return float(_plain(text))


def text_int(text: str | bytes) -> int:
    """int(text) for an integer as written in a text file (see ``text_float``)."""
    return int(_plain(text))

FAR = 100_000.0


def limits(size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the (2,) x, y bounds for an image of ``size`` (height, width), or +-FAR."""
    if size is None:
        return np.array([-FAR, -FAR]), np.array([FAR, FAR])
    h, w = float(size[0]), float(size[1])
    return np.array([-w, -h]), np.array([2 * w, 2 * h])


def implausible(points: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """(..., 2) -> (..., 2) bool: True where a coordinate is NaN, infinite or out of bounds."""
    low, high = limits(size)
    with np.errstate(invalid="ignore"):
        return ~((points >= low) & (points <= high))  # NaN compares False: implausible too


def describe(value: float, axis: int, size: tuple[int, int] | None = None) -> str:
    """What is wrong with the implausible ``value`` on ``axis`` (0 = x, 1 = y)."""
    name = "xy"[axis]
    if math.isnan(value):
        return f"{name} is NaN where a number is required"
    if math.isinf(value):
        return f"{name} = {value} is not a finite number"
    if size is None:
        return f"{name} = {value:g} is more than {FAR:g} px from any image (its size is not known here)"
    extent = size[1] if axis == 0 else size[0]
    return (f"{name} = {value:g} is more than one image size ({extent:g} px) beyond the edge of the "
            f"{size[1]:g} x {size[0]:g} image")


def first_implausible(points: np.ndarray, size: tuple[int, int] | None = None,
                      missing: np.ndarray | None = None) -> tuple[int, int] | None:
    """(point, axis) of the first implausible coordinate of (K, 2) ``points``, or None.

    ``missing`` (K,) bool marks the points the file itself declares missing: their NaN is fine.
    """
    bad = implausible(np.asarray(points, np.float64), size)
    if missing is not None:
        bad &= ~np.asarray(missing, bool)[:, None]
    if not bad.any():
        return None
    k, axis = np.argwhere(bad)[0]
    return int(k), int(axis)


def check_points(path: str | Path, points: np.ndarray, size: tuple[int, int] | None = None, *,
                 missing: np.ndarray | None = None, names: list[str] | None = None, row: int | None = None,
                 field: str | None = None) -> None:
    """Raise DataFormatError naming the first implausible point of (K, 2) ``points`` (see
    ``first_implausible``), as ``names[k]`` (default "point k"), at ``row`` and ``field``."""
    found = first_implausible(points, size, missing)
    if found is not None:
        k, axis = found
        name = names[k] if names is not None else f"point {k}"
        raise DataFormatError(path, f"{name}: {describe(float(points[k][axis]), axis, size)}", row=row, field=field)


def json_number(value: object) -> float:
    """``value`` as a float if it is a finite JSON number (not a bool or a string), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number
