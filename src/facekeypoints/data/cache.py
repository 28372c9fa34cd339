"""A content-addressed cache of parsed arrays, so a 100 MB CSV is parsed once.

Entries are ``.npz`` files named by a key that the reader builds from the sha256 of the source
file's bytes and the reader's version, so an edited file or a changed parser never reuses a stale
entry, and a moved or renamed file still hits. The folder is ``~/.cache/facekeypoints`` unless the
environment variable ``FACEKEYPOINTS_CACHE`` names another. Entries are loaded without pickle; an
unreadable entry is reported with a warning and treated as absent, so the caller rebuilds it.

Examples
--------
>>> import numpy as np, tempfile, os
>>> os.environ["FACEKEYPOINTS_CACHE"] = tempfile.mkdtemp()
>>> save("demo-v1-abc", {"x": np.arange(3)})
>>> load("demo-v1-abc")["x"].tolist()
[0, 1, 2]
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["CacheMiss", "cache_dir", "file_digest", "load", "save", "clear"]

CACHE_ENV = "FACEKEYPOINTS_CACHE"


_unusable: set[Path] = set()  # cache folders that could not be looked in (load warned about them)


class CacheMiss(KeyError):
    """No usable cache entry for a key (absent, or unreadable and therefore ignored)."""


def cache_dir() -> Path:
    """The cache folder: ``$FACEKEYPOINTS_CACHE`` if set, else ``~/.cache/facekeypoints``."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "facekeypoints"


def file_digest(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks (about 20 ms for 25 MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _entry(key: str) -> Path:
    if not key or any(c in key for c in "/\\") or key.startswith("."):
        raise ValueError(f"cache key {key!r} must be a plain file name")
    return cache_dir() / f"{key}.npz"


def load(key: str) -> dict[str, np.ndarray]:
    """The arrays stored under ``key``. Raises CacheMiss when absent or unreadable (with a warning)."""
    path = _entry(key)
    try:
        if not path.is_file():
            raise CacheMiss(key)
    except OSError as err:  # e.g. a cache folder owned by another user (left by a sudo run)
        _unusable.add(path.parent)  # said once: save() does not try it again
        warnings.warn(f"cannot use the cache folder {path.parent} ({err.strerror or err}); "
                      "reading without the cache", stacklevel=2)
        raise CacheMiss(key) from None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        # numpy's own words for a damaged file advise loading it with pickle: never safe advice here
        why = err.strerror if isinstance(err, OSError) and err.strerror else "damaged: not a cache entry"
        warnings.warn(f"ignoring unreadable cache entry {path} ({why}); rebuilding it", stacklevel=2)
        raise CacheMiss(key) from None


def save(key: str, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` under ``key`` atomically; a cache that cannot be written only warns."""
    path = _entry(key)
    if path.parent in _unusable:  # load() has said it cannot be used; one warning is enough
        return
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, **arrays)
        os.replace(tmp_name, path)  # readers never see a half-written entry
    except OSError as err:
        warnings.warn(f"could not write cache entry {path} ({err}); continuing without it", stacklevel=2)
        if tmp_name and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def clear() -> int:
    """Delete every cache entry; returns how many files were removed."""
    folder = cache_dir()
    removed = 0
    if folder.is_dir():
        for entry in folder.glob("*.npz"):
            entry.unlink()
            removed += 1
    return removed
