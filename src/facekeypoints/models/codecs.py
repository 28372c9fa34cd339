"""How keypoints in pixels become model targets and back.

Every model in the registry returns (B, K, 2) *normalised* coordinates: -1 and +1 are the outer
edges of the input image and pixel centre x sits at (2x + 1) / W - 1, the same convention as
``torch.nn.functional.grid_sample(align_corners=False)``. Training targets are encoded the same way,
so a loss never sees image sizes and heatmap heads can use ``affine_grid`` coordinates directly.

Examples
--------
>>> import numpy as np
>>> px = np.array([[[0.0, 47.5], [95.0, 10.0]]])
>>> u = encode(px, (96, 96)); bool(np.allclose(decode(u, (96, 96)), px))
True
"""
from __future__ import annotations

import numpy as np

__all__ = ["encode", "decode"]


def _scale(values, w: int, h: int):
    """[w, h] as the same kind of array as ``values``: a torch tensor (same device and dtype) or
    numpy. Told apart by duck typing, so predicting with ONNX Runtime never imports torch."""
    return values.new_tensor([w, h]) if hasattr(values, "new_tensor") else np.array([w, h], np.float32)


def _wh(size: tuple[int, int]):
    h, w = size
    return w, h


def encode(keypoints, size: tuple[int, int]):
    """Pixels (..., K, 2) in an image of ``size`` = (H, W) -> normalised coordinates. NaN stays NaN."""
    w, h = _wh(size)
    scale = _scale(keypoints, w, h)
    return (2 * keypoints + 1) / scale - 1


def decode(output, size: tuple[int, int]):
    """Normalised coordinates (..., K, 2) -> pixels of an image of ``size`` = (H, W)."""
    w, h = _wh(size)
    scale = _scale(output, w, h)
    return ((output + 1) * scale - 1) / 2
