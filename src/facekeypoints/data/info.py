"""What a keypoint file holds: rows, image sizes, how many labels each keypoint has, and which
missing-label patterns occur (Kaggle's training.csv is mostly "4 of 15" rows).

Examples
--------
>>> import numpy as np
>>> from facekeypoints.data.dataset import KeypointData
>>> kp = np.zeros((3, 15, 2)); kp[0, 1:] = np.nan
>>> info = describe(KeypointData.from_arrays("kaggle15", kp))
>>> info["rows"], info["fully_labelled"], info["missing_patterns"][0]["count"]
(3, 2, 2)
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from facekeypoints.data.convert import LISTED
from facekeypoints.data.dataset import DataFormatError, KeypointData, printable
from facekeypoints.data.formats.checks import check_flags
from facekeypoints.data.images import image_size

__all__ = ["describe", "format_description", "read_for_info"]

_SHOWN_PATTERNS = 10


def _photo_sizes(paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """((M, 2) [H, W] of the photos whose header gives a size, why each other photo has none)."""
    sizes, unsized = [], []
    for p in paths:
        try:
            width, height = image_size(p)
        except OSError as err:  # e.g. no permission to read it
            unsized.append(f"{p}: cannot read ({err.strerror or err})")
            continue
        if width * height == 0:
            unsized.append(f"{p}: no image size in its header (not an image, or damaged)")
        else:
            sizes.append((height, width))
    return np.array(sizes, dtype=np.int64).reshape(-1, 2), unsized


def _photos_found(data: KeypointData) -> tuple[list[str], list[str]]:
    """(the photos that are there, each row's photo that is not, named with why). Called when some
    row has a photo: a row without one (no photo beside its .pts) or whose photo is gone (a COCO
    file_name that leads nowhere) is named, never passed over as if the data were labels only."""
    present, missing = [], []
    for row, p in enumerate(data.paths):
        face = data.ids[row]  # KeypointData holds one id per sample
        if p is None:
            missing.append(f"{face}: no photo found beside its labels")
            continue
        try:
            found = Path(p).is_file()
        except OSError as err:  # e.g. a folder on the way that may not be searched
            missing.append(f"{p}: cannot read ({err.strerror or err})")
            continue
        if found:
            present.append(p)
        else:
            missing.append(f"{p}: photo not found (face {face})")
    return present, missing


def _image_size(data: KeypointData) -> tuple[list[int] | dict | None, list[str]]:
    """([H, W] when every image has one size, a summary when sizes vary, None without images; the
    photos left out of it, each with why). Photos beside the labels are sized from their headers
    (``image_size``): nothing is decoded, and one whose size cannot be read is left out and named,
    never counted as 0 x 0; so is a row's photo that is missing while other rows have theirs."""
    unsized: list[str] = []
    if isinstance(data.images, np.ndarray):
        return [int(data.images.shape[1]), int(data.images.shape[2])], unsized
    if data.images is not None:
        sizes = np.array([image.shape[:2] for image in data.images], dtype=np.int64).reshape(-1, 2)
    elif data.paths is not None and any(p is not None for p in data.paths):
        present, unsized = _photos_found(data)
        sizes, more = _photo_sizes(present)
        unsized += more
    else:  # no row has a photo (a label-only CSV, a folder of .pts alone)
        return None, unsized
    if not len(sizes):
        return None, unsized
    distinct = {tuple(size) for size in sizes.tolist()}
    if len(distinct) == 1:
        return list(distinct.pop()), unsized
    return {"distinct": len(distinct), "min": sizes.min(axis=0).tolist(), "max": sizes.max(axis=0).tolist()}, unsized


def describe(data: KeypointData) -> dict:
    """Summary of ``data`` as plain JSON-ready values.

    Keys: ``source``, ``schema``, ``rows``, ``image_size`` ([H, W]; {"distinct", "min", "max"} when
    sizes vary; None for label-only data), ``fully_labelled`` (rows with all K keypoints),
    ``labelled_per_keypoint`` ({name: rows labelled}), ``missing_patterns`` ([{"labelled": [names],
    "count": rows}], most common first), ``skipped`` (how many rows a skip_bad read left out),
    ``skipped_rows`` (each one's message: file, row or face, and why) and
    ``unsized_images`` (photos whose size cannot be read or that are missing while other rows have
    theirs, each "path: why" or "face: why"; left out of ``image_size``).
    """
    if not isinstance(data, KeypointData):
        raise TypeError(f"describe needs KeypointData (from read()), got {type(data).__name__}")
    mask = data.labelled_mask()  # (N, K)
    names = data.schema.keypoints
    patterns: list[dict] = []
    size, unsized = _image_size(data)
    if len(data):
        unique, counts = np.unique(mask, axis=0, return_counts=True)
        for k in np.argsort(-counts, kind="stable"):
            patterns.append({"labelled": [names[j] for j in np.flatnonzero(unique[k])], "count": int(counts[k])})
    return {
        "source": data.source,
        "schema": data.schema.name,
        "rows": len(data),
        "image_size": size,
        "fully_labelled": int(data.fully_labelled().sum()),
        "labelled_per_keypoint": {name: int(n) for name, n in zip(names, mask.sum(axis=0))},
        "missing_patterns": patterns,
        "skipped": data.skipped_count,
        "skipped_rows": list(data.skipped),
        "unsized_images": unsized,
    }


def _pattern_text(labelled: list[str], names: list[str]) -> str:
    k = len(names)
    if len(labelled) == k:
        return f"all {k}"
    if not labelled:
        return "none"
    if len(labelled) <= k // 2:
        return f"{len(labelled)} of {k}: " + ", ".join(labelled)
    absent = [n for n in names if n not in labelled]
    return f"{len(labelled)} of {k}: all but " + ", ".join(absent)


def _percent(count: int, total: int) -> str:
    return f"{count} ({100.0 * count / total:.1f}%)" if total else str(count)


def format_description(info: dict) -> str:
    """The ``describe`` dict as a readable table (what ``facekeypoints data info`` prints)."""
    rows, size, unsized = info["rows"], info["image_size"], info.get("unsized_images", [])
    if size is None:
        size_text = "no images (labels only)" if not unsized else "none readable"
    elif isinstance(size, list):
        size_text = f"{size[0]} x {size[1]} (H x W)"
    else:
        (h0, w0), (h1, w1) = size["min"], size["max"]
        size_text = f"{size['distinct']} sizes, from {h0} x {w0} to {h1} x {w1}"
    if unsized:
        more = f" (and {len(unsized) - 3} more: --json lists all)" if len(unsized) > 3 else ""
        size_text += f"; {len(unsized)} photo{'s' * (len(unsized) > 1)} left out: {'; '.join(unsized[:3])}{more}"
    names = list(info["labelled_per_keypoint"])
    lines = [
        f"source          {info['source']}",
        f"schema          {info['schema']} ({len(names)} keypoints)",
        f"rows            {rows}",
        f"image size      {size_text}",
        f"fully labelled  {_percent(info['fully_labelled'], rows)}",
        f"skipped rows    {info['skipped']}",
    ]
    skipped = info.get("skipped_rows", [])
    lines += [f"  {printable(message)}" for message in skipped[:LISTED]]  # each left-out row named, as convert names them
    if len(skipped) > LISTED:
        lines.append(f"  ... and {info['skipped'] - LISTED} more (--json or --report FILE lists them)")
    lines += ["", f"{'keypoint':30s} labelled"]
    lines += [f"{name:30s} {_percent(n, rows)}" for name, n in info["labelled_per_keypoint"].items()]
    lines += ["", "missing-label patterns, most common first", f"{'rows':>8s}  labelled keypoints"]
    for pattern in info["missing_patterns"][:_SHOWN_PATTERNS]:
        lines.append(f"{pattern['count']:8d}  {_pattern_text(pattern['labelled'], names)}")
    hidden = info["missing_patterns"][_SHOWN_PATTERNS:]
    if hidden:
        lines.append(f"{'':8s}  ... {len(hidden)} more patterns covering {sum(p['count'] for p in hidden)} rows "
                     "(--json lists all)")
    return "\n".join(lines)


def read_for_info(path: str | Path, *, skip_bad: bool = False) -> KeypointData:
    """Read any supported format for ``data info`` through the data layer's front door."""
    from facekeypoints.data.formats.io import read  # the format dispatcher; imported late to keep CLI start-up fast

    check_flags(skip_bad=skip_bad)
    # labels only: statistics need no pixels (photos are sized from their headers; Kaggle CSVs hold
    # their images inline and read them anyway), and a label file whose photo is missing still reads
    return _check_labels_on_photos(read(path, skip_bad=skip_bad, load_images=False), skip_bad)


def _check_labels_on_photos(data: KeypointData, skip_bad: bool) -> KeypointData:
    """``data`` read without its photos, each face's points checked against its photo's size from the
    header (``checks.check_face``, the readers' rule with images loaded), where that photo is there and
    its header gives one (the rest ``describe`` names). A face that fails is an error, or with
    ``skip_bad`` left out and listed with the read's skipped rows."""
    from facekeypoints.data.formats.landmarks import check_face, labels_file

    if data.images is not None or data.paths is None:
        return data
    sized: dict[str, tuple[int, int]] = {}  # several faces often share one photo
    keep, bad = [], []
    for i, photo in enumerate(data.paths):
        if photo is not None and photo not in sized:
            try:
                width, height = image_size(photo) if Path(photo).is_file() else (0, 0)
            except (OSError, ValueError):  # unreadable: describe names it among the unsized photos
                width = height = 0
            sized[photo] = (height, width)
        size = sized.get(photo, (0, 0))
        try:
            if min(size) > 0:
                check_face(lambda: labels_file(data.source, data.ids[i]), data.ids[i], data.keypoints[i], size)
        except ValueError as err:
            if not skip_bad:
                raise
            bad.append(str(err))
            continue
        keep.append(i)
    if not bad:
        return data
    if not keep:  # as the readers say when skip_bad leaves nothing
        raise DataFormatError(data.source or "data", f"no faces; {len(bad)} skipped as bad: " + "; ".join(bad[:3]))
    listed = len(data.skipped) - (1 if data.skipped_unlisted else 0)  # the count of unlisted ones stays last
    return replace(data.subset(keep), skipped=data.skipped[:listed] + bad + data.skipped[listed:])
