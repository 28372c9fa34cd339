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

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from facekeypoints.schema import KeypointSchema, load_schema

__all__ = ["KeypointData", "DataFormatError", "one_line"]


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
        kp = np.asarray(self.keypoints, dtype=np.float32)
        n, k = len(kp), self.schema.num_keypoints
        if kp.shape != (n, k, 2):
            raise ValueError(f"keypoints must be (N, {k}, 2) for schema {self.schema.name!r}, got {kp.shape}")
        self.keypoints = kp
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"{len(self.images)} images for {n} keypoint rows")
        self.ids = list(self.ids) if self.ids else [str(i) for i in range(n)]
        self.person = list(self.person) if self.person else [None] * n
        self.paths = list(self.paths) if self.paths else [None] * n
        if self.boxes is None:
            self.boxes = np.full((n, 4), np.nan, dtype=np.float32)
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
        return self.images[i]

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
        """The samples at ``index`` (ints or a boolean mask), in that order."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
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
