"""Checkpoints: one file holding weights, schema, preprocessing and the config that made them.

Files are written with ``torch.save`` from plain containers and tensors only, and read back with
``torch.load(weights_only=True)``, so loading a checkpoint never executes code from it.

Examples
--------
>>> import tempfile, os
>>> from facekeypoints.models import create_model
>>> m = create_model("simple_cnn", schema="nose1")
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> save_checkpoint(path, m, preprocess={"size": 96})
>>> model, ckpt = load_model(path); ckpt["model"]["name"], model.schema_name
('simple_cnn', 'nose1')
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from facekeypoints.schema import KeypointSchema, load_schema

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "slim_checkpoint", "check_compatible", "CheckpointError", "FORMAT"]

FORMAT = "facekeypoints-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or belongs to another model or schema."""


def save_checkpoint(path: str | Path, model: nn.Module, *, preprocess: dict, **extra) -> None:
    """Write ``model``'s weights with its name, schema and preprocessing, plus ``extra`` plain data
    (config, epoch, optimizer state, history, metrics ...). Written atomically: a kill during the
    write leaves the previous file intact."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    schema = load_schema(model.schema_name)
    payload = {
        "format": FORMAT,
        "model": {"name": model.model_name, "input_size": int(model.input_size), "in_channels": int(getattr(model, "in_channels", 1)),
                  "options": dict(getattr(model, "model_options", {}))},
        "schema": schema.to_dict(),
        "preprocess": dict(preprocess),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint without executing code; errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or damaged files
        raise CheckpointError(f"{path}: not a readable facekeypoints checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a facekeypoints checkpoint (expected format {FORMAT!r})")
    return ckpt


def check_compatible(ckpt: dict, model_name: str, schema: str | KeypointSchema, source: str = "checkpoint") -> None:
    """Refuse a checkpoint made for another model or schema, saying which differs."""
    schema_name = schema if isinstance(schema, str) else schema.name
    if ckpt["model"]["name"] != model_name:
        raise CheckpointError(f"{source} holds model {ckpt['model']['name']!r}, not {model_name!r}")
    if ckpt["schema"]["name"] != schema_name:
        raise CheckpointError(f"{source} was trained for schema {ckpt['schema']['name']!r}, not {schema_name!r}")


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model in eval mode, checkpoint)."""
    from facekeypoints.models.registry import create_model

    ckpt = load_checkpoint(path)
    schema = KeypointSchema.from_dict(ckpt["schema"], source=str(path))
    model = create_model(ckpt["model"]["name"], schema=schema, input_size=ckpt["model"]["input_size"],
                         in_channels=ckpt["model"].get("in_channels", 1), **ckpt["model"].get("options", {}))
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit model {ckpt['model']['name']!r} "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval(), ckpt


def slim_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a training checkpoint without optimizer and resume state, for shipping: weights,
    schema, preprocessing, config, the epoch's metrics and the per-epoch history stay."""
    ckpt = load_checkpoint(src)
    keep = {k: ckpt[k] for k in ("format", "model", "schema", "preprocess", "state_dict", "config", "metrics") if k in ckpt}
    keep["history"] = ckpt.get("train_state", {}).get("history", [])
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(keep, dst)
    return dst
