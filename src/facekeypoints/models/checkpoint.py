"""Checkpoints: one file holding weights, their model card and (for resuming) the training state.

Files are written with ``torch.save`` from plain containers and tensors only, and read back with
``torch.load(weights_only=True)``, so loading a checkpoint never executes code from it. The model
card (:class:`facekeypoints.models.card.ModelCard`) is the contract every reader uses; version-1
files, written before the card, are read through the card's one loader and still work.

Examples
--------
>>> import tempfile, os
>>> from facekeypoints.models import create_model
>>> m = create_model("simple_cnn", schema="nose1")
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> save_checkpoint(path, m, card_for(m))
>>> model, card = load_model(path); card.model, card.schema.name, model.schema_name
('simple_cnn', 'nose1', 'nose1')
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
from collections import OrderedDict

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from facekeypoints.atomic import atomic_path
from facekeypoints.data.pipeline import DataConfig
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.models.card import CardError, ModelCard
from facekeypoints.models.face_detector import is_detector_state
from facekeypoints.models import create_model
from facekeypoints.schema import KeypointSchema, load_schema

__all__ = ["Checkpoint", "card_for", "save_checkpoint", "load_checkpoint", "load_model", "build_model", "slim_checkpoint",
           "check_compatible", "unreadable_reason", "CheckpointError", "FORMAT"]

FORMAT = "facekeypoints-checkpoint/2"
_READABLE = ("facekeypoints-checkpoint/1", FORMAT)  # version 1: no card, read through the card's loader
# raw_weights: the optimiser's own weights when the checkpoint's weights are their moving average (train.ema)
_TRAINING_KEYS = ("config", "optimizer", "scheduler", "scaler", "train_state", "history", "raw_weights")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or belongs to another model or schema."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model card, the weights, and what training needs to resume
    (``training``: the run's config, optimizer and scheduler state, train_state, history)."""

    card: ModelCard
    state_dict: dict
    training: dict = field(default_factory=dict)
    path: str = ""


def card_for(model: nn.Module, *, preprocess: Preprocess | None = None, framing: str = "kaggle",
             trained_on: DataConfig | None = None, metrics: dict | None = None) -> ModelCard:
    """The card of a model built by ``create_model`` (``preprocess`` defaults to its input size and channels)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    size, channels = int(model.input_size), int(getattr(model, "in_channels", 1))
    return ModelCard(model=model.model_name, schema=load_schema(model.schema_name), input_size=size,
                     in_channels=channels, preprocess=preprocess or Preprocess(size=size, channels=channels),
                     framing=framing, options=dict(getattr(model, "model_options", {})), trained_on=trained_on,
                     metrics=dict(metrics or {}), trained_in=os.getcwd() if trained_on is not None else None)


def save_checkpoint(path: str | Path, model: nn.Module, card: ModelCard, **training) -> None:
    """Write ``model``'s weights with ``card`` and, for resuming, ``training`` plain data (config,
    optimizer, scheduler, train_state, history). Written atomically: a kill during the write
    leaves the previous file intact."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    path = _path(path, "save_checkpoint")
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(card, ModelCard):
        raise TypeError(f"save_checkpoint: card must be a ModelCard (e.g. card_for(model)), got {type(card).__name__}")
    unknown = sorted(set(training) - set(_TRAINING_KEYS))
    if unknown:
        raise TypeError(f"save_checkpoint: unknown training entries {unknown}; known: {list(_TRAINING_KEYS)}")
    card_dict = card.to_dict()
    for key, value in {"card": card_dict, **training}.items():
        _check_plain(key, value)
    if (card.model, card.schema.name) != (model.model_name, model.schema_name):
        raise CheckpointError(f"the card describes {card.model}/{card.schema.name}, the model is "
                              f"{model.model_name}/{model.schema_name}")
    payload = {"format": FORMAT, "card": card_dict,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **training}
    _write(payload, path)


def _path(path, what: str) -> Path:
    """``path`` (str, bytes or PathLike) as a Path with ``~`` expanded, as the CLI's paths are."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: path must be a str or Path, got {type(path).__name__} {path!r}")
    return Path(os.path.expanduser(path))


_PLAIN = (dict, list, tuple, str, int, float, bool, type(None), torch.Tensor)


def _foreign(value, where: str) -> str | None:
    """Where in ``value`` the first thing that is not plain data sits, for the error message."""
    if isinstance(value, dict):
        return next((f for k, v in value.items() if (f := _foreign(k, f"{where} key") or _foreign(v, f"{where}[{k!r}]"))), None)
    if isinstance(value, (list, tuple)):
        return next((f for i, v in enumerate(value) if (f := _foreign(v, f"{where}[{i}]"))), None)
    return None if isinstance(value, _PLAIN) else f"{where} ({type(value).__name__})"


def _skeleton(value):
    """``value`` with its tensors as None: the loader's check on everything else without copying weights."""
    if isinstance(value, torch.Tensor):
        return None
    if type(value) in (dict, OrderedDict):  # a subclass of its own is left whole, for the loader's rule to judge
        return type(value)((k, _skeleton(v)) for k, v in value.items())
    if type(value) in (list, tuple):
        return type(value)(_skeleton(v) for v in value)
    return value


def _check_plain(key: str, value) -> None:
    """Refuse what ``load_checkpoint`` (``torch.load(weights_only=True)``) would refuse to read back:
    a file that saves but never loads is a run lost at resume time."""
    buffer = io.BytesIO()
    try:
        torch.save(_skeleton(value), buffer)
    except (pickle.PicklingError, TypeError, AttributeError) as err:  # a lambda, a lock, a local class
        raise TypeError(f"save_checkpoint: {_foreign(value, key) or key} cannot be saved ({err})") from None
    except Exception:  # not about the data (torch.save patched or failing): the real write reports it
        return
    buffer.seek(0)
    try:
        torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as err:  # the weights-only unpickler raises several types
        # torch's text is long and advises weights_only=False: keep only its line naming the type
        why = next((ln.split("error:", 1)[1].split(". Please")[0].strip() for ln in str(err).splitlines()
                    if "WeightsUnpickler error:" in ln), type(err).__name__)
        where = _foreign(value, key) or f"{key} ({why})"
        raise TypeError(f"save_checkpoint: {where} is not plain data (dicts, lists, str, numbers, None, "
                        f"tensors); the checkpoint could not be read back") from None


def _write(payload: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill or a full disk never leaves half a file."""
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as err:  # torch wraps a failed write (e.g. no space left) in RuntimeError
        raise CheckpointError(f"{path}: could not write the checkpoint ({err}); is the disk full?") from None


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> Checkpoint:
    """Read a checkpoint without executing code; errors name the file and what is wrong. With ``mmap`` the
    tensors stay in the file's pages until touched, so the optimizer state a run saved beside the weights
    (twice their size for Adam) is never read: for loading weights only."""
    path = _path(path, "load_checkpoint")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = _torch_load(path, mmap)
    except Exception as err:  # torch raises many types for foreign or damaged files
        raise CheckpointError(f"{path}: not a readable facekeypoints checkpoint ({unreadable_reason(path, err)})") \
            from None
    if is_detector_state(raw):
        raise CheckpointError(f"{path}: a face detector's training state (facekeypoints train-detector), not a "
                              "keypoint model; train-detector exports it as face_detector.onnx beside it, for "
                              "CnnDetector(model=...) (the shipped one: --detector cnn); give --model a keypoint model")
    if not isinstance(raw, dict) or raw.get("format") not in _READABLE:
        raise CheckpointError(f"{path}: not a facekeypoints checkpoint (expected format {FORMAT!r})")
    try:
        card = ModelCard.from_dict(raw["card"] if raw["format"] == FORMAT else raw, source=str(path),
                                   config=raw.get("config"))
    except (CardError, KeyError) as err:
        raise CheckpointError(str(err) if isinstance(err, CardError) else f"{path}: no model card") from None
    training = {k: raw[k] for k in _TRAINING_KEYS if k in raw}
    return Checkpoint(card=card, state_dict=raw.get("state_dict", {}), training=training, path=str(path))


def _torch_load(path: Path, mmap: bool):
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001  a legacy (non-zip) file, a file system that maps nothing, damage:
            pass  # read whole below, so that it loads, or is refused for what it is rather than for the mapping
    return torch.load(path, map_location="cpu", weights_only=True)


def unreadable_reason(path: Path, err: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in words. torch's own texts mislead: "[Errno 22] Invalid
    argument" (its reader seeking past the end of a file cut short reads as a disk fault), a bare number (the
    KeyError of a text file), a paragraph of miniz, or advice to load the file unsafely."""
    if isinstance(err, OSError) and err.strerror and err.errno != errno.EINVAL:
        return err.strerror.lower()  # the file system's own reason: permission denied, input/output error
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            return "an empty file"
    if isinstance(err, OSError) or "zip archive" in str(err):
        return "a damaged PyTorch file: cut short or corrupted"
    if isinstance(err, pickle.UnpicklingError):  # a whole pickled model, or bytes that are no pickle
        return "not a PyTorch file of plain data"
    return "not a PyTorch checkpoint: damaged, or another kind of file"


def check_compatible(card: ModelCard, model_name: str, schema: str | KeypointSchema, source: str = "checkpoint") -> None:
    """Refuse a checkpoint made for another model or schema, saying which differs."""
    schema_name = schema if isinstance(schema, str) else schema.name
    if card.model != model_name:
        raise CheckpointError(f"{source} holds model {card.model!r}, not {model_name!r}")
    if card.schema.name != schema_name:
        raise CheckpointError(f"{source} was trained for schema {card.schema.name!r}, not {schema_name!r}")


def build_model(card: ModelCard) -> nn.Module:
    """The untrained model ``card`` describes."""
    return create_model(card.model, schema=card.schema, input_size=card.input_size, in_channels=card.in_channels,
                        **card.options)


def load_model(path: str | Path) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model in eval mode, card)."""
    ckpt = load_checkpoint(path, mmap=True)  # the weights are copied into the model; the mapping goes with ckpt
    try:
        model = build_model(ckpt.card)
    except (TypeError, ValueError) as err:  # options or sizes this version's model does not take
        raise CheckpointError(f"{path}: cannot rebuild model {ckpt.card.model!r} from its card ({err})") from None
    try:
        missing, unexpected = model.load_state_dict(ckpt.state_dict, strict=False)
    except RuntimeError as err:  # shapes that do not fit
        first = str(err).split("\n\t")[1] if "\n\t" in str(err) else str(err)
        raise CheckpointError(f"{path}: weights do not fit model {ckpt.card.model!r} ({first.strip()})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit model {ckpt.card.model!r} "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval(), ckpt.card


def slim_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint without optimizer and resume state, for shipping: weights, model card,
    the run's config and its per-epoch history stay."""
    ckpt = load_checkpoint(src)
    history = ckpt.training.get("history") or ckpt.training.get("train_state", {}).get("history", [])
    payload = {"format": FORMAT, "card": ckpt.card.to_dict(), "state_dict": ckpt.state_dict,
               "config": ckpt.training.get("config", {}), "history": history}
    dst = _path(dst, "slim_checkpoint")
    if dst.suffix.lower() != ".pt":  # m.PT names a checkpoint as well as m.pt
        raise CheckpointError(f"{dst}: a checkpoint file ends in .pt")
    _write(payload, dst)
    return dst
