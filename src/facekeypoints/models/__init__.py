"""Keypoint models: one registry (create_model, list_models) and the pixel <-> output codec.

Every registered model maps (B, C, H, W) float images to (B, K, 2) normalised coordinates
(see :mod:`facekeypoints.models.codecs`).
"""
from facekeypoints.models import codecs
from facekeypoints.models.registry import (UnknownModelError, count_macs, create_model, list_models, model_info,
                                           register_model)

# each family registers its models on import
from facekeypoints.models import cnn, heatmap, resnet  # noqa: E402,F401  isort: skip

__all__ = ["codecs", "create_model", "list_models", "model_info", "register_model", "count_macs",
           "UnknownModelError"]
