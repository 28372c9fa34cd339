"""Keypoint data: the in-memory shape, readers and writers for every format, splits."""
from facekeypoints.data.dataset import DataFormatError, KeypointData

__all__ = ["KeypointData", "DataFormatError"]
