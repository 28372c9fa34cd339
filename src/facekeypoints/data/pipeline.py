"""A training run's data, end to end: file -> people -> framed faces -> completed labels -> split.

``DataConfig`` is the ``data:`` section of a training config and the ``trained_on`` of a model
card, so evaluation can rebuild exactly the validation faces a model never saw.

Examples
--------
>>> cfg = DataConfig(train="../shared/data/fkd15-ytf/training.zip")
>>> train, val, report = load_splits(cfg, size=96)               # doctest: +SKIP
>>> report["persons_in_both"]                                    # doctest: +SKIP
0
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from facekeypoints.data.convert import complete_labels, face_photo, resize_faces, to_kaggle_task
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats import attach_person, read
from facekeypoints.data.formats.landmarks import labels_file
from facekeypoints.data.framing import framing_for, invert, resize_frame
from facekeypoints.data.splits import MISSING_STRATEGIES, handle_missing, imm_train_mask, split_indices

__all__ = ["DataConfig", "DATA_PATH_KEYS", "load_splits", "load_parts", "frame_faces", "scoring_frames",
           "to_scoring_pixels", "HELD_OUT"]

# the data section's file settings: checked, resolved and expanded together wherever paths are handled
DATA_PATH_KEYS = ("train", "val", "persons", "complete_labels", "unlabeled")


@dataclass
class DataConfig:
    """Which faces a run trains and validates on, and how they reach the model's input."""

    train: str = "../shared/data/fkd15-ytf/training.zip"
    val: str | None = None  # a separate validation file; otherwise split `train`
    persons: str | None = None  # CSV whose `person` column matches `train` row for row
    # a 68-point file of the same faces row for row (ytf68/train.csv for fkd15-ytf): fills the
    # training rows' missing Kaggle labels exactly; validation rows keep only their own labels
    complete_labels: str | None = None
    # photos (or framed faces) without labels, with persons, that a teacher's targets train on
    # (train.teacher; train/pseudo.py): ytf68/unlabeled.csv. Validation people's faces are left out
    unlabeled: str | None = None
    schema: str = "kaggle15"
    split: list[float] | str = field(default_factory=lambda: [0.8, 0.2])  # ratios, or "imm" (people 1-32 / 33-40)
    split_seed: int = 0
    missing: str = "mask"  # drop (seed 000) | ffill (seed 001) | mask (seed 002)
    # how faces reach the model's input size: none (already framed, e.g. Kaggle CSVs), kaggle
    # (aligned to the Kaggle mean face by their labels, as `data convert` does) or resize (whole
    # image); facekeypoints.data.framing.framing_for maps it to the framing inference then uses
    frame: str = "none"

    def __post_init__(self) -> None:
        for key in DATA_PATH_KEYS:
            value = getattr(self, key)
            if value is not None and not str(value).strip():
                raise ValueError(f"data.{key} is empty; give a file (or null where it is optional)")
        if self.val is not None and Path(os.path.expanduser(self.val)).resolve() == Path(os.path.expanduser(self.train)).resolve():
            raise ValueError(f"data.val is data.train ({self.train}): validation would score faces the model trained "
                             "on; give another file, or leave data.val out to split data.train by person")
        if self.unlabeled is not None and Path(os.path.expanduser(self.unlabeled)).resolve() == \
                Path(os.path.expanduser(self.train)).resolve():
            raise ValueError(f"data.unlabeled is data.train ({self.train}): its faces would be trained on twice, once "
                             "with the teacher's labels; give photos without labels, or leave data.unlabeled out")
        if not 0 <= self.split_seed < 2**32:
            raise ValueError(f"data.split_seed must be a whole number in [0, 2**32), got {self.split_seed!r}")
        if isinstance(self.split, str):
            if self.split != "imm":
                raise ValueError(f"data.split must be a list of ratios or 'imm', got {self.split!r}")
        elif not (2 <= len(self.split) <= 3 and all(r > 0 for r in self.split) and abs(sum(self.split) - 1) < 1e-6):
            raise ValueError(f"data.split must be 2 or 3 positive ratios adding up to 1, got {self.split!r}")
        if self.missing not in MISSING_STRATEGIES:
            raise ValueError(f"data.missing must be one of {list(MISSING_STRATEGIES)}, got {self.missing!r}")
        framing_for(self.frame, "data.frame")  # one vocabulary, checked where it is defined

    def to_dict(self) -> dict:
        return asdict(self)


def faces_digest(data: KeypointData) -> int:
    """A 48-bit fingerprint of faces and labels (exact in a float64, so it can sit among a model card's
    metrics): the same split of the same file gives the same number, a changed one another."""
    digest = hashlib.sha256(np.ascontiguousarray(data.keypoints, np.float32).tobytes())
    if data.images is not None:
        for image in data.images:
            digest.update(np.ascontiguousarray(image).tobytes())
    return int(digest.hexdigest()[:12], 16)


def load_splits(d: DataConfig, size: int, *,
                need_labels: tuple[str, ...] = ()) -> tuple[KeypointData, KeypointData, dict]:
    """Read the training data, frame faces at ``size`` x ``size``, apply the missing-label
    strategy, and split (by person when known).

    ``need_labels``: the parts ("train", "val") that must hold at least one labelled point (training
    asks for both, or only "val" with a teacher), else ValueError naming the file and the part.
    Returns (train, val, report) where report says how many rows each step kept or changed.
    """
    parts, _, report = load_parts(d, size, need_labels=need_labels)
    return parts["train"], parts["val"], report


# what the report says of a 3-ratio data.split's third part
HELD_OUT = "held out: not used in training or validation (evaluate --split test scores it)"

# data.frame: kaggle runs are scored on the faces `data convert` makes (96 x 96, the Kaggle frame),
# whatever preprocess.size, as `evaluate` scores those faces
KAGGLE_SIDE = 96


def scoring_frames(data: KeypointData, frame: str, size: int) -> np.ndarray:
    """(N, 2, 3) frames from the pixels a run's RMSE and MAE are in to its model's ``size`` x ``size``
    input, for ``data`` as read (before framing): the labelled images' own pixels (data.frame none,
    resize) or the 96-pixel Kaggle faces (kaggle). So the scores do not change with preprocess.size and
    agree with `evaluate FILE` on the same faces."""
    sides = [(KAGGLE_SIDE, KAGGLE_SIDE) if frame == "kaggle" else data.image_size(i) for i in range(len(data))]
    return np.array([resize_frame(side, size) for side in sides], np.float64).reshape(-1, 2, 3)


def to_scoring_pixels(frames: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, K, 2) model-input pixels -> the pixels of ``scoring_frames`` (NaN stays NaN)."""
    inverse = invert(frames).reshape(-1, 2, 3)
    return np.einsum("fij,fkj->fki", inverse[:, :, :2], np.asarray(points, np.float64)) + inverse[:, None, :, 2]


def load_parts(d: DataConfig, size: int, *, need_labels: tuple[str, ...] = (),
               only: tuple[str, ...] = ()) -> tuple[dict[str, KeypointData], dict[str, np.ndarray], dict]:
    """As :func:`load_splits`, returning (parts, frames, report): parts "train", "val" and, for a
    3-ratio data.split, "test" (held out); frames: each part's ``scoring_frames``.

    ``only``: the parts the caller needs, "val" and "test" (evaluation): for photos that are framed
    (data.frame kaggle or resize), the labels are read first and each photo is then read as its face
    is framed, the crops kept, or (resize) the photos of those parts alone; so a set of large photos
    is never all in memory. The parts are the same faces; the report is left empty."""
    if only and "train" not in only and d.frame != "none":
        return _load_only(d, size, only)
    whole_train = "train" in need_labels and not d.complete_labels  # completed labels may fill an unlabelled file
    data = _check_readable(read(d.train), d.train, "data.train", labels=whole_train)
    val_read = _check_readable(read(d.val), d.val, "data.val", labels="val" in need_labels) if d.val else None
    if val_read is not None:
        _check_disjoint(data, val_read, d)
    if d.persons:
        data = attach_person(data, d.persons)
    # the rows of the faces framing keeps (data.frame kaggle leaves collapsed faces out), so frames and
    # completed labels stay row for row with them
    framed, kept = _frame_kept(data, d.schema, d.frame, size)
    frames = scoring_frames(data, d.frame, size)[kept]
    report: dict = {"read": len(framed), "source": d.train}
    completed = framed
    if d.complete_labels:
        source = read(d.complete_labels, load_images=False)
        if len(source) != len(data):  # counted as read: framing may have left faces out since
            raise ValueError(f"{source.source}: {len(source)} rows, but {data.source} has {len(data)}; label "
                             "completion needs the same faces row for row")
        completed, report["completed"] = complete_labels(framed, source.subset(kept))
    data = framed
    held: dict[str, KeypointData] = {}
    if val_read is not None:
        val, val_kept = _frame_kept(val_read, d.schema, d.frame, size)
        train, parts_frames = completed, {"train": frames, "val": scoring_frames(val_read, d.frame, size)[val_kept]}
    elif d.split == "imm":
        in_train = imm_train_mask(data)
        train, val = completed.subset(in_train), data.subset(~in_train)
        parts_frames = {"train": frames[in_train], "val": frames[~in_train]}
    else:
        try:
            parts = split_indices(data, d.split, seed=d.split_seed)
        except ValueError as err:  # named as the settings at fault
            raise ValueError(f"data.split {d.split} of data.train {d.train}: {err}") from None
        train, val = completed.subset(parts[0]), data.subset(parts[1])
        parts_frames = {"train": frames[parts[0]], "val": frames[parts[1]]}
        if len(parts) > 2:  # the third ratio: a test part, kept out of training and validation
            held["test"], parts_frames["test"] = data.subset(parts[2]), frames[parts[2]]
        _check_split_disjoint(train, val, d)
    if d.missing == "drop":  # the rows handle_missing keeps
        parts_frames["train"] = parts_frames["train"][train.fully_labelled()]
    train, missing_report = handle_missing(train, d.missing)
    for faces, part, name in ((train, "training", "train"), (val, "validation", "val")):
        if name in need_labels and not faces.labelled_mask().any():  # nothing to learn, or a best epoch chosen on nothing
            path, key = (d.val, "data.val") if part == "validation" and d.val else (d.train, "data.train")
            where = f"among its {len(faces)} {part} faces" if d.val else \
                f"in the {part} part of its split ({len(faces)} faces)"
            raise ValueError(f"{path} ({key}): no labelled point {where} (every keypoint is missing), "
                             f"so there is nothing to {'learn from' if part == 'training' else 'validate on'}"
                             + ("" if d.val else "; give data.train more labelled faces, or another data.split"))
    report.update(train=len(train), val=len(val), **({"test": len(held["test"]), "test_use": HELD_OUT}
                                                       if held else {}),
                  missing=missing_report, by_person=any(p is not None for p in data.person),
                  faces_without_person=sum(p is None for p in data.person))
    overlap = {p for p in train.person if p is not None} & {p for p in val.person if p is not None}
    report["persons_in_both"] = len(overlap)
    return {"train": train, "val": val, **held}, parts_frames, report


def _load_only(d: DataConfig, size: int, only: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """``load_parts(d, size, only=only)`` for framed photos: the faces ``load_parts`` gives, with the
    photos read one at a time (``face_photo``)."""
    data = read(d.val or d.train, load_images=False)
    if d.persons and not d.val:
        data = attach_person(data, d.persons)
    if d.frame == "kaggle":  # the faces framing keeps decide the split, as in load_parts: all are framed first
        _check_photos(data, range(len(data)))
        data = _frame_kept(data, d.schema, d.frame, size)[0]
    if d.val:  # a separate validation file: data.train is not needed
        rows = {"val": np.arange(len(data))}
    elif d.split == "imm":
        in_train = imm_train_mask(data)
        rows = {"val": np.flatnonzero(~in_train)}
    else:
        try:
            rows = dict(zip(("train", "val", "test"), split_indices(data, d.split, seed=d.split_seed)))
        except ValueError as err:  # named as the settings at fault
            raise ValueError(f"data.split {d.split} of data.train {d.train}: {err}") from None
    parts, frames = {}, {}
    for name in only:
        if name not in rows:
            continue
        if d.frame == "resize":
            _check_photos(data, rows[name])
        part = data.subset(rows[name])
        if d.frame == "resize":  # whole photos: this part's alone, each read once
            last: dict = {}
            part = replace(part, images=[face_photo(part, i, last) for i in range(len(part))])
        frames[name] = scoring_frames(part, d.frame, size)
        parts[name] = part if d.frame == "kaggle" else _frame_kept(part, d.schema, d.frame, size)[0]
    return parts, frames, {}


def _check_photos(data: KeypointData, faces) -> None:
    """Labels read alone let a missing photo pass (``data info`` needs none); the ``faces`` about to be
    framed need theirs, and one missing is named as the readers name it when they read the photos with
    the labels: by the labels file and, in a CSV read whole, the face's row."""
    by_row = Path(data.source).suffix.lower() == ".csv" and not data.skipped and not data.skipped_unlisted
    for i in faces:
        photo = data.paths[i] if data.paths else None
        if photo and not Path(photo).is_file():
            where = data.source if by_row else labels_file(data.source, data.ids[i])
            raise DataFormatError(where, f"image file not found: {photo}", row=int(i) + 1 if by_row else None)


def _check_readable(data: KeypointData, path: str, key: str, labels: bool = True) -> KeypointData:
    """``data`` as read from ``path`` (setting ``key``), if a run can use it: images, and (``labels``)
    at least one labelled point. Checked as soon as the file is read, before framing and splitting."""
    if data.images is None:
        raise ValueError(f"{path} ({key}): has no images (labels only); training needs the Image column "
                         "(a Kaggle training CSV with images, or a photo dataset)")
    if labels and not data.labelled_mask().any():
        raise ValueError(f"{path} ({key}): has no labelled points (every keypoint of its {len(data)} faces is "
                         "missing, as in a test file); a run needs labelled faces to "
                         f"{'learn from' if key == 'data.train' else 'validate on'}")
    return data


def _fingerprint(image: np.ndarray) -> bytes:
    """A hash of a face's pixels (and shape): the same image in two files has the same one."""
    image = np.ascontiguousarray(image)
    return hashlib.blake2b(image.tobytes() + repr(image.shape).encode(), digest_size=16).digest()


def _shared_faces(train: KeypointData, val: KeypointData) -> list[int]:
    """Indices of ``val``'s faces whose pixels are also a face of ``train``."""
    seen = {_fingerprint(image) for image in train.images}
    return [i for i, image in enumerate(val.images) if _fingerprint(image) in seen]


def _check_disjoint(train: KeypointData, val: KeypointData, d: DataConfig) -> None:
    """A separate data.val must not hold data.train's faces (a copy under another name, or rows of it):
    validation would score faces the model trained on. Compared by pixels, whatever the file names."""
    shared = _shared_faces(train, val)
    if not shared:
        return
    if len(shared) == len(val):
        what = f"all {len(val)} of its faces are in data.train ({d.train})"
    else:
        ids = ", ".join(str(val.ids[i]) for i in shared[:3])
        what = f"{len(shared)} of its {len(val)} faces are also in data.train ({d.train}; e.g. {ids})"
    raise ValueError(f"{d.val} (data.val): {what}, the same pixels: validation would score faces the model trained "
                     "on; give validation faces that are not in data.train, or leave data.val out to split data.train "
                     "by person")


def _check_split_disjoint(train: KeypointData, val: KeypointData, d: DataConfig) -> None:
    """data.train split in two must not put the same face (repeated rows, the same pixels) in both
    parts: validation would score faces the model trained on."""
    shared = _shared_faces(train, val)
    if shared:
        ids = ", ".join(str(val.ids[i]) for i in shared[:3])
        raise ValueError(f"{d.train} (data.train): repeats faces (the same pixels in several rows, e.g. {ids}), and "
                         f"{len(shared)} of the {len(val)} validation faces of data.split {d.split} are copies of "
                         "training faces: validation would score faces the model trained on; remove the repeated rows")


def frame_faces(data: KeypointData, schema: str, frame: str, size: int) -> KeypointData:
    """Bring faces to ``size`` x ``size`` in ``schema`` (see DataConfig.frame)."""
    return _frame_kept(data, schema, frame, size)[0]


def _frame_kept(data: KeypointData, schema: str, frame: str, size: int) -> tuple[KeypointData, np.ndarray]:
    """``frame_faces``, and the index in ``data`` of each face it returns (frame kaggle leaves
    faces whose labels fit no face shape out)."""
    every = np.arange(len(data))
    if frame == "none":
        shapes = {image.shape[:2] for image in data.images} if data.images is not None else set()
        if shapes - {(size, size)}:  # other sizes would be resized while their labels stay where they were
            h, w = sorted(shapes - {(size, size)})[0]
            raise ValueError(f"{data.source}: holds {w}x{h} images, not faces framed at the model's {size}x{size}; "
                             "set data.frame: kaggle (align each face by its labels) or resize (shrink whole images)")
        try:
            return data.to_schema(schema), every
        except ValueError as err:
            raise ValueError(f"{data.source}: data.schema {schema!r} does not fit its {data.schema.name} labels "
                             f"({err})") from None
    if frame == "kaggle":
        faces, report = to_kaggle_task(data, schema, size=size)
        if report.not_aligned:
            raise ValueError(f"{data.source}: {len(report.not_aligned)} faces cannot be framed: {report.not_aligned[:5]}")
        if report.misshaped:  # left out, not trained on as collapsed faces; said, as they are not in the data
            warnings.warn(f"{data.source}: {len(report.misshaped)} faces left out, their labels fit no face shape "
                          f"(misplaced points?): {report.misshaped[:5]}", stacklevel=3)
        return faces, np.array(report.kept, int)
    if frame == "resize":
        return resize_faces(data, size).to_schema(schema), every
    raise ValueError(f"data.frame: {frame!r} is not one of none, kaggle, resize")
