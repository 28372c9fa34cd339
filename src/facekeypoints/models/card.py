"""The model card: everything needed to use a set of weights, saved with them.

One typed, versioned record travels in every checkpoint and in every ONNX export. Training writes
it; evaluation, inference, export and submission read it, and nothing else: what the model is
(registry name and options), which keypoints it predicts (the schema), what input it takes (size,
channels, preprocessing), how a face is framed for it, what it was trained on and how well it
did on its validation faces.

``ModelCard.from_dict`` is the one loader. It also reads the version-1 layout (model, schema,
preprocess and config as separate entries) that checkpoints and ONNX files had before the card.

Examples
--------
>>> from facekeypoints.data.preprocess import Preprocess
>>> from facekeypoints.schema import load_schema
>>> card = ModelCard(model="keypoint_net", schema=load_schema("kaggle15"), input_size=96, in_channels=1,
...                  preprocess=Preprocess(size=96), framing="kaggle")
>>> ModelCard.from_dict(card.to_dict()) == card
True
>>> card.summary()["keypoints"], card.summary()["input"]
(15, '1x96x96')
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field, replace

import numpy as np

from facekeypoints.data.framing import FRAMINGS, framing_for
from facekeypoints.data.pipeline import DataConfig
from facekeypoints.data.preprocess import Preprocess
from facekeypoints.schema import KeypointSchema, load_schema
from facekeypoints.settings import SettingsError, from_dict

__all__ = ["ModelCard", "CARD_VERSION", "CardError"]

CARD_VERSION = 3  # 1: the pre-card layout (separate model/schema/preprocess/config entries); 3: label_offset


class CardError(ValueError):
    """A model card is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ModelCard:
    """What a set of weights is and how to use it.

    Attributes
    ----------
    model : registry name (``facekeypoints.models.list_models()``), rebuilt with ``options``.
    schema : the keypoints predicted, in order; output is (N, K, 2), K = schema.num_keypoints.
    input_size, in_channels : the model's input is (N, in_channels, input_size, input_size).
    preprocess : uint8 crop -> float input; its size and channels equal the two above.
    framing : how a face is placed in the input (``facekeypoints.data.framing.FRAMINGS``).
    options : the model family's own keywords (e.g. ``{"channels": [8, 16, 32, 64]}``).
    trained_on : the training run's data section (file, people, split, framing), or None.
    metrics : validation figures of these weights (epoch, val_rmse, val_mae, ...), in pixels;
        ``val_mirror_tta`` says whether they were measured with mirror test-time augmentation (the
        run's train.mirror_tta) or in a single pass (absent on cards written before it was recorded).
    trained_in : the folder training ran in (absolute), against which relative paths of ``trained_on``
        are read; None on cards written before it was recorded (the shipped models: the repository folder).
    label_offset : (K, 2) pixels of the model input, or None: the training labellers' own placement
        of each point, beside where a mirror-symmetric model puts it (``train.label_offset``). Added
        to predictions only to score against labels made the same way (the Kaggle crops' own path).
    version : the card layout's version, ``CARD_VERSION`` when written now.
    """

    model: str
    schema: KeypointSchema
    input_size: int
    in_channels: int
    preprocess: Preprocess
    framing: str = "kaggle"
    options: dict = field(default_factory=dict)
    trained_on: DataConfig | None = None
    metrics: dict = field(default_factory=dict)
    label_offset: tuple | None = None
    version: int = CARD_VERSION
    trained_in: str | None = None

    def __post_init__(self) -> None:
        self._check_types()
        # options in their JSON form (tuples as lists), so a card read back from ONNX metadata equals its checkpoint's
        object.__setattr__(self, "options", json.loads(json.dumps(self.options)))
        if self.framing not in FRAMINGS:
            raise CardError(f"framing {self.framing!r} is not one of {list(FRAMINGS)}")
        if (self.preprocess.size, self.preprocess.channels) != (self.input_size, self.in_channels):
            raise CardError(f"preprocess makes {self.preprocess.channels}x{self.preprocess.size}x{self.preprocess.size} "
                            f"inputs but the model takes {self.in_channels}x{self.input_size}x{self.input_size}")
        if self.label_offset is not None:
            offset = _offset_array(self.label_offset, self.schema.num_keypoints)
            object.__setattr__(self, "label_offset", tuple(tuple(float(v) for v in p) for p in offset))
        if self.version < 1:
            raise CardError(f"model card version must be 1 or more, got {self.version}")
        if self.version > CARD_VERSION:
            raise CardError(f"model card version {self.version} is newer than this facekeypoints reads "
                            f"({CARD_VERSION}); upgrade facekeypoints")

    def _check_types(self) -> None:
        """Each field of a card built directly checked for its type (a str input_size of "96" was reported
        as "preprocess makes 1x96x96 inputs but the model takes 1x96x96"); a schema name and a preprocess
        mapping are read as ``from_dict`` reads them."""
        def expect(name: str, ok: bool, what: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise TypeError(f"ModelCard.{name} must be {what}, got {type(value).__name__} {value!r}")

        expect("model", isinstance(self.model, str), "a registry name (str)")
        if isinstance(self.schema, str):
            object.__setattr__(self, "schema", load_schema(self.schema))
        expect("schema", isinstance(self.schema, KeypointSchema), "a KeypointSchema or a schema name")
        for name in ("input_size", "in_channels", "version"):
            value = getattr(self, name)
            expect(name, isinstance(value, numbers.Integral) and not isinstance(value, bool), "an int")
            object.__setattr__(self, name, int(value))
        if isinstance(self.preprocess, dict):
            object.__setattr__(self, "preprocess", Preprocess.from_dict(self.preprocess))
        expect("preprocess", isinstance(self.preprocess, Preprocess), "a Preprocess or its dict")
        expect("framing", isinstance(self.framing, str), f"one of {list(FRAMINGS)}")
        expect("options", isinstance(self.options, dict), "a dict of the model's options")
        for key, value in self.options.items():
            try:
                json.dumps({key: value})
            except (TypeError, ValueError):  # json's own words name neither the card nor the option
                raise TypeError(f"ModelCard.options[{key!r}] must be plain JSON data (numbers, str, lists, dicts), "
                                f"got {type(value).__name__} {value!r}") from None
        expect("metrics", isinstance(self.metrics, dict), "a dict of numbers")
        expect("trained_on", self.trained_on is None or isinstance(self.trained_on, DataConfig), "a DataConfig or None")
        expect("trained_in", self.trained_in is None or isinstance(self.trained_in, str), "a folder (str) or None")

    def to_dict(self) -> dict:
        """Plain types only (for ``torch.save(weights_only)``, JSON and YAML)."""
        return {"version": self.version, "model": self.model, "options": dict(self.options),
                "schema": self.schema.to_dict(), "input_size": self.input_size, "in_channels": self.in_channels,
                "preprocess": self.preprocess.to_dict(), "framing": self.framing,
                "trained_on": self.trained_on.to_dict() if self.trained_on else None, "metrics": dict(self.metrics),
                "label_offset": [list(p) for p in self.label_offset] if self.label_offset is not None else None,
                **({"trained_in": self.trained_in} if self.trained_in is not None else {})}

    @classmethod
    def from_dict(cls, d: dict, source: str = "model card", config: dict | None = None) -> "ModelCard":
        """The one loader: a card from ``to_dict``'s output (or the version-1 layout); errors name ``source``.
        ``config``: the training run's config saved beside the card (a checkpoint's), whose
        ``train.mirror_tta`` says how val_rmse was measured on cards written before they said it."""
        if not isinstance(d, dict):
            raise CardError(f"{source}: a model card is a mapping, got {type(d).__name__}")
        if "version" not in d:
            d = _from_version_1(d, source)
        elif isinstance(d.get("metrics"), dict):
            d = {**d, "metrics": _validation_basis(d["metrics"], config)}
        try:
            values = dict(d)
            schema = values["schema"]
            if isinstance(schema, str):  # a built-in schema's name, as create_model takes it
                values["schema"] = load_schema(schema)
            elif isinstance(schema, dict):
                values["schema"] = KeypointSchema.from_dict(schema, source=source)
            else:  # iterating anything else read its items as field names
                raise CardError(f"schema must be a mapping of the schema's fields or a schema name, "
                                f"got {type(schema).__name__} {schema!r}")
            values["preprocess"] = from_dict(Preprocess, values.get("preprocess") or {}, where="preprocess.")
            if values.get("trained_on") is not None:
                values["trained_on"] = from_dict(DataConfig, values["trained_on"], where="trained_on.")
            return from_dict(cls, values)
        except KeyError as err:
            raise CardError(f"{source}: the model card has no {err.args[0]!r}") from None
        except (SettingsError, CardError, ValueError) as err:
            raise CardError(f"{source}: {err}") from None

    def with_metrics(self, metrics: dict) -> "ModelCard":
        """The same card with ``metrics`` (plain numbers) recorded."""
        if not isinstance(metrics, dict):
            raise TypeError(f"with_metrics needs a dict of metrics, got {type(metrics).__name__} {metrics!r}")
        return replace(self, metrics=dict(metrics))

    def summary(self) -> dict:
        """A short plain dict for JSON output: model, schema, keypoints, input, framing, validation (its
        ``val_mirror_tta``: true or false, the basis of val_rmse; None where the card does not say)."""
        return {"model": self.model, "schema": self.schema.name, "keypoints": self.schema.num_keypoints,
                "input": f"{self.in_channels}x{self.input_size}x{self.input_size}", "framing": self.framing,
                "trained_on": self.trained_on.train if self.trained_on else None,
                "val_rmse": self.metrics.get("val_rmse"), "val_mirror_tta": self.metrics.get("val_mirror_tta")}


def _offset_array(values, keypoints: int):
    """``label_offset`` as a (K, 2) finite float array, or a CardError saying what is wrong."""
    try:
        offset = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise CardError(f"label_offset must be {keypoints} [x, y] pairs of numbers") from None
    if offset.shape != (keypoints, 2) or not np.isfinite(offset).all():
        raise CardError(f"label_offset must be {keypoints} finite [x, y] pairs, got shape {offset.shape}")
    return offset


def _validation_basis(metrics: dict, config) -> dict:
    """``metrics`` with ``val_mirror_tta`` taken from the run's ``config`` (its train.mirror_tta) where they
    hold a val_rmse but do not say how it was measured; as they are when the config does not say either."""
    train = config.get("train") if isinstance(config, dict) else None
    if "val_rmse" not in metrics or metrics.get("val_mirror_tta") is not None or \
            not isinstance(train, dict) or train.get("mirror_tta") is None:
        return metrics
    return {**metrics, "val_mirror_tta": bool(train["mirror_tta"])}


def _from_version_1(d: dict, source: str) -> dict:
    """The version-1 layout (``model``: {name, input_size, in_channels, options[, framing]}, ``schema``,
    ``preprocess``, ``config``, ``metrics`` side by side) as a version-2 card dict."""
    model = d.get("model")
    if not isinstance(model, dict) or "name" not in model:
        raise CardError(f"{source}: neither a model card nor a version-1 checkpoint layout (no model name)")
    config = d.get("config") or {}
    data = config.get("data")
    size, channels = int(model["input_size"]), int(model.get("in_channels", 1))
    preprocess = {"size": size, "channels": channels, **(d.get("preprocess") or {})}
    framing = model.get("framing") or framing_for((data or {}).get("frame", "none"), source)
    metrics = _validation_basis({k: v for k, v in (d.get("metrics") or {}).items() if isinstance(v, (int, float))},
                                config)
    return {"version": CARD_VERSION, "model": model["name"], "options": dict(model.get("options", {})),
            "schema": d["schema"], "input_size": size, "in_channels": channels, "preprocess": preprocess,
            "framing": framing, "trained_on": data, "metrics": metrics}
