"""Turn a config's data section into preprocessed train/validation tensors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facekeypoints.data import KeypointData
from facekeypoints.train.config import Config

__all__ = ["TensorSet", "load_splits", "frame_faces", "to_tensors"]


@dataclass
class TensorSet:
    """Preprocessed images (N, C, S, S) float32 and pixel keypoints (N, K, 2) with NaN for missing."""

    images: torch.Tensor
    keypoints: torch.Tensor
    data: KeypointData

    def __len__(self) -> int:
        return len(self.images)


def load_splits(cfg: Config) -> tuple[KeypointData, KeypointData, dict]:
    """Read the training data, apply the missing-label strategy, and split (by person when known).

    Returns (train, val, report) where report says how many rows each step kept or changed.
    """
    from facekeypoints.data import attach_person, handle_missing, read, split_indices
    from facekeypoints.data.convert import complete_labels

    d = cfg.data
    data = read(d.train)
    if d.persons:
        data = attach_person(data, d.persons)
    data = frame_faces(data, d.schema, d.frame, int(cfg.preprocess.get("size", 96)))
    report: dict = {"read": len(data), "source": d.train}
    completed = data
    if d.complete_labels:
        completed, report["completed"] = complete_labels(data, read(d.complete_labels, load_images=False))
    if d.val:
        train = completed
        val = frame_faces(read(d.val), d.schema, d.frame, int(cfg.preprocess.get("size", 96)))
    elif d.split == "imm":
        train_idx = [i for i, p in enumerate(data.person) if p is not None and 1 <= int(p) <= 32]
        val_idx = [i for i, p in enumerate(data.person) if p is not None and 33 <= int(p) <= 40]
        train, val = completed.subset(train_idx), data.subset(val_idx)
    elif isinstance(d.split, str):
        raise ValueError(f"data.split: {d.split!r} is neither a list of ratios nor 'imm'")
    else:
        parts = split_indices(data, d.split, seed=d.split_seed)
        train, val = completed.subset(parts[0]), data.subset(parts[1])
    train, missing_report = handle_missing(train, d.missing)
    report.update(train=len(train), val=len(val), missing=missing_report,
                  by_person=all(p is not None for p in data.person))
    overlap = {p for p in train.person if p is not None} & {p for p in val.person if p is not None}
    report["persons_in_both"] = len(overlap)
    return train, val, report


def frame_faces(data: KeypointData, schema: str, frame: str, size: int) -> KeypointData:
    """Bring faces to ``size`` x ``size`` in ``schema`` (see DataConfig.frame)."""
    from facekeypoints.data.convert import resize_faces, to_kaggle_task

    if frame == "none":
        return data.to_schema(schema)
    if frame == "kaggle":
        faces, report = to_kaggle_task(data, schema, size=size)
        if report.not_aligned:
            raise ValueError(f"{data.source}: {len(report.not_aligned)} faces cannot be framed: {report.not_aligned[:5]}")
        return faces
    if frame == "resize":
        return resize_faces(data, size).to_schema(schema)
    raise ValueError(f"data.frame: {frame!r} is not one of none, kaggle, resize")


def to_tensors(data: KeypointData, preprocess) -> TensorSet:
    """Preprocess every image once (training re-reads tensors, never files)."""
    images = data.images if isinstance(data.images, np.ndarray) else np.stack(data.images)
    x = torch.from_numpy(np.ascontiguousarray(preprocess(images)))
    return TensorSet(images=x, keypoints=torch.from_numpy(data.keypoints.copy()), data=data)
