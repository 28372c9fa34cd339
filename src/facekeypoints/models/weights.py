"""Where shipped weights live, and what is known about them (apart from architecture code)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from facekeypoints.data.walk import check_path

__all__ = ["WeightsInfo", "SHIPPED", "default_checkpoint", "resolve_checkpoint"]


@dataclass(frozen=True)
class WeightsInfo:
    file: str  # inside the package's weights/ folder
    model: str
    schema: str
    input_size: int
    trained_on: str
    license: str


SHIPPED = {
    "kaggle15": WeightsInfo(
        file="kaggle15_default.pt", model="keypoint_net", schema="kaggle15", input_size=96,
        trained_on="../shared/data/fkd15-ytf/training.zip (YouTube Faces frames, Kaggle FKD format)",
        license="research use only (YouTube Faces DB terms apply to weights trained on it)",
    ),
    "ibug68": WeightsInfo(
        file="ibug68_default.pt", model="keypoint_net", schema="ibug68", input_size=96,
        trained_on="../shared/data/ytf68/train.csv (YouTube Faces frames, 68 iBUG points), Kaggle framing",
        license="research use only (YouTube Faces DB terms apply to weights trained on it)",
    ),
}


def default_checkpoint(schema: str = "kaggle15") -> Path:
    """Path of the shipped default checkpoint for ``schema``; a clear error when none ships."""
    if schema not in SHIPPED:
        raise FileNotFoundError(f"no shipped default model for schema {schema!r}; shipped: {sorted(SHIPPED)}")
    path = Path(str(resources.files("facekeypoints").joinpath("weights", SHIPPED[schema].file)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the default {schema} model is missing from this install; "
                                "pass --model PATH to a checkpoint (facekeypoints train writes runs/<name>/best.pt)")
    return path


def resolve_checkpoint(model: str | Path | None) -> Path:
    """The file a ``--model`` value names: None is the shipped kaggle15 model, a shipped schema name
    (``"kaggle15"``, ``"ibug68"``) that is not also a file here is that shipped model, else a path,
    which must exist (the error lists the shipped names)."""
    if model is None:
        return default_checkpoint("kaggle15")
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path (str or os.PathLike), a shipped model's name ({', '.join(SHIPPED)}) or None, "
                        f"got {type(model).__name__}")
    if isinstance(model, str) and model in SHIPPED and not os.path.exists(model):
        return default_checkpoint(model)
    if isinstance(model, str) and not model.strip():  # Path("") is ".", the current folder
        raise ValueError(f"model is an empty name; pass a checkpoint .pt, an exported .onnx, a shipped model "
                         f"({', '.join(SHIPPED)}) or None for the shipped kaggle15 model")
    path = Path(model)
    check_path(path)  # a name too long: Path.is_dir() raised it as a bare OSError
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a model file (pass a checkpoint .pt or an exported .onnx inside "
                         f"it, e.g. a training run's best.pt, or a shipped model: {', '.join(SHIPPED)})")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file (pass a checkpoint .pt, an exported .onnx, "
                                f"or a shipped model: {', '.join(SHIPPED)})")
    return path
