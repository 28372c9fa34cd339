"""Score a trained model on a keypoint file: the numbers behind ``facekeypoints evaluate``.

Examples
--------
>>> from facekeypoints.evaluate.runner import evaluate            # doctest: +SKIP
>>> evaluate("runs/exp1/best.pt", "../shared/data/fkd15-ytf/training.zip")["rmse"]  # doctest: +SKIP
1.93
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facekeypoints.data import KeypointData, read
from facekeypoints.data.pipeline import DATA_PATH_KEYS, load_parts, to_scoring_pixels
from facekeypoints.evaluate.metrics import summarize
from facekeypoints.models.card import ModelCard
from facekeypoints.models.device import resolve_device
from facekeypoints.models.predict import TorchRunner, predict_crops
from facekeypoints.models.weights import resolve_checkpoint

__all__ = ["evaluate", "predict_data", "run_split", "trained_data"]


# faces per forward pass when scoring: 256 took 0.6 GB of activations more than 64 (simple_cnn, 96 px, CPU;
# resnet50_aa 0.5 GB) and was no faster (23 s against 18 s for 912 faces)
EVAL_BATCH = 64


def predict_data(runner, data: KeypointData, *, mirror_tta: bool = False, rotate_tta: float = 0.0,
                 batch_size: int = EVAL_BATCH) -> np.ndarray:
    """(N, K, 2) pixel predictions for every image of ``data``, which must already be framed like the
    model's training faces (Kaggle CSVs are; other sets go through ``facekeypoints data convert``)."""
    if data.images is None:
        raise ValueError(f"{data.source}: holds labels only; evaluation needs images")
    shapes = {image.shape[:2] for image in data.images}
    if len(shapes) > 1 or any(h != w for h, w in shapes):
        raise ValueError(f"{data.source}: holds whole photos (e.g. {data.images[0].shape[1]}x{data.images[0].shape[0]} px), not faces framed like the "
                         "model's training crops; frame them first with `facekeypoints data convert SRC -o faces.csv`")
    images = data.images if isinstance(data.images, np.ndarray) else np.stack(data.images)
    return predict_crops(runner, images, mirror=mirror_tta, rotate=rotate_tta, batch_size=batch_size)


def _repository() -> Path:
    """The checkout folder facekeypoints runs from (src/facekeypoints/ -> the repository), where the
    README's commands run and the shipped models' relative data paths start."""
    return Path(__file__).resolve().parents[3]  # src/facekeypoints/evaluate/runner.py


def trained_data(card: ModelCard):
    """The card's ``trained_on`` with its relative paths made absolute: read against the folder training
    ran in (``card.trained_in``); on a card without it (the shipped models), against the current folder,
    then the repository checkout. ValueError naming the field and where the path came from."""
    import dataclasses

    data = card.trained_on
    changes = {}
    for key in DATA_PATH_KEYS:
        value = getattr(data, key)
        # data.unlabeled only added training faces: rebuilding a split never reads it, nor needs it here
        if value is None or key == "unlabeled" or Path(os.path.expanduser(value)).is_absolute():
            continue
        value = Path(os.path.expanduser(value))
        folders = ([Path(card.trained_in)] if card.trained_in else []) + [Path.cwd(), _repository()]
        found = next((f / value for f in dict.fromkeys(folders) if (f / value).exists()), None)
        if found is None:
            where = f"the folder it was trained in, {card.trained_in}" if card.trained_in else \
                "the folder it was trained in"
            raise ValueError(f"the model's training data (data.{key}, relative to {where}) {getattr(data, key)}: "
                             f"not found from {Path.cwd()}; run from the repository folder or pass a data file")
        changes[key] = str(found)
    return dataclasses.replace(data, **changes) if changes else data


def run_split(card: ModelCard, split: str, *, with_frames: bool = False):
    """The ``train``, ``val`` or (a 3-ratio data.split's held-out part) ``test`` part of the data a model
    was trained on, rebuilt from its card's ``trained_on`` (same file, persons, framing and seeded split),
    so it is scored on faces it never saw. ``with_frames``: (part, its frames to the pixels scores are in,
    see ``data.pipeline.scoring_frames``)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if card.trained_on is None:
        raise ValueError("this model's card records no training data, so its split cannot be rebuilt; pass a data file")
    data = trained_data(card)
    if split == "test" and data.val:  # its validation faces came from data.val: data.split was not used
        raise ValueError(f"split 'test': the model's run has no test part (its separate data.val {data.val} "
                         f"made its data.split {data.split!r} unused); pass a data file")
    if split == "test" and (isinstance(data.split, str) or len(data.split) < 3):
        raise ValueError(f"split 'test': the model's run has no test part (its data.split {data.split!r} holds no "
                         "third ratio); pass a data file")
    # the parts asked for alone (photos framed one by one): the validation part is checked below
    parts, frames, _ = load_parts(data, card.input_size, only=tuple(dict.fromkeys(("val", split))))
    val = parts["val"]
    from facekeypoints.data.pipeline import faces_digest

    expected = card.metrics.get("val_faces")
    if expected is not None and len(val) != expected:  # the file changed: "val" may now hold training faces
        raise ValueError(f"{data.train}: its validation part now has {len(val)} faces where the model "
                         f"was validated on {expected}; the data changed since training, so the split is not the "
                         "model's own; score a file instead")
    if card.metrics.get("val_digest") is not None and faces_digest(val) != card.metrics["val_digest"]:
        raise ValueError(f"{data.train}: its validation faces are not the ones the model was validated on "
                         "(the file changed since training), so the split is not the model's own; score a file instead")
    return (parts[split], frames[split]) if with_frames else parts[split]


def evaluate(model: str | Path | None, data_path: str | Path | None, *, mirror_tta: bool = False,
             rotate_tta: float = 0.0, split: str | None = None, device: str = "cpu", runner=None,
             skip_bad: bool = False) -> dict:
    """Metrics (rmse, mae, nme, fr_8, fr_10, auc_10, per_keypoint_rmse, ced) of ``model`` on
    ``data_path``, or with ``split="val"`` on the validation part of the model's own training data.
    ``runner`` (e.g. an ``OnnxRunner`` of an export) replaces loading ``model`` as a checkpoint.
    ``skip_bad``: rows of ``data_path`` that cannot be read are left out and listed (``skipped``,
    the first 20, and ``skipped_count``) rather than stopping the evaluation."""
    if (data_path is None) == (split is None):
        raise ValueError("give either a data file or --split (train, val or test of the model's own run)")
    if runner is None:
        source = resolve_checkpoint(model)
        if Path(source).suffix.lower() == ".onnx":
            raise ValueError(f"{source}: an ONNX export; pass runner=OnnxRunner(path) (the CLI does)")
        runner = TorchRunner.load(source, device=resolve_device(device))
    schema = runner.card.schema
    data, frames = (read(data_path, skip_bad=skip_bad), None) if split is None else run_split(
        runner.card, split, with_frames=True)
    skipped, skipped_count = list(data.skipped[:20]), data.skipped_count
    if data.schema.name != schema.name:
        try:
            data = data.to_schema(schema.name)
        except ValueError as err:
            raise ValueError(f"{data.source}: its {data.schema.name} labels cannot be scored against the "
                             f"{schema.name} model {model or 'kaggle15'} ({err})") from None
    if np.isnan(data.keypoints).all():
        raise ValueError(f"{data.source}: has no keypoint labels (a test CSV?); evaluation compares predictions "
                         "with labels")
    pred, truth = predict_data(runner, data, mirror_tta=mirror_tta, rotate_tta=rotate_tta), data.keypoints
    unanswered = int((np.isnan(pred) & ~np.isnan(truth)).any(-1).sum())
    if unanswered:  # said of the model, whose weights are at fault, not of the metrics' arguments
        raise ValueError(f"{model or 'the default model'}: predicts NaN for {unanswered} of the "
                         f"{int((~np.isnan(truth)).any(-1).sum())} labelled points of {data.source} (NaN or infinite "
                         "weights: a run that diverged?), so it cannot be scored; use another checkpoint")
    if frames is not None:  # the run's framed faces, scored in the labelled images' pixels as training scored them
        pred, truth = (to_scoring_pixels(frames, p) for p in (pred, truth))
    result = summarize(pred, truth, schema)
    result.update(model=str(model or "default"), data=str(data_path or f"{split} split of the model's run"),
                  mirror_tta=mirror_tta, rotate_tta=rotate_tta, skipped=skipped, skipped_count=skipped_count)
    return result
