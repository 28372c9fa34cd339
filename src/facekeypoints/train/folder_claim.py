"""One training per run folder: ``out/.training.lock`` holds the pid of the process training there.

``train`` (``loop.fit``) and ``train-detector`` (``detector.train_detector``) both claim their folder,
so a second training started into it, by either command, is refused instead of racing the first over
its last.pt.
"""
from __future__ import annotations

import os
from pathlib import Path

from facekeypoints.atomic import pid_alive

__all__ = ["LOCK", "claim_folder", "check_unclaimed", "release_folder"]

LOCK = ".training.lock"  # a run's claim on its folder: holds the training process's pid


def claim_folder(out: Path) -> tuple[Path, list[Path]]:
    """Claim ``out`` for this run: ``out/.training.lock`` made exclusively, holding our pid. A lock
    whose process is gone (a run killed with SIGKILL) is taken over; a live one is refused. Returns
    (the lock, the folders made here: ``out`` and any missing folders above it, deepest first)."""
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK
    for _ in range(3):
        tmp = out / f"{LOCK}.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
            finally:
                os.close(fd)
            os.link(tmp, lock)  # whole or not at all: no reader meets an empty lock
            return lock, made
        except FileExistsError:
            try:
                check_unclaimed(out)
            except ValueError as err:
                release_folder(None, out, made)
                raise err from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
        finally:
            tmp.unlink(missing_ok=True)
    raise ValueError(f"{out}: could not claim the folder ({lock} keeps reappearing); is another training starting?")


def check_unclaimed(out: Path) -> None:
    """ValueError when another live process has claimed ``out`` (a check before minutes of reading
    data; ``claim_folder`` is what claims it)."""
    lock = out / LOCK
    try:
        pid = int(lock.read_text().strip() or -1)
    except (OSError, ValueError):  # none there, or unreadable: claim_folder decides
        return
    if pid > 0 and pid != os.getpid() and pid_alive(pid):
        raise ValueError(f"{out}: in use by another training (pid {pid}); wait for it, or train into another "
                         f"--out folder (if no such training runs, remove {lock})")


def release_folder(lock: Path | None, out: Path, made: list[Path]) -> None:
    """Give the claim back; the folders made for a run that never wrote anything go too (``out``
    and the parents it needed, e.g. runs/ for --out runs/a), each only if empty."""
    if lock is not None:
        try:
            with open(lock) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.unlink(lock)
        except OSError:
            pass
    for folder in made:  # deepest first: a folder that is not empty keeps the ones above it too
        try:
            folder.rmdir()  # only if empty
        except OSError:
            break
