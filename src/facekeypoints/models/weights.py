"""Where shipped weights live, and what is known about them (apart from architecture code)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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
    if isinstance(model, str) and model in SHIPPED and not Path(model).exists():
        return default_checkpoint(model)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file (pass a checkpoint .pt, an exported .onnx, "
                                f"or a shipped model: {', '.join(SHIPPED)})")
    return path
