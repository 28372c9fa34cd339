"""Every file below a folder, the one way the readers and ``predict`` search folders.

Why not ``Path.rglob``: it does not follow linked folders and it passes over a folder it cannot
list without a word; a reader or a predict run must do neither silently.

Also what the file system refuses, worded once for every reader: ``unreadable`` (no permission, an
I/O error) and ``not_found`` (nothing there, a link to nothing, a link loop), and ``data_files``,
the files a data reader or format detection sees in a folder.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

from facekeypoints.atomic import name_problem
from facekeypoints.data.dataset import DataFormatError

__all__ = ["walk_files", "data_files", "distinct_files", "same_file", "unreadable", "not_found", "path_problem", "check_path"]


def same_file(path: str | Path) -> tuple[int, int] | str:
    """What two names of one file share, so a list that names a photo twice (``a.jpg`` and a link to
    it) is caught: its device and inode, which a hard link shares too (its real path would not); for
    a file that cannot be looked at (missing), its real path, links and ``./`` or ``..`` resolved."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return os.path.realpath(path)
    return found.st_dev, found.st_ino


def walk_files(folder: str | Path, *, onerror: Callable[[OSError], None] | None = None,
               skip: Callable[[Path], bool] = lambda folder: False) -> list[Path]:
    """Every file under ``folder`` (links to nothing included, for the caller to report), sorted.

    Linked folders are followed, each real folder once, so a link loop ends. A folder reached both
    through a link and without one is searched under its real path (a link to ``photos/`` does not
    take over its photos' names), whatever the order the disk lists them in: every folder reached
    without a link is searched first, then those behind one link, and so on, each level in sorted
    order. ``onerror`` gets the OSError of a folder that cannot be listed (``os.walk``'s convention;
    None passes it over). A folder below the top for which ``skip`` is true is not searched.
    """
    files, seen, level = [], set(), [Path(folder)]
    while level:
        links = []  # linked folders met at this level: searched after every folder reached without one
        for top in level:
            for here, dirs, names in os.walk(top, onerror=onerror):
                real = os.path.realpath(here)
                if real in seen:
                    dirs[:] = []
                    continue
                seen.add(real)
                dirs[:] = [d for d in sorted(dirs) if not skip(Path(here) / d)]
                linked = {d for d in dirs if os.path.islink(os.path.join(here, d))}  # searched at the next level
                links += [Path(here) / d for d in dirs if d in linked]
                dirs[:] = [d for d in dirs if d not in linked]
                files += [Path(here) / n for n in names]
        level = links
    return sorted(files)


def unreadable(path: str | Path, err: OSError, what: str = "cannot read") -> DataFormatError:
    """The DataFormatError for a file (or, with ``what="cannot list this folder"``, a folder) the
    operating system refused: ``f/b.pts: cannot read (Permission denied)``. Readers raise it as any
    other bad input, so ``skip_bad`` lists the file and reads the rest."""
    return DataFormatError(path, f"{what} ({err.strerror or err})")


def path_problem(path: str | Path) -> str | None:
    """Why the system cannot even say whether ``path`` is there: a name longer than the file system
    takes (``name_problem``'s words), a folder above it without permission, an I/O error; None where
    it answers (a file, a folder, or nothing there). Python 3.11's ``Path.is_file()``, ``is_dir()`` and
    ``exists()`` raise for these, which crashed a command given such a path: check a user's path here first."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):  # nothing there: the caller says so
            return None
        if err.errno == errno.ENAMETOOLONG:
            return name_problem(path) or f"the name is too long for the file system ({err.strerror})"
        return f"cannot be looked at ({err.strerror or err})"
    except ValueError:  # a NUL in the name
        return "the name holds a NUL character, which no file name may hold"
    return None


def check_path(path: str | Path, named: str | None = None) -> None:
    """ValueError ``"<named or path>: <why>"`` where ``path_problem`` finds one: a user's path, checked
    before anything asks whether it is a file or a folder."""
    if why := path_problem(path):
        raise ValueError(f"{named if named is not None else path}: {why}")


def not_found(path: str | Path) -> Exception:
    """What to raise for a path that leads to no file or folder: a link to nothing or a link loop is
    bad input named as such (DataFormatError); a name with nothing behind it is FileNotFoundError."""
    path = Path(path)
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return DataFormatError(path, "is a link loop (the link leads back to itself), not a file")
        if err.errno == errno.ENOENT and os.path.islink(path):
            return DataFormatError(path, f"is a link to nothing ({os.readlink(path)} does not exist)")
        if err.errno not in (errno.ENOENT, errno.ENOTDIR):  # no permission, an I/O error
            return unreadable(path, err)
    return FileNotFoundError(f"{path}: no such file or folder")


def data_files(folder: str | Path, problems: list[DataFormatError]) -> list[Path]:
    """``walk_files`` as the data readers and format detection search a folder, sorted: macOS's
    ``__MACOSX`` folders and ``._*`` resource forks are not data and are passed over (as the zip
    readers do); each folder that cannot be listed, ``folder`` itself included, is appended to
    ``problems`` as a DataFormatError naming it, for the caller to raise or list as skipped."""
    def unlistable(err: OSError) -> None:
        problems.append(unreadable(err.filename or folder, err, "cannot list this folder"))

    return [f for f in walk_files(folder, onerror=unlistable, skip=lambda sub: sub.name == "__MACOSX")
            if not f.name.startswith("._")]


def distinct_files(files: list[Path], problems: list[DataFormatError],
                   photo: Callable[[Path], Path | None] = lambda file: None) -> list[Path]:
    """``files`` less each one that leads to the same file as one before it (``b.pts`` a link to
    ``a.pts``: read twice, its face would count twice), which is appended to ``problems``, named, as
    a linked folder is searched once. A link to nothing is kept, for the reader to report. ``photo``
    gives the photo a label file labels (its stem's, or None): two names of one label file that label
    two different photos found (``a.jpg``, ``b.jpg``; labels shared by a dedup tool) are both kept."""
    kept, first = [], {}  # a label file's device and inode -> its names kept
    for f in files:
        real = same_file(f)
        if real in first and os.path.isfile(f) and not _labels_another_photo(f, first[real], photo):
            problems.append(DataFormatError(f, f"leads to the same file as {first[real][0]} (a link): its labels "
                                               "would count twice; remove one"))
            continue
        first.setdefault(real, []).append(f)
        kept.append(f)
    return kept


def _labels_another_photo(file: Path, earlier: list[Path], photo: Callable[[Path], Path | None]) -> bool:
    """Whether ``file``'s photo and each of ``earlier``'s are found, and ``file``'s is none of theirs."""
    photos = [photo(f) for f in [file, *earlier]]
    if not all(photos):
        return False
    mine, *theirs = (same_file(p) for p in photos)
    return mine not in theirs
