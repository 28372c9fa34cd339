"""Check a Kaggle Facial Keypoints download against the genuine files' sizes and sha256.

A folder passes when training.csv, test.csv and IdLookupTable.csv are present and every file found
matches. Each CSV may also be found inside the zip Kaggle ships it in (``training.zip`` holding
``training.csv``); a zip member is checked by its uncompressed bytes.

Examples
--------
>>> report = verify_kaggle_download("~/Downloads/facial-keypoints-detection")   # doctest: +SKIP
>>> report.ok, [c.status for c in report.checks]                                 # doctest: +SKIP
(True, ['OK', 'OK', 'OK', 'OK'])
"""
from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from facekeypoints.data.walk import check_path

__all__ = ["GENUINE_FILES", "REQUIRED_FILES", "FileCheck", "VerifyReport", "verify_kaggle_download"]


@dataclass(frozen=True)
class Genuine:
    size: int
    sha256: str  # full digest, or a known prefix


# The genuine Kaggle files (bytes, sha256); only the first 8 hex digits of SampleSubmission's are known.
GENUINE_FILES = {
    "training.csv": Genuine(238064810, "6521c1d8ad036e3304ccb50967834ab6a942bc1b84bcb7dca10e348522ed480a"),
    "test.csv": Genuine(59822141, "1600eed743e240d30969a8b4e3f48eed0dca2a6bccc9d20f7838640540c4adba"),
    "IdLookupTable.csv": Genuine(862732, "e9fe9d4b34c3ca8db4598113d7bc9a3439640c5d70cbe2caa0a7f69355c3df55"),
    "SampleSubmission.csv": Genuine(205901, "621cccfd"),
}
REQUIRED_FILES = ("training.csv", "test.csv", "IdLookupTable.csv")


@dataclass(frozen=True)
class FileCheck:
    """One expected file: ``status`` is OK, size differs, sha256 differs, unreadable or missing."""

    name: str
    status: str
    found: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "OK"


@dataclass(frozen=True)
class VerifyReport:
    folder: str
    checks: tuple[FileCheck, ...]

    @property
    def ok(self) -> bool:
        """Every required file present, and every file present genuine."""
        return all(c.ok or (c.status == "missing" and c.name not in REQUIRED_FILES) for c in self.checks)


def _sha256(stream: BinaryIO) -> str:
    return hashlib.file_digest(stream, "sha256").hexdigest()


def _compare(name: str, where: str, size: int, open_stream) -> FileCheck:
    genuine = GENUINE_FILES[name]
    if size != genuine.size:
        return FileCheck(name, "size differs", where, f"{size} bytes, genuine {genuine.size}")
    with open_stream() as stream:
        digest = _sha256(stream)
    if not digest.startswith(genuine.sha256):
        known = genuine.sha256 if len(genuine.sha256) == 64 else f"{genuine.sha256}... (prefix)"
        return FileCheck(name, "sha256 differs", where, f"sha256 {digest}, genuine {known}")
    return FileCheck(name, "OK", where, f"{size} bytes, sha256 {digest[:8]}...")


def _check_in_zip(name: str, archive_path: Path) -> FileCheck:
    where = f"{archive_path} (member {name})"
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = [i for i in archive.infolist() if Path(i.filename).name == name and not i.is_dir()]
            if len(members) != 1:
                listed = [i.filename for i in archive.infolist()][:5]
                return FileCheck(name, "missing", str(archive_path), f"zip holds no single {name} (it holds {listed})")
            return _compare(name, where, members[0].file_size, lambda: archive.open(members[0]))
    # the detail names the zip: the line starts with the CSV's name, which is not the file that is broken
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        return FileCheck(name, "unreadable", str(archive_path), f"{archive_path}: not a readable zip archive ({err})")
    except NotImplementedError as err:  # e.g. Deflate64, which zipfile cannot decompress
        return FileCheck(name, "unreadable", str(archive_path), f"{where}: {err}; unzip it and verify the CSV")
    except RuntimeError as err:  # zipfile's word for an encrypted member
        return FileCheck(name, "unreadable", str(archive_path), f"{where}: encrypted member ({err})")


def _check(name: str, folder: Path) -> FileCheck:
    """The plain file's check, or its zip's; where both are there, both are checked and named (a
    broken zip beside a good CSV is reported, not passed over), with the first failure's status."""
    plain = folder / name
    if plain.is_file():
        try:
            result = _compare(name, str(plain), plain.stat().st_size, lambda: open(plain, "rb"))
        except OSError as err:
            return FileCheck(name, "unreadable", str(plain), err.strerror or str(err))
        checks = [result] + [_check_in_zip(name, archive) for archive in _archives(name, folder) if archive.is_file()]
        if len(checks) == 1:
            return result
        worst = next((c for c in checks if not c.ok), result)
        return FileCheck(name, worst.status, ", ".join(c.found for c in checks),
                         "; ".join(f"{c.found}: {c.status}, {c.detail}" for c in checks))
    if plain.is_dir():
        return FileCheck(name, "unreadable", str(plain), "is a folder, not the CSV file")
    if plain.exists():  # there (itself or where its link leads), but neither a file nor a folder
        return FileCheck(name, "unreadable", str(plain), "is not a regular file (a pipe, socket or device"
                         f"{', through a link' if plain.is_symlink() else ''}); save the CSV to a file first")
    if plain.is_symlink():
        return FileCheck(name, "unreadable", str(plain), "is a link to nothing (broken or looping)")
    for archive in _archives(name, folder):
        if archive.is_file():
            return _check_in_zip(name, archive)
        if archive.exists() and not archive.is_dir():
            return FileCheck(name, "unreadable", str(archive), "is not a regular file (a pipe, socket or "
                             "device); save the zip to a file first")
    for archive in _archives(name, folder):  # named exactly as the zip, but no file: not a letter-case slip
        if archive.is_dir():
            return FileCheck(name, "unreadable", str(archive), f"{archive.name} is a folder, not a zip file")
        if archive.is_symlink():
            return FileCheck(name, "unreadable", str(archive), f"{archive.name} is a link to nothing (broken or "
                             "looping)")
    wanted = {name.lower()} | {a.name.lower() for a in _archives(name, folder)}
    exact = {name} | {a.name for a in _archives(name, folder)}
    other_case = sorted(f.name for f in folder.iterdir() if f.name.lower() in wanted and f.name not in exact)
    named = f" ({', '.join(other_case)} is there: the names are case-sensitive; rename it)" if other_case else ""
    return FileCheck(name, "missing", "", f"no {name}, {Path(name).stem}.zip or {name}.zip in {folder}{named}")


def _archives(name: str, folder: Path) -> tuple[Path, Path]:
    """The zips Kaggle ships ``name`` in: training.zip, or training.csv.zip."""
    return folder / f"{Path(name).stem}.zip", folder / f"{name}.zip"


def verify_kaggle_download(folder: str | Path) -> VerifyReport:
    """Check every genuine Kaggle file in ``folder`` (plain or zipped); see ``VerifyReport.ok``."""
    folder = Path(os.path.expanduser(folder))
    check_path(folder)  # a name too long, a folder above without permission: is_dir() would raise a bare OSError
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {'is a file; give the folder that holds it' if folder.exists() else 'no such folder'}")
    return VerifyReport(str(folder), tuple(_check_or_unreadable(name, folder) for name in GENUINE_FILES))


def _check_or_unreadable(name: str, folder: Path) -> FileCheck:
    """``_check``, with a folder the user may not search (its files cannot even be looked at) as an
    unreadable file, not an abort."""
    try:
        return _check(name, folder)
    except OSError as err:
        return FileCheck(name, "unreadable", str(folder / name), err.strerror or str(err))
