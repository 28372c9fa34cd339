"""Score a trained model on a keypoint file: the numbers behind ``facekeypoints evaluate``.

Examples
--------
>>> from facekeypoints.evaluate.runner import evaluate            # doctest: +SKIP
>>> evaluate("runs/exp1/best.pt", "../shared/data/fkd15-ytf/training.zip")["rmse"]  # doctest: +SKIP
1.93
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facekeypoints.data import KeypointData
from facekeypoints.evaluate.metrics import summarize
from facekeypoints.models.codecs import decode
from facekeypoints.schema import load_schema

__all__ = ["evaluate", "predict_tensor", "predict_data", "resolve_model", "run_split"]


@torch.no_grad()
def predict_tensor(model, images: torch.Tensor, batch_size: int = 256, mirror_schema=None) -> torch.Tensor:
    """Pixel keypoints (N, K, 2) for preprocessed images (N, C, S, S). With ``mirror_schema`` the
    prediction is averaged with the one made on the mirrored image (mirror test-time augmentation)."""
    model.eval()
    size = images.shape[-2:]
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        p = decode(model(x), size)
        if mirror_schema is not None:
            back = mirror_schema.flip(decode(model(torch.flip(x, dims=(-1,))), size), size[-1])
            p = (p + back) / 2
        out.append(p)
    if not out:
        return torch.zeros((0, load_schema(model.schema_name).num_keypoints, 2))
    return torch.cat(out)


def resolve_model(model: str | Path | None):
    """(model, checkpoint dict) for a checkpoint path or shipped model name; the shipped kaggle15 model when None."""
    from facekeypoints.models.checkpoint import load_model
    from facekeypoints.models.weights import resolve_checkpoint

    return load_model(resolve_checkpoint(model))


def predict_data(model, ckpt: dict, data: KeypointData, *, mirror_tta: bool = False, batch_size: int = 256) -> np.ndarray:
    """(N, K, 2) pixel predictions for every image of ``data``, which must already be framed at the
    model's input size (Kaggle CSVs are; other sets go through ``facekeypoints data convert``)."""
    from facekeypoints.data.preprocess import Preprocess
    from facekeypoints.schema import KeypointSchema

    pre = Preprocess.from_dict(ckpt["preprocess"])
    if data.images is None:
        raise ValueError(f"{data.source}: holds labels only; evaluation needs images")
    images = data.images if isinstance(data.images, np.ndarray) else np.stack(data.images)
    x = torch.from_numpy(np.ascontiguousarray(pre(images)))
    schema = KeypointSchema.from_dict(ckpt["schema"])
    return predict_tensor(model, x, batch_size, schema if mirror_tta else None).numpy()


def run_split(ckpt: dict, split: str) -> KeypointData:
    """The ``train`` or ``val`` part of the data a checkpoint was trained on, rebuilt from its saved
    config (same file, persons, framing and seeded split), so a run is scored on faces it never saw."""
    from facekeypoints.train.config import config_from_dict
    from facekeypoints.train.data import load_splits

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not ckpt.get("config"):
        raise ValueError("this checkpoint records no training config, so its split cannot be rebuilt; pass a data file")
    train, val, _ = load_splits(config_from_dict(ckpt["config"]))
    return train if split == "train" else val


def evaluate(model: str | Path | None, data_path: str | Path | None, *, mirror_tta: bool = False,
             split: str | None = None) -> dict:
    """Metrics (rmse, mae, nme, fr_8, fr_10, auc_10, per_keypoint_rmse, ced) of ``model`` on
    ``data_path``, or with ``split="val"`` on the validation part of the model's own training data."""
    from facekeypoints.data import read
    from facekeypoints.schema import KeypointSchema

    net, ckpt = resolve_model(model)
    schema = KeypointSchema.from_dict(ckpt["schema"])
    if (data_path is None) == (split is None):
        raise ValueError("give either a data file or --split (train or val of the model's own run)")
    data = read(data_path) if split is None else run_split(ckpt, split)
    if data.schema.name != schema.name:
        data = data.to_schema(schema.name)
    pred = predict_data(net, ckpt, data, mirror_tta=mirror_tta)
    result = summarize(pred, data.keypoints, schema)
    result.update(model=str(model or "default"), data=str(data_path or f"{split} split of the model's run"),
                  mirror_tta=mirror_tta)
    return result
