"""Unlabelled photos as training faces for distillation (``data.unlabeled`` with ``train.teacher``).

Why: ytf68 holds 1351 frames nobody labelled, of the same people as the labelled ones. A teacher
can teach from them: each becomes a training face without labels, so the label loss ignores it and
only the teacher's targets (on every augmented look, where its mirrored looks agree;
``train/distill.py``) train on it.

How a photo becomes a face: the teacher finds the face in it (its detector, the largest face when
there are several), predicts its keypoints with refinement and mirroring, and the face is framed
from those keypoints exactly as labelled photos are (``data.frame: kaggle``, ``to_kaggle_task``).
Faces already framed at the model's input size (a Kaggle-style CSV) are used as they are; with
``data.frame: resize`` whole photos are resized.

Whose faces: a frame of a validation (or held-out) person would show the student the people it is
scored on, so those are left out and counted; a file without a person for every face is refused
when the run splits by person. Photos where no face is found are counted and named in the report
and on stderr, never dropped without a word.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from facekeypoints.data import cache
from facekeypoints.data.cache import file_digest
from facekeypoints.data.convert import resize_faces, to_kaggle_task
from facekeypoints.data.dataset import DataFormatError, KeypointData
from facekeypoints.data.formats import read
from facekeypoints.data.images import read_image
from facekeypoints.data.pipeline import _shared_faces
from facekeypoints.schema import load_schema
from facekeypoints.train.distill import teacher_fingerprint

__all__ = ["unlabeled_faces", "join_faces"]

NAMED = 5  # photos without a face that the warning names


def unlabeled_faces(path: str, *, teacher: str, schema: str, size: int, frame: str,
                    unseen: list[KeypointData], by_person: bool, progress: bool = True,
                    known: KeypointData | None = None) -> tuple[KeypointData, dict]:
    """The faces of ``path`` (``data.unlabeled``) framed for a ``size`` x ``size`` ``schema`` model,
    with every keypoint missing, less those of the people (and the very pictures) of the ``unseen``
    parts (validation, held out) and the pictures ``known`` already (the training faces); and a
    report: read, left out, unreadable, no face found, used."""
    data = read(path, load_images=False)
    if by_person and any(p is None for p in data.person):
        rows = [i for i, p in enumerate(data.person) if p is None]
        where = f"rows {', '.join(str(i + 2) for i in rows[:NAMED])}" + (" ..." if len(rows) > NAMED else "") \
            if any(p is not None for p in data.person) else "no person column"  # CSV rows: the header is line 1
        raise ValueError(f"data.unlabeled {path}: {len(rows)} of its {len(data)} faces have no person ({where}), and "
                         "this run splits its people into training and validation: a face of a validation person "
                         "could leak into training; give every face its person (as ytf68's unlabeled.csv does)")
    if data.labelled_mask().any():  # their labels would be replaced by the teacher's without a word
        warnings.warn(f"data.unlabeled {path}: holds {int(data.labelled_mask().sum())} labelled points, which are not "
                      "used: its faces get the teacher's labels; to train on those labels, give the file as data.train",
                      stacklevel=2)
    if by_person and any(p is None for part in unseen for p in part.person):
        raise ValueError(f"data.unlabeled {path}: some validation faces have no person (a data.val without a person "
                         "column?), so the unlabelled photos of validation people cannot be told apart and left out; "
                         "give the validation faces their persons, or leave data.unlabeled out")
    report = {"source": path, "read": len(data)}
    if any(data.paths):  # photos: framed as the model frames faces
        faces = resize_faces(_with_images(data), size) if frame == "resize" else \
            _framed_by_teacher(data, teacher, schema, size, report, progress)
    else:  # pixels inline (a Kaggle-style CSV): faces already framed at the model's input size
        faces = read(path)
        sides = {faces.image_size(i) for i in range(len(faces))} - {(size, size)}
        if sides:
            h, w = sorted(sides)[0]
            raise ValueError(f"data.unlabeled {path}: holds {w}x{h} images inline, not faces framed at the model's "
                             f"{size}x{size}; give photos (a CSV of image paths) to be framed, or crops of that size")
    persons = {p for part in unseen for p in part.person if p is not None}
    left_out = np.array([p in persons for p in faces.person], bool)
    same, again = _pictures_in(faces, unseen) & ~left_out, _pictures_in(faces, [known] if known is not None else [])
    again &= ~(left_out | same)  # the very pictures of validation or training, persons or not
    report["left_out_validation_people"], report["left_out_validation_pictures"] = int(left_out.sum()), int(same.sum())
    if again.any():  # a training face given again: it would count twice, once with the teacher's labels
        report["left_out_training_pictures"] = int(again.sum())
        warnings.warn(f"data.unlabeled {path}: {int(again.sum())} of its faces are training faces already (the same "
                      "pixels), left out", stacklevel=2)
    if (left_out | same | again).all():
        raise ValueError(f"data.unlabeled {path}: all of its {len(faces)} usable faces are of validation people or "
                         "pictures (left out, so validation stays unseen) or training faces already; give other "
                         "unlabelled faces of training people")
    faces = faces.subset(~(left_out | same | again))
    faces = faces.to_schema(schema) if faces.schema.name != schema else faces
    faces = replace(faces, keypoints=np.full_like(faces.keypoints, np.nan))  # what framed them is no label
    report["used"] = len(faces)
    return faces, report


def _pictures_in(faces: KeypointData, parts: list[KeypointData]) -> np.ndarray:
    """(N,) bool: which of ``faces`` are also a face of one of ``parts``, by their pixels."""
    mask = np.zeros(len(faces), bool)
    for part in parts:
        mask[_shared_faces(part, faces)] = True
    return mask


def _with_images(data: KeypointData) -> KeypointData:
    return replace(data, images=[read_image(p) for p in data.paths])


def _cache_key(data: KeypointData, teacher: str, schema: str, size: int) -> str:
    """The framing depends on the photos, the teacher and the crop: all in the key (the photos by
    path, size and modification time, which a stat gives; hashing them all would take longer)."""
    digest = hashlib.sha256(file_digest(data.source).encode() + teacher_fingerprint(teacher)["sha256"].encode())
    for photo in data.paths:
        try:
            st = os.stat(photo)
            digest.update(f"{photo}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        except OSError:  # missing: framing names it
            digest.update(f"{photo}\0missing\0".encode())
    return f"unlabeled-v3-{schema}-{size}-{digest.hexdigest()[:32]}"


def _framed_by_teacher(data: KeypointData, teacher: str, schema: str, size: int, report: dict,
                       progress: bool) -> KeypointData:
    """Each photo's largest face, found and keypointed by the teacher, framed from its keypoints
    (kept in the cache: the same photos and teacher give the same faces, and the same reasons for
    the photos left out)."""
    key = _cache_key(data, teacher, schema, size)
    try:
        entry = cache.load(key)
    except cache.CacheMiss:
        entry = _frame_photos(data, teacher, schema, size, progress)
        cache.save(key, entry)
    found, no_face, unreadable = entry["found"], entry["no_face"], entry["unreadable"]
    report["unreadable"], report["no_face_found"] = len(unreadable), len(no_face)
    if len(unreadable):
        reasons = "; ".join(f"{data.ids[i]} ({why})" for i, why in zip(unreadable[:NAMED], entry["why"][:NAMED]))
        warnings.warn(f"data.unlabeled {data.source}: {len(unreadable)} of {len(data)} photos cannot be read, not "
                      f"used: {reasons}" + (" ..." if len(unreadable) > NAMED else ""), stacklevel=3)
    if len(no_face):
        named = ", ".join(str(data.ids[i]) for i in no_face[:NAMED])
        warnings.warn(f"data.unlabeled {data.source}: no face found (or framed) in {len(no_face)} of {len(data)} "
                      f"photos, not used: {named}" + (" ..." if len(no_face) > NAMED else ""), stacklevel=3)
    if not len(found):
        raise ValueError(f"data.unlabeled {data.source}: none of its {len(data)} photos gave a face to train on "
                         f"({len(unreadable)} unreadable, {len(no_face)} without a face the teacher found)")
    faces = data.subset(found)
    schema = load_schema(schema)
    return replace(faces, schema=schema, keypoints=np.full((len(found), schema.num_keypoints, 2), np.nan, np.float32),
                   images=entry["images"])


def _frame_photos(data: KeypointData, teacher: str, schema: str, size: int, progress: bool) -> dict:
    """_framed_by_teacher's work, as the arrays the cache keeps: the photos framed (their rows and
    crops), those without a face, and those unreadable with why."""
    from facekeypoints.infer.predictor import KeypointDetector  # inference is needed only here

    finder = KeypointDetector(teacher, backend="torch", mirror_tta=True)
    points = np.full((len(data), finder.schema.num_keypoints, 2), np.nan, np.float32)
    unreadable, why = [], []
    for i in tqdm(range(len(data)), desc="framing unlabelled faces", unit="photo", disable=not progress,
                  file=sys.stderr, leave=False):
        try:
            faces = finder(read_image(data.paths[i])).faces
        except (ValueError, OSError) as err:  # a missing or damaged photo: left out and named (no predict advice)
            unreadable.append(i)
            why.append(err.reason if isinstance(err, DataFormatError) else str(err).removeprefix(f"{data.paths[i]}: "))
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        if largest is not None and np.isfinite(largest.keypoints).all():
            points[i] = largest.keypoints
    found = np.flatnonzero(np.isfinite(points).all(axis=(1, 2)))
    kept, images = found, np.zeros((0, size, size), np.uint8)
    if len(found):
        predicted = replace(data.subset(found), schema=finder.schema, keypoints=points[found])
        # framed as labelled photos are; a predicted shape that fits no face, or lies off its photo, is no face
        faces, conversion = to_kaggle_task(predicted, schema, size=size, skip_bad=True)
        kept, images = found[np.asarray(conversion.kept, int)], np.asarray(faces.images)
    no_face = np.setdiff1d(np.setdiff1d(np.arange(len(data)), kept), unreadable)
    return {"found": kept, "no_face": no_face, "unreadable": np.array(unreadable, int), "why": np.array(why, str),
            "images": images}


def join_faces(train: KeypointData, extra: KeypointData) -> KeypointData:
    """``train`` followed by ``extra`` (same schema, both with same-size inline images)."""
    if train.schema.name != extra.schema.name:
        raise ValueError(f"data.unlabeled: its faces are {extra.schema.name}, the training faces {train.schema.name}")
    ours, theirs = np.asarray(train.images).shape[1:], np.asarray(extra.images).shape[1:]
    if ours != theirs:  # e.g. colour training crops beside the grey faces the teacher framed
        raise ValueError(f"data.unlabeled {extra.source}: its faces are {theirs} pixels (height, width[, colours]), the "
                         f"training faces {ours}; give unlabelled faces of the training faces' kind")
    images = np.concatenate([np.asarray(train.images), np.asarray(extra.images)])
    boxes = np.concatenate([train.boxes, extra.boxes])
    return replace(train, keypoints=np.concatenate([train.keypoints, extra.keypoints]).astype(np.float32),
                   images=images, ids=list(train.ids) + list(extra.ids), person=list(train.person) + list(extra.person),
                   paths=list(train.paths) + list(extra.paths), boxes=boxes)
