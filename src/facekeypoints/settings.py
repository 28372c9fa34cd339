"""Typed settings from plain data: the one loader behind configs, model cards and preprocessing.

YAML files, ``--set`` overrides, checkpoints and ONNX metadata all hold plain dicts; the dataclasses
that use them call :func:`from_dict`, so a misspelt key or a value of the wrong type fails where it
is read, naming the key and the closest valid one, instead of far away when it is used.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass
... class Opt:
...     epochs: int = 3
...     lr: float = 0.1
>>> from_dict(Opt, {"lr": 1})
Opt(epochs=3, lr=1.0)
>>> from_dict(Opt, {"epoch": 5}, where="train.")
Traceback (most recent call last):
...
facekeypoints.settings.SettingsError: unknown key 'train.epoch'; did you mean ['train.epochs']?
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import inspect
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

__all__ = ["SettingsError", "from_dict", "check_type", "check_keywords", "load_yaml", "read_yaml"]


class SettingsError(ValueError):
    """A setting names an unknown key or holds a value of the wrong type."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's surprises: numbers are read as YAML 1.2 reads them
    (see the resolvers below), and a key given twice in one mapping is an error instead of the
    last one silently winning."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *defaults": PyYAML merges it below
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):  # every settings key is a name: 1, true or [a, b] cannot be one
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is not a name (keys are text)", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (also on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's numbers instead of 1.1's: "010" is ten (not octal 8), "1:00" is text (not base-60
# 60), and "1e-3" is a float (1.1 wants a dot)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _int_1_2(loader, node) -> int:
    text = loader.construct_scalar(node)
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _int_1_2)


def load_yaml(text: str, source: str) -> Any:
    r"""The YAML document in ``text`` (see ``_StrictLoader``); SettingsError naming ``source`` and
    the line when it is not valid YAML.

    >>> load_yaml("lr: 1e-3", "x")
    {'lr': 0.001}
    >>> load_yaml("a: 1\na: 2", "x.yaml")
    Traceback (most recent call last):
    ...
    facekeypoints.settings.SettingsError: x.yaml: not valid YAML: line 2, column 1: key 'a' appears twice (also on line 1)
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader subclass)
    except RecursionError:
        raise SettingsError(f"{source}: nested too deeply to be a settings file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SettingsError(f"{source}: not valid YAML: {where}{problem}") from None


def read_yaml(path: str | Path) -> Any:
    """``load_yaml`` of a file's text; a file that is not UTF-8 text is a SettingsError naming it."""
    if Path(path).is_dir():
        raise SettingsError(f"{path}: is a folder; give a .yaml file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SettingsError(f"{path}: not a YAML text file (byte {err.start} is not UTF-8)") from None
    return load_yaml(text, str(path))


def check_type(value: Any, tp: Any, key: str) -> Any:
    """``value`` if it fits type ``tp`` (ints pass for floats, lists for tuples, which they become);
    SettingsError naming ``key`` otherwise. Unparameterised and unknown types pass unchecked."""
    origin = typing.get_origin(tp)
    if tp is Any or isinstance(tp, (str, typing.TypeVar)):
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return check_type(value, option, key)
            except SettingsError:
                continue
        raise SettingsError(f"{key}: {value!r} is not {_name(tp)}")
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise SettingsError(f"{key}: {value!r} is not one of {list(typing.get_args(tp))}")
    if tp is type(None):
        if value is None:
            return None
        raise SettingsError(f"{key}: expected null, got {value!r}")
    base = origin or tp
    if not isinstance(base, type):
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{key}: expected a finite number, got {value!r}")
    if base is int and isinstance(value, bool):
        raise SettingsError(f"{key}: expected an integer, got {value!r}")
    if base is tuple and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, base):
        quote = "; quote it to keep it as text: '...'" if tp is str and isinstance(value, (int, float, datetime.date)) \
            else ""  # YAML reads 2024-05-01 as a date and 1.10 as the number 1.1
        raise SettingsError(f"{key}: expected {_name(tp)}, got {type(value).__name__} {value!r}{quote}")
    args = typing.get_args(tp)
    if base is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise SettingsError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(check_type(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if base in (tuple, list) and args:
        return base(check_type(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    return value


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _unknown(key: str, valid: list[str], where: str) -> SettingsError:
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f"; did you mean {[where + c for c in close]}?" if close else f"; valid: {sorted(valid)}"
    return SettingsError(f"unknown key {where + key!r}{hint}")


def from_dict(cls: type, values: dict, *, where: str = "", base: Any = None) -> Any:
    """An instance of dataclass ``cls`` from ``values``, over ``base`` (an instance) or the defaults.

    Nested dataclass fields are built the same way from nested mappings. ``where`` prefixes key
    names in errors (e.g. ``"train."``). The dataclass's own ``__post_init__`` checks still run.
    """
    if not isinstance(values, dict):
        raise SettingsError(f"{where.rstrip('.') or cls.__name__}: expected a mapping of "
                            f"{[f.name for f in dataclasses.fields(cls)]}, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    changes = {}
    for key, value in values.items():
        if key not in names:
            raise _unknown(key, names, where)
        current = getattr(base, key, None) if base is not None else None
        nested = _dataclass_in(hints[key])
        if nested is not None and isinstance(value, dict):
            changes[key] = from_dict(nested, value, where=f"{where}{key}.",
                                     base=current if dataclasses.is_dataclass(current) else None)
        elif nested is not None and dataclasses.is_dataclass(value):
            changes[key] = value
        else:
            changes[key] = check_type(value, hints[key], where + key)
    try:
        return dataclasses.replace(base, **changes) if base is not None else cls(**changes)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{where}{err}" if where and not str(err).startswith(where) else str(err)) from None


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass type ``tp`` is, or holds in an Optional; None otherwise."""
    if dataclasses.is_dataclass(tp):
        return tp
    for option in typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ():
        if dataclasses.is_dataclass(option):
            return option
    return None


def check_keywords(fn: Callable, values: dict, *, what: str, skip: tuple[str, ...] = ()) -> dict:
    """Check ``values`` as keyword arguments of ``fn`` (names and annotated types) before calling it.

    Returns the values, converted as :func:`check_type` does. ``what`` names the thing in errors
    (e.g. ``"model 'keypoint_net' option"``); parameters in ``skip`` are not settable.
    """
    params = {name: p for name, p in inspect.signature(fn).parameters.items()
              if name not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: names are still checked
        hints = {}
    out = {}
    for key, value in values.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=2)
            hint = f"; did you mean {close}?" if close else ""
            raise SettingsError(f"{what} {key!r} does not exist (valid: {list(params) or 'none'}){hint}")
        out[key] = check_type(value, hints.get(key, Any), f"{what} {key!r}")
    return out
