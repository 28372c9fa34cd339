"""Turn a config's data section into preprocessed train/validation tensors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facekeypoints.data import KeypointData
from facekeypoints.train.config import Config

__all__ = ["TensorSet", "load_splits", "to_tensors"]


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
    data = data.to_schema(d.schema)
    report: dict = {"read": len(data), "source": d.train}
    completed = data
    if d.complete_labels:
        completed, report["completed"] = complete_labels(data, read(d.complete_labels, load_images=False))
    if d.val:
        train, val = completed, read(d.val).to_schema(d.schema)
    else:
        parts = split_indices(data, d.split, seed=d.split_seed)
        train, val = completed.subset(parts[0]), data.subset(parts[1])
    train, missing_report = handle_missing(train, d.missing)
    report.update(train=len(train), val=len(val), missing=missing_report,
                  by_person=all(p is not None for p in data.person))
    overlap = {p for p in train.person if p is not None} & {p for p in val.person if p is not None}
    report["persons_in_both"] = len(overlap)
    return train, val, report


def to_tensors(data: KeypointData, preprocess) -> TensorSet:
    """Preprocess every image once (training re-reads tensors, never files)."""
    images = data.images if isinstance(data.images, np.ndarray) else np.stack(data.images)
    x = torch.from_numpy(np.ascontiguousarray(preprocess(images)))
    return TensorSet(images=x, keypoints=torch.from_numpy(data.keypoints.copy()), data=data)
