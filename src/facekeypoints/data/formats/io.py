"""One front door for reading keypoint data: ``read(path)`` finds the format and calls its reader.

Examples
--------
>>> from facekeypoints.data import read
>>> data = read("../shared/data/ytf68/train.csv", schema="kaggle15")  # doctest: +SKIP
>>> data = read("../shared/data/samples/300w-pts", load_images=False)  # doctest: +SKIP
"""
from __future__ import annotations

import stat
from pathlib import Path

from facekeypoints.data.dataset import DataFormatError, KeypointData, user_path
from facekeypoints.data.formats.checks import check_flags
from facekeypoints.data.formats.csvfile import csv_header, name_suffix
from facekeypoints.data.formats.landmark_sets import read_coco_json, read_dlib_xml, refuse_costly_json
from facekeypoints.data.formats.landmarks import read_aflw_mat, read_asf, read_ljson, read_pts
from facekeypoints.data.formats.textfile import encoding_problem, load_json, read_head, short
from facekeypoints.data.walk import data_files, not_found, unreadable

__all__ = ["read", "detect_format", "SUPPORTED_FORMATS"]

SUPPORTED_FORMATS = {
    "kaggle": "Kaggle FKD CSV (.csv with an Image column or the 30 keypoint columns; .zip/.gz of it)",
    "ytf68": "YouTube-Faces 68-point CSV (.csv with image, person, x0, y0, ..., x67, y67)",
    "udacity": "Udacity P1 facial keypoints CSV (.csv: image name, then 136 numbered columns)",
    "pts": "iBUG .pts (a file or a folder of them)",
    "asf": "IMM .asf (a file or a folder of them)",
    "ljson": "menpo .ljson (a file or a folder of them)",
    "mat": "AFLW2000-3D .mat (a file or a folder of them)",
    "dlib_xml": "dlib imglab .xml",
    "coco_json": "COCO-style keypoint .json",
}
_PER_FACE_SUFFIXES = {".pts": "pts", ".asf": "asf", ".ljson": "ljson", ".mat": "mat"}
_KAGGLE_FIRST_COLUMN = "left_eye_center_x"


def _unknown(path: Path, why: str) -> DataFormatError:
    listing = "; ".join(f"{name}: {what}" for name, what in SUPPORTED_FORMATS.items())
    return DataFormatError(path, f"{why}. Supported formats: {listing}")


def _csv_format(path: Path) -> str:
    """Tell the CSV layouts apart by their header row (plain, or inside a .gz or .zip)."""
    try:  # the same reading as the CSV readers': compressed or not, any line ends, encodings named
        columns = csv_header(path)
    except DataFormatError as err:
        if "header line is not CSV" in str(err):  # e.g. a first line longer than the csv field limit
            raise _unknown(path, f"the first line is not a CSV header ({err})") from None
        raise
    if columns in ([], [""]):
        raise DataFormatError(path, "the first line is empty; a CSV starts with its header")
    if "Image" in columns or _KAGGLE_FIRST_COLUMN in columns:
        return "kaggle"
    if {"image", "person", "x0", "y0", "x67", "y67"} <= set(columns) or columns == ["image", "person"]:
        return "ytf68"  # the second: ytf68's unlabeled.csv (no keypoint columns)
    if len(columns) == 137 and columns[1:] == [str(i) for i in range(136)]:
        return "udacity"
    if columns[:3] == ["RowId", "ImageId", "FeatureName"]:
        raise DataFormatError(path, "this is a Kaggle IdLookupTable (no keypoints); read it with "
                              "facekeypoints.data.read_id_lookup")
    # each cell cut short: a header-less Kaggle CSV's first "column names" hold 9216 pixel values
    shown = [short(c) for c in columns[:5]]
    if all(_is_number_list(c) for c in columns) and any(len(c.split()) > 1 for c in columns):  # pixels: a data row
        raise _unknown(path, f"its first line holds numbers, not column names ([{', '.join(shown)}"
                       f"{', ...' * (len(columns) > 5)}]): is the header missing? (a Kaggle CSV starts with "
                       "ImageId,Image or the keypoint columns then Image)")
    raise _unknown(path, f"CSV header [{', '.join(shown)}{', ...' * (len(columns) > 5)}] matches no known layout")


def _is_number_list(cell: str) -> bool:
    """True for a cell of numbers (one, or a Kaggle image's pixels separated by spaces), or an empty one."""
    try:
        [float(v) for v in cell.split()]
    except ValueError:
        return False
    return True


def _json_format(path: Path) -> str:
    """COCO JSON has a top-level 'annotations'; menpo ljson a top-level 'groups' or 'landmarks'.

    Only the parsed document's own keys tell: the same words in a label, a description or a file
    name anywhere in the text say nothing (a .ljson file is taken at its suffix's word, before this).
    """
    refuse_costly_json(path, "a keypoint JSON")  # memory: checked from its tokens, before it is parsed
    doc = load_json(path)
    keys = set(doc) if isinstance(doc, dict) else set()
    menpo = sorted(keys & {"groups", "landmarks"})
    if "annotations" in keys and menpo:
        raise DataFormatError(path, f"the JSON object has both COCO's 'annotations' and menpo ljson's {menpo} at "
                              "its top level: which format it is is unclear")
    if "annotations" in keys:
        return "coco_json"
    if menpo:
        return "ljson"
    raise _unknown(path, "JSON file is neither COCO keypoints (a top-level 'annotations') nor menpo ljson "
                   "('groups' or 'landmarks')")


def _folder_format(path: Path) -> str:
    """A folder of one per-face format; many-face files (.json, .xml, .csv) must be named directly.

    The folder is searched as the readers search it (``data_files``: linked folders followed,
    suffixes in any case); a folder that cannot be listed is named when nothing else tells the format
    (otherwise the reader names it)."""
    problems: list[DataFormatError] = []
    files = data_files(path, problems)
    per_face = sorted({name for f in files for suffix, name in _PER_FACE_SUFFIXES.items()
                       if f.name.lower().endswith(suffix)})
    whole = sorted(f.relative_to(path).as_posix() for f in files
                   if f.suffix.lower() in (".csv", ".xml", ".json", ".zip", ".gz"))
    if not per_face and not whole and problems:
        raise problems[0]
    if len(per_face) == 1 and not whole:
        return per_face[0]
    if per_face:
        also = f" and {whole[:5]}" if whole else ""
        raise DataFormatError(path, f"folder holds several annotation formats ({per_face}{also}); "
                              "read one file or a subfolder")
    hint = f"; it holds {whole[:5]}: read one of those files" if whole else ""
    raise _unknown(path, f"folder holds no .pts/.asf/.ljson/.mat files{hint}")


def detect_format(path: str | Path) -> str:
    """Name of the format of ``path`` (a key of ``SUPPORTED_FORMATS``) from suffix, content or folder."""
    path = user_path(path)  # ~ expanded, bytes decoded, None a TypeError
    try:
        mode = path.stat().st_mode
    except OSError:  # nothing there, a link to nothing or a loop, no permission
        raise not_found(path) from None
    if stat.S_ISDIR(mode):
        return _folder_format(path)
    if not stat.S_ISREG(mode):
        raise DataFormatError(path, "not a regular file (a pipe or a device); save the data to a file first")
    try:
        return _file_format(path)
    except OSError as err:  # e.g. no permission to read it: named, as the readers name it
        raise unreadable(path, err) from None


def _file_format(path: Path) -> str:
    suffix = name_suffix(path)  # "o/.csv" is a CSV, as the writer takes it
    if suffix in _PER_FACE_SUFFIXES:  # .ljson too: its reader says what a non-ljson document lacks
        return _PER_FACE_SUFFIXES[suffix]
    if suffix in (".csv", ".zip", ".gz"):
        return _csv_format(path)
    if suffix == ".json":
        return _json_format(path)
    if suffix == ".xml":
        return "dlib_xml"
    head = read_head(path)  # no telling suffix: look at the content
    if problem := encoding_problem(head):  # the readers say so too; here the sniffing below would not match
        raise DataFormatError(path, problem)
    head = head.removeprefix(b"\xef\xbb\xbf")[:256].lstrip()  # a UTF-8 byte-order mark, as the readers skip it
    if head.startswith(b"version:") or head.startswith(b"n_points"):
        return "pts"
    if head.startswith(b"<?xml") or head.startswith(b"<dataset"):
        return "dlib_xml"
    if head.startswith(b"{"):
        return _json_format(path)
    raise _unknown(path, f"cannot tell the format from the suffix {suffix!r} or the content")


def _read_format(fmt: str, path: Path, skip_bad: bool, load_images: bool) -> KeypointData:
    if fmt == "kaggle":
        from facekeypoints.data.formats.kaggle import read_kaggle_csv  # imported only when a CSV is read

        return read_kaggle_csv(path, skip_bad=skip_bad)  # pixels are inline in the CSV
    if fmt in ("ytf68", "udacity"):
        from facekeypoints.data.formats.ytf import read_udacity_csv, read_ytf68_csv

        reader = read_ytf68_csv if fmt == "ytf68" else read_udacity_csv
        return reader(path, load_images=load_images, skip_bad=skip_bad)
    if fmt == "dlib_xml":
        return read_dlib_xml(path, load_images=load_images, skip_bad=skip_bad)
    if fmt == "coco_json":
        return read_coco_json(path, load_images=load_images, skip_bad=skip_bad)
    reader = {"pts": read_pts, "asf": read_asf, "ljson": read_ljson, "mat": read_aflw_mat}[fmt]
    return reader(path, load_images=load_images, skip_bad=skip_bad)


def read(path: str | Path, *, schema: str | None = None, skip_bad: bool = False,
         load_images: bool = True) -> KeypointData:
    """Read keypoint data in any supported format (see ``SUPPORTED_FORMATS``).

    Returns KeypointData: keypoints (N, K, 2) 0-based pixels, images (N, H, W[, 3]) uint8 or a
    list of them (None with ``load_images=False`` or for label-only files). With ``schema=`` the
    keypoints are converted to that schema (e.g. ibug68 -> kaggle15). ``skip_bad`` leaves bad
    rows or files out and lists them in ``data.skipped``; without it the first one raises
    DataFormatError naming the file, row or line and field.
    """
    check_flags(skip_bad=skip_bad, load_images=load_images)
    path = user_path(path)  # ~ expanded, bytes decoded, None a TypeError
    data = _read_format(detect_format(path), path, skip_bad, load_images)
    if len(data) == 0:  # every reader ends here: no caller has to handle an empty dataset
        why = f"; {data.skipped_count} skipped as bad: " + "; ".join(data.skipped[:3]) if data.skipped else ""
        raise DataFormatError(path, f"no faces{why}")
    if schema is not None and schema != data.schema.name:
        data = data.to_schema(schema)
    return data
