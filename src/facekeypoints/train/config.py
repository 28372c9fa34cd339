"""Experiment configuration: plain dataclasses, YAML files and ``--set key=value`` overrides.

A config file mirrors the dataclasses below (sections data, model, preprocess, augment, train).
Values are checked when the config is loaded, against the field types, and model options and loss
parameters against the keywords of the chosen model and loss: an unknown key or a value of the
wrong type fails at once, naming the closest valid key. ``--set`` values are parsed with
YAML (``settings.load_yaml``: ``1e-3`` is a number, a repeated key is an error).

Examples
--------
>>> cfg = load_config(None, ["train.epochs=3", "model.name=simple_cnn", "preprocess.clahe=true"])
>>> cfg.train.epochs, cfg.model.name, cfg.preprocess.clahe
(3, 'simple_cnn', True)
>>> load_config(None, ["train.loss=wing", "train.loss_params={w: 0.1, epsilon: 0.02}"]).train.loss_params
{'w': 0.1, 'epsilon': 0.02}
>>> load_config(None, ["train.loss=wing", "train.loss_params={eps: 0.1}"])
Traceback (most recent call last):
...
facekeypoints.settings.SettingsError: train.loss_params: loss 'wing' parameter 'eps' does not exist (valid: ['w', 'epsilon']); did you mean ['epsilon']?
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from facekeypoints.data.augment import Augment
from facekeypoints.data.pipeline import DATA_PATH_KEYS, DataConfig
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.models import UnknownModelError, check_model_options, option_defaults
from facekeypoints.models.registry import MAX_INPUT_SIZE
from facekeypoints.models.device import AMP_MODES
from facekeypoints.models.threads import max_threads
from facekeypoints.settings import SettingsError, from_dict, load_yaml, read_yaml
from facekeypoints.train.losses import check_loss_params

__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "ReferenceConfig", "load_config", "config_from_dict",
           "default_recipe", "ConfigError"]

ConfigError = SettingsError  # the name callers catch; one error type for every settings loader


@dataclass
class ModelConfig:
    name: str = "keypoint_net"
    pretrained: str | bool = False  # a local weights file, or True to let the library download
    options: dict = field(default_factory=dict)  # the model's own keywords, e.g. {stem_stride: 4}


OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine", "step", "plateau", "none")


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
    loss_params: dict = field(default_factory=dict)  # the loss's own keywords, e.g. {w: 0.2} for wing
    seed: int = 0
    time_limit_min: float = 0.0  # stop after this many minutes of training; 0 = no limit
    num_threads: int = 0  # torch threads; 0 = torch's default
    mirror_tta: bool = False  # validation with mirror test-time augmentation
    log_every: int = 1  # epochs between validation passes
    device: str = "auto"  # auto (the GPU when there is one) | cpu | cuda | cuda:N | mps
    amp: str = "none"  # mixed precision: none | bf16 | fp16 (fp16 on GPUs only)
    channels_last: bool | None = None  # NHWC memory layout; null: on for CUDA, off on the CPU
    label_offset: bool = False  # learn the labellers' mirror-breaking offset (train/label_offset.py)
    ema: float = 0.0  # exponential moving average of the weights, decay per step (e.g. 0.998); 0 = off
    teacher: str | None = None  # a checkpoint whose keypoints are extra targets (train/distill.py)
    distill_weight: float = 1.0  # the teacher's loss beside the labels' loss
    teacher_max_disagreement: float = 2.0  # px between its plain and mirrored looks; beyond it, no target
    # oversample turned faces: a training face is drawn with weight 1 + turned_weight * min(|yaw|, 1) / 0.3
    # (yaw from its labelled eyes and nose tip, evaluate.photos.yaw_proxy; about 0.3 at 30 degrees); 0 = off
    turned_weight: float = 0.0

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "log_every": self.log_every,
                    "step_size": self.step_size, "lr": self.lr}
        for key, value in positive.items():
            if not 0 < value < float("inf"):
                raise ValueError(f"train.{key} must be a finite number > 0, got {value!r}")
        for key in ("weight_decay", "patience", "time_limit_min", "num_threads"):
            if getattr(self, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(self, key)!r}")
        if not 0 <= self.seed < 2**32:  # torch and numpy seeds are unsigned 32/64-bit numbers
            raise ValueError(f"train.seed must be a whole number in [0, 2**32), got {self.seed!r}")
        threads = max_threads()
        if self.num_threads > threads:
            raise ValueError(f"train.num_threads must be at most {threads} on this machine, got {self.num_threads!r}")
        if self.teacher is not None and not str(self.teacher).strip():
            raise ValueError("train.teacher is empty; give a checkpoint, or null for no teacher")
        if not 0 <= self.distill_weight < float("inf"):  # 0: the teacher only labels data.unlabeled
            raise ValueError(f"train.distill_weight must be a finite number >= 0, got {self.distill_weight!r}")
        if not 0 < self.teacher_max_disagreement < float("inf"):
            raise ValueError(f"train.teacher_max_disagreement must be a finite number > 0, got "
                             f"{self.teacher_max_disagreement!r}")
        if not 0 <= self.turned_weight <= 100:
            raise ValueError(f"train.turned_weight must be in [0, 100] (0 = off), got {self.turned_weight!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"train.ema must be in [0, 1) (a decay per step; 0 = off), got {self.ema!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"train.gamma must be in (0, 1], got {self.gamma!r}")
        # the words, checked here rather than when training builds them (after minutes of reading data)
        for key, known in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("amp", AMP_MODES)):
            if getattr(self, key) not in known:
                raise ValueError(f"train.{key}: {getattr(self, key)!r} is not one of {', '.join(known)}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(self.device)):
            raise ValueError(f"train.device: {self.device!r} is not one of auto, cpu, cuda, cuda:N, mps")
        # whether the device is there is checked when training starts (a config may be written for another machine)


@dataclass
class ReferenceConfig:
    """What the report a config reproduces did and measured: the columns beside ours in the grid's table."""

    source: str = ""  # e.g. "seed 004"
    epochs: int = 0  # the source's own epoch count: `facekeypoints grid --full` trains this many
    measured: str = ""  # its figure for this recipe, quoted, with what it was measured on
    differs: str = ""  # what differs here: data, budget, weights


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: Preprocess = field(default_factory=Preprocess)  # uint8 crop -> model input
    augment: Augment = field(default_factory=Augment)  # random training transforms
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs/default"
    name: str = ""
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)

    def to_dict(self) -> dict:
        """Plain types only (tuples become lists), as written to config.json and checkpoints."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# Settings added after runs were recorded (grid rows, stopped runs' checkpoints). At their defaults
# they change nothing, so a recipe's identity (the grid's digest, the resume check) leaves them out
# and runs recorded before they existed still match their configs.
ADDED_SETTINGS = {"train": {"label_offset": False, "ema": 0.0, "teacher": None, "distill_weight": 1.0,
                            "teacher_max_disagreement": 2.0, "turned_weight": 0.0},
                  "data": {"unlabeled": None}}


def recipe_values(values: dict) -> dict:
    """A config's plain values (``Config.to_dict()``, or a saved copy) without the ``ADDED_SETTINGS``
    that hold their defaults, or are absent because the run predates them, and without the model
    options given at the model's own defaults (written out or left out, the same model is built)."""
    out = json.loads(json.dumps(values))
    for section, defaults in ADDED_SETTINGS.items():
        part = out.get(section)
        for key, default in defaults.items():
            if isinstance(part, dict) and key in part and part[key] == default:
                del part[key]
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("options"), dict):
        try:
            defaults = json.loads(json.dumps(option_defaults(model.get("name"))))  # tuples as lists, as saved
        except (UnknownModelError, TypeError):  # a model no longer registered: its options as they were
            defaults = {}
        model["options"] = {k: v for k, v in model["options"].items() if k not in defaults or v != defaults[k]}
    return out


def _check_together(cfg: Config) -> None:
    """Settings that mean nothing without another. One left at its default is never refused: only a
    value that was given and would be ignored."""
    if cfg.train.label_offset and cfg.augment.flip_prob == 0:
        raise ConfigError("train.label_offset is learnt from mirrored faces; with augment.flip_prob 0 there are "
                          "none (without mirroring the network learns the labellers' habit itself): set one or the other")
    t, train_default = cfg.train, TrainConfig()
    if t.amp == "fp16" and t.device == "cpu":
        raise ConfigError("train.amp fp16 needs a GPU (float16 has no fast CPU kernels), and train.device is cpu; use "
                          "train.amp bf16 on the CPU")
    if cfg.data.unlabeled and not t.teacher:  # nothing would teach from faces without labels
        raise ConfigError(f"data.unlabeled {cfg.data.unlabeled}: unlabelled faces are learnt from a teacher's targets; "
                          "set train.teacher (a trained checkpoint), or leave data.unlabeled out")
    if t.teacher and t.distill_weight == 0 and not cfg.data.unlabeled:
        raise ConfigError("train.distill_weight 0 turns the teacher's targets off, and without data.unlabeled (faces "
                          "it labels once) the teacher would do nothing; give data.unlabeled, or a weight > 0")
    if not t.teacher:
        for key in ("distill_weight", "teacher_max_disagreement"):
            if getattr(t, key) != getattr(train_default, key):
                raise ConfigError(f"train.{key} {getattr(t, key)!r} has no effect without train.teacher (it applies to "
                                  f"the teacher's targets); set train.teacher, or leave train.{key} out")
    for key, users in (("step_size", ("step",)), ("gamma", ("step", "plateau"))):
        if t.scheduler not in users and getattr(t, key) != getattr(train_default, key):
            raise ConfigError(f"train.{key} {getattr(t, key)!r} has no effect with train.scheduler {t.scheduler!r} "
                              f"(used only by train.scheduler {' and '.join(users)}); set train.scheduler: "
                              f"{users[0]}, or leave train.{key} out")
    d, data_default = cfg.data, DataConfig()
    if d.val is not None and d.split == "imm":  # which people are held out: a choice data.val would overrule
        raise ConfigError(f"data.split 'imm' (IMM's people 33-40 as validation) has no effect with data.val "
                          f"{d.val} (validation is data.val, data.train is all training); leave out one or the other")
    if d.val is not None:  # ratios are only how much to hold out: said, not refused (a file's split, --set data.val)
        unused = [f"data.{key} {getattr(d, key)!r}" for key in ("split", "split_seed")
                  if getattr(d, key) != getattr(data_default, key)]
        if unused:
            warnings.warn(f"{' and '.join(unused)} not used: data.val {d.val} is the validation set and all of "
                          "data.train trains", stacklevel=2)


_SECTIONS = ("data", "model", "preprocess", "augment", "train", "reference")


def _merge(cfg: Config, values: dict, by: str | None = None, came_from: dict | None = None) -> Config:
    """``values`` laid over ``cfg``. Model options and loss parameters are merged key by key while
    the model (loss) stays the same; choosing another one starts from its own defaults, since the
    old one's keywords mean nothing to it, and the dropped ones are warned of (``by``: what chose the
    other one, e.g. "--set model.name"; ``came_from``: section -> where the dropped ones were given).
    An empty section (``augment:`` with nothing under it) changes nothing; a section given a single
    value is refused."""
    values = dict(values)
    for section in _SECTIONS:
        if section in values and values[section] is None:
            values[section] = {}
        elif section in values and not isinstance(values[section], dict):
            raise ConfigError(f"{section}: expected a mapping of settings (e.g. {section}.KEY=VALUE, or under "
                              f"{section}: in a file), got {type(values[section]).__name__} {values[section]!r}")
    for section, name, key in (("model", "name", "options"), ("train", "loss", "loss_params")):
        part = values.get(section)
        if not isinstance(part, dict):
            continue
        before, old = getattr(getattr(cfg, section), name), getattr(getattr(cfg, section), key)
        other = part.get(name, before) != before
        kept = {} if other else old
        if other and old and key not in part:  # said, not silent: the user gave them, and they would vanish
            where = f" from {came_from[section]}" if came_from and came_from.get(section) else ""
            warnings.warn(f"{section}.{key} {old}{where} dropped: they belong to {section}.{name} {before!r}, and "
                          f"{by or section + '.' + name} chose {part[name]!r}; give {section}.{key} for "
                          f"{part[name]!r} with it if it needs any", stacklevel=3)
        given = part.get(key, {})
        values = {**values, section: {**part, key: {**kept, **given} if isinstance(given, dict) else given}}
    try:
        return from_dict(Config, values, base=cfg)
    except SettingsError as err:  # a section's own check names its class after the key: "augment.Augment.padding"
        text = str(err)
        for section in _SECTIONS:
            cls = type(getattr(cfg, section)).__name__
            text = text.replace(f"{section}.{cls}.", f"{section}.")
        if text == str(err):
            raise
        raise ConfigError(text) from None


def _check(cfg: Config) -> Config:
    """Model options and loss parameters against the chosen model's and loss's keywords."""
    cfg.model.options = check_model_options(cfg.model.name, cfg.model.options, where="model.options",
                                            name_where="model.name")
    cfg.train.loss_params = check_loss_params(cfg.train.loss, cfg.train.loss_params, where="train.loss_params")
    if not cfg.out_dir.strip():
        raise ConfigError("out_dir: empty; a run needs a folder of its own (e.g. runs/my_run)")
    _expand_home(cfg)
    if isinstance(cfg.model.pretrained, str) and not cfg.model.pretrained.strip():
        raise ConfigError("model.pretrained: empty; give a local weights file, true (download ImageNet weights) "
                          "or false")
    _check_sizes(cfg)
    _check_schema(cfg)
    _check_model_builds(cfg)
    return cfg


MAX_PARAMETERS = 500_000_000  # far beyond every shipped model (resnet50: 25M); more is a typo, not a recipe


def _check_sizes(cfg: Config) -> None:
    """Sizes that would fail late as raw allocation errors (a 100000 px face is 40 GB), bounded here."""
    pre = cfg.preprocess
    if pre.size > MAX_INPUT_SIZE:
        raise ConfigError(f"preprocess.size {pre.size} is more than {MAX_INPUT_SIZE}: faces are framed and labelled "
                          f"at about 96 px, and each input of {pre.size}x{pre.size} would take "
                          f"{pre.size * pre.size * 4 / 1e9:.1f} GB; give a size up to {MAX_INPUT_SIZE}")
    if pre.clahe_grid > pre.size:
        raise ConfigError(f"preprocess.clahe_grid {pre.clahe_grid} is more than preprocess.size {pre.size}: "
                          "tiles smaller than a pixel; give a grid up to the size (e.g. 8)")


def _check_schema(cfg: Config) -> None:
    """data.schema named as the setting at fault (the model build below would be blamed otherwise)."""
    from facekeypoints.schema import load_schema

    try:
        load_schema(cfg.data.schema)
    except ValueError as err:
        raise ConfigError(f"data.schema: {err}") from None


def _expand_home(cfg: Config) -> None:
    """``~`` in every path setting means the home folder, once, here: no later step meets a literal ``~``."""
    def home(value):
        return os.path.expanduser(value) if isinstance(value, str) and value.startswith("~") else value

    cfg.out_dir = home(cfg.out_dir)
    for key in DATA_PATH_KEYS:
        setattr(cfg.data, key, home(getattr(cfg.data, key)))
    cfg.model.pretrained, cfg.train.teacher = home(cfg.model.pretrained), home(cfg.train.teacher)


def _check_model_builds(cfg: Config) -> None:
    """Build the model and run a batch through it on torch's meta device (shapes only: no memory, no
    arithmetic), so options that fit the keywords but not each other (a layer of 0 channels, an
    input too small for the network) fail when the config loads, not after the data has."""
    import torch

    from facekeypoints.models import create_model
    from facekeypoints.schema import load_schema

    pre = cfg.preprocess
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors": the error below says it
            model = create_model(cfg.model.name, schema=load_schema(cfg.data.schema), in_channels=pre.channels,
                                 input_size=pre.size, **cfg.model.options)
            parameters = sum(p.numel() for p in model.parameters())
            if parameters > MAX_PARAMETERS:
                raise ConfigError(f"model {cfg.model.name!r} with model.options {cfg.model.options} has {parameters:,} "
                                  f"parameters, more than {MAX_PARAMETERS:,} ({parameters * 4 / 1e9:.0f} GB of "
                                  "weights alone); give smaller model.options")
            model.eval()(torch.zeros(2, pre.channels, pre.size, pre.size))
    except ConfigError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, ZeroDivisionError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model {cfg.model.name!r} with options {cfg.model.options} at {pre.size}x{pre.size} "
                          f"cannot be built: {message}") from None


def _leaves(values: dict, prefix: str = "") -> dict:
    """{"train": {"epochs": 2}} -> {"train.epochs": 2}: the settings a nested override gives."""
    out: dict = {}
    for key, value in values.items():
        out.update(_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value
                   else {f"{prefix}{key}": value})
    return out


def _nest(dotted: str, value) -> dict:
    out: dict = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def default_recipe() -> Path:
    """The shipped default recipe (``configs/default.yaml`` in a checkout links to it)."""
    return Path(str(resources.files("facekeypoints").joinpath("recipes", "default.yaml")))


def _check_config_file(path: str | Path) -> None:
    """A config path that is not a readable regular file, said in one line (a FIFO would block the read forever)."""
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ConfigError(f"{path}: a symbolic link loop (it links back to itself); give a .yaml file") from None
        if err.errno == errno.ENOENT:
            raise ConfigError(f"{path}: no such config file") from None
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):  # a folder: read_yaml says so
        raise ConfigError(f"{path}: not a regular file; give a .yaml file")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                empty_hint: str = "leave out --config for the default recipe") -> Config:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides (e.g. ``train.epochs=3``).
    ``empty_hint`` ends the error for an empty file: the caller's other way out (grid has no --config)."""
    cfg = Config()
    if path is not None:
        _check_config_file(path)
        loaded = read_yaml(path)
        if loaded is None or loaded == {}:
            raise ConfigError(f"{path}: the config file is empty; give at least one section (e.g. train:), "
                              f"or {empty_hint}")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            cfg = _check(_merge(cfg, loaded))
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    came_from = {section: str(path) for section in ("model", "train") if path is not None}
    set_by: dict[str, tuple] = {}  # each setting an override gives: (its value, the override)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        value = load_yaml(raw, f"override {item!r}")
        if raw.count("#") > json.dumps(value, default=str).count("#"):  # a " #" began a YAML comment: text dropped
            raise ConfigError(f"override {item!r}: YAML reads the text from '#' on as a comment and would drop it; "
                              f"quote the value to keep it: {key.strip()}={json.dumps(raw.strip())}")
        nested = _nest(key.strip(), value)
        for setting, value in _leaves(nested).items():  # the last one would win without a word
            if setting in set_by and set_by[setting][0] != value:
                raise ConfigError(f"--set {setting} is given twice, as {set_by[setting][0]!r} ({set_by[setting][1]!r}) "
                                  f"and as {value!r} ({item!r}); give it once")
            set_by[setting] = (value, item)
        cfg = _merge(cfg, nested, by=f"--set {key.strip()}", came_from=came_from)
        for section, options in (("model", "options"), ("train", "loss_params")):  # where the next drop comes from
            if isinstance(nested.get(section), dict) and options in nested[section]:
                came_from[section] = f"--set {key.strip()}"
    cfg = _check(cfg)
    _check_together(cfg)  # once everything is laid over: an override may settle what the file left
    return cfg


def config_from_dict(values: dict) -> Config:
    """A Config from a plain dict (e.g. the ``config`` saved in a checkpoint or config.json)."""
    return _check(_merge(Config(), values))
