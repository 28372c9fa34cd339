"""Experiment configuration: plain dataclasses, YAML files and ``--set key=value`` overrides.

A config file mirrors the dataclasses below (sections data, model, preprocess, augment, train).
Values given with ``--set`` are parsed with ``yaml.safe_load`` and checked against the field types;
unknown keys are rejected with the closest valid names.

Examples
--------
>>> cfg = load_config(None, ["train.epochs=3", "model.name=simple_cnn"])
>>> cfg.train.epochs, cfg.model.name
(3, 'simple_cnn')
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "load_config", "config_from_dict", "ConfigError"]


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds a value of the wrong type."""


@dataclass
class DataConfig:
    train: str = "../shared/data/fkd15-ytf/training.zip"
    val: str | None = None  # a separate validation file; otherwise split `train`
    persons: str | None = None  # CSV whose `person` column matches `train` row for row
    # a 68-point file of the same faces row for row (ytf68/train.csv for fkd15-ytf): fills the
    # training rows' missing Kaggle labels exactly; validation rows keep only their own labels
    complete_labels: str | None = None
    schema: str = "kaggle15"
    split: list[float] | str = field(default_factory=lambda: [0.8, 0.2])  # ratios, or "imm" (people 1-32 / 33-40)
    split_seed: int = 0
    missing: str = "mask"  # drop (seed 000) | ffill (seed 001) | mask (seed 002)
    # how faces reach the model's input size: none (already framed, e.g. Kaggle CSVs), kaggle
    # (aligned to the Kaggle mean face by their labels, as `data convert` does) or resize (whole image)
    frame: str = "none"


@dataclass
class ModelConfig:
    name: str = "keypoint_net"
    pretrained: str | bool = False  # a local weights file, or True to let the library download
    options: dict = field(default_factory=dict)  # the model's own keywords, e.g. {stem_stride: 4}


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adam | adamw
    scheduler: str = "cosine"  # cosine | step | plateau | none
    step_size: int = 10  # epochs between step decays
    gamma: float = 0.7  # step / plateau decay factor (seed 001: 0.7)
    patience: int = 0  # early stopping on validation RMSE; 0 = off (seed 001: 20)
    loss: str = "mse"
    loss_params: dict = field(default_factory=dict)
    seed: int = 0
    time_limit_min: float = 0.0  # stop after this many minutes of training; 0 = no limit
    num_threads: int = 0  # torch threads; 0 = torch's default
    mirror_tta: bool = False  # validation with mirror test-time augmentation
    log_every: int = 1  # epochs between validation passes


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: dict = field(default_factory=dict)  # facekeypoints.data.transforms.Preprocess fields
    augment: dict = field(default_factory=dict)  # facekeypoints.data.transforms.Augment fields
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs/default"
    name: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_type(value, tp, key: str):
    """Return ``value`` if it fits type ``tp`` (ints are accepted for floats); raise ConfigError otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _check_type(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    base = origin or tp
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if not isinstance(value, base):
        raise ConfigError(f"{key}: expected {getattr(base, '__name__', base)}, got {type(value).__name__} {value!r}")
    return value


def _apply(obj, values: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), n=3)
            raise ConfigError(f"unknown config key {full!r}" + (f"; did you mean {[prefix + c for c in close]}?" if close else f"; valid: {sorted(hints)}"))
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping of {sorted(typing.get_type_hints(type(current)))}")
            _apply(current, value, prefix=f"{full}.")
        elif isinstance(current, dict) and key in ("preprocess", "augment", "loss_params", "options") and isinstance(value, dict):
            current.update(value)
        else:
            setattr(obj, key, _check_type(value, hints[key], full))


def _nest(dotted: str, value) -> dict:
    out: dict = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides (e.g. ``train.epochs=3``)."""
    cfg = Config()
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            _apply(cfg, loaded)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        _apply(cfg, _nest(key.strip(), yaml.safe_load(raw)))
    return cfg


def config_from_dict(values: dict) -> Config:
    """A Config from a plain dict (e.g. the ``config`` saved in a checkpoint or config.json)."""
    cfg = Config()
    _apply(cfg, values)
    return cfg
