"""Missing labels and deterministic, person-disjoint splits.

Examples
--------
>>> import numpy as np
>>> from facekeypoints.data import KeypointData
>>> from facekeypoints.data.splits import handle_missing, split
>>> kp = np.arange(4 * 15 * 2, dtype=np.float32).reshape(4, 15, 2)
>>> kp[1, 3] = np.nan
>>> data = KeypointData.from_arrays("kaggle15", kp, person=["a", "a", "b", "c"])
>>> kept, report = handle_missing(data, "drop")
>>> len(kept), report.rows_dropped
(3, 1)
>>> [sorted(set(part.person)) for part in split(data, (0.5, 0.5), seed=0)]  # no person in two parts
[['c'], ['a', 'b']]
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from facekeypoints.data.dataset import KeypointData

__all__ = [
    "MISSING_STRATEGIES", "MissingReport", "handle_missing", "split_indices", "split", "describe_split",
    "split_imm_people", "imm_train_mask",
]

MISSING_STRATEGIES = ("drop", "ffill", "mask")


@dataclass(frozen=True)
class MissingReport:
    """What ``handle_missing`` changed; ``str(report)`` is a one-line summary."""

    strategy: str
    rows_in: int
    rows_out: int
    values_filled: int  # coordinates (x and y counted separately) copied from an earlier row
    values_missing: int  # coordinates still NaN afterwards
    rows_still_missing: int  # rows that still have a NaN afterwards (e.g. before a column's first value)

    @property
    def rows_dropped(self) -> int:
        return self.rows_in - self.rows_out

    def __str__(self) -> str:
        return (f"missing labels ({self.strategy}): {self.rows_in} rows in, {self.rows_out} out "
                f"({self.rows_dropped} dropped), {self.values_filled} values filled, "
                f"{self.values_missing} values still missing in {self.rows_still_missing} rows")


def _forward_fill(table: np.ndarray) -> np.ndarray:
    """(N, C) table with each NaN replaced by the last value above it in its column (as pandas ffill)."""
    rows = np.arange(len(table))[:, None]
    last = np.where(np.isnan(table), 0, rows)
    np.maximum.accumulate(last, axis=0, out=last)
    return table[last, np.arange(table.shape[1])]


def handle_missing(data: KeypointData, strategy: str) -> tuple[KeypointData, MissingReport]:
    """Deal with missing keypoints (NaN) as the seeds do; returns (data, report).

    - ``drop``: keep only rows with every keypoint labelled (seed 000).
    - ``ffill``: fill each coordinate column from the previous row of the table, as pandas
      ``ffill`` does (seed 001); rows before a column's first value stay NaN and are counted.
    - ``mask``: keep NaN, for losses that mask missing keypoints (seed 002).
    keypoints: (N, K, 2) in, (M, K, 2) out (M = N except for ``drop``).
    """
    if not isinstance(data, KeypointData):
        raise TypeError(f"handle_missing needs KeypointData (from read()), got {type(data).__name__}")
    if strategy not in MISSING_STRATEGIES:
        raise ValueError(f"unknown missing-label strategy {strategy!r}; choose one of {MISSING_STRATEGIES}")
    filled = 0
    if strategy == "drop":
        out = data.subset(data.fully_labelled())
        if len(data) and not len(out):
            raise ValueError(f"{data.source or 'the data'}: missing 'drop' keeps only fully labelled rows, and none "
                             f"of its {len(data)} rows is; use missing: mask")
    elif strategy == "ffill":
        table = data.keypoints.reshape(len(data), 2 * data.schema.num_keypoints)  # not -1: N may be 0
        new = _forward_fill(table) if len(table) else table
        filled = int(np.isnan(table).sum() - np.isnan(new).sum())
        out = replace(data, keypoints=new.reshape(data.keypoints.shape))
    else:
        out = data
    nan = np.isnan(out.keypoints)
    report = MissingReport(strategy, len(data), len(out), filled, int(nan.sum()),
                           int(nan.any(axis=(1, 2)).sum()))
    return out, report


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    # a str is a sequence too: "0.7" would be read as ('0', '.', '7')
    if not isinstance(ratios, (list, tuple, np.ndarray)):
        raise TypeError(f"ratios must be a list or tuple of fractions such as (0.7, 0.3), got {ratios!r}")
    if not all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))
               for x in np.ravel(np.asarray(ratios, dtype=object))):
        raise TypeError(f"ratios must be numbers, got {tuple(ratios)!r}")
    r = np.asarray(ratios, dtype=np.float64)
    # NaN fails every comparison, so it must be refused by name, not by "r <= 0"
    if (r.ndim != 1 or len(r) < 2 or not np.isfinite(r).all() or (r <= 0).any()
            or abs(r.sum() - 1.0) > 1e-6):
        raise ValueError(f"ratios must be two or more finite positive fractions summing to 1, got {tuple(ratios)}")
    return r


def _check_seed(seed) -> int:
    # numpy's own errors ("SeedSequence expects int or sequence of ints") do not name the argument
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be in 0..{2 ** 32 - 1}, got {seed}")
    return int(seed)


def _use_person(data: KeypointData, by_person: bool | str) -> bool:
    known = [p is not None for p in data.person]
    if isinstance(by_person, str) and by_person == "auto":
        return any(known)  # faces without a person are then groups of their own (see _person_keys)
    # 1 or "yes" is no answer; numpy's bool is one (``is True`` would let np.True_ skip the check)
    if not isinstance(by_person, (bool, np.bool_)):
        raise ValueError(f"by_person must be True, False or 'auto', got {by_person!r}")
    if by_person and not all(known):
        raise ValueError(f"by_person=True but {known.count(False)} of {len(data)} samples have no person")
    return bool(by_person)


def _person_keys(data: KeypointData) -> np.ndarray:
    """One group key per sample: its person, or, for a face without one, a key of its own. One blank
    person cell used to switch the whole split to random rows, putting every known person in both
    parts; now the known persons stay in one part each and the warning counts the faces left out."""
    unknown = [i for i, p in enumerate(data.person) if p is None]
    if unknown:
        warnings.warn(f"{data.source or 'the data'}: {len(unknown)} of {len(data)} faces have no person "
                      f"(the first: {data.ids[unknown[0]]!r}); each of them is split as a person of its own, so "
                      f"they may share a person with faces in another part", stacklevel=4)
    # "\0" starts no person name read from a file, so no unknown face joins a known person
    return np.array([f"\0{i}" if p is None else str(p) for i, p in enumerate(data.person)], dtype=str)


def split_indices(data: KeypointData, ratios: Sequence[float] = (0.7, 0.3), *, seed: int = 0,
                  by_person: bool | str = "auto") -> list[np.ndarray]:
    """Sample indices of each part, as sorted int arrays, one per ratio.

    With persons known (``by_person='auto'`` or True) whole persons are shuffled with ``seed``
    and each goes to the part where the middle of its samples falls on the cumulative ratio
    scale, so no person is in two parts and sample fractions come close to ``ratios``; with
    ``'auto'``, a face without a person counts as a person of its own (with a warning). With no
    person known, samples are shuffled one by one. The same data and seed give the same split.
    """
    if not isinstance(data, KeypointData):
        raise TypeError(f"split_indices needs KeypointData (from read()), got {type(data).__name__}")
    r = _check_ratios(ratios)
    rng = np.random.default_rng(_check_seed(seed))
    n = len(data)
    if _use_person(data, by_person):
        people, inverse, counts = np.unique(_person_keys(data), return_inverse=True, return_counts=True)
        order = rng.permutation(len(people))
        middles = (np.cumsum(counts[order]) - counts[order] / 2) / n
        part_of_person = np.empty(len(people), dtype=int)
        part_of_person[order] = np.searchsorted(np.cumsum(r)[:-1], middles, side="right")
        part_of_sample = part_of_person[inverse]
    else:
        cuts = np.round(np.cumsum(r)[:-1] * n).astype(int)
        part_of_sample = np.empty(n, dtype=int)
        part_of_sample[rng.permutation(n)] = np.searchsorted(cuts, np.arange(n), side="right")
    parts = [np.flatnonzero(part_of_sample == k) for k in range(len(r))]
    empty = [k for k, p in enumerate(parts) if len(p) == 0]
    if empty:
        unit = "persons" if _use_person(data, by_person) else "samples"
        raise ValueError(f"split {tuple(ratios)} of {n} samples leaves part(s) {empty} empty: too few {unit}")
    return parts


def split(data: KeypointData, ratios: Sequence[float] = (0.7, 0.3), *, seed: int = 0,
          by_person: bool | str = "auto") -> list[KeypointData]:
    """The parts of ``data`` chosen by :func:`split_indices` (e.g. 70/30 for seed 000, 55/15/30 for 004)."""
    return [data.subset(idx) for idx in split_indices(data, ratios, seed=seed, by_person=by_person)]


def describe_split(parts: Sequence[KeypointData]) -> str:
    """One line per part: samples, achieved fraction, persons (when known)."""
    if isinstance(parts, KeypointData) or not all(isinstance(p, KeypointData) for p in parts):
        raise TypeError("describe_split needs a list of KeypointData parts (as split() returns)")
    total = sum(len(p) for p in parts) or 1
    lines = []
    for k, part in enumerate(parts):
        people = {p for p in part.person if p is not None}
        who = f", {len(people)} persons" if people else ""
        lines.append(f"part {k}: {len(part)} samples ({len(part) / total:.1%}){who}")
    return "\n".join(lines)


def split_imm_people(data: KeypointData, train: Iterable[int] = range(1, 33),
                     val: Iterable[int] = range(33, 41)) -> tuple[KeypointData, KeypointData]:
    """IMM split by person number (seed 003: people 1-32 train, 33-40 validation).

    Persons are the numbers read from IMM file names (``"01"`` -> 1). Every sample must fall in
    exactly one of ``train`` and ``val``; otherwise ValueError names the persons left over.
    """
    in_train = imm_train_mask(data, train, val)
    return data.subset(in_train), data.subset(~in_train)


def _person_numbers(people, name: str) -> set[int]:
    """``people`` (an iterable of IMM person numbers) as a set of ints."""
    if isinstance(people, (str, bytes)) or not isinstance(people, Iterable):
        raise TypeError(f"{name} must be an iterable of person numbers such as range(1, 33), got {people!r}")
    numbers = list(people)
    bad = [p for p in numbers if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer))]
    if bad:
        raise TypeError(f"{name} must hold person numbers (ints), got {bad[0]!r}")
    return {int(p) for p in numbers}


def imm_train_mask(data: KeypointData, train: Iterable[int] = range(1, 33),
                   val: Iterable[int] = range(33, 41)) -> np.ndarray:
    """(N,) bool: which faces belong to the training people of an IMM split (see ``split_imm_people``)."""
    train, val = _person_numbers(train, "train"), _person_numbers(val, "val")
    if train & val:
        raise ValueError(f"persons {sorted(train & val)} are in both train and val")
    # ASCII digits only: "²".isdigit() is True, but int("²") fails
    bad = [p for p in data.person if isinstance(p, (bool, np.bool_)) or not (
        isinstance(p, (str, int, np.integer)) and str(p).isascii() and str(p).isdigit())]
    if bad:
        raise ValueError(f"{data.source or 'data'}: the imm split needs IMM's numbered persons (file names like "
                         f"01-1m.asf), got person {bad[0]!r}; use a fraction split such as [0.8, 0.2]")
    numbers = np.array([int(p) for p in data.person])
    left = sorted(set(numbers.tolist()) - train - val)
    if left:
        raise ValueError(f"persons {left} are in neither train nor val")
    return np.isin(numbers, list(train))
