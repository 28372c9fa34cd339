"""Keypoint models: one registry (create_model, list_models) and the pixel <-> output codec."""
from facekeypoints.models import codecs

__all__ = ["codecs"]
