"""Run a KeypointDetector over files: images, folders, videos and Kaggle CSVs (``facekeypoints predict``).

A file that cannot be read is reported and skipped; the others are still processed, and every
failure is listed in the returned report (the CLI exits non-zero when there is one).

Outputs (``-o``, see :mod:`facekeypoints.infer.outputs`): into a folder,
- images: ``predictions.jsonl`` (one ``Result.to_dict()`` per line, in input order) and, unless
  ``draw=False``, each image with faces drawn at the same relative path (two inputs with one
  name get ``x.jpg`` and ``x-2.jpg``, as does a photo named like a folder other outputs go into,
  or one whose drawing would take another input's name: a.gif draws to a-2.gif.png beside a photo
  a.gif.png); each record's ``drawing`` names its drawing in the folder (null if it failed);
- a video ``clip.mp4``: ``clip.jsonl`` (one line per frame) and ``clip_keypoints.mp4`` (H.264, at
  most ``DRAW_VIDEO_PIXELS``: a larger video is drawn scaled down, for the encoder's memory);
or every result into one ``.jsonl``, ``.json`` or ``.csv`` file, or to standard output (``-``).

A folder run replaces nothing unless ``overwrite``. Before any work (1) ``predictions.jsonl`` is
created empty as the run's claim, so a run into a folder holding an earlier run's results, or one
still going, is refused (an earlier video-only run's claim is removed again, since it has no image
results: its .jsonl and .mp4 files protect themselves through (2)); (2) every file the run would
write (drawings, each video's .jsonl and .mp4) is checked: one that already exists, whoever made
it, is refused, and a folder or a place that cannot be written where one goes is refused even
with ``overwrite``. No output may be an input (a file output included), and the output folder may
not be an input folder itself (refused before any work: its drawings would be the next run's
inputs). A file whose own outputs cannot be written (one would overwrite an input or go into an
input folder, or its name is longer than the file system takes) is a failure of that file, found
before any work; the others go on. Inside an input folder, what other runs wrote (the drawings
their predictions.jsonl names, drawn videos; ``_without_other_runs_outputs``) and outputs still
being written are left out of the inputs, and a file met twice is predicted once; each is named in
the report's ``left_out``.

Examples
--------
>>> report = predict_paths(KeypointDetector(), ["photos/"], "out/")     # doctest: +SKIP
>>> print(report)                                                      # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import signal
import stat
import sys
import threading
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Callable

import cv2
import numpy as np

from facekeypoints.atomic import is_temporary, name_problem, remove_stale_temporaries, temporary_path
from facekeypoints.data.dataset import one_line
from facekeypoints.data.images import MAX_PIXELS, _what_it_is, image_size, read_image
from facekeypoints.data.walk import path_problem, walk_files
from facekeypoints.infer.detectors import unsearched_note
from facekeypoints.infer.inputs import URL, opencv_path, shown_name
from facekeypoints.infer.outputs import check_outputs, file_identity, open_sink, output_kind, place, place_bytes
from facekeypoints.infer.results import IMAGE_SUFFIXES
from facekeypoints.infer.video import IncompleteVideoWarning, _declared_frames, open_video, pixel_aspect

__all__ = ["predict_paths", "predict_video", "PredictReport", "VIDEO_SUFFIXES", "CSV_SUFFIXES"]

# (.3g2 .f4v .qt are MP4/QuickTime, .divx AVI, .vob MPEG-PS, .asf Windows Media, .mjpeg/.mjpg a raw
# MJPEG stream (JPEGs one after another: read as an image, it gave its first frame only), .h264/.264
# and .h265/.hevc raw H.264/HEVC streams: all OpenCV's FFmpeg reads)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".3gp",
                  ".flv", ".wmv", ".ogv", ".3g2", ".f4v", ".qt", ".divx", ".vob", ".asf", ".y4m", ".mxf",
                  ".mjpeg", ".mjpg", ".h264", ".264", ".h265", ".hevc")
CSV_SUFFIXES = (".csv", ".zip", ".gz")
# In a folder, a file of another name is an input where OpenCV reads its first bytes as an image
# (cv2.haveImageReader: x.HEIC holding a JPEG, x.avif where OpenCV has AVIF), and so is one named as
# an image format OpenCV does not read (a failure that says so, not "not an image"). Files beside
# photos that are no media are ignored unread.
OTHER_IMAGE_SUFFIXES = (".avif", ".heic", ".heif", ".jxl", ".tga", ".ico", ".pcx", ".psd", ".svg", ".exr", ".hdr",
                        ".dng", ".cr2", ".nef", ".arw", ".raw", ".xcf", ".j2k", ".jpx")
SIDECAR_SUFFIXES = (".txt", ".json", ".jsonl", ".csv", ".tsv", ".xml", ".md", ".yaml", ".yml", ".pts", ".mat",
                    ".npy", ".npz", ".log", ".html", ".ini", ".py", ".zip", ".gz", ".pt", ".onnx")


@dataclass
class PredictReport:
    """What a run over files did. ``failures`` holds (file, error message) pairs."""

    images: int = 0
    frames: int = 0
    faces: int = 0
    written: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in a folder that are not images or videos
    # passed over on purpose, each with why: the output folder, another run's, a file given twice
    left_out: list[str] = field(default_factory=list)
    # for each photo in which no face was found and the detector could not search it all: unsearched_note's answer
    faceless: list[tuple[str, float]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.images} images, {self.frames} video frames, {self.faces} faces; "
                 f"wrote {len(self.written)} files"]
        shrunk = [px for kind, px in self.faceless if kind == "shrunk"]
        tiny = [px for kind, px in self.faceless if kind == "tiny"]
        if shrunk:  # a photo shrunk before the search hides its small faces: said, with the way round
            low, high = math.ceil(min(shrunk)), math.ceil(max(shrunk))
            sizes = f"{low} px" if low == high else f"{low} to {high} px (by the image's size)"
            many = len(shrunk) != 1
            lines.append(f"no face found in {len(shrunk)} image{'s' * many}; faces under {sizes} were not "
                         f"searched in {'them' if many else 'it'} (the detector shrinks each photo first; --min-face "
                         "PX searches for smaller faces)")
        if tiny:
            many = len(tiny) != 1
            lines.append(f"no face found in {len(tiny)} image{'s' * many} smaller than the smallest face the detector "
                         f"finds ({math.ceil(min(tiny))} px)")
        if self.ignored:
            lines.append(f"ignored {len(self.ignored)} files that are not images or videos OpenCV reads: "
                         f"{self.ignored[:5]}"
                         f"{' ...' if len(self.ignored) > 5 else ''}")
        if self.left_out:
            lines.append(one_line(f"left out: {', '.join(self.left_out)}"))
        if self.failures:  # a name's line break or terminal escape is shown escaped: one line each
            lines.append(f"FAILED {len(self.failures)} files:")
            lines += [one_line(f"  {shown_name(path)}: {message}") for path, message in self.failures]
        return "\n".join(lines)


def _why(path: Path, err: Exception) -> str:
    """The error message without the leading file name (the report prints the file itself), which
    it may hold as written or escaped (``one_line``)."""
    message = str(err)
    for name in (str(path), one_line(str(path)), shown_name(path)):
        if message.startswith(f"{name}: "):
            return message[len(name) + 2:]
    return message


# what OpenCV writes in colour; a drawing of another kind of input (GIF, PGM, PPM, JPEG 2000) is saved as PNG
DRAWING_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp")


def drawing_name(rel: Path) -> Path:
    """The name a drawing of the input ``rel`` is saved under (x.gif -> x.gif.png)."""
    return rel if rel.suffix.lower() in DRAWING_SUFFIXES else rel.with_name(rel.name + ".png")


def _outputs(path: Path, rel: Path, draw: bool = True) -> list[Path]:
    """The files an input named ``rel`` writes into an output folder (without ``draw``: only a video's .jsonl)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return [rel.with_name(f"{rel.stem}.jsonl")] + ([rel.with_name(f"{rel.stem}_keypoints.mp4")] if draw else [])
    return [drawing_name(rel)] if draw else []


def _not_regular(path: Path) -> str:
    return "a broken link" if path.is_symlink() and not path.exists() else "not a regular file (a pipe or a device)"


def _walk(folder: Path, report: PredictReport, leave_out: Path | None) -> list[Path]:
    """Every file under ``folder`` (``walk_files``): a folder that cannot be listed is a failure, not
    a silent gap; the output folder ``leave_out`` is passed over, so a second run does not predict
    its own drawings, and so are macOS's ``__MACOSX`` folders and the files other runs wrote
    (``_without_other_runs_outputs``), each said in ``left_out``."""
    def unlistable(err: OSError) -> None:
        report.failures.append((str(err.filename), f"cannot list this folder ({err.strerror or err})"))

    def output_folder(path: Path) -> bool:
        if path.name == "__MACOSX":  # macOS's metadata in a copied or unzipped folder, as the data readers skip it
            report.left_out.append(f"{path} (macOS metadata)")
            return True
        if leave_out is not None and os.path.realpath(path) == str(leave_out):
            report.left_out.append(f"{path} (the output folder)")
            return True
        return False

    return _without_other_runs_outputs(walk_files(folder, onerror=unlistable, skip=output_folder), report)


# How much of a predictions.jsonl is read for the drawings its records name: some 20,000 records of 68
# points. A longer one of ours leaves its whole folder out, saying so; the first line tells ours at once.
RECORDS_READ_BYTES = 64 * 2**20
_RECORDS = re.compile(r"predictions(-\d+)?\.jsonl")
_DRAWN_VIDEO = re.compile(r"(?P<stem>.+)_keypoints(-\d+)?\.mp4")
_DRAWING_FIELD = re.compile(rb'"drawing":\s*("(?:[^"\\]|\\.)*")')  # no such text inside a JSON string: its " is \"


def _without_other_runs_outputs(files: list[Path], report: PredictReport) -> list[Path]:
    """``files`` less those another facekeypoints run wrote, which its drawings and drawn videos would
    be read as photos and videos: the drawings a folder's predictions.jsonl names (its records'
    ``drawing``) with that file, and each video's ``<name>.jsonl`` beside ``<name>_keypoints.mp4``.
    They are said in ``left_out``, by the folder the run wrote into. Only what a run wrote is left
    out: a folder's other files are inputs as any, and a predictions.jsonl that is not ours (the
    user's own file of that name) or that names no drawing (a ``-o FILE.jsonl`` run's) leaves out nothing."""
    names = {str(f) for f in files}
    theirs: dict[Path, set[str]] = {}  # the folder a run wrote into -> the files it wrote there
    whole: set[str] = set()
    for f in files:
        if _RECORDS.fullmatch(f.name):  # predictions.jsonl, or predictions-2.jsonl put aside by a clashing run
            drawings = _drawings_named(f)
            if isinstance(drawings, str):  # a run's claim, or too long to read: every file below it, saying how to predict one
                below = {n for n in names if f.parent in Path(n).parents}
                why = (f"{f.name} is empty: the claim of a run still going, or of one that was killed"
                       if drawings == "empty" else
                       f"its {f.name} is over {RECORDS_READ_BYTES // 2**20} MB, too long to read for the drawings it names")
                report.left_out.append(f"{f.parent} ({len(below)} files: the output folder of another facekeypoints "
                                       f"run; {why}; give a photo there as an input of its own to predict it)")
                whole.update(below)
            elif written := {str(f.parent.joinpath(*d.parts)) for d in drawings} & names:
                theirs.setdefault(f.parent, set()).update(written | {str(f)})
        elif drawn := _DRAWN_VIDEO.fullmatch(f.name):  # x_keypoints.mp4 (or -2) beside x.jsonl (or -2: chosen apart)
            results = re.compile(re.escape(drawn["stem"]) + r"(-\d+)?\.jsonl")
            beside = {n for n in names if Path(n).parent == f.parent and results.fullmatch(Path(n).name)}
            if beside:
                theirs.setdefault(f.parent, set()).update(beside | {str(f)})
    for folder, written in theirs.items():
        shown = sorted(os.path.relpath(n, folder) for n in written)
        report.left_out.append(f"{folder}: {len(written)} files another facekeypoints run wrote "
                               f"({', '.join(shown[:4])}{' ...' if len(shown) > 4 else ''})")
    left_out = whole.union(*theirs.values())
    return [f for f in files if str(f) not in left_out]


def _drawings_named(records: Path) -> list[PurePosixPath] | str:
    """The drawings a predictions.jsonl's records name (within its folder); none where its first
    line is no record of ours or it cannot be read; "too long" where it is ours and over
    ``RECORDS_READ_BYTES``, "empty" for a folder run's claim, whose records come at its end while its
    drawings come batch by batch."""
    try:
        found = os.stat(records)
    except OSError:
        return []
    if not stat.S_ISREG(found.st_mode):  # a pipe of that name is never opened: reading it would wait for a writer
        return []
    if found.st_size == 0:
        return "empty"
    try:
        with open(records, "rb") as file:
            first = file.readline(2**20)
            rest = file.read(max(RECORDS_READ_BYTES - len(first), 0))
            longer = bool(file.read(1)) or len(first) > RECORDS_READ_BYTES
        record = json.loads(first)
    except (OSError, ValueError):  # unreadable, or not JSON: not our records
        return []
    if not isinstance(record, dict) or not {"source", "image_size", "schema", "faces"} <= record.keys():
        return []
    if longer:
        return "too long"
    drawings = []
    for match in _DRAWING_FIELD.finditer(first + rest):
        try:
            name = PurePosixPath(json.loads(match.group(1)))
        except ValueError:
            continue
        if name.parts and not name.is_absolute() and ".." not in name.parts:  # a file of that folder, no other
            drawings.append(name)
    return drawings


def _collect(inputs: list[str | Path], report: PredictReport, out_folder: Path | None = None
             ) -> list[tuple[Path, Path]]:
    """(file, its name in the output folder) for every image or video in ``inputs``. No two inputs
    write the same output file, nor the folder's predictions.jsonl, and no output file takes the
    name of a folder that another input's outputs go into: a/x.jpg and b/x.jpg give x.jpg and
    x-2.jpg; x.mp4 and x.avi give x.jsonl and x-2.jsonl; x.png beside a folder x.png/ of photos
    gives x-2.png. A folder without an image or video in it is a failure: nothing was predicted.
    A file met again (given twice, or a folder and a file in it: one real path, links and ``./``
    resolved), or a folder given twice, is taken once, the repeat said in ``left_out``; hard links
    are names of their own, each predicted. A name the system cannot look at
    (longer than it takes) is a failure of its own. The output folder may not be an input folder
    itself (a ValueError, before any work)."""
    found = []
    leave_out = Path(os.path.realpath(out_folder)) if out_folder is not None else None
    taken: dict = {}  # real path of each file and folder taken -> the name it was taken under

    def first_time(path: Path) -> bool:
        first = taken.setdefault(os.path.realpath(path), path)
        if first is not path:
            report.left_out.append(f"{path} ({'given twice' if str(first) == str(path) else f'the same as {first}'})")
        return first is path

    for given in inputs:
        item = Path(given)
        if why := path_problem(item):  # e.g. a name too long, which is_dir() raised as a bare OSError
            report.failures.append((str(item), why))
        elif item.is_dir():
            # its outputs would land among its inputs: the next run would predict this one's drawings
            # and <video>_keypoints.mp4, which only their folder tells from the user's own files
            if leave_out is not None and os.path.realpath(item) == str(leave_out):
                raise ValueError(f"-o {out_folder}: is the input folder {item} itself; the drawings and videos "
                                 "this run writes there would be read as inputs by the next run; choose another "
                                 f"-o folder (one inside it, such as {item / 'keypoints'}, is left out of the inputs)")
            if first_time(item):
                found += _folder_inputs(item, report, leave_out, first_time)
        elif item.is_file():
            if first_time(item):
                found.append((item, Path(item.name)))
        elif not item.exists() and not item.is_symlink() and (why := _not_a_path(os.fspath(given))):
            report.failures.append((os.fspath(given), why))  # as typed: Path() turns https:// into https:/
        else:
            report.failures.append((str(item), _not_regular(item) if item.exists() or item.is_symlink()
                                    else "no such file or folder"))
    # an input folder named like the results file would put a folder where that file goes
    found = [(path, Path(*[f"{part}-2" if part.lower() == "predictions.jsonl" else part for part in rel.parts[:-1]],
                          rel.name)) for path, rel in found]
    # Every folder the outputs go into is known first and taken: an output file never gets a folder's
    # name (in lower case: a case-insensitive disk would merge X.jpg and x.jpg). Nor does it take
    # another input's own name: a.gif draws to a-2.gif.png beside a photo a.gif.png drawn as itself.
    used = {"predictions.jsonl"} | {str(folder).lower() for _, rel in found for folder in rel.parents[:-1]}
    natural = {str(rel).lower() for _, rel in found}
    unique = []
    for path, rel in found:
        candidate, n = rel, 1
        while any(str(out).lower() in used or (str(out).lower() in natural and out != rel)
                  for out in _outputs(path, candidate)):
            n += 1
            candidate = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
        used.update(str(out).lower() for out in _outputs(path, candidate))
        unique.append((path, candidate))
    return unique


def _folder_inputs(folder: Path, report: PredictReport, leave_out: Path | None,
                   first_time: Callable[[Path], bool]) -> list[tuple[Path, Path]]:
    """(file, its name below ``folder``) for each image or video found in ``folder`` (``_walk``) that
    ``first_time`` takes; the rest is reported: an entry that is no regular file (a link to nothing,
    a pipe, which is never opened), whatever its name, as a failure; other files as ignored; an
    output still being written (``is_temporary``) as left out."""
    found, before, repeats = [], len(report.failures), 0
    for path in _walk(folder, report, leave_out):
        if is_temporary(path.name):  # a run's drawing or video, not yet in place
            report.left_out.append(f"{path} (a temporary file of a facekeypoints run)")
            continue
        try:  # ._x.jpg: a macOS resource fork (AppleDouble), no photo
            why = path_problem(path) or (not path.is_file() and _not_regular(path))
            media = not why and not path.name.startswith("._") and _media(path)
        except ValueError as err:  # a name OpenCV cannot be asked about (opencv_path)
            why = _why(path, err)
        if why:
            report.failures.append((str(path), why))
        elif not media:
            report.ignored.append(str(path))
        elif first_time(path):
            found.append((path, path.relative_to(folder)))
        else:
            repeats += 1
    if not found and not repeats and len(report.failures) == before:  # said, not a silent "0 images"
        report.failures.append((str(folder), "no image or video found in this folder"))
    return found


def _media(path: Path) -> bool:
    """Whether a file found in a folder is an input: see ``OTHER_IMAGE_SUFFIXES``."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES + VIDEO_SUFFIXES + OTHER_IMAGE_SUFFIXES:
        return True
    if suffix in SIDECAR_SUFFIXES:
        return False
    name = opencv_path(path)  # before OpenCV sees it: a name that is no UTF-8 crashed it
    try:
        if cv2.haveImageReader(name):
            return True
    except cv2.error:
        return False
    # a video under another suffix is an input too: it fails saying what it is and what to name it
    return "video" in (_what_it_is(path, None) or "")


def _not_a_path(given: str) -> str | None:
    """Why an input that leads to nothing is no file name at all (``-``, a URL), else None."""
    if given == "-":
        return "reading from standard input is not supported; save the image to a file first"
    if URL.match(given):
        return "URLs are not read (nothing is downloaded); save the file first"
    return None


def predict_paths(detector, inputs: list[str | Path], out: str | Path, *, draw: bool = True,
                  batch_size: int = 16, progress: bool = True, max_pixels: int | None = MAX_PIXELS,
                  overwrite: bool = False) -> PredictReport:
    """Predict every image and video in ``inputs`` (files or folders, searched recursively) into
    ``out`` (see :mod:`facekeypoints.infer.outputs`: a folder, a .json/.jsonl/.csv file, or ``-``).

    ``inputs`` is a list; one path (str or Path) is taken as a list of one, not as its characters.
    Images are read ``batch_size`` at a time and go through ``detector.predict_batch``. Only a
    folder output gets drawn images and videos. One bad file is reported and the others go on.
    ``max_pixels`` refuses larger images from their header, before decoding (``read_image``). Into
    a folder, nothing is replaced without ``overwrite`` (see the module docstring: the claim and
    the check of every planned output, both before any work).
    """
    from tqdm import tqdm

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    _check_arguments(inputs, batch_size, max_pixels)
    report = PredictReport()
    folder = Path(out) if output_kind(out) == "folder" else None
    files = _collect(inputs, report, folder)
    if folder is not None:
        files = _writable(files, folder, draw, report, [Path(i) for i in inputs if os.path.isdir(i)])
    draw = draw and folder is not None
    sink = open_sink(out, overwrite=overwrite, inputs=inputs + [p for p, _ in files])
    held = {}  # each drawing's place -> the file there as the run began (outputs.place): None without --overwrite
    if folder is not None:
        try:  # after the claim: a run that finished meanwhile has its files in place by now
            check_outputs([folder / o for p, rel in files for o in _outputs(p, rel, draw)], overwrite)
            held = {folder / drawing_name(rel): file_identity(folder / drawing_name(rel)) for p, rel in files
                    if p.suffix.lower() not in VIDEO_SUFFIXES} if draw else {}
        except BaseException:  # whatever stopped the check (a refusal, an OSError, Ctrl-C): no work was done
            sink.close(keep=False)  # gives the claim back
            raise
    images = [(p, rel) for p, rel in files if p.suffix.lower() not in VIDEO_SUFFIXES]
    videos_done, stopped = 0, None
    try:
        # no bar without a stream to draw it on (2>&-: sys.stderr is None)
        with tqdm(total=len(images), desc="images", unit="img",
                  disable=not progress or not images or sys.stderr is None) as bar:
            for batch in _batches(images, batch_size):
                _predict_images(detector, batch, folder, held if draw else None, sink, report, max_pixels)
                bar.update(len(batch))
        for path, rel in files:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                try:
                    video_out = folder / rel.parent if folder is not None else None
                    predict_video(detector, path, video_out, draw=draw, progress=progress, report=report,
                                  sink=None if folder is not None else sink, name=rel.stem, max_pixels=max_pixels,
                                  overwrite=overwrite)
                    videos_done += 1
                except BrokenPipeError:  # -o - into `| head`: the reader is gone, for every file after this too
                    raise
                except (ValueError, OSError) as err:
                    kept = getattr(err, "kept", None)  # a drawing that failed: the .jsonl is written
                    report.failures.append((str(path), _why(path, err) + (f"; {kept}" if kept else "")))
    except BrokenPipeError as err:  # what was found before it (failures) goes with it, for the caller to tell
        err.report = report
        raise
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: finished results are kept, and said to be partial
        stopped = err
        raise
    finally:
        # a run without one image result writes no results file: an earlier one there is kept
        written = sink.close(keep=sink.count > 0)
        if stopped is not None:
            where = written or ("standard output" if sink.path is None and sink.count else None)
            midway = getattr(stopped, "partial_frames", None)  # a video stopped midway, into this file
            said = [f"results for {report.images + videos_done} of {len(files)} inputs"
                    f"{f' and {midway}' if midway else ''} written to {where} (partial)"] if where else []
            said += [stopped.partial] if getattr(stopped, "partial", None) else []  # a video's own, stopped midway
            stopped.partial = "; ".join(said) or f"nothing was written to {sink.path or 'standard output'}"
    if written is not None:
        report.written.append(str(written))
    return report


def _check_arguments(inputs: list, batch_size, max_pixels) -> None:
    """A ValueError (TypeError for a wrong kind) naming the argument of ``predict_paths`` that cannot
    be right, before any work: no inputs (an empty report would look like a run with nothing to
    do), an input that is no path, or an empty one (Path("") is the current folder), a
    ``batch_size`` under 1, or a ``max_pixels`` under 1 (None: no limit)."""
    if not inputs:
        raise ValueError("predict_paths(): inputs is empty; give at least one image, video or folder")
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"predict_paths(): inputs holds {item!r} ({type(item).__name__}), not a path")
        if not str(os.fspath(item)).strip():
            raise ValueError("predict_paths(): inputs holds an empty path; give an image, video or folder")
    _check_count("batch_size", batch_size)
    if max_pixels is not None:
        _check_count("max_pixels", max_pixels, " (None: no limit)")


def _check_count(name: str, value, more: str = "") -> None:
    """``value`` must be an int of at least 1 (a bool is no count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer of at least 1, got {value!r} ({type(value).__name__}){more}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}{more}")


def _writable(files: list[tuple[Path, Path]], folder: Path, draw: bool, report: PredictReport,
              input_folders: list[Path] = ()) -> list[tuple[Path, Path]]:
    """``files`` less those, reported as failures before any work, whose outputs in ``folder`` cannot
    be written for reasons of their own while the others can: an output that would overwrite one
    of the run's inputs (e.g. clip_keypoints.mp4 beside clip.mp4 with -o that same folder), one
    that would go into an input folder inside ``folder`` (-o par for par/new holding new/x.jpg
    draws par/new/x.jpg, which the next run would read), or one whose name is longer than the
    file system takes (a 252-byte x.gif draws to x.gif.png)."""
    inputs = {os.path.realpath(p) for p, _ in files}
    real_out = os.path.realpath(folder)
    # input folders inside the output folder: the others hold the output folder, which their search leaves out
    below = [f for f in input_folders if os.path.realpath(f).startswith(os.path.join(real_out, ""))]
    kept = []
    for path, rel in files:
        problem = None
        for target in (folder / o for o in _outputs(path, rel, draw)):
            if why := name_problem(target):
                problem = f"its output {target} cannot be written: {why}; rename the input"
            elif os.path.realpath(target) in inputs:
                problem = f"its output {target} would overwrite an input of this run; choose another -o folder"
            elif inside := next((f for f in below if os.path.realpath(target).startswith(
                    os.path.join(os.path.realpath(f), ""))), None):
                problem = (f"its output {target} would go into the input folder {inside}, where the next run "
                           "would read it as an input; choose another -o folder")
            if problem:
                break
        if problem:
            report.failures.append((str(path), problem))
        else:
            kept.append((path, rel))
    return kept


# Pixels of the images decoded at once: a batch of many small photos shares model calls, while large
# photos go one at a time, so a folder of 50 MP photos holds one in memory, not sixteen.
BATCH_PIXELS = 20_000_000


def _batches(images: list[tuple[Path, Path]], batch_size: int):
    """``images`` in batches of at most ``batch_size`` and, beyond their first image, ``BATCH_PIXELS``
    (sizes from the files' headers; an unknown size counts as nothing). What the header pass warns
    (Pillow's "Corrupt EXIF data") is left to ``read_image``'s pass, which names the file or fails it."""
    batch, pixels = [], 0
    for item in images:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w, h = image_size(item[0])
        except (ValueError, OSError):  # unreadable: read_image reports it with the batch, the others go on
            w = h = 0
        if batch and (len(batch) == batch_size or pixels + w * h > BATCH_PIXELS):
            yield batch
            batch, pixels = [], 0
        batch.append(item)
        pixels += w * h
    if batch:
        yield batch


def _named_stream(results, name: str):
    """``results`` (a stream's), with each warning it gives that names no file (the detector's "faces
    under N px cannot be found") named by the video, once per video."""
    said, end = set(), object()
    try:
        while True:
            caught = []
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result = next(results, end)
            finally:
                for w in caught:
                    text = str(w.message)
                    if text not in said:
                        said.add(text)
                        named = text.startswith(name)
                        warnings.warn(w.message if named else f"{name}: {text}", w.category, stacklevel=2)
            if result is end:
                return
            yield result
    finally:  # stopped early (the drawing failed): the stream ends now, not when collected
        getattr(results, "close", lambda: None)()


def _batch_warnings(caught: list, readable: list[tuple[Path, Path]], pixels: list[np.ndarray]) -> None:
    """Warn again what ``predict_batch`` warned over a batch, each naming its photo: one that names
    an image size ("in this WxH image", the detector's search limit) goes to the photos of that size
    (each warns alike), the others to the one photo of a batch of one."""
    for text in dict.fromkeys(str(w.message) for w in caught):  # once each, in order
        category = next(w.category for w in caught if str(w.message) == text)
        size = re.search(r"in this (\d+)x(\d+) image", text)
        paths = [path for (path, _), rgb in zip(readable, pixels)
                 if size and rgb.shape[1::-1] == (int(size[1]), int(size[2]))]
        if not paths:
            _named_warnings([warnings.WarningMessage(text, category, "", 0)],
                            readable[0][0] if len(readable) == 1 else None)
        for path in paths:
            warnings.warn(f"{path}: {text}", category, stacklevel=3)


def _named_warnings(caught: list, path: Path | None) -> None:
    """Warn again with the file name in front (once), so a folder run says which photo it was about."""
    for w in caught:
        text = str(w.message)
        named = path is None or text.startswith(f"{path}:")
        warnings.warn(text if named else f"{path}: {text}", w.category, stacklevel=3)


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM that arrive inside the block take effect when it ends (a few milliseconds):
    stopped between a drawing and its result line, a run left a drawing that no record names. The
    handlers are swapped for ones that note the signal (blocking it would not do: the OS may hand it
    to any thread, ONNX Runtime's among them); outside the main thread, where handlers cannot be set,
    the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    before = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():  # None: a handler not set from Python, which cannot be put back
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if caught:  # what the signal would have done in the block, now
            handler = before[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


def _predict_images(detector, batch: list[tuple[Path, Path]], out_dir: Path | None, held: dict | None, sink,
                    report: PredictReport, max_pixels: int | None) -> None:
    """Read a batch (recording unreadable files), predict it in one call (``_predicted``), write JSON
    lines and, with ``held`` (each drawing's place -> the file there as the run began), drawings: one
    that another run put in place meanwhile is kept, and this run's goes beside it (``place_bytes``)."""
    readable, pixels = [], []
    for path, rel in batch:
        try:
            with warnings.catch_warnings(record=True) as caught:  # e.g. Pillow's "Corrupt EXIF data"
                warnings.simplefilter("always")
                pixels.append(read_image(path, max_pixels=max_pixels))
            _named_warnings(caught, path)
            readable.append((path, rel))
        except (ValueError, OSError) as err:
            report.failures.append((str(path), _why(path, err)))
    done = _predicted(detector, readable, pixels, report)
    finder = getattr(detector, "detector", None)  # any predictor-like object
    for (path, rel), rgb, result in done:
        result.source = str(path)
        extra = None
        if not len(result) and (note := unsearched_note(finder, rgb.shape)):
            report.faceless.append(note)
        with _signals_held():  # a drawing and its result line are written both or neither, and counted
            if held is not None:  # the record names its drawing (renamed where names clash; null if not written)
                target = out_dir / drawing_name(rel)  # never an input: _writable took those out
                try:  # rgb is done with: drawn on in place
                    written = place_bytes(target, result._picture(target, rgb, in_place=True, restore=False), held.get(target))
                    report.written.append(str(written))
                    extra = {"drawing": written.relative_to(out_dir).as_posix()}
                except (ValueError, OSError, cv2.error) as err:  # e.g. a full disk: this one is lost, the rest go on
                    report.failures.append((str(path), f"drawing not written: {_why(target, err)}"))
                    extra = {"drawing": None}
            sink.write(result, extra)
            report.images += 1
            report.faces += len(result)
        broken = sum(not np.isfinite(face.keypoints).all() for face in result.faces)
        if broken:  # e.g. a model with NaN weights: its numbers are no keypoints, whatever the JSON says
            report.failures.append((str(path), f"the model gave non-finite keypoints for {broken} of "
                                               f"{len(result)} faces (written as null)"))


def _predicted(detector, readable: list[tuple[Path, Path]], pixels: list[np.ndarray], report: PredictReport) -> list:
    """((path, rel), rgb, result) for each image of ``detector.predict_batch(pixels)``. Where the batch
    call raises (a detector's NaN box on one photo, a model error), each image is predicted alone, and
    one that raises again is a failure of its file: the others go on. What a call warns (e.g. the
    detector's "faces under N px cannot be found") is warned again naming its photos (``_batch_warnings``);
    a batch call that raised is retried, so each image's own call warns for it, named."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = list(zip(readable, pixels, detector.predict_batch(pixels) if pixels else []))
    except Exception as err:  # noqa: BLE001  (any detector object's error: one photo's failure, not the run's)
        if len(pixels) == 1:
            _batch_warnings(caught, readable, pixels)
            said = str(err) if isinstance(err, (ValueError, TypeError, OSError)) else f"{type(err).__name__}: {err}"
            report.failures.append((str(readable[0][0]), f"could not be predicted: {said}"))
            return []
        return [done for one, rgb in zip(readable, pixels) for done in _predicted(detector, [one], [rgb], report)]
    _batch_warnings(caught, readable, pixels)
    return done


# The drawn video (<name>_keypoints.mp4) has frames of at most this many pixels (Full HD's); a larger
# video is drawn scaled down to it. The H.264 encoder runs in an ffmpeg child process whose memory
# grows with the frames it is given: about 45 bytes a pixel with the options below, on top of the
# frames FFmpeg queues between its threads; with x264's defaults (40 frames of look-ahead, a thread
# per core) a 4K video's encoder took 2.0 GB and a 30 MP one 3.5 GB. At this size it takes about
# 0.09-0.13 GB, whatever the size of the video.
DRAW_VIDEO_PIXELS = 1920 * 1080
# and sides of at most this many pixels: x264 refuses over 16384, and browsers' decoders often over 4096
DRAW_VIDEO_SIDE = 4096

# x264 with one thread and no look-ahead or B-frames (zerolatency: a frame is encoded as it comes,
# not held), so its memory is a few frames' worth; the price is a file up to about twice the size
# of x264's defaults (1.3x on a synthetic 1080p clip, 2.1x on a still one), for a preview.
X264_OPTIONS = ["-preset", "veryfast", "-tune", "zerolatency", "-threads", "1"]


def drawn_video_size(width: int, height: int, limit: int | None = None) -> tuple[int, int]:
    """(width, height) of the drawn video of ``width`` x ``height`` frames: even (yuv420p needs it),
    and scaled down, keeping the shape, to at most ``limit`` pixels (``DRAW_VIDEO_PIXELS``) and
    ``DRAW_VIDEO_SIDE`` a side."""
    limit = DRAW_VIDEO_PIXELS if limit is None else limit
    scale = min(1.0, (limit / max(1, width * height)) ** 0.5, DRAW_VIDEO_SIDE / max(width, height, 1))
    if scale == 1.0:  # an odd side is padded by one pixel
        return width + width % 2, height + height % 2
    return max(2, 2 * int(width * scale / 2)), max(2, 2 * int(height * scale / 2))


def _drawn_frame(result, bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``result`` drawn on the BGR frame ``bgr``, as an RGB frame of ``size`` (w, h): a larger frame is
    scaled down first and the result with it (only the small frame is drawn on, and held), an odd
    side is padded by repeating the last row or column."""

    h, w = bgr.shape[:2]
    if (w + w % 2, h + h % 2) != size:
        sx, sy = size[0] / w, size[1] / h
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        result = replace(result, image_size=(size[1], size[0]), faces=[
            replace(face, box=np.asarray(face.box, np.float64) * (sx, sy, sx, sy),
                    keypoints=np.asarray(face.keypoints, np.float64) * (sx, sy)) for face in result.faces])
    drawn = result.draw(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    h, w = drawn.shape[:2]
    if (w, h) != size:  # odd sides: one pixel more
        drawn = cv2.copyMakeBorder(drawn, 0, size[1] - h, 0, size[0] - w, cv2.BORDER_REPLICATE)
    return drawn


def x264_command(path: Path, fps: float, size: tuple[int, int], sar=None) -> list[str]:
    """The ffmpeg command that encodes yuv420p frames of ``size`` (w, h) from its standard input into
    an H.264 MP4 at ``path`` (yuv420p, moov atom first, CRF 25 as imageio-ffmpeg's default quality);
    ``sar`` (a Fraction): the pixels' aspect ratio where they are not square (``video.pixel_aspect``)."""
    from fractions import Fraction

    import imageio_ffmpeg

    rate = Fraction(fps if fps and fps > 0 else 25.0).limit_denominator(100_000)
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{size[0]}x{size[1]}", "-r", str(rate), "-i", "-",
            *(["-vf", f"setsar={sar.numerator}/{sar.denominator}"] if sar else []),
            "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "25", *X264_OPTIONS,
            "-movflags", "+faststart", "-f", "mp4", str(path)]


class _H264Writer:
    """An H.264 MP4 (yuv420p, moov atom first) that browsers play, through the ffmpeg binary that
    imageio-ffmpeg ships: OpenCV's own writer only has mp4v here, which browsers do not play.
    Frames are RGB of ``size`` (w, h, both even: ``drawn_video_size``); they reach ffmpeg as
    yuv420p (converted here, BT.601 as ffmpeg's own conversion), which spares ffmpeg a conversion
    step and the frames it would queue for it; x264 runs with ``X264_OPTIONS``. What ffmpeg says
    is kept from the console: a failure (a full disk, a size x264 refuses) is a WriteError naming
    the video, with ffmpeg's words."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], held=None, sar=None):
        import subprocess
        import tempfile

        if size[0] % 2 or size[1] % 2 or min(size) < 2:
            raise ValueError(f"{path}: the H.264 writer needs an even frame size, got {size[0]}x{size[1]}")
        self.path, self.size = Path(path), size
        # what was at path when the run began (outputs.file_identity; None: nothing): a video another
        # run put there meanwhile is kept, and this one goes beside it (outputs.place), to ``written``
        self._held, self.written = held, self.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # ffmpeg finishes the file when its input ends, even when we were killed: so it writes a hidden
        # name, renamed by release(), and a killed run leaves no short video that passes for a whole one
        self._tmp = temporary_path(self.path)
        self._log = tempfile.TemporaryFile()
        command = None
        try:
            command = x264_command(self._tmp, fps, size, sar=sar)  # imageio-ffmpeg's RuntimeError: no ffmpeg found
            self._exe = command[0]
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._log)
        except (OSError, RuntimeError) as err:  # not "[Errno 13] Permission denied: '/nonexistent'"
            from facekeypoints.atomic import WriteError

            self._log.close()
            which = f"FFmpeg, {command[0]}" if command else "FFmpeg"
            raise WriteError(getattr(err, "errno", None) or errno.EIO, f"{self.path}: the H.264 encoder ({which}) "
                             f"could not be started ({getattr(err, 'strerror', None) or err}); check "
                             "IMAGEIO_FFMPEG_EXE, or unset it to use the ffmpeg that imageio-ffmpeg installs") from None

    def write(self, rgb: np.ndarray) -> None:
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2YUV_I420)
        try:
            self._process.stdin.write(yuv.data)
        except OSError as err:  # ffmpeg stopped (BrokenPipeError): its own words say why
            raise self._failure(err) from None

    def release(self) -> None:
        """Finish the video; a WriteError if ffmpeg failed."""
        try:
            self._process.stdin.close()
        except OSError as err:
            raise self._failure(err) from None
        if self._process.wait() != 0:
            raise self._failure(None)
        try:
            self.written = place(self._tmp, self.path, self._held)
        except OSError as err:
            raise self._failure(err) from None
        said = self._said()
        if said:  # an error ffmpeg went on from: said, naming the video
            warnings.warn(f"{self.path}: the H.264 encoder said: {said}", stacklevel=3)

    def abort(self) -> None:
        """Stop ffmpeg without finishing the video, and remove what it wrote."""
        self._stop()
        self._log.close()
        self._tmp.unlink(missing_ok=True)

    def _stop(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.kill()
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.wait()

    def _said(self) -> str:
        """ffmpeg's first lines, on one line, without their "[libx264 @ 0x55d2...]" (the log is closed)."""
        if self._log.closed:
            return ""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        self._log.close()
        return "; ".join(re.sub(r"\[[^\]]* @ 0x[0-9a-f]+\] ?", "", line) for line in lines[:3])[:300]

    def _failure(self, err: OSError | None):
        """A WriteError naming the video with ffmpeg's first lines (an address such as "@ 0x55d2..."
        left out); ffmpeg is stopped."""
        from facekeypoints.atomic import WriteError

        self._stop()
        self._tmp.unlink(missing_ok=True)
        said = self._said()
        why = f"the H.264 encoder said: {said}"
        if not said:  # e.g. IMAGEIO_FFMPEG_EXE naming another program: which one, and how it ended
            ended = err.strerror if err is not None and err.strerror else f"exit code {self._process.returncode}"
            why = f"the H.264 encoder, FFmpeg at {self._exe}, stopped without a word: {ended}"
        return WriteError(errno.EIO, f"{self.path}: could not be written ({why}); no video was written")


# The drawn video's rate is the header's, or its first frames' (the smallest step between them) where
# that is over 10% higher, or where the header's is over DRAW_MAX_FPS and more than 10% off (a header
# that said 600 fps for frames 0.1 s apart drew the video 60 times too fast); never faster than the
# header or DRAW_MAX_FPS, whichever is higher (time stamps a millisecond apart are no rate). Each frame is then shown from its own
# time until the next one's, so a video that speeds up later keeps its time: frames that come
# between two ticks of the rate are left out of the drawing (and counted in ``dropped``).
DRAW_RATE_FRAMES = 8
DRAW_MAX_FPS = 120.0
# A frame is held at most this long past its index gap: a longer jump is a time stamp gone wrong,
# not a pause to draw, and the frames after it keep their own spacing from there.
DRAW_MAX_HOLD_SECONDS = 10.0


class _Drawing:
    """The drawn video (``_H264Writer``) of frames that come with their time and index gap: the first
    ``DRAW_RATE_FRAMES`` are held until their times give the rate; then each frame is shown from its
    time until the next one's, so the video keeps time over skipped frames and an uneven spacing.
    ``held``: the identity of the file at ``movie`` when the run began (see ``_H264Writer``)."""

    def __init__(self, movie: Path, fps: float, size: tuple[int, int], held=None, sar=None):
        self.movie, self.size, self.rate, self._header, self._identity = movie, size, fps, fps, held
        self._sar = sar  # the source's pixel aspect, carried to the drawing (x264_command)
        self._writer, self._held, self._shown, self.dropped = None, [], 0, 0
        self._pending, self._start = None, 0  # the last frame, not written until the next one's time
        self._origin, self._base = None, 0  # the tick of a frame at time t is _base + (t - _origin) * rate

    def add(self, drawn: np.ndarray, gap: int, now: float | None) -> None:
        self._held.append((drawn, gap, now))
        if self._writer is not None or len(self._held) >= DRAW_RATE_FRAMES:
            self._flush()

    def release(self) -> None:
        self._flush()
        if self._pending is not None:  # the last frame: one tick
            self._write(self._pending, max(1, self._start + 1 - self._shown))
            self._pending = None
        if self._writer is not None:
            self._writer.release()

    @property
    def written(self) -> Path:
        """Where the video went: ``movie``, or a name beside it (another run wrote ``movie`` meanwhile)."""
        return self._writer.written if self._writer is not None else self.movie

    def abort(self) -> None:
        self._held, self._pending = [], None
        if self._writer is not None:
            self._writer.abort()

    def _flush(self) -> None:
        if self._writer is None and self._held:
            self.rate = self._measured_rate()
            self._writer = _H264Writer(self.movie, self.rate, self.size, held=self._identity, sar=self._sar)
        for drawn, gap, now in self._held:
            self._place(drawn, gap, now)
        self._held = []

    def _place(self, drawn: np.ndarray, gap: int, now: float | None) -> None:
        """Write the pending frame until this one's tick, and hold this one."""
        anchor = True  # where later frames' ticks count from: this frame, unless it keeps the clock
        if self._pending is None:  # the first frame, shown for the frames skipped before it too
            start = gap - 1
        elif now is None or self._origin is None:  # no time: the index gap says how long
            start = self._start + gap
        else:
            start = self._base + round((now - self._origin) * self.rate)
            longest = gap + round(DRAW_MAX_HOLD_SECONDS * self.rate)
            anchor = start - self._start > longest
            if anchor:  # a time stamp gone wrong: the time past the hold is taken off every later frame
                start = self._start + longest
        if anchor and now is not None:
            self._origin, self._base = now, start
        if self._pending is not None:
            self._write(self._pending, start - self._shown)
        self._pending, self._start = drawn, start

    def _write(self, drawn: np.ndarray, copies: int) -> None:
        if copies <= 0:  # it came between two ticks: the next frame takes its place
            self.dropped += 1
        for _ in range(copies):
            self._writer.write(drawn)
        self._shown += max(0, copies)

    def _measured_rate(self) -> float:
        steps = [(b[2] - a[2]) / b[1] for a, b in zip(self._held, self._held[1:])
                 if a[2] is not None and b[2] is not None and b[2] > a[2]]
        if not steps:
            return self.rate
        measured = min(1.0 / min(steps), max(self.rate, DRAW_MAX_FPS))
        if self._header <= DRAW_MAX_FPS and measured < self._header:
            return self._header  # frames that come faster later (at the header's rate) are not left out
        return measured if abs(measured / self.rate - 1) > 0.1 else self.rate


class _KeepFrame:
    """A capture that remembers the last frame it returned, so results can be drawn on it."""

    def __init__(self, capture: cv2.VideoCapture, name: str):
        self.capture, self.frame = capture, None
        self.name = name  # how stream() names its frames in messages

    def read(self):
        ok, frame = self.capture.read()
        if ok:  # a frame that failed leaves the last good one to draw on
            self.frame = frame
        return ok, frame

    def get(self, prop: int) -> float:
        return self.capture.get(prop)

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return self.capture.isOpened()


def predict_video(detector, path: str | Path, out_dir: str | Path | None, *, draw: bool = True,
                  progress: bool = True, report: PredictReport | None = None, sink=None, name: str | None = None,
                  max_pixels: int | None = MAX_PIXELS, overwrite: bool = False, **stream_options) -> PredictReport:
    """Track faces through the video at ``path``: frame results go to ``sink`` when given, else to
    ``<out_dir>/<name>.jsonl``; with ``draw``, ``<out_dir>/<name>_keypoints.mp4`` too (``name``:
    the video's stem by default). Those files are checked before any frame, and existing ones are
    replaced only with ``overwrite``. Frames larger than ``max_pixels`` refuse the video before
    any is decoded; a video with frames missing (skipped as undecodable, or a missing end: what
    stream()'s ``IncompleteVideoWarning`` says) is recorded in the report's failures (the frames
    read are kept)."""
    from tqdm import tqdm

    if max_pixels is not None:
        _check_count("max_pixels", max_pixels, " (None: no limit)")
    report = PredictReport() if report is None else report
    path = Path(path)
    name = name or path.stem
    if out_dir is None and (sink is None or draw):
        raise TypeError("predict_video() needs out_dir, the folder for <name>.jsonl and <name>_keypoints.mp4 "
                        "(out_dir=None only with sink= and draw=False)")
    planned = ([] if sink is not None else [Path(out_dir) / f"{name}.jsonl"]) + \
        ([Path(out_dir) / f"{name}_keypoints.mp4"] if draw else [])
    check_outputs(planned, overwrite)
    # the drawing's file as the run began (as the .jsonl's sink takes its own): one another run puts there
    # meanwhile is kept, and this run's goes beside it, so results and drawing stay a pair
    movie_held = file_identity(planned[-1]) if draw else None
    capture, _, fps = open_video(path)
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    # a frame is held about three times over (decoded, converted, drawn), so videos get a third of the limit
    frame_limit = max_pixels // 3 if max_pixels is not None else None
    if frame_limit is not None and width * height > frame_limit:
        capture.release()
        raise ValueError(f"{path}: frames are {width}x{height} = {width * height} pixels, over the limit of "
                         f"{frame_limit} pixels for video frames (a third of --max-pixels {max_pixels})")
    declared, frames_before = _declared_frames(capture), report.frames
    own_sink = sink is None
    if own_sink:  # its sink's atomic_path sweeps out_dir; in a folder run, the drawing's subfolder is swept here
        sink = open_sink(Path(out_dir) / f"{name}.jsonl")
    elif draw:
        remove_stale_temporaries(out_dir)  # videos of killed runs, which ffmpeg finished under a temporary name
    movie = Path(out_dir) / f"{name}_keypoints.mp4" if draw else None
    source, writer = _KeepFrame(capture, str(path)), None
    stopped, last_time, last_frame, steps = None, None, -1, [math.inf, 0.0]  # steps: least and most time a frame
    shortfall = None  # what stream() found missing (skipped frames, a missing end): a failure of this video
    failed = None  # an error that stops the video (the drawing's): says where the frames' results are
    try:
        results = tqdm(_named_stream(detector.stream(source, **stream_options), str(path)), total=declared or None,
                       desc=shown_name(path.name), unit="frame", disable=not progress or sys.stderr is None)
        with warnings.catch_warnings():
            warnings.simplefilter("error", IncompleteVideoWarning)  # raised at the end of the stream
            try:
                for result in results:
                    sink.write(result)  # named by its own frame index: skipped frames leave gaps
                    report.frames += 1
                    report.faces += len(result)
                    now, frame = getattr(result, "time_s", None), getattr(result, "frame", last_frame + 1)
                    gap = max(1, frame - last_frame)  # a skipped frame is no uneven spacing
                    if now is not None and last_time is not None:
                        steps = [min(steps[0], (now - last_time) / gap), max(steps[1], (now - last_time) / gap)]
                    last_time, last_frame = now, frame
                    if draw:  # source.frame, not a name of its own: that would hold this frame while the next is read
                        writer = writer or _Drawing(movie, fps, drawn_video_size(source.frame.shape[1],
                                                                                 source.frame.shape[0]), movie_held,
                                                    sar=pixel_aspect(path))
                        writer.add(_drawn_frame(result, source.frame, writer.size), gap, now)
            except IncompleteVideoWarning as short:
                shortfall = _why(path, short)
        if writer is not None:  # here, not in finally: a failure to finish is a failure, and leaves no video
            writer.release()
            # x264 is fed frames at one rate: a variable-rate video is re-timed (2 ms: a 1/1000 time base
            # spaces a 120 fps video's frames 8 and 9 ms apart)
            uneven = steps[1] > 1.1 * steps[0] + 0.002
            if uneven or writer.dropped:
                left_out = (f"; {writer.dropped} frame{'s' * (writer.dropped != 1)} that came between two of its "
                            "frames are left out of it" if writer.dropped else "")
                warnings.warn(f"{path}: " + (f"its frames are not evenly spaced in time ({1000 * steps[0]:.0f} to "
                                              f"{1000 * steps[1]:.0f} ms apart); " if uneven else "")
                              + f"{writer.written.name} is drawn at a constant {writer.rate:g} frames per second, "
                              f"each frame shown until the next one's time{left_out}, while the .jsonl keeps each "
                              "frame's time (time_s)", stacklevel=2)
    except BaseException as err:
        dropped = writer is not None
        if writer is not None:  # half a video is no video: a full disk or an error leaves none behind
            with contextlib.suppress(Exception):
                writer.abort()  # removes its temporary file; a video already at movie (--overwrite) is kept
            writer = None
        stopped = err if isinstance(err, KeyboardInterrupt) else None
        failed = err if isinstance(err, (OSError, ValueError)) else None
        if stopped is not None and dropped:
            stopped.dropped = f"the drawn video {movie} was not written (half a video is no video)"
        raise
    finally:
        capture.release()
        written = sink.close(keep=sink.count > 0) if own_sink else None
        if written:  # counted and named when the drawing failed too: the frames' results are there
            report.written.append(str(written))
            if failed is not None:
                count = report.frames - frames_before
                failed.kept = f"the results of its {count} frame{'s' * (count != 1)} were written to {written}"
        if stopped is not None and written:  # the frames' results are kept: said to be partial
            stopped.partial = (f"results for {report.frames - frames_before} frames of {path} written to {written} "
                               f"(partial{f', of {declared}' if declared else ''})"
                               + (f"; {stopped.dropped}" if getattr(stopped, "dropped", None) else ""))
        elif stopped is not None and not own_sink:  # in the caller's file: the caller says where, with this count
            stopped.partial_frames = (f"{report.frames - frames_before} frames of {path}"
                                      + (f" (of {declared})" if declared else ""))
    report.written += [str(writer.written)] if writer is not None else []
    read = report.frames - frames_before
    if shortfall:  # stream() said what is missing (frames_missing), the frames read are kept
        report.failures.append((str(path), shortfall + ("; the results of the frames decoded were written"
                                                        if read else "")))
    return report
