"""Where ``predict`` writes: chosen by ``-o``, one sink per run, written atomically.

- a folder (default ``predictions/``): ``predictions.jsonl`` plus drawn images and videos;
- ``out.jsonl``: one ``Result.to_dict()`` per line; ``out.json``: a JSON array of them;
- ``out.csv``: one row per face (source, face, box, score, then ``<name>_x, <name>_y`` columns), and
  a row with only its source for an image where no face was found;
- ``-``: JSON lines on standard output.

A file is written to a temporary name and renamed when the run ends, so a crash never leaves half
a file where a good one was; results are never written over one another.

Examples
--------
>>> output_kind("out.csv"), output_kind("-"), output_kind("results/")
('csv', 'stdout', 'folder')
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import warnings
from pathlib import Path

from facekeypoints.atomic import WriteError, atomic_path, check_target, file_identity, remove_stale_temporaries
from facekeypoints.data.walk import check_path

__all__ = ["output_kind", "open_sink", "check_outputs", "file_identity", "place", "place_bytes", "FILE_SUFFIXES"]

FILE_SUFFIXES = {".jsonl": "jsonl", ".json": "json", ".csv": "csv"}


def output_kind(target: str | Path) -> str:
    """``"stdout"``, ``"jsonl"``, ``"json"``, ``"csv"`` or ``"folder"`` for an ``-o`` value."""
    if str(target) == "-":
        return "stdout"
    if str(target).endswith(("/", os.sep)):  # a trailing slash names a folder, dots or not
        return "folder"
    return FILE_SUFFIXES.get(Path(target).suffix.lower(), "folder")


class _Sink:
    """Results to one file (through a temporary name) or to standard output."""

    def __init__(self, target: str | Path, kind: str, claimed: bool = False, inputs: tuple = ()):
        self.kind, self.count, self.claimed = kind, 0, claimed  # claimed: an empty file holds the name
        self.path = None if kind == "stdout" else Path(target)
        self._files = contextlib.ExitStack()  # the temporary file, renamed onto path by close()
        self.failed = False  # a write failed (a full disk): nothing of this file is put in place
        if self.path is not None:
            check_target(self.path, inputs=inputs)  # not a folder nor an input, and a place that can be written
            self._held = file_identity(self.path)  # our claim, or the file --overwrite replaces; None: no file
            try:
                tmp = self._tmp = self._files.enter_context(atomic_path(self.path, claimed=claimed))
                # surrogateescape: a file name that is not UTF-8 is written back as the bytes it was
                self.stream = self._files.enter_context(open(tmp, "w", newline="", encoding="utf-8",
                                                             errors="surrogateescape"))
            except OSError as err:
                self._files.close()
                raise ValueError(f"{self.path}: cannot be written ({err.strerror or err})") from None
        else:
            self.stream = sys.stdout
        self._csv = None
        if kind == "json":
            self.stream.write("[\n")

    def write(self, result, extra: dict | None = None) -> None:
        """One result; ``extra`` fields (a drawing's name) join its JSON record (a CSV has no place for them)."""
        try:
            if self.kind == "csv":
                self._write_csv(result)
            else:
                line = json.dumps({**result.to_dict(), **(extra or {})}, allow_nan=False)
                self.stream.write(("" if self.kind != "json" or not self.count else ",\n") + line
                                  + ("" if self.kind == "json" else "\n"))
            self.stream.flush()
        except OSError as err:
            if self.path is None:  # standard output: the CLI says what became of it
                raise
            raise self._give_up(err) from None
        self.count += 1  # only once it is on disk: a failed write is no result

    def _give_up(self, err: OSError) -> WriteError:
        """A failed write (a full disk, a file-size limit): the half-written file is removed, and so is
        our claim on the name (it would refuse every re-run); a WriteError naming the file."""
        self.failed = True
        with contextlib.suppress(OSError):
            self.stream.close()  # the file is closed even when its last flush fails
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)
            self._files.close()
        if self.claimed and self._still_held():
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        kept = "its previous content is kept" if not self.claimed and self.path.exists() else "nothing was written"
        return WriteError(err.errno, f"{self.path}: could not be written ({err.strerror or err}); {kept}")

    def _write_csv(self, result) -> None:
        if self._csv is None:
            self._csv = csv.writer(self.stream)
            self._csv.writerow(["source", "face", "x1", "y1", "x2", "y2", "box_score", *result.schema.columns()])
        faces = result.to_dict()["faces"]
        if not faces:  # the image still gets its row, so "no face found" is not mistaken for "not run"
            self._csv.writerow([result.source] + [""] * (6 + 2 * result.schema.num_keypoints))
        for i, face in enumerate(faces):
            points = [v for p in face["keypoints"].values() for v in (p["x"], p["y"])]
            self._csv.writerow([result.source, i, *face["box"], face["box_score"], *points])

    def close(self, keep: bool = True) -> Path | None:
        """Finish the file and put it in place; ``keep=False`` (a run without results) writes
        nothing, so an earlier file of that name is not replaced by an empty one. Returns the path
        written, or None."""
        if self.path is None or self.failed:
            return None
        if self.kind == "json":
            self.stream.write("\n]\n")
        if not keep:
            self.stream.close()
            self._tmp.unlink(missing_ok=True)
            if self.claimed and self._still_held():
                self.path.unlink(missing_ok=True)
        elif not self._still_held():
            return self._put_aside()
        self._files.close()  # every result written so far is kept, even when the run failed midway
        return self.path if keep else None

    def _still_held(self) -> bool:
        """Whether ``path`` is still the file this run started with (its claim, or what --overwrite replaces):
        another run given --overwrite meanwhile put its own results there, which are not ours to remove."""
        return file_identity(self.path) == self._held

    def _put_aside(self) -> Path:
        """This run's results under a free name beside ``path``, which another run wrote while this one ran
        (it is kept, as that run reported); a warning says where they went."""
        self.stream.close()
        aside = put_aside(self._tmp, self.path)
        self._files.close()  # nothing left to rename onto path
        return aside


def put_aside(tmp: Path, path: Path) -> Path:
    """Move ``tmp`` (this run's finished output) to a free name beside ``path`` (x.jsonl -> x-2.jsonl),
    which another run wrote while this one ran: that run's file is kept, as it reported. A warning
    says where this run's went; the new name is returned."""
    stem, n = path.stem, 2
    while True:
        while (aside := path.with_name(f"{stem}-{n}{path.suffix}")).exists() or aside.is_symlink():
            n += 1
        try:
            os.link(tmp, aside)  # fails on a name taken meanwhile, never replaces it
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            os.replace(tmp, aside)
        break
    tmp.unlink(missing_ok=True)
    warnings.warn(f"{path}: another run of facekeypoints wrote this file while this one ran; it is kept, and this "
                  f"run's results are in {aside}", RuntimeWarning, stacklevel=4)
    return aside


def place(tmp: Path, path: Path, held: tuple[int, int] | None) -> Path:
    """Put this run's finished output ``tmp`` at ``path``, where ``held`` is the identity
    (``file_identity``) of the file there when the run began (None: none): one that another run
    put there meanwhile is not replaced (``put_aside``). Returns where it went."""
    if held is None:
        try:
            os.link(tmp, path)  # fails where a file appeared meanwhile, never replaces it
        except FileExistsError:
            return put_aside(tmp, path)
        except OSError:  # a file system without hard links
            if file_identity(path) is not None:
                return put_aside(tmp, path)
            os.replace(tmp, path)
        tmp.unlink(missing_ok=True)
        return path
    if file_identity(path) != held:
        return put_aside(tmp, path)
    os.replace(tmp, path)
    return path


def place_bytes(path: Path, data: bytes, held: tuple[int, int] | None) -> Path:
    """Write ``data`` (a drawing) atomically at ``path`` through ``place``: a file another run put there
    since the run began (``held``: what was there then) is kept, and this one goes beside it. Returns
    where it went."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        return place(tmp, path, held)  # tmp is gone after it: atomic_path renames nothing


def open_sink(target: str | Path, *, overwrite: bool = False, inputs=()) -> _Sink:
    """A sink for a file or ``-`` output (see ``output_kind``; folders use ``<folder>/predictions.jsonl``,
    which must not exist yet unless ``overwrite``: the folder's claim). The file may not be one of
    ``inputs`` (paths), which it would overwrite."""
    kind = output_kind(target)
    inputs = tuple(inputs)
    if kind == "folder":
        folder = Path(target)
        check_path(folder)  # a name too long: exists() raised it as a bare OSError
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder}: exists and is not a folder; -o takes a folder, a .json, .jsonl or .csv "
                             "file, or - for standard output")
        if folder.suffix and not folder.is_dir() and not str(target).endswith(("/", os.sep)):
            raise ValueError(f"{folder}: {folder.suffix} is not an output format; -o takes a folder, a .json, .jsonl "
                             f"or .csv file, or - for standard output (end a folder name with / if it has a dot)")
        check_target(folder, folder=True)
        remove_stale_temporaries(folder)  # even for a run refused below: killed runs' leftovers are no one's
        results = folder / "predictions.jsonl"
        if results.is_dir():
            raise ValueError(f"{results}: a folder where the results file goes; choose another -o folder")
        check_target(results, inputs=inputs)  # before the claim: an input there is refused, not "exists"
        # Claimed with an empty file at once (O_EXCL), so a second run into the folder, even one started
        # at the same moment, is refused rather than replacing this run's results with its own.
        if not overwrite:
            try:
                results.open("x").close()
            except FileExistsError:
                raise ValueError(f"{results}: exists (from an earlier run, or one still running); give --overwrite "
                                 "to replace what this run writes, or another -o folder") from None
        return _Sink(results, "jsonl", claimed=not overwrite)
    return _Sink(target, kind, inputs=inputs)


def check_outputs(targets: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, outputs that cannot be written, and (unless ``overwrite``) outputs
    that exist: found midway, a drawing place that is a folder cut a video's results short, and
    files in the -o folder, ours or not, were silently replaced."""
    for target in targets:
        check_target(target, make=False)
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs of this run)" if len(existing) > 1 else ""
        raise ValueError(f"{existing[0]}: exists{more}; give --overwrite to replace what this run writes, "
                         "or choose another -o folder")
