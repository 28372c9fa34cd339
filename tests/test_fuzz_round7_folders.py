"""Round 7 of bad inputs for folder reading, format detection and file-system refusals (synthetic
files in tmp_path). Each case was once read wrongly or aborted; each now gives a correct result or a
one-line error naming the file or folder, which ``skip_bad`` lists while the rest is read:

- F1: upper-case suffixes (a.PTS, b.ASF, c.LJSON, d.MAT) in a folder were passed over, and a
  folder holding only such files "held no .pts/.asf/.ljson/.mat files"; a.pts beside a.PTS is two
  labels for one face, an error;
- F2: format detection did not follow linked subfolders as the readers do (a folder holding only a
  link to a folder of .pts "held no files"; a linked folder of .asf beside .pts files was ignored);
- F3: a subfolder that cannot be listed was passed over without a word;
- F4: a file or photo the system will not read (EACCES) aborted with a raw PermissionError,
  even with skip_bad (.pts, .ljson, .mat, a COCO JSON, a photo in ``data convert`` and in
  ``data info``, ``data verify`` on a folder that cannot be searched);
- F12: ``data info`` counted a photo that is not an image as 0 x 0;
- F01: a file linked to itself was "no such file or folder", not a link loop.

Permission cases are simulated by raising the error the system raises (PermissionError, EACCES)
where it would be raised: opening the one locked file (``open``/``io.open``), listing the one
locked folder (``os.scandir``, what ``os.walk`` lists with), looking at files in a locked folder
(``os.stat``). One test does it for real with mode 000, as an unprivileged user (as root it runs
the CLI as ``nobody`` through setpriv, or is skipped saying why).
"""
from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from facekeypoints.data import read
from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.io import detect_format
from facekeypoints.data.formats.landmark_sets import read_coco_json
from facekeypoints.data.formats.landmarks import read_pts
from facekeypoints.data.formats.verify import verify_kaggle_download
from facekeypoints.data.images import read_image
from facekeypoints.data.info import describe, format_description, read_for_info
from tests.fakes import face68, run_cli

H, W = 200, 160


# ---- synthetic files ------------------------------------------------------------------------------


def _photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8))
    return path


def _pts(path: Path) -> Path:
    rows = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in face68())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"version: 1\nn_points: 68\n{{\n{rows}\n}}\n")
    return path


def _asf(path: Path) -> Path:
    rel = np.random.default_rng(3).uniform(0.1, 0.9, (58, 2))
    lines = ["58"] + [f"0 4 {x:.6f} {y:.6f} {i} {max(i - 1, 0)} {i + 1}" for i, (x, y) in enumerate(rel)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines + [f"{path.stem}.jpg"]) + "\n")
    return path


def _ljson(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"landmarks": {"points": [[y, x] for x, y in face68().tolist()]}}))
    return path


def _mat(path: Path) -> Path:
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"pt3d_68": np.r_[face68().T, np.zeros((1, 68))]})
    return path


WRITERS = {"pts": _pts, "asf": _asf, "ljson": _ljson, "mat": _mat}


def _face(folder: Path, stem: str, fmt: str, suffix: str | None = None) -> Path:
    """An annotation ``stem.<suffix>`` of format ``fmt`` with its photo ``stem.jpg``."""
    _photo(folder / f"{stem}.jpg")
    return WRITERS[fmt](folder / f"{stem}{suffix or '.' + fmt}")


# ---- simulated refusals (what the system raises for mode 000 files and folders) ---------------------
def _lock_files(monkeypatch, *locked: Path) -> None:
    """Opening any of ``locked`` raises PermissionError, as for a mode 000 file (Python's open,
    which Path.read_bytes, Pillow, scipy and the readers use)."""
    names = {os.fspath(p) for p in locked}
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) in names:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


def _lock_folder(monkeypatch, folder: Path) -> None:
    """Listing ``folder`` raises PermissionError, as for a folder the user may not read."""
    locked = os.path.realpath(folder)
    real_scandir = os.scandir

    def guarded(path="."):  # an int is a folder's descriptor (shutil.rmtree of tmp_path at teardown)
        if not isinstance(path, int) and os.path.realpath(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)


# ---- F1: suffixes in any case ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pts", "asf", "ljson", "mat"])
def test_upper_case_suffixes_in_a_folder_are_read(tmp_path, fmt):
    both = tmp_path / "both"
    _face(both, "01-a", fmt)
    _face(both, "02-b", fmt, f".{fmt.upper()}")
    assert detect_format(both) == fmt
    data = read(both, load_images=False)
    assert sorted(data.ids) == ["01-a", "02-b"], data.ids
    only_upper = tmp_path / "upper"  # once: "folder holds no .pts/.asf/.ljson/.mat files"
    _face(only_upper, "03-c", fmt, f".{fmt.upper()}")
    assert detect_format(only_upper) == fmt
    assert read(only_upper, load_images=False).ids == ["03-c"]


def test_two_label_files_for_one_face_are_an_error_never_a_face_counted_twice(tmp_path):
    _face(tmp_path / "f", "a", "pts")
    _pts(tmp_path / "f" / "a.PTS")
    _face(tmp_path / "f", "b", "pts")
    with pytest.raises(DataFormatError, match=r"a\.(PTS|pts) and a\.(pts|PTS) both label the face 'a'; keep one"):
        read(tmp_path / "f", load_images=False)
    data = read(tmp_path / "f", load_images=False, skip_bad=True)
    assert data.ids == ["b"] and len(data.skipped) == 1 and "both label the face 'a'" in data.skipped[0]


# ---- F2: detection walks the folder as the readers do ----------------------------------------------
def test_a_folder_holding_only_a_link_to_a_folder_of_pts_is_read(tmp_path):
    _face(tmp_path / "real", "a", "pts")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    assert detect_format(tmp_path / "f") == "pts"
    assert read(tmp_path / "f", load_images=False).ids == ["linked/a"]


def test_a_linked_subfolder_of_another_format_is_several_formats(tmp_path):
    _face(tmp_path / "f", "a", "pts")
    _face(tmp_path / "imm", "01-1m", "asf")
    (tmp_path / "f" / "more").symlink_to(tmp_path / "imm", target_is_directory=True)
    with pytest.raises(DataFormatError, match=r"f: folder holds several annotation formats \(\['asf', 'pts'\]\)"):
        read(tmp_path / "f", load_images=False)


def test_detection_passes_over_what_the_readers_pass_over(tmp_path):
    """macOS's __MACOSX copies and ._ resource forks are not a second format (the reader ignores them)."""
    _face(tmp_path / "f", "a", "pts")
    (tmp_path / "f" / "__MACOSX").mkdir()
    (tmp_path / "f" / "__MACOSX" / "x.asf").write_text("58\n")
    (tmp_path / "f" / "._b.ljson").write_bytes(b"\x00\x05\x16\x07")
    assert detect_format(tmp_path / "f") == "pts"
    assert read(tmp_path / "f", load_images=False).ids == ["a"]


# ---- F3: a folder that cannot be listed -------------------------------------------------------------
def test_a_subfolder_that_cannot_be_listed_is_an_error_or_listed_as_skipped(tmp_path, monkeypatch, capsys):
    _face(tmp_path / "f", "a", "pts")
    _face(tmp_path / "f" / "sub", "b", "pts")
    _lock_folder(monkeypatch, tmp_path / "f" / "sub")
    sub = tmp_path / "f" / "sub"
    with pytest.raises(DataFormatError, match=rf"^{sub}: cannot list this folder \(Permission denied\)$"):
        read(tmp_path / "f", load_images=False)
    data = read(tmp_path / "f", load_images=False, skip_bad=True)
    assert data.ids == ["a"] and data.skipped == [f"{sub}: cannot list this folder (Permission denied)"]
    code, out, err = run_cli(["data", "info", tmp_path / "f"], capsys)
    assert code == 2 and f"{sub}: cannot list this folder (Permission denied)" in err
    code, out, err = run_cli(["data", "convert", tmp_path / "f", "-o", tmp_path / "o.csv", "--skip-bad"], capsys)
    assert code == 1 and f"{sub}: cannot list this folder" in out + err, (out, err)


def test_a_folder_that_cannot_be_listed_at_all_is_named(tmp_path, monkeypatch):
    _face(tmp_path / "f", "a", "pts")
    _lock_folder(monkeypatch, tmp_path / "f")
    with pytest.raises(DataFormatError, match=r"f: cannot list this folder \(Permission denied\)"):
        detect_format(tmp_path / "f")
    with pytest.raises(DataFormatError, match=r"f: cannot list this folder \(Permission denied\)"):
        read_pts(tmp_path / "f", load_images=False)
    with pytest.raises(DataFormatError, match=r"f: cannot list this folder \(Permission denied\)"):
        read(tmp_path / "f", skip_bad=True)  # detection names it before any reader runs
    data = read_pts(tmp_path / "f", load_images=False, skip_bad=True)
    assert len(data) == 0 and data.skipped == [f"{tmp_path / 'f'}: cannot list this folder (Permission denied)"]


# ---- F4: files the system will not read -------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pts", "ljson", "asf", "mat"])
def test_an_unreadable_annotation_is_named_and_skip_bad_reads_the_rest(tmp_path, monkeypatch, fmt):
    for stem in ("01-a", "02-b", "03-c"):
        _face(tmp_path / "f", stem, fmt)
    locked = tmp_path / "f" / f"02-b.{fmt}"
    _lock_files(monkeypatch, locked)
    with pytest.raises(DataFormatError, match=rf"{locked}: (cannot read \(Permission denied\)|not a readable MATLAB)"):
        read(tmp_path / "f")
    data = read(tmp_path / "f", skip_bad=True)
    assert data.ids == ["01-a", "03-c"] and len(data.skipped) == 1
    assert data.skipped[0].startswith(f"{locked}: ") and "Permission denied" in data.skipped[0]


def test_an_unreadable_coco_json_is_named(tmp_path, monkeypatch):
    _photo(tmp_path / "a.png")
    flat = [v for x, y in face68() for v in (float(x), float(y), 2)]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
           "annotations": [{"id": 1, "image_id": 1, "keypoints": flat}]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(doc))
    assert len(read(ann, load_images=False)) == 1
    _lock_files(monkeypatch, ann)
    with pytest.raises(DataFormatError, match=rf"^{ann}: cannot read \(Permission denied\)$"):
        read(ann)
    with pytest.raises(DataFormatError, match=rf"^{ann}: cannot read \(Permission denied\)$"):
        read_coco_json(ann)
    locked = tmp_path / "nosuffix"  # told from its content: the sniffing meets the refusal
    locked.write_text("{}")
    _lock_files(monkeypatch, ann, locked)
    with pytest.raises(DataFormatError, match=r"nosuffix: cannot read \(Permission denied\)"):
        detect_format(locked)


def test_an_unreadable_photo_is_a_data_format_error(tmp_path, monkeypatch):
    photo = _photo(tmp_path / "a.jpg")
    _lock_files(monkeypatch, photo)
    with pytest.raises(DataFormatError, match=rf"^{photo}: cannot read \(Permission denied\)$"):
        read_image(photo)


def test_convert_skip_bad_leaves_out_an_unreadable_photo_and_converts_the_rest(tmp_path, monkeypatch, capsys):
    for stem in ("p0", "p1", "p2"):
        _face(tmp_path / "f", stem, "pts")
    locked = tmp_path / "f" / "p1.jpg"
    _lock_files(monkeypatch, locked)
    code, out, err = run_cli(["data", "convert", tmp_path / "f", "-o", tmp_path / "o.csv"], capsys)
    assert code == 2 and f"{locked}: cannot read (Permission denied)" in err
    code, out, err = run_cli(["data", "convert", tmp_path / "f", "-o", tmp_path / "o.csv", "--skip-bad"], capsys)
    assert code == 1, (out, err)
    assert f"{locked}: cannot read (Permission denied)" in out + err
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 1 + 2  # header, p0, p2


def test_data_info_names_an_unreadable_photo_instead_of_aborting(tmp_path, monkeypatch, capsys):
    """data info reads labels only: the photo is sized from its header, and a refused one is left
    out of the sizes and named (the labels still count)."""
    for stem in ("a", "b"):
        _face(tmp_path / "f", stem, "pts")
    locked = tmp_path / "f" / "b.jpg"
    _lock_files(monkeypatch, locked)
    info = describe(read_for_info(tmp_path / "f"))
    assert info["rows"] == 2 and info["image_size"] == [H, W]
    assert info["unsized_images"] == [f"{locked}: cannot read (Permission denied)"]
    code, out, err = run_cli(["data", "info", tmp_path / "f"], capsys)
    assert code == 0 and f"1 photo left out: {locked}: cannot read (Permission denied)" in out


def test_verify_a_folder_whose_files_cannot_be_looked_at(tmp_path, monkeypatch, capsys):
    """A folder the user may not search: stat on its files is refused (EACCES); each file is
    reported unreadable, not an abort."""
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "training.csv").write_text("x")
    locked = os.fspath(tmp_path / "dl")
    real_stat = os.stat

    def guarded(path, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", guarded)
    report = verify_kaggle_download(tmp_path / "dl")
    assert not report.ok and {c.status for c in report.checks} == {"unreadable"}
    assert all(c.detail == "Permission denied" for c in report.checks)
    code, out, err = run_cli(["data", "verify", tmp_path / "dl"], capsys)
    assert code == 1 and "NOT a genuine Kaggle download" in out


def _unprivileged() -> list[str]:
    """A command prefix under which mode 000 bites: nothing for a normal user; for root, setpriv
    running as nobody (root reads mode 000 files). Skips, saying why, when neither is possible."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: mode 000 files stay readable to root")
    if not os.access(sys.executable, os.X_OK) or os.stat(sys.executable).st_mode & 0o001 == 0:
        pytest.skip("running as root, and this Python cannot be run as nobody to make mode 000 bite")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_mode_000_file_and_subfolder_for_real(tmp_path):
    """The simulated refusals above, for real: b.pts mode 000, sub/ mode 000."""
    prefix = _unprivileged()
    base = Path(tempfile.mkdtemp(prefix="fk-perm-")) if prefix else tmp_path  # nobody cannot enter tmp_path
    try:
        os.chmod(base, 0o777)
        for stem in ("a", "b", "sub/c"):
            _face(base / "f", stem, "pts")
        for path in base.rglob("*"):
            os.chmod(path, 0o777 if path.is_dir() else 0o666)
        os.chmod(base / "f" / "b.pts", 0)
        os.chmod(base / "f" / "sub", 0)
        env = dict(os.environ, FACEKEYPOINTS_CACHE=str(base / "cache"), HOME=str(base), OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        cmd = [*prefix, sys.executable, "-m", "facekeypoints", "data", "info", str(base / "f"), "--skip-bad",
               "--report", str(base / "skipped.txt")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=base)
        if prefix and proc.returncode != 0 and "No module named" in proc.stderr:
            pytest.skip(f"the package cannot be imported as nobody here: {proc.stderr.strip()[-200:]}")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "rows            1" in proc.stdout, proc.stdout
        listed = (base / "skipped.txt").read_text().splitlines()
        assert sorted(listed) == sorted([f"{base / 'f' / 'b.pts'}: cannot read (Permission denied)",
                                         f"{base / 'f' / 'sub'}: cannot list this folder (Permission denied)"])
        proc = subprocess.run(cmd[:-3], capture_output=True, text=True, timeout=120, env=env, cwd=base)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "Permission denied" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    finally:
        for path in (base / "f" / "sub", base / "f" / "b.pts"):
            if path.exists() or path.is_symlink():
                os.chmod(path, 0o755)
        if prefix:
            shutil.rmtree(base, ignore_errors=True)


# ---- F12: a photo that is not an image -----------------------------------------------------------------
def test_data_info_never_reports_a_0_x_0_photo(tmp_path):
    for stem in ("a", "b"):
        _face(tmp_path / "f", stem, "pts")
    (tmp_path / "f" / "b.jpg").write_text("this is not a jpeg")
    info = describe(read_for_info(tmp_path / "f"))
    assert info["image_size"] == [H, W], info["image_size"]
    assert len(info["unsized_images"]) == 1 and info["unsized_images"][0].startswith(f"{tmp_path / 'f' / 'b.jpg'}: ")
    text = format_description(info)
    assert "0 x 0" not in text and "b.jpg: no image size in its header (not an image, or damaged)" in text
    (tmp_path / "f" / "a.jpg").write_text("nor this")
    info = describe(read_for_info(tmp_path / "f"))
    assert info["image_size"] is None and len(info["unsized_images"]) == 2
    assert "none readable; 2 photos left out" in format_description(info)


# ---- F01: links that lead nowhere ---------------------------------------------------------------------
def test_a_file_linked_to_itself_is_a_link_loop(tmp_path, capsys):
    (tmp_path / "x.pts").symlink_to("x.pts")
    with pytest.raises(DataFormatError, match=r"x\.pts: is a link loop"):
        read(tmp_path / "x.pts")
    with pytest.raises(DataFormatError, match=r"x\.pts: is a link loop"):
        read_pts(tmp_path / "x.pts")
    code, out, err = run_cli(["data", "info", tmp_path / "x.pts"], capsys)
    assert code == 2 and "is a link loop" in err
    (tmp_path / "y.pts").symlink_to("gone.pts")
    with pytest.raises(DataFormatError, match=r"y\.pts: is a link to nothing \(gone\.pts does not exist\)"):
        read(tmp_path / "y.pts")
    with pytest.raises(FileNotFoundError, match=r"z\.pts: no such file or folder"):
        read(tmp_path / "z.pts")
