"""Our own fast model: a small ResNet-like backbone, a top-down heatmap head and soft-argmax decoding.

``keypoint_net`` predicts one heatmap per keypoint at 1/4 (or 1/8) of the input resolution and
turns it into coordinates with an integral soft-argmax (DSNT, Nibali et al. 2018; integral
regression, Sun et al. 2018): softmax over the map, then the expected cell centre. Coordinates come
out normalised (-1..1 at the image edges, align_corners=False), so it trains with the same
coordinate losses as the direct regressors. ``keypoint_net_reg`` is the same backbone with a dense
layer instead, for comparison.

Dense 3x3 convolutions with 8-96 channels rather than depthwise-separable ones: they cost more
MACs per channel, but PyTorch's CPU training runs them through oneDNN at a good fraction of peak,
whereas depthwise layers are memory-bound, so MACs would understate their training time.

Examples
--------
>>> import torch
>>> from facekeypoints.models import create_model
>>> m = create_model("keypoint_net", schema="kaggle15")
>>> out = m(torch.rand(2, 1, 96, 96)); out.shape, bool(out.abs().max() < 1)
(torch.Size([2, 15, 2]), True)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facekeypoints.models.registry import register_model

__all__ = ["KeypointNet", "soft_argmax", "cell_centres", "keypoint_net", "keypoint_net_reg"]


def cell_centres(h: int, w: int) -> torch.Tensor:
    """(h * w, 2) normalised (x, y) centres of the cells of an h x w heatmap, row-major.

    Cell j of a row of w cells covers the image strip whose centre is at (2j + 1) / w - 1, so
    coordinates do not depend on the heatmap stride and lie strictly inside (-1, 1).
    """
    xs = torch.arange(w, dtype=torch.float32) * (2.0 / w) + (1.0 / w - 1.0)
    ys = torch.arange(h, dtype=torch.float32) * (2.0 / h) + (1.0 / h - 1.0)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(h * w, 2)


def soft_argmax(logits: torch.Tensor, centres: torch.Tensor | None = None) -> torch.Tensor:
    """(B, K, h, w) heatmap logits -> (B, K, 2) expected (x, y) in normalised coordinates.

    The expectation is one matrix product of the softmax with the (h * w, 2) cell centres of
    :func:`cell_centres`. Logits may also come flattened, (B, K, h * w), with ``centres`` given:
    :class:`KeypointNet` does so with constant sizes, keeping its exported graph free of shape arithmetic.
    """
    if centres is None:
        centres = cell_centres(*logits.shape[-2:])
    probs = (logits if logits.dim() == 3 else logits.flatten(2)).softmax(-1)
    return probs @ centres.to(probs)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    """Two 3x3 conv + BN with an identity shortcut (ResNet basic block, constant width)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: faster early training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))))


def _stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    """Stride-2 conv to ``cout`` channels, then ``blocks`` residual blocks."""
    return nn.Sequential(_conv_bn_relu(cin, cout, stride=2), *(_Residual(cout) for _ in range(blocks)))


class KeypointNet(nn.Module):
    """Backbone at strides 4, 8, 16 (after a stride-2 stem) and either a heatmap or a dense head.

    forward: (B, C, H, W) -> (B, K, 2) normalised coordinates. ``head="heatmap"`` merges the strides
    top-down (FPN-style) to ``heatmap_stride`` and decodes with :func:`soft_argmax`;
    ``head="dense"`` flattens the stride-16 map into one linear layer (fixed input size).
    """

    def __init__(self, num_keypoints: int, in_channels: int, input_size: int, channels: tuple[int, int, int, int],
                 blocks: tuple[int, int, int], head: str, head_channels: int = 48, heatmap_stride: int = 4):
        super().__init__()
        if len(channels) != 4 or len(blocks) != 3:
            raise ValueError(f"channels needs 4 widths and blocks 3 counts, got {channels} and {blocks}")
        if heatmap_stride not in (4, 8):
            raise ValueError(f"heatmap_stride must be 4 or 8, got {heatmap_stride}")
        if input_size < 32:
            raise ValueError(f"input_size must be at least 32 pixels, got {input_size}")
        self.num_keypoints, self.head_kind, self.heatmap_stride = num_keypoints, head, heatmap_stride
        # Feature sizes at strides 4, 8, 16 are fixed by input_size; holding them (and the cell
        # centres) as constants keeps the exported ONNX graph free of Shape/Gather arithmetic,
        # which at batch 1 cost about as much as the small convolutions around it.
        sides = [input_size]
        for _ in range(4):  # stem and three stages, each a 3x3 stride-2 conv with padding 1
            sides.append((sides[-1] + 1) // 2)
        self._sides = sides[2:]
        self.stem = _conv_bn_relu(in_channels, channels[0], stride=2)
        self.stages = nn.ModuleList(_stage(channels[i], channels[i + 1], blocks[i]) for i in range(3))
        if head == "heatmap":
            self.lateral = nn.ModuleList(nn.Conv2d(c, head_channels, 1) for c in channels[1:])
            self.smooth = nn.ModuleList(_conv_bn_relu(head_channels, head_channels) for _ in range(2))
            self.heatmap = nn.Conv2d(head_channels, num_keypoints, 1)
            side = self._sides[0 if heatmap_stride == 4 else 1]
            self.register_buffer("centres", cell_centres(side, side), persistent=False)
            last = self.heatmap
        elif head == "dense":
            self.dense = nn.Linear(channels[3] * self._sides[2] ** 2, num_keypoints * 2)
            last = self.dense
        else:
            raise ValueError(f"head must be 'heatmap' or 'dense', got {head!r}")
        # zero output layer: training starts from every keypoint at the image centre
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 4, 8 and 16."""
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K, H / s, W / s) heatmap logits, s = heatmap_stride."""
        feats = self.features(x)
        p = self.lateral[2](feats[2])
        levels = [1] if self.heatmap_stride == 8 else [1, 0]
        for i in levels:
            side = self._sides[i]
            # an exact 2x scale exports as a Resize that ONNX Runtime's blocked layout keeps
            up = (F.interpolate(p, scale_factor=2.0, mode="nearest") if side == 2 * self._sides[i + 1]
                  else F.interpolate(p, size=(side, side), mode="nearest"))
            p = self.smooth[i](self.lateral[i](feats[i]) + up)
        return self.heatmap(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_kind == "heatmap":
            logits = self.heatmaps(x).reshape(-1, self.num_keypoints, self.centres.shape[0])
            return soft_argmax(logits, self.centres)
        return self.dense(torch.flatten(self.features(x)[2], 1)).view(-1, self.num_keypoints, 2)


@register_model
def keypoint_net(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
                 channels: tuple[int, int, int, int] = (16, 32, 64, 96), blocks: tuple[int, int, int] = (1, 2, 1),
                 head_channels: int = 48, heatmap_stride: int = 4) -> KeypointNet:
    """Our fast model: small ResNet backbone, FPN-style heatmap head at 1/4 and soft-argmax decoding.

    Reference: ours (integral soft-argmax as in DSNT, Nibali et al. 2018), sized for 2-core CPU training.
    """
    return KeypointNet(num_keypoints, in_channels, input_size, tuple(channels), tuple(blocks), "heatmap",
                       head_channels, heatmap_stride)


@register_model
def keypoint_net_reg(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
                     channels: tuple[int, int, int, int] = (16, 32, 64, 96),
                     blocks: tuple[int, int, int] = (1, 2, 1)) -> KeypointNet:
    """keypoint_net's backbone with direct regression: the stride-16 map flattened into one linear layer.

    Reference: ours, the direct-regression control for keypoint_net.
    """
    return KeypointNet(num_keypoints, in_channels, input_size, tuple(channels), tuple(blocks), "dense")
