"""Every file below a folder, the one way the readers and ``predict`` search folders.

Why not ``Path.rglob``: it does not follow linked folders and it passes over a folder it cannot
list without a word; a reader or a predict run must do neither silently.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["walk_files"]


def walk_files(folder: str | Path, *, onerror: Callable[[OSError], None] | None = None,
               skip: Callable[[Path], bool] = lambda folder: False) -> list[Path]:
    """Every file under ``folder`` (links to nothing included, for the caller to report), sorted.

    Linked folders are followed, each real folder once, so a link loop ends. ``onerror`` gets the
    OSError of a folder that cannot be listed (``os.walk``'s convention; None passes it over).
    A folder below the top for which ``skip`` is true is not searched.
    """
    files, seen = [], set()
    for here, dirs, names in os.walk(folder, onerror=onerror, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not skip(Path(here) / d)]
        files += [Path(here) / n for n in names]
    return sorted(files)
