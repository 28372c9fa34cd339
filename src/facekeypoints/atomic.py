"""Atomic file writes: a result appears whole or not at all, whatever stops the write.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> target = Path(tempfile.mkdtemp()) / "out.txt"
>>> with atomic_path(target) as tmp:
...     _ = tmp.write_text("done")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('done', ['out.txt'])
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "check_target", "name_problem", "WriteError", "NAME_MAX", "temporary_path",
           "remove_stale_temporaries", "pid_alive", "file_identity", "is_temporary"]

NAME_MAX = 255  # bytes in one file name on the usual file systems, when the system does not say
PATH_MAX = 4096  # bytes in a path handed to the system (Linux)


class WriteError(OSError):
    """An output could not be written (full disk, quota, permissions); its previous content, if
    any, is kept. The message names the output and the system's reason."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()  # without OSError's "[Errno N]" prefix

_SERIAL = itertools.count()  # two writes to one path in one process never share a temporary file


def _nearest_folder(path: Path) -> Path:
    """``path``'s nearest folder that exists (``path`` itself when it is one)."""
    home = path
    with contextlib.suppress(OSError):
        while not home.is_dir() and home != home.parent:
            home = home.parent
    return home


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, that ``folder``'s file system takes (``NAME_MAX`` when it does not say)."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or a name it does not know
        return NAME_MAX
    # -1: no limit said; never over NAME_MAX, as the folder looked at may lie on another disk than the one written
    return min(limit, NAME_MAX) if limit > 0 else NAME_MAX


def name_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a file's path here (a part of it longer than the file system takes, or
    the whole longer than a path may be), or None. Legal input names can give output names that are
    not (x.gif -> x.gif.png, clip.mp4 -> clip_keypoints.mp4), so outputs are checked by name first."""
    path = Path(path)
    limit = _name_max(_nearest_folder(path.parent))
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            shown = part if len(part) <= 40 else f"{part[:18]}...{part[-18:]}"
            return f"the name {shown!r} is {size} bytes long, over the {limit} bytes a file name may have here"
    if len(os.fsencode(str(path))) >= PATH_MAX:
        return f"the path is {len(os.fsencode(str(path)))} bytes long, over the {PATH_MAX - 1} bytes a path may have"
    return None


def temporary_path(path: Path) -> Path:
    """A hidden name beside ``path``, per process and per write, within the file-name limit: a long
    name is cut (the temporary name need not hold it whole; the pid and serial keep it unique)."""
    tail = f".{os.getpid()}-{next(_SERIAL)}.tmp"
    head, limit = f".{path.name}", _name_max(path.parent)
    while len(os.fsencode(head + tail)) > limit:
        head = head[:-1]
    return path.with_name(head + tail)


# exactly the names temporary_path gives: ".<name>.<pid>-<serial>.tmp"
_TEMPORARY_NAME = re.compile(r"\..*\.([0-9]+)-[0-9]+\.tmp")


def is_temporary(name: str) -> bool:
    """Whether a file name is one ``temporary_path`` gives: an output still being written (or a killed writer's)."""
    return _TEMPORARY_NAME.fullmatch(name) is not None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files (``temporary_path``'s names, regular files only) in ``folder`` whose
    process is gone: what a SIGKILL left mid-write, which no later write would ever rename or
    remove. Anything else, and a file of a live process, is left alone. Returns what was removed.
    A folder swept here is not swept again by ``atomic_path`` in this process."""
    removed = []
    _SWEPT.add(os.path.abspath(folder))
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet, or one that cannot be listed: nothing to tidy
        return removed
    for entry in entries:
        match = _TEMPORARY_NAME.fullmatch(entry.name)
        try:
            if not match or not entry.is_file(follow_symlinks=False) or pid_alive(int(match.group(1))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:  # gone meanwhile, or not ours to remove: left
            continue
    return removed


# folders atomic_path has tidied in this process: once each (a listing per folder), not once per write
_SWEPT: set[str] = set()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, claimed: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (its folder is created): renamed onto ``path`` when the block
    ends without an error, removed when it raises, so a kill or a full disk never leaves half a file.
    A block that removes the temporary file itself writes nothing (``path`` is left as it was).
    The first write into a folder in a process removes what killed writers left there
    (``remove_stale_temporaries``), so no writer has to remember to.
    A name the file system cannot take (``name_problem``) or a folder that cannot be made is a
    ``WriteError`` naming ``path``, before the block runs. ``claimed``: ``path`` is an empty file
    the caller made to hold the name; a failed write removes it too (it is no previous content)."""
    path = Path(path)
    if why := name_problem(path):  # the rename would fail only after the work, and stat() fails alike
        raise WriteError(errno.ENAMETOOLONG, f"{path}: could not be written ({why}); nothing was written")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(err.errno, f"{path}: could not be written: cannot create the folder {path.parent} "
                                    f"({err.strerror or err}); nothing was written") from err
    if (folder := os.path.abspath(path.parent)) not in _SWEPT:
        remove_stale_temporaries(folder)
    tmp = temporary_path(path)
    claim = file_identity(path) if claimed else None
    try:
        yield tmp
        if tmp.exists():
            os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as err:  # the write's own failure (ENOSPC has no file name): say which output, and that it is kept
        # our own empty claim would block every re-run, and passes for no result; a file another run
        # has put there since (predict --overwrite) is that run's, and stays
        if claim is not None and file_identity(path) == claim:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        kept = "its previous content is kept" if _exists(path) else "nothing was written"
        raise WriteError(err.errno, f"{path}: could not be written ({err.strerror or err}); {kept}") from err
    finally:
        with contextlib.suppress(OSError):  # an error here would hide the write's own
            tmp.unlink(missing_ok=True)


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None when there is none: which file a name holds now."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _exists(path: Path) -> bool:
    """``path.exists()``, False where even looking fails (a name too long, a folder without permission)."""
    try:
        return path.exists()
    except OSError:
        return False


def check_target(path: str | Path, *, inputs: tuple = (), folder: bool = False, make: bool = True) -> Path:
    """``path`` if a command can write its result there, else ValueError saying why, so that the
    command fails before its work, not after: a file output that is an existing folder, a folder
    output that is an existing file, an output that is one of the command's ``inputs`` (it would be
    overwritten), or a folder that cannot be made or written (the folder is made here; with
    ``make=False`` only its nearest existing folder is checked, for outputs of a run that may still
    be refused), or a name longer than the file system takes (``name_problem``). A place that
    cannot even be looked at (a folder above it without permission) is refused as well."""
    path = Path(path)
    if why := name_problem(path):
        raise ValueError(f"{path}: {why}")
    try:
        return _check_target(path, inputs, folder, make)
    except OSError as err:  # e.g. EACCES from a stat: said as a refusal, before the work, not as a crash
        raise ValueError(f"{path}: cannot be checked as an output place ({err.strerror or err})") from None


def _check_target(path: Path, inputs: tuple, folder: bool, make: bool) -> Path:
    if not folder and path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder")
    if not folder and path.exists() and not path.is_file():  # the rename would replace it, not feed it
        raise ValueError(f"{path}: is not a regular file (a pipe or a device); give a file name, or - for "
                         "standard output where the command has it")
    for item in map(Path, inputs):
        if path.resolve() == item.resolve() or (path.exists() and item.exists() and path.samefile(item)):
            raise ValueError(f"{path}: is also an input, which the output would overwrite; choose another name")
    home = path if folder else path.parent
    if not make:
        while not home.exists() and home != home.parent:  # the write makes the rest
            home = home.parent
    else:
        try:  # made now, as the write would make it: a place that cannot exist fails before the work
            home.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{path}: cannot create the folder {home} ({err.strerror or err})") from None
    if home.exists() and not home.is_dir():  # e.g. --out f/run with f a file
        raise ValueError(f"{path}: {home} is not a folder (a file of that name is there)")
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot write in {home} ({_why_not_writable(home)})")
    return path


def _why_not_writable(folder: Path) -> str:
    """The reason a folder refuses writes: a read-only file system (a mount) or its permissions."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "a read-only file system"
    except OSError:
        pass
    return "permission denied"
