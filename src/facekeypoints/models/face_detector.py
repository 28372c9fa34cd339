"""A small anchor-free face detector (CenterNet-style): the network and its training targets.

The network maps an RGB image (B, 3, H, W), H and W multiples of 16, to five maps at a quarter of
its resolution: a face-centre heatmap (a logit per cell), the box's log width and log height (in
cells), and the centre's offset within its cell. A face is a local maximum of the heatmap; its box
is read from the other maps at that cell (``infer.detectors.decode_centers``, which needs no torch).

The body is depthwise-separable convolutions down to 1/16 of the input, merged back to 1/4 with
two upsampling steps (a small feature pyramid), so small faces see fine features and large ones
the context of the deepest layer. About 0.15 M parameters, ~50 MMACs for a 320 x 240 input.

Examples
--------
>>> import torch
>>> net = FaceCenterNet()
>>> [tuple(t.shape) for t in net(torch.zeros(1, 3, 240, 320))]
[(1, 1, 60, 80), (1, 2, 60, 80), (1, 2, 60, 80)]
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facekeypoints.data.preprocess import DETECTOR_STRIDE

__all__ = ["FaceCenterNet", "STRIDE", "center_targets", "detection_loss", "RUN_STATE_KEYS", "holds_detector_run",
           "is_detector_state"]

STRIDE = DETECTOR_STRIDE  # input pixels per output cell


def _separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FaceCenterNet(nn.Module):
    """Face centres, sizes and offsets at 1/4 of the input resolution (see the module docstring)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(inplace=True))
        self.s4 = nn.Sequential(_separable(w // 2, w, 2), _separable(w, w))                    # 1/4
        self.s8 = nn.Sequential(_separable(w, 2 * w, 2), _separable(2 * w, 2 * w))              # 1/8
        self.s16 = nn.Sequential(_separable(2 * w, 3 * w, 2), _separable(3 * w, 3 * w),
                                 _separable(3 * w, 3 * w))                                       # 1/16
        self.lat8, self.lat16 = nn.Conv2d(2 * w, w, 1), nn.Conv2d(3 * w, w, 1)
        self.merge = _separable(w, w)
        self.heat = nn.Conv2d(w, 1, 1)
        self.size = nn.Conv2d(w, 2, 1)
        self.offset = nn.Conv2d(w, 2, 1)
        nn.init.constant_(self.heat.bias, -4.6)  # a prior of 1% face cells: training starts calm (CenterNet)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        up = F.interpolate(self.lat16(f16), size=f8.shape[-2:], mode="nearest") + self.lat8(f8)
        up = self.merge(F.interpolate(up, size=f4.shape[-2:], mode="nearest") + f4)
        return self.heat(up), self.size(up), self.offset(up)


def center_targets(boxes: list[np.ndarray], height: int, width: int,
                   ignore: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Training targets for a batch: ``boxes[b]`` (N, 4) x1, y1, x2, y2 input pixels of image b.

    heat (B, 1, h, w): a Gaussian per face centre (sigma from the box size, as CenterNet), maximum
    1 at the centre cell; size (B, 2, h, w) log box width and height in cells, offset (B, 2, h, w)
    the centre within its cell, both set at centre cells only, where mask (B, 1, h, w) is 1.
    weight (B, 1, h, w): 0 inside the boxes of ``ignore[b]`` (half-hidden faces), where the
    heatmap is not trained as background, else 1.
    """
    h, w = height // STRIDE, width // STRIDE
    weight = np.ones((len(boxes), 1, h, w), np.float32)
    for b, skip in enumerate(ignore or []):
        for x1, y1, x2, y2 in np.asarray(skip, np.float64).reshape(-1, 4) / STRIDE:
            weight[b, 0, max(int(y1), 0):max(int(math.ceil(y2)), 0), max(int(x1), 0):max(int(math.ceil(x2)), 0)] = 0
    heat = np.zeros((len(boxes), 1, h, w), np.float32)
    size = np.zeros((len(boxes), 2, h, w), np.float32)
    offset = np.zeros((len(boxes), 2, h, w), np.float32)
    mask = np.zeros((len(boxes), 1, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    for b, faces in enumerate(boxes):
        for x1, y1, x2, y2 in np.asarray(faces, np.float64).reshape(-1, 4):
            cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
            bw, bh = max(x2 - x1, 1.0) / STRIDE, max(y2 - y1, 1.0) / STRIDE
            ix, iy = int(cx), int(cy)
            if not (0 <= ix < w and 0 <= iy < h):
                continue
            sigma = max(0.5, 0.15 * math.sqrt(bw * bh))
            heat[b, 0] = np.maximum(heat[b, 0], np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma ** 2)))
            size[b, :, iy, ix] = math.log(bw), math.log(bh)
            offset[b, :, iy, ix] = cx - ix, cy - iy
            mask[b, 0, iy, ix] = 1.0
    return {"heat": heat, "size": size, "offset": offset, "mask": mask, "weight": np.maximum(weight, mask)}


def detection_loss(outputs: tuple[torch.Tensor, ...], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """CenterNet's loss: penalty-reduced focal loss on the heatmap (alpha 2, beta 4), plus L1 on
    the log size and the offset at face centres; each summed over faces and divided by their count.
    (Sizes are logs of cells, of order 1 like the offsets, so all three weigh 1.)"""
    heat_logit, size, offset = outputs
    gt, mask = targets["heat"], targets["mask"]
    p = torch.sigmoid(heat_logit).clamp(1e-4, 1 - 1e-4)
    positive = gt.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * positive).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * (1 - positive) * targets["weight"]).sum()
    faces = positive.sum().clamp(min=1.0)
    cells = mask.sum().clamp(min=1.0)
    size_loss = (F.l1_loss(size, targets["size"], reduction="none") * mask).sum() / cells
    offset_loss = (F.l1_loss(offset, targets["offset"], reduction="none") * mask).sum() / cells
    return (pos_loss + neg_loss) / faces + size_loss + offset_loss


# what a train-detector run's last.pt holds, at least (``train.detector``); a keypoint checkpoint has a "format"
RUN_STATE_KEYS = frozenset({"model", "optimizer", "step", "minutes"})


def holds_detector_run(folder: str | Path) -> bool:
    """Whether ``folder``'s last.pt is a train-detector run's, for other commands (train, compare) to
    say so rather than offer to continue or clear it as their own. Read memory-mapped: no weights load."""
    try:
        state = torch.load(Path(folder) / "last.pt", map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # none there, or not a PyTorch file: no detector run either
        return False
    return is_detector_state(state)


def is_detector_state(state) -> bool:
    """Whether a loaded file is a train-detector run's state (train.detector._save): ours, but no
    keypoint checkpoint (those carry a "format")."""
    return isinstance(state, dict) and RUN_STATE_KEYS <= state.keys() and "format" not in state
