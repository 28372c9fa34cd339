"""The one model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

A model entrypoint is a plain function registered under its own name. It takes explicit keywords
(``num_keypoints``, ``in_channels``, ``input_size`` and its own options) and returns an ``nn.Module``
whose forward maps (B, C, H, W) float images to (B, K, 2) normalised coordinates
(see :mod:`facekeypoints.models.codecs`).

Examples
--------
>>> import torch
>>> from facekeypoints.models import create_model, list_models
>>> "keypoint_net" in list_models("keypoint_*")
True
>>> m = create_model("simple_cnn", schema="nose1")
>>> m(torch.zeros(2, 1, 96, 96)).shape, m.schema_name, m.input_size
(torch.Size([2, 1, 2]), 'nose1', 96)
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import numbers
from typing import Callable

import torch
from torch import nn

from facekeypoints.schema import KeypointSchema, load_schema
from facekeypoints.settings import SettingsError, check_keywords

__all__ = ["register_model", "create_model", "list_models", "model_info", "count_macs", "check_model_options",
           "option_defaults", "UnknownModelError"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}

# Keywords create_model fills in itself; the rest of an entrypoint's keywords are the family's options.
_RESERVED = ("num_keypoints", "in_channels", "input_size", "pretrained")
# px (preprocess.size too): faces are labelled at about 96; a 10**6 px input asked torch for terabytes.
# The lower end is each family's own (8 px for the CNNs, 32 for keypoint_net, 8 * stem_stride for a ResNet).
MAX_INPUT_SIZE = 1024
_CHANNELS = (1, 3)  # what Preprocess makes (grey or RGB): a model taking other channels has no input
# The smallest input side each family's forward pass takes with its default options (found by trying
# every size: below it a pooling or padding step gets a map too small, a bare torch error); model_info
# checks it first. Families not listed take any size (resnet50_tl pools adaptively).
MIN_INPUT_SIZES = {"cnn7m": 16, "densenet121_tl": 29, "face_cnn": 32, "fcnn": 8, "keypoint_net": 32,
                   "keypoint_net_reg": 32, "nose_cnn": 8, "resnet18": 32, "resnet26": 32, "resnet34": 32,
                   "resnet50": 32, "resnet50_aa": 17, "simple_cnn": 16}


def _name(value, what: str) -> str:
    """``value`` checked to be a str: a TypeError naming ``what``, before difflib or fnmatch fails on it."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    return value


def _int_arg(value, what: str) -> int:
    """``value`` as an int, refusing bools, floats and strings (int() made '1' and 96.5 silently valid)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _sizes(in_channels, input_size) -> tuple[int, int]:
    """(in_channels, input_size) checked: channels 1 or 3, a size from 1 to MAX_INPUT_SIZE."""
    in_channels, input_size = _int_arg(in_channels, "in_channels"), _int_arg(input_size, "input_size")
    if in_channels not in _CHANNELS:
        raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")
    if not 1 <= input_size <= MAX_INPUT_SIZE:
        raise ValueError(f"input_size must be from 1 to {MAX_INPUT_SIZE} pixels, got {input_size}")
    return in_channels, input_size


class UnknownModelError(ValueError):
    """No model is registered under the requested name."""


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Record ``fn`` in the registry under ``fn.__name__``; returns ``fn`` unchanged."""
    # the name is how create_model finds it: a lambda's '<lambda>' could never be asked for
    if not callable(fn) or not isinstance(getattr(fn, "__name__", None), str) or not fn.__name__.isidentifier():
        raise TypeError(f"register_model needs a named function (a model entrypoint), got {type(fn).__name__} {fn!r}")
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    _name(pattern, "list_models pattern")
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    _name(name, "model name")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else f"; known models: {list_models()}"
        raise UnknownModelError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def _check_keywords(name: str, fn: Callable, options: dict) -> dict:
    """``options`` checked as ``fn``'s keywords; a TypeError, as for any misspelt keyword argument,
    naming the nearest valid option."""
    try:
        return check_keywords(fn, options, what=f"model {name!r} option", skip=_RESERVED)
    except SettingsError as err:
        raise TypeError(str(err)) from None


# options that are layer widths (channels, units) and block counts: below these a layer is empty or
# impossible, which torch reports from deep inside the network ("cond must be a bool, but got int")
_LEAST = {"channels": 1, "head_channels": 1, "hidden": 1, "blocks": 0}


def _check_widths(options: dict, where: str) -> None:
    """SettingsError naming ``where``'s option whose width or count is below ``_LEAST``."""
    for key, least in _LEAST.items():
        value = options.get(key)
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        if value is not None and any(isinstance(v, numbers.Real) and v < least for v in values):
            what = "block counts" if key == "blocks" else "layer widths" if key == "hidden" else "channel counts"
            shown = values if isinstance(value, (tuple, list)) else value
            raise SettingsError(f"{where}{key}: {shown}; {what} must be whole numbers >= {least}")


def check_model_options(name: str, options: dict, *, where: str = "options", name_where: str = "name") -> dict:
    """``options`` checked against model ``name``'s keywords and their annotated types, before any
    model is built (a config is checked when it is loaded). Raises SettingsError naming ``where``, or
    ``name_where`` (e.g. ``model.name``) when no model has that name."""
    _name(name, "model name")
    if not isinstance(options, dict):  # a wrong type from a caller, not a config mistake: check_keywords iterated it
        raise TypeError(f"{where} must be a dict of model options, got {type(options).__name__} {options!r}")
    try:
        entrypoint = _entrypoint(name)
    except UnknownModelError as err:  # the name is what is wrong, not the options
        raise SettingsError(f"{name_where}: {err}") from None
    try:
        options = check_keywords(entrypoint, options, what=f"model {name!r} option", skip=_RESERVED)
    except SettingsError as err:
        raise SettingsError(f"{where}: {err}") from None
    _check_widths(options, f"{where}.")
    return options


def create_model(name: str, *, schema: str | KeypointSchema = "kaggle15", in_channels: int = 1,
                 input_size: int = 96, pretrained: bool | str = False, **options) -> nn.Module:
    """Build a registered model for ``schema``'s keypoints.

    The model maps (B, in_channels, input_size, input_size) float images to (B, K, 2) normalised
    coordinates, K = ``schema.num_keypoints``. ``options`` are the family's own explicit keywords
    (a misspelt one raises TypeError). ``pretrained`` is False (random init), True (the backing
    library's usual ImageNet download) or a path to a local state-dict file; only the transfer
    learning families accept it. The model carries ``model_name``, ``schema_name``, ``input_size``,
    ``in_channels`` and ``model_options`` so a checkpoint can rebuild it.

    Examples
    --------
    >>> m = create_model("keypoint_net", schema="ibug68", input_size=64)
    >>> m(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 68, 2])
    >>> try:
    ...     create_model("resnet81")
    ... except UnknownModelError as err:
    ...     print(str(err)[:50])
    unknown model 'resnet81'; did you mean ['resnet18'
    """
    fn = _entrypoint(name)
    options = _check_keywords(name, fn, options)
    try:
        _check_widths(options, "")
    except SettingsError as err:  # a value, not a keyword: ValueError, as for the sizes below
        raise ValueError(f"model {name!r} option {err}") from None
    in_channels, input_size = _sizes(in_channels, input_size)
    if not isinstance(schema, (str, KeypointSchema)):
        raise TypeError(f"schema must be a schema name or a KeypointSchema, got {type(schema).__name__} {schema!r}")
    schema_obj = schema if isinstance(schema, KeypointSchema) else load_schema(schema)
    kwargs = dict(num_keypoints=schema_obj.num_keypoints, in_channels=in_channels, input_size=input_size, **options)
    if "pretrained" in inspect.signature(fn).parameters:
        kwargs["pretrained"] = pretrained
    elif pretrained:
        raise ValueError(f"model {name!r} is trained from scratch and takes no pretrained weights; "
                         f"models that do: {[n for n in list_models() if 'pretrained' in inspect.signature(_MODELS[n]).parameters]}")
    try:
        model = fn(**kwargs)
    except OSError as err:  # offline: torchvision's raw URLError named neither the option nor the way round it
        if pretrained is not True:
            raise
        raise ValueError(f"model {name!r}: pretrained=True downloads ImageNet weights, which failed here "
                         f"({type(err).__name__}: {err}); offline, give a local weights file instead: "
                         "pretrained='weights.pth' (a state dict, or .safetensors; model.pretrained in a "
                         "training config)") from None
    model.model_name = name
    model.schema_name = schema_obj.name
    model.input_size = input_size
    model.in_channels = in_channels
    # every option, defaults included: a checkpoint rebuilds the same model even if a default changes
    model.model_options = {**option_defaults(name), **options}
    return model


def option_defaults(name: str) -> dict:
    """Model ``name``'s own options with their default values, e.g. ``{"channels": (32, 64, 128, 256)}``:
    an option given at its default builds the same model as one left out."""
    return {p.name: p.default for p in inspect.signature(_entrypoint(name)).parameters.values()
            if p.name not in _RESERVED and p.default is not inspect.Parameter.empty}


def count_macs(model: nn.Module, input_shape: tuple[int, int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on a zero input of ``input_shape`` = (B, C, H, W).

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs per MAC).
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(model, nn.Module):
        raise TypeError(f"count_macs needs an nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4 or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in input_shape):
        raise ValueError(f"input_shape must be 4 positive ints (B, C, H, W), got {input_shape!r}")
    channels = getattr(model, "in_channels", None)
    if isinstance(channels, int) and input_shape[1] != channels:
        raise ValueError(f"input_shape {tuple(input_shape)} has {input_shape[1]} channels, the model takes {channels}")
    was_training = model.training
    device = next(model.parameters()).device  # works on the "meta" device too: shapes are all it needs
    counter = FlopCounterMode(display=False)
    try:  # a failed forward pass must not leave the caller's model in eval mode
        model.eval()
        with torch.no_grad(), counter:
            model(torch.zeros(tuple(int(v) for v in input_shape), device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _doc_fields(fn: Callable) -> tuple[str, str]:
    """(first docstring line, text after 'Reference:') of an entrypoint."""
    lines = [ln.strip() for ln in (inspect.getdoc(fn) or "").splitlines()]
    description = lines[0] if lines else ""
    reference = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Reference:")), "")
    return description, reference


def model_info(name: str, *, schema: str | KeypointSchema = "kaggle15", input_size: int = 96) -> dict:
    """Description, source reference, parameter count and MACs per image of a registered model.

    Examples
    --------
    >>> info = model_info("fcnn"); info["params"], info["reference"][:8]
    (4623530, 'seed 002')
    """
    fn = _entrypoint(name)
    _, input_size = _sizes(1, input_size)  # before torch's own error for a str or float size
    if input_size < MIN_INPUT_SIZES.get(name, 1):  # before torch's error from deep in the forward pass
        raise ValueError(f"input_size {input_size}: {name} needs at least {MIN_INPUT_SIZES[name]} pixels")
    description, reference = _doc_fields(fn)
    with torch.device("meta"):  # shapes only: no memory for weights, no random init
        model = create_model(name, schema=schema, input_size=input_size)
    return {
        "name": name,
        "description": description,
        "reference": reference,
        "params": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(model, (1, model.in_channels, input_size, input_size)),
        "input_size": input_size,
        "schema": model.schema_name,
        "options": {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.name not in _RESERVED},
    }
