"""Keypoint schemas: the names of a task's keypoints and which ones swap under mirroring.

A schema is data (``schemas/<name>.yaml``); this module only loads and checks it.

Examples
--------
>>> from facekeypoints.schema import load_schema
>>> s = load_schema("kaggle15")
>>> s.num_keypoints, s.index("nose_tip")
(15, 10)
>>> s.flip_index[:2]
(1, 0)
"""
from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np
import yaml

__all__ = ["KeypointSchema", "load_schema", "list_schemas", "SchemaError"]


class SchemaError(ValueError):
    """A schema file is malformed, or a name is unknown."""


@dataclass(frozen=True)
class KeypointSchema:
    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()
    skeleton: tuple[tuple[str, str], ...] = ()
    normalization: tuple[str, ...] = ()
    # target schema -> {target keypoint: source keypoints averaged}
    derive: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        where = f"schema {self.name!r}"
        if not self.keypoints:  # no points: nothing to predict, and flip_index would be empty
            raise SchemaError(f"{where}: keypoints is empty; expected at least one keypoint name")
        bad = [k for k in self.keypoints if not isinstance(k, str)]
        if bad:
            raise SchemaError(f"{where}: keypoints must be names (str), got {bad[:3]!r}")
        if len(set(self.keypoints)) != len(self.keypoints):
            dup = sorted({k for k in self.keypoints if self.keypoints.count(k) > 1})
            raise SchemaError(f"{where}: duplicate keypoint names {dup}")
        for group, label in ((self.flip_pairs, "flip_pairs"), (self.skeleton, "skeleton")):
            for pair in group:
                if len(pair) != 2:
                    raise SchemaError(f"{where}: {label} entry {list(pair)} is not a pair")
                for n in pair:
                    self.index(n, context=label)
        if self.normalization and (len(self.normalization) != 2 or len(set(self.normalization)) != 2):
            # NME divides by the distance between exactly two points (the eyes); none: the bounding box
            raise SchemaError(f"{where}: normalization must name 2 different keypoints (or none), "
                              f"got {list(self.normalization)}")
        for n in self.normalization:
            self.index(n, context="normalization")
        seen: set[str] = set()
        for a, b in self.flip_pairs:
            if a in seen or b in seen or a == b:
                raise SchemaError(f"{where}: flip_pairs uses {a!r} or {b!r} twice")
            seen.update((a, b))
        for target, mapping in self.derive.items():
            if not isinstance(mapping, dict):
                raise SchemaError(f"{where}: derive.{target} must map target keypoints to lists of source "
                                  f"keypoints, got {type(mapping).__name__}")
            for tname, sources in mapping.items():
                if isinstance(sources, str) or not isinstance(sources, (list, tuple)) or not sources:
                    # a target point is the mean of its sources: none would make it 0/0
                    raise SchemaError(f"{where}: derive.{target}.{tname} must be a non-empty list of source "
                                      f"keypoint names, got {sources!r}")
                for n in sources:
                    self.index(n, context=f"derive.{target}.{tname}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """0-based permutation: keypoint i of a mirrored face is keypoint flip_index[i] of the original."""
        perm = list(range(len(self.keypoints)))
        for a, b in self.flip_pairs:
            ia, ib = self.keypoints.index(a), self.keypoints.index(b)
            perm[ia], perm[ib] = ib, ia
        return tuple(perm)

    def index(self, name: str, context: str = "") -> int:
        if not isinstance(name, str):  # difflib would fail on it with an unrelated TypeError
            ctx = f" (in {context})" if context else ""
            raise TypeError(f"keypoint name{ctx} must be a str, got {type(name).__name__}")
        try:
            return self.keypoints.index(name)
        except ValueError:
            close = difflib.get_close_matches(name, self.keypoints, n=3)
            hint = self._derived_hint(name) or (f"; did you mean {close}?" if close else "")
            ctx = f" (in {context})" if context else ""
            raise SchemaError(f"schema {self.name!r} has no keypoint {name!r}{ctx}{hint}") from None

    def _derived_hint(self, name: str) -> str:
        """Where another schema's point ``name`` is in this one, from ``derive`` ("; kaggle15's and nose1's
        'nose_tip' is 'nose_bridge_3' here"): the README's ``face["nose_tip"]`` asked of an ibug68 model."""
        sources: dict[tuple, list[str]] = {}
        for target, mapping in self.derive.items():
            if isinstance(mapping, dict) and isinstance(mapping.get(name), (list, tuple)):
                sources.setdefault(tuple(mapping[name]), []).append(target)
        if not sources:
            return ""
        points, targets = next(iter(sources.items()))
        where = " and ".join(f"{t}'s" for t in targets)
        here = repr(points[0]) if len(points) == 1 else f"the mean of {list(points)}"
        return f"; {where} {name!r} is {here} here"

    def columns(self) -> list[str]:
        """Kaggle-style CSV column names: ``<name>_x, <name>_y`` per keypoint."""
        return [f"{k}_{a}" for k in self.keypoints for a in ("x", "y")]

    def flip(self, keypoints: np.ndarray, width: float) -> np.ndarray:
        """Mirror (..., K, 2) pixel keypoints (numpy or torch) of an image ``width`` pixels wide.

        Pixel centres sit at integer coordinates, so x maps to ``width - 1 - x``. Integer keypoints
        come back as floats (float64 numpy, torch's default float) so a fractional ``width`` is kept.
        """
        if isinstance(width, bool) or not isinstance(width, numbers.Real):
            raise TypeError(f"width: expected a number of pixels, got {type(width).__name__}")
        if not (np.isfinite(width) and width > 0):
            raise ValueError(f"width: expected a finite number of pixels > 0, got {width}")
        if hasattr(keypoints, "clone"):  # torch tensor
            if keypoints.dtype.is_complex or keypoints.dtype == _torch_bool():
                raise TypeError(f"keypoints: expected numbers, got a tensor of {keypoints.dtype}")
            if not keypoints.dtype.is_floating_point:  # uint8 200 mirrored would wrap round
                keypoints = keypoints.to(_torch_float())
        else:
            keypoints = _numeric(keypoints, "keypoints")
            if keypoints.dtype.kind in "iu":
                keypoints = keypoints.astype(np.float64)
        self._check_points(tuple(keypoints.shape))
        out = keypoints[..., list(self.flip_index), :]
        out = out.clone() if hasattr(out, "clone") else out.copy()  # torch tensor or numpy array
        out[..., 0] = (width - 1) - out[..., 0]
        return out

    def _check_points(self, shape: tuple) -> None:
        """Keypoints must be (..., K, 2) with this schema's K: other shapes would be mis-indexed."""
        if len(shape) < 2 or shape[-2:] != (self.num_keypoints, 2):
            raise ValueError(f"keypoints: expected shape (..., {self.num_keypoints}, 2) for schema {self.name!r}, "
                             f"got {shape}")

    def converter(self, target: "str | KeypointSchema") -> np.ndarray:
        """(K_target, K_self) averaging matrix mapping these keypoints onto schema ``target``."""
        tschema = target if isinstance(target, KeypointSchema) else None
        target = _schema_name(target)
        if target == self.name:
            return np.eye(self.num_keypoints, dtype=np.float32)
        if target not in self.derive:
            raise SchemaError(
                f"schema {self.name!r} cannot be converted to {target!r}; "
                f"it knows {sorted(self.derive) or 'no conversions'}"
            )
        tschema = tschema or load_schema(target)
        mapping = self.derive[target]
        missing = [k for k in tschema.keypoints if k not in mapping]
        if missing:
            raise SchemaError(f"schema {self.name!r}: derive.{target} lacks {missing}")
        m = np.zeros((tschema.num_keypoints, self.num_keypoints), dtype=np.float32)
        for t, tname in enumerate(tschema.keypoints):
            for s in mapping[tname]:
                m[t, self.index(s)] = 1.0 / len(mapping[tname])
        return m

    def convert(self, keypoints: np.ndarray, target: "str | KeypointSchema") -> np.ndarray:
        """Map (..., K, 2) keypoints to schema ``target``.

        A target point is NaN exactly when one of its own source points is missing (NaN or not
        finite); every other target point is computed from its sources as usual.
        """
        m = self.converter(target)
        keypoints = _numeric(keypoints, "keypoints")
        self._check_points(keypoints.shape)
        missing = ~np.isfinite(keypoints).all(axis=-1)  # (..., K)
        # NaN x 0 = NaN: multiplying the missing points in, even by a zero weight, would make every
        # target point NaN; they are zeroed and the targets that use them are marked NaN instead
        out = np.einsum("ts,...sc->...tc", m, np.where(missing[..., None], 0, keypoints))
        out[np.matmul(missing, (m != 0).T)] = np.nan  # (..., T): a missing source among its own
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "normalization": list(self.normalization),
            "derive": self.derive,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "KeypointSchema":
        if not isinstance(d, dict):
            raise SchemaError(f"{source}: a schema is a mapping of fields, got {type(d).__name__}")
        known = {"name", "keypoints", "flip_pairs", "skeleton", "normalization", "derive"}
        unknown = set(d) - known
        if unknown:
            raise SchemaError(f"{source}: unknown schema fields {sorted(unknown)}")
        for req in ("name", "keypoints"):
            if req not in d:
                raise SchemaError(f"{source}: missing field {req!r}")
        # SchemaError (a ValueError), not TypeError, for a field of the wrong type: a schema comes from a
        # file or a model card, whose loaders name the file on a ValueError
        for key in ("keypoints", "flip_pairs", "skeleton", "normalization"):
            value = d.get(key)
            if value is not None and not isinstance(value, (list, tuple)):  # "abc" would be 3 points
                raise SchemaError(f"{source}: {key} must be a list, got {type(value).__name__}")
        if d["keypoints"] is None:
            raise SchemaError(f"{source}: keypoints must be a list of names, got None")
        for key in ("flip_pairs", "skeleton"):
            for p in d.get(key) or ():
                if not isinstance(p, (list, tuple)):
                    raise SchemaError(f"{source}: {key} entries must be pairs of names, got {p!r}")
        derive = d.get("derive") or {}
        if not isinstance(derive, dict):  # dict([1]) fails with "dictionary update sequence"
            raise SchemaError(f"{source}: derive must map schema names to mappings, got {type(derive).__name__}")
        try:
            return cls(
                name=str(d["name"]),
                keypoints=tuple(d["keypoints"]),
                flip_pairs=tuple(tuple(p) for p in d.get("flip_pairs") or ()),
                skeleton=tuple(tuple(p) for p in d.get("skeleton") or ()),
                normalization=tuple(d.get("normalization") or ()),
                derive=dict(derive),
            )
        except TypeError as err:  # e.g. a flip pair naming a number: a malformed schema, said as one
            raise SchemaError(f"{source}: {err}") from None


def list_schemas() -> list[str]:
    files = resources.files("facekeypoints").joinpath("schemas").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def _schema_name(schema) -> str:
    """The name of ``schema`` (a name or a KeypointSchema); TypeError for anything else."""
    if isinstance(schema, KeypointSchema):
        return schema.name
    if not isinstance(schema, str):  # before difflib or the cache, which fail on it with unrelated errors
        raise TypeError(f"schema must be a name (str) or a KeypointSchema, got {type(schema).__name__}")
    return schema


def _numeric(keypoints, what: str) -> np.ndarray:
    """``keypoints`` as a numpy array of real numbers; TypeError for None, strings, objects, bools."""
    arr = np.asarray(keypoints)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{what}: expected an array of numbers, got {type(keypoints).__name__} of dtype {arr.dtype}")
    return arr


def _torch_bool():
    import torch

    return torch.bool


def _torch_float():
    import torch

    return torch.get_default_dtype()


def load_schema(name: "str | KeypointSchema") -> KeypointSchema:
    """Load a built-in schema by name (``kaggle15``, ``ibug68``, ``imm58``, ``nose1``); a
    KeypointSchema is returned as it is."""
    if isinstance(name, KeypointSchema):
        return name
    return _load_builtin(_schema_name(name))


@cache
def _load_builtin(name: str) -> KeypointSchema:
    names = list_schemas()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        raise SchemaError(f"unknown schema {name!r}; known: {names}" + (f"; did you mean {close}?" if close else ""))
    path = resources.files("facekeypoints").joinpath("schemas", f"{name}.yaml")
    return KeypointSchema.from_dict(yaml.safe_load(path.read_text()), source=str(path))
