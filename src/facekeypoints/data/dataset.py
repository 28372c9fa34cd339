"""The one in-memory shape every reader returns and every writer, trainer and metric takes.

Examples
--------
>>> import numpy as np
>>> from facekeypoints.data.dataset import KeypointData
>>> d = KeypointData.from_arrays("kaggle15", np.full((2, 15, 2), np.nan), images=np.zeros((2, 96, 96), np.uint8))
>>> len(d), d.labelled_mask().shape
(2, (2, 15))
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from facekeypoints.schema import KeypointSchema, load_schema

__all__ = ["KeypointData", "DataFormatError", "one_line", "user_path"]


# control characters, line breaks among them (str.splitlines breaks at \x1c-\x1e, \x85, \u2028 and
# \u2029 too), as repr writes them: a file named "bad\nname.pts" is shown 'bad\\nname.pts' on one line
_CONTROL_ESCAPES = {c: repr(chr(c))[1:-1] for c in [*range(0x20), *range(0x7f, 0xa0), 0x2028, 0x2029]}


def one_line(text: str) -> str:
    r"""``text`` with control characters escaped as repr writes them, so a message naming a file
    whose name holds a line break stays one line (one line of a --report per skipped file).

    >>> one_line("dir/bad\nname.pts: file is empty")
    'dir/bad\\nname.pts: file is empty'
    """
    return text.translate(_CONTROL_ESCAPES)


def printable(text: str) -> str:
    r"""``text`` as a terminal or log takes it: a file name's bytes that are no UTF-8 (held as lone
    surrogates) as ``\xff``, control characters escaped (``one_line``); printing the surrogates
    themselves is a UnicodeEncodeError."""
    try:  # a name read from the disk holds its bytes as surrogates: shown as those bytes
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate of another kind ("\ud800") is shown as itself
        text = text.encode("utf-8", "backslashreplace").decode()
    return one_line(text)


def user_path(path, name: str = "path") -> Path:
    """``path`` (str, bytes or os.PathLike) as a Path with ``~`` expanded, as the command line's are
    (os.path's expansion, which leaves ``~name`` of no such user as written, as a shell does: pathlib's
    raised "Could not determine home directory"); anything else is a TypeError naming the argument
    (pathlib's own message does not)."""
    if isinstance(path, (bytes, bytearray)):
        path = os.fsdecode(bytes(path))
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or Path), got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError(f"{name} is empty")
    return Path(os.path.expanduser(path))


# messages a skip_bad read keeps: past this many, only a count (millions of bad rows in one file
# would otherwise take gigabytes of messages)
MAX_SKIPPED_LISTED = 1000


class DataFormatError(ValueError):
    """Bad input: the message names the file, the row or line, the field and what is wrong.

    ``reason`` is what is wrong; ``hint``, when given, is advice for command-line and Python users
    (an option or argument that would read the input), which a caller that offers neither, such as
    the service, leaves out.
    """

    def __init__(self, path: str, message: str, row: int | None = None, field: str | None = None,
                 hint: str | None = None):
        self.path, self.row, self.field, self.reason, self.hint = str(path), row, field, message, hint
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        # one line whatever the names in it hold (a file name with a line break, a label's text)
        super().__init__(one_line(f"{where}: {message}" + (f"; {hint}" if hint else "")))


def _check_images(images, n: int):
    """``images`` as KeypointData keeps them: (N, H, W) or (N, H, W, 3) uint8, a list of N (H, W) or
    (H, W, 3) uint8 arrays, or None; anything else is refused here rather than later, deep in OpenCV."""
    if images is None:
        return None
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
            raise ValueError(f"images must be (N, H, W) or (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
        if len(images) != n:
            raise ValueError(f"{len(images)} images for {n} keypoint rows")
        return images
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"images must be a uint8 array, a list of them or None, got {type(images).__name__}")
    if len(images) != n:
        raise ValueError(f"{len(images)} images for {n} keypoint rows")
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray):
            raise TypeError(f"images[{i}] must be a uint8 array, got {type(image).__name__}")
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
            raise ValueError(f"images[{i}] must be (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return list(images)


def _entries(values, name: str) -> list:
    """``values`` (a list, tuple, numpy array such as ``df.person.values``, or None) as a list; a
    numpy array is not asked ``if values`` (ambiguous) and gives plain Python values."""
    if values is None:
        return []
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, one entry per sample, got shape {values.shape}")
        return values.tolist()
    try:
        return list(values)
    except TypeError:
        raise TypeError(f"{name} must be a list with one entry per sample, got {type(values).__name__}") from None


def _check_boxes(boxes, n: int) -> np.ndarray:
    """``boxes`` as (N, 4) float32 x1, y1, x2, y2: NaN (unknown) allowed, inf not."""
    raw = np.asarray(boxes)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"boxes must be numbers, got an array of {raw.dtype}")
    with np.errstate(over="ignore"):
        out = raw.astype(np.float32)
    if out.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) = ({n}, 4) x1, y1, x2, y2, got {out.shape}")
    if np.isinf(out).any():
        raise ValueError(f"boxes hold {int(np.isinf(out).sum())} infinite coordinates; NaN marks an unknown box")
    return out


def _sample_index(i, n: int) -> int:
    """``i`` as an index of one of ``n`` samples (negative counts from the end)."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"sample index must be an int, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"sample index {i} is out of range for {n} samples")
    return int(i)


@dataclass
class KeypointData:
    """N faces with keypoints in one schema.

    Attributes
    ----------
    schema : KeypointSchema
    keypoints : (N, K, 2) float32 pixel coordinates (x, y), 0-based; NaN where a label is missing.
    images : (N, H, W) or (N, H, W, 3) uint8 when all images share one size, a list of such arrays
        when sizes vary, or None for label-only data (e.g. ``training_keypoints_only.csv``).
        Colour images are RGB.
    ids : per-sample identifier (Kaggle ImageId, file name, ...).
    person : per-sample person id, or None when unknown (used for person-disjoint splits).
    paths : per-sample image file, or None when pixels came inline (Kaggle CSV).
    boxes : (N, 4) float32 face boxes x1, y1, x2, y2, NaN when unknown.
    source : the file or folder this was read from.
    skipped : rows a ``skip_bad`` read left out, as DataFormatError messages (never silent). A
        reader may list the first ``MAX_SKIPPED_LISTED`` only, followed by one line that counts the
        rest; ``skipped_unlisted`` is then that count. ``skipped_count`` counts them all.
    """

    schema: KeypointSchema
    keypoints: np.ndarray
    images: np.ndarray | list[np.ndarray] | None = None
    ids: list[str] = field(default_factory=list)
    person: list[str | None] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)
    boxes: np.ndarray | None = None
    source: str = ""
    skipped: list[str] = field(default_factory=list)
    skipped_unlisted: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.schema, str):
            self.schema = load_schema(self.schema)
        if not isinstance(self.schema, KeypointSchema):
            raise TypeError(f"schema must be a schema name or a KeypointSchema, got {type(self.schema).__name__}")
        k = self.schema.num_keypoints
        if self.keypoints is None or isinstance(self.keypoints, (str, bytes)):
            raise TypeError(f"keypoints must be an (N, {k}, 2) array of numbers, got {type(self.keypoints).__name__}")
        raw = np.asarray(self.keypoints)
        if raw.dtype.kind not in "biuf":  # complex, objects, strings: no coordinate to take
            raise TypeError(f"keypoints must be numbers, got an array of {raw.dtype}")
        with np.errstate(over="ignore"):  # a value past float32's range becomes inf, refused below
            kp = raw.astype(np.float32, copy=False)
        if kp.ndim != 3 or kp.shape[1:] != (k, 2):
            raise ValueError(f"keypoints must be (N, {k}, 2) for schema {self.schema.name!r}, got {kp.shape}")
        # NaN marks a missing label; inf would count as labelled and poison every mean taken over it
        bad = np.isinf(kp)
        if bad.any():
            i, j = np.argwhere(bad)[0][:2]
            raise ValueError(f"keypoints hold {int(bad.sum())} infinite (or past float32's range) coordinates, "
                             f"the first at sample {i}, keypoint {j} ({self.schema.keypoints[j]}); "
                             "NaN marks a missing one")
        n = len(kp)
        self.keypoints = kp
        self.images = _check_images(self.images, n)
        for name in ("ids", "person", "paths"):  # one string would be split into its characters
            if isinstance(getattr(self, name), (str, bytes)):
                raise TypeError(f"{name} must be a list with one entry per sample, got a {type(getattr(self, name)).__name__}")
        self.ids = _entries(self.ids, "ids") or [str(i) for i in range(n)]
        self.person = _entries(self.person, "person") or [None] * n
        self.paths = _entries(self.paths, "paths") or [None] * n
        if self.boxes is None:
            self.boxes = np.full((n, 4), np.nan, dtype=np.float32)
        else:
            self.boxes = _check_boxes(self.boxes, n)
        for name in ("ids", "person", "paths", "boxes"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} samples")

    @classmethod
    def from_arrays(cls, schema: str | KeypointSchema, keypoints: np.ndarray, **kwargs) -> "KeypointData":
        return cls(schema=load_schema(schema) if isinstance(schema, str) else schema, keypoints=keypoints, **kwargs)

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def skipped_count(self) -> int:
        """Rows a ``skip_bad`` read left out: those listed in ``skipped`` and the unlisted rest
        (whose count is then the last line of ``skipped``)."""
        return len(self.skipped) + (self.skipped_unlisted - 1 if self.skipped_unlisted else 0)

    def image(self, i: int) -> np.ndarray:
        if self.images is None:
            raise ValueError(f"{self.source or 'this data'} holds labels only, no images")
        return self.images[_sample_index(i, len(self))]

    def image_size(self, i: int) -> tuple[int, int]:
        """(height, width) of sample i."""
        return tuple(self.image(i).shape[:2])

    def labelled_mask(self) -> np.ndarray:
        """(N, K) bool: True where both coordinates of a keypoint are present."""
        return ~np.isnan(self.keypoints).any(axis=-1)

    def fully_labelled(self) -> np.ndarray:
        """(N,) bool: rows with every keypoint labelled."""
        return self.labelled_mask().all(axis=1)

    def subset(self, index: Sequence[int] | np.ndarray) -> "KeypointData":
        """The samples at ``index`` (an int, a sequence of ints, a boolean mask of one entry per
        sample, or a slice), in that order."""
        n = len(self)
        if isinstance(index, slice):
            idx = np.arange(n)[index]
        elif isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            idx = np.array([_sample_index(index, n)])
        elif isinstance(index, (str, bytes)) or not isinstance(index, (list, tuple, range, np.ndarray)):
            raise TypeError(f"index must be an int, a sequence of ints, a boolean mask or a slice, "
                            f"got {type(index).__name__}")
        else:
            idx = np.asarray(index)
            if idx.size == 0:  # an empty selection: [] is float64 to numpy
                idx = np.zeros(0, dtype=np.intp)
            if idx.ndim != 1:
                raise ValueError(f"index must be one-dimensional, got shape {idx.shape}")
            if idx.dtype == bool:
                if len(idx) != n:  # numpy would refuse only a longer one; a shorter one silently drops the rest
                    raise ValueError(f"boolean mask has {len(idx)} entries for {n} samples")
                idx = np.flatnonzero(idx)
            elif idx.dtype.kind not in "iu":
                raise TypeError(f"index must hold ints or bools, got {idx.dtype}")
            elif idx.size and (idx.max() >= n or idx.min() < -n):
                bad = idx[(idx >= n) | (idx < -n)][0]
                raise IndexError(f"index {bad} is out of range for {n} samples")
        if self.images is None:
            images = None
        elif isinstance(self.images, np.ndarray):
            images = self.images[idx]
        else:
            images = [self.images[i] for i in idx]
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return replace(
            self, keypoints=self.keypoints[idx], images=images, ids=pick(self.ids),
            person=pick(self.person), paths=pick(self.paths), boxes=self.boxes[idx], skipped=list(self.skipped),
        )

    def to_schema(self, target: str) -> "KeypointData":
        """The same faces with keypoints mapped to schema ``target`` (e.g. ibug68 -> kaggle15)."""
        if target == self.schema.name:
            return self
        return replace(self, schema=load_schema(target), keypoints=self.schema.convert(self.keypoints, target))
