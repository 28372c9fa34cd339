"""Keypoint models: one registry (create_model, list_models) and the pixel <-> output codec.

Every registered model maps (B, C, H, W) float images to (B, K, 2) normalised coordinates
(see :mod:`facekeypoints.models.codecs`).
"""
import importlib

__all__ = ["codecs", "create_model", "list_models", "model_info", "register_model", "count_macs",
           "check_model_options", "option_defaults", "UnknownModelError"]


def __getattr__(name: str):
    # Loaded on first use (PEP 562), not when a submodule such as models.predict is imported: the
    # registry and the model families import torch, which predicting with ONNX Runtime never needs.
    # Take the registry's functions from here, not from models.registry: here they come with every
    # family registered (each registers its models when imported).
    if name == "codecs":
        return importlib.import_module("facekeypoints.models.codecs")
    if name in __all__:
        from facekeypoints.models import cnn, heatmap, resnet, registry  # noqa: F401

        return getattr(registry, name)
    raise AttributeError(f"module 'facekeypoints.models' has no attribute {name!r}")
