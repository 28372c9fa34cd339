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
        if len(set(self.keypoints)) != len(self.keypoints):
            dup = sorted({k for k in self.keypoints if self.keypoints.count(k) > 1})
            raise SchemaError(f"{where}: duplicate keypoint names {dup}")
        for group, label in ((self.flip_pairs, "flip_pairs"), (self.skeleton, "skeleton")):
            for pair in group:
                if len(pair) != 2:
                    raise SchemaError(f"{where}: {label} entry {list(pair)} is not a pair")
                for n in pair:
                    self.index(n, context=label)
        for n in self.normalization:
            self.index(n, context="normalization")
        seen: set[str] = set()
        for a, b in self.flip_pairs:
            if a in seen or b in seen or a == b:
                raise SchemaError(f"{where}: flip_pairs uses {a!r} or {b!r} twice")
            seen.update((a, b))
        for target, mapping in self.derive.items():
            for tname, sources in mapping.items():
                for n in sources:
                    self.index(n, context=f"derive.{target}.{tname}")
        idx = np.asarray(self.flip_index)
        assert (idx[idx] == np.arange(len(idx))).all()  # holds by construction of pairs

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
        try:
            return self.keypoints.index(name)
        except ValueError:
            close = difflib.get_close_matches(name, self.keypoints, n=3)
            hint = f"; did you mean {close}?" if close else ""
            ctx = f" (in {context})" if context else ""
            raise SchemaError(f"schema {self.name!r} has no keypoint {name!r}{ctx}{hint}") from None

    def columns(self) -> list[str]:
        """Kaggle-style CSV column names: ``<name>_x, <name>_y`` per keypoint."""
        return [f"{k}_{a}" for k in self.keypoints for a in ("x", "y")]

    def flip(self, keypoints: np.ndarray, width: float) -> np.ndarray:
        """Mirror (..., K, 2) pixel keypoints (numpy or torch) of an image ``width`` pixels wide.

        Pixel centres sit at integer coordinates, so x maps to ``width - 1 - x``.
        """
        out = keypoints[..., list(self.flip_index), :]
        out = out.clone() if hasattr(out, "clone") else out.copy()  # torch tensor or numpy array
        out[..., 0] = (width - 1) - out[..., 0]
        return out

    def converter(self, target: str) -> np.ndarray:
        """(K_target, K_self) averaging matrix mapping these keypoints onto schema ``target``."""
        if target == self.name:
            return np.eye(self.num_keypoints, dtype=np.float32)
        if target not in self.derive:
            raise SchemaError(
                f"schema {self.name!r} cannot be converted to {target!r}; "
                f"it knows {sorted(self.derive) or 'no conversions'}"
            )
        tschema = load_schema(target)
        mapping = self.derive[target]
        missing = [k for k in tschema.keypoints if k not in mapping]
        if missing:
            raise SchemaError(f"schema {self.name!r}: derive.{target} lacks {missing}")
        m = np.zeros((tschema.num_keypoints, self.num_keypoints), dtype=np.float32)
        for t, tname in enumerate(tschema.keypoints):
            for s in mapping[tname]:
                m[t, self.index(s)] = 1.0 / len(mapping[tname])
        return m

    def convert(self, keypoints: np.ndarray, target: str) -> np.ndarray:
        """Map (..., K, 2) keypoints to schema ``target``.

        A target point is NaN exactly when one of its own source points is missing (NaN or not
        finite); every other target point is computed from its sources as usual.
        """
        m = self.converter(target)
        keypoints = np.asarray(keypoints)
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
        known = {"name", "keypoints", "flip_pairs", "skeleton", "normalization", "derive"}
        unknown = set(d) - known
        if unknown:
            raise SchemaError(f"{source}: unknown schema fields {sorted(unknown)}")
        for req in ("name", "keypoints"):
            if req not in d:
                raise SchemaError(f"{source}: missing field {req!r}")
        return cls(
            name=str(d["name"]),
            keypoints=tuple(d["keypoints"]),
            flip_pairs=tuple(tuple(p) for p in d.get("flip_pairs") or ()),
            skeleton=tuple(tuple(p) for p in d.get("skeleton") or ()),
            normalization=tuple(d.get("normalization") or ()),
            derive=dict(d.get("derive") or {}),
        )


def list_schemas() -> list[str]:
    files = resources.files("facekeypoints").joinpath("schemas").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


@cache
def load_schema(name: str) -> KeypointSchema:
    """Load a built-in schema by name (``kaggle15``, ``ibug68``, ``imm58``, ``nose1``)."""
    if isinstance(name, KeypointSchema):
        return name
    names = list_schemas()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        raise SchemaError(f"unknown schema {name!r}; known: {names}" + (f"; did you mean {close}?" if close else ""))
    path = resources.files("facekeypoints").joinpath("schemas", f"{name}.yaml")
    return KeypointSchema.from_dict(yaml.safe_load(path.read_text()), source=str(path))
