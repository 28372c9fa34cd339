"""One training per run folder: ``out/.training.lock`` holds the pid of the process training there,
which keeps an flock on it: the kernel drops that when the process dies, however it dies.

``train`` (``loop.fit``) and ``train-detector`` (``detector.train_detector``) both claim their folder,
so a second training started into it, by either command, is refused instead of racing the first over
its last.pt.
"""
from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

from facekeypoints.atomic import pid_alive

__all__ = ["LOCK", "claim_folder", "check_unclaimed", "release_folder"]

LOCK = ".training.lock"  # a run's claim on its folder: holds the training process's pid
_HELD: dict[Path, int] = {}  # this process's claims: each lock's open, flock-ed descriptor


def claim_folder(out: Path) -> tuple[Path, list[Path]]:
    """Claim ``out`` for this run: ``out/.training.lock``, holding our pid, made whole (linked from a
    private file) and kept flock-ed until ``release_folder``. A lock whose process is gone (a run
    killed with SIGKILL: the kernel dropped its flock) is taken over; a live one is refused. Returns
    (the lock, the folders made here: ``out`` and any missing folders above it, deepest first)."""
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    lock, mine = out / LOCK, out / f"{LOCK}.{os.getpid()}"
    fd = os.open(mine, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        _flock(fd)  # a file nobody else has opened yet: never busy
        for _ in range(100):  # another claim is taking over or giving back the lock: a moment later it is done
            try:
                os.link(mine, lock)  # whole or not at all: no reader meets an empty lock
                break
            except FileExistsError:
                if _replace_stale(lock, mine, out):
                    break
            time.sleep(0.02)
        else:
            raise ValueError(f"{out}: could not claim the folder ({lock} keeps reappearing); is another training "
                             "starting?")
    except BaseException:
        os.close(fd)
        release_folder(None, out, made)
        raise
    finally:
        mine.unlink(missing_ok=True)
    _HELD[lock] = fd
    return lock, made


def _replace_stale(lock: Path, mine: Path, out: Path) -> bool:
    """Put ``mine`` in place of ``lock`` if no live process holds it (True); False when ``lock``
    went meanwhile (claim again); ValueError when a live one does, or it is no lock file. The takeover
    happens under the old lock's flock, so of several processes taking over one stale lock only the
    first succeeds: the others find its flock held, or (once it has let the old file go) another file
    at the path."""
    if not _check_lock_file(lock):
        return False
    try:  # for writing where we may: NFS emulates flock with fcntl locks, whose exclusive kind needs it
        fd = os.open(lock, os.O_RDWR)
    except PermissionError:  # another user's lock: local file systems lock it read-only too
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:  # its run ended meanwhile
        return False
    try:
        if _flock(fd) is False:  # its process lives, or another claim is taking the stale lock over
            pid = _pid_in(lock)
            if pid > 0 and pid_alive(pid):
                _refuse(out, pid)
            return False  # it still names the dead process: the takeover is under way
        try:
            if not os.path.samestat(os.fstat(fd), os.stat(lock)):  # replaced after we opened it: look again
                return False
        except FileNotFoundError:
            return False
        check_unclaimed(out)  # an unflock-ed lock of a live process (an older version's)
        os.replace(mine, lock)
        return True
    finally:
        os.close(fd)


def _flock(fd: int) -> bool | None:
    """Lock ``fd`` exclusively without waiting: True, or False when another process holds it; None on
    a file system without flock (some network ones), where only the pid in the lock guards it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: the pid checks (check_unclaimed) decide alone
        return None


def _check_lock_file(lock: Path) -> bool:
    """True for a lock file to look into; False when it went meanwhile (its run ended between our
    link and this look: claim again); ValueError for what is no lock file."""
    try:
        found = os.stat(lock)
    except FileNotFoundError:
        if not os.path.lexists(lock):
            return False
        found = None  # a link to nothing
    if found is None or not stat.S_ISREG(found.st_mode):
        what = "is a folder" if found is not None and stat.S_ISDIR(found.st_mode) else \
            "is not a file (a broken link, or a device)"
        raise ValueError(f"{lock}: {what}, not a training lock; remove it")
    return True


def _pid_in(lock: Path) -> int:
    try:
        return int(lock.read_text().strip() or -1)
    except (OSError, ValueError):  # unreadable: no pid to name
        return -1


def _refuse(out: Path, pid: int) -> None:
    lock = out / LOCK
    raise ValueError(f"{out}: in use by another training (pid {pid}); wait for it, or train into another "
                     f"--out folder (if no such training runs, remove {lock})")


def check_unclaimed(out: Path) -> None:
    """ValueError when another live process has claimed ``out`` (a check before minutes of reading
    data; ``claim_folder`` is what claims it)."""
    pid = _pid_in(out / LOCK)  # none there, or unreadable: claim_folder decides
    if pid > 0 and pid != os.getpid() and pid_alive(pid):
        _refuse(out, pid)


def release_folder(lock: Path | None, out: Path, made: list[Path]) -> None:
    """Give the claim back; the folders made for a run that never wrote anything go too (``out``
    and the parents it needed, e.g. runs/ for --out runs/a), each only if empty."""
    fd = _HELD.pop(lock, None) if lock is not None else None
    if fd is not None:
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):  # still ours: unlinked before the flock goes
                os.unlink(lock)
        except OSError:
            pass
        os.close(fd)
    for folder in made:  # deepest first: a folder that is not empty keeps the ones above it too
        try:
            folder.rmdir()  # only if empty
        except OSError:
            break
