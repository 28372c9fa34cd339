"""Small direct-regression networks from the seed reports: fcnn, simple_cnn, nose_cnn, face_cnn, cnn7m.

Each maps (B, C, S, S) images to (B, K, 2) normalised coordinates through a dense output layer, so
each is built for one ``input_size`` S (the flattened feature size depends on it).

Examples
--------
>>> import torch
>>> from facekeypoints.models import create_model
>>> create_model("face_cnn", schema="kaggle15")(torch.zeros(2, 1, 96, 96)).shape
torch.Size([2, 15, 2])
"""
from __future__ import annotations

import torch
from torch import nn

from facekeypoints.models.registry import register_model

__all__ = ["ConvRegressor", "fcnn", "simple_cnn", "nose_cnn", "face_cnn", "cnn7m"]


class ConvRegressor(nn.Module):
    """``features`` (any conv stack), flattened, then ``head`` (dense layers ending in K*2 outputs).

    forward: (B, C, H, W) -> (B, K, 2).
    """

    def __init__(self, features: nn.Module, head: nn.Module, num_keypoints: int):
        super().__init__()
        self.features = features
        self.head = head
        self.num_keypoints = num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(torch.flatten(self.features(x), 1))
        return out.view(x.shape[0], self.num_keypoints, 2)


def _flat_size(features: nn.Module, in_channels: int, input_size: int) -> int:
    """Number of features ``features`` yields per image of size (in_channels, input_size, input_size)."""
    if input_size < 8:
        raise ValueError(f"input_size must be at least 8 pixels, got {input_size}")
    with torch.no_grad():
        return features(torch.zeros(1, in_channels, input_size, input_size)).numel()


def _conv_pool(cin: int, cout: int, kernel: int, batch_norm: bool = False) -> list[nn.Module]:
    """conv (same padding) [+ BN] + ReLU + 2x2 max-pool: halves H and W."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.ReLU(inplace=True), nn.MaxPool2d(2)]


def _dense_head(in_features: int, hidden: tuple[int, ...], num_keypoints: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, num_keypoints * 2))


def _build(features: nn.Sequential, hidden: tuple[int, ...], num_keypoints: int, in_channels: int,
           input_size: int, dropout: float = 0.0) -> ConvRegressor:
    flat = _flat_size(features, in_channels, input_size)
    return ConvRegressor(features, _dense_head(flat, hidden, num_keypoints, dropout), num_keypoints)


@register_model
def fcnn(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96, hidden: int = 500) -> ConvRegressor:
    """Fully connected baseline: all pixels -> one hidden ReLU layer of 500 -> K*2.

    Reference: seed 002 (Mateus & Zeng), section 6.1: n = 9216, m = 500, k = 30.
    """
    return _build(nn.Identity(), (hidden,), num_keypoints, in_channels, input_size)


@register_model
def simple_cnn(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
               channels: tuple[int, ...] = (32, 64, 128, 256)) -> ConvRegressor:
    """Four 3x3 conv + ReLU + max-pool blocks, then one dense output layer.

    Reference: seed 000 (Kalabis), section 3.1 "Simple CNN" (channel widths are ours; the figure is lost).
    """
    layers, cin = [], in_channels
    for cout in channels:
        layers += _conv_pool(cin, cout, 3)
        cin = cout
    return _build(nn.Sequential(*layers), (), num_keypoints, in_channels, input_size)


@register_model
def nose_cnn(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
             channels: tuple[int, int, int] = (12, 24, 32), hidden: int = 128) -> ConvRegressor:
    """Three conv + ReLU + max-pool layers (5x5, 5x5, 3x3), then a hidden dense layer and the output.

    Reference: seed 003 (Hoang), "Nose Tip Detection" (widths and kernels are ours).
    """
    layers, cin = [], in_channels
    for cout, kernel in zip(channels, (5, 5, 3)):
        layers += _conv_pool(cin, cout, kernel)
        cin = cout
    return _build(nn.Sequential(*layers), (hidden,), num_keypoints, in_channels, input_size)


@register_model
def face_cnn(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
             channels: tuple[int, ...] = (16, 32, 64, 128, 256), hidden: int = 256) -> ConvRegressor:
    """Five 3x3 conv + ReLU + max-pool layers and two fully connected layers.

    Reference: seed 003 (Hoang), "Full Facial Keypoints Detection" (widths are ours).
    """
    if len(channels) != 5:
        raise ValueError(f"face_cnn has five conv layers; channels has {len(channels)} entries")
    layers, cin = [], in_channels
    for cout in channels:
        layers += _conv_pool(cin, cout, 3)
        cin = cout
    return _build(nn.Sequential(*layers), (hidden,), num_keypoints, in_channels, input_size)


@register_model
def cnn7m(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
          channels: tuple[int, ...] = (32, 64, 128, 256), hidden: int = 640, dropout: float = 0.3) -> ConvRegressor:
    """About 7 M parameters: four blocks of two 3x3 conv + BN + ReLU then max-pool, dense 640, output.

    Reference: seed 004 (Reba), "a CNN architecture with 7M parameters" (layout is ours).
    """
    layers, cin = [], in_channels
    for cout in channels:
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        layers += _conv_pool(cout, cout, 3, batch_norm=True)
        cin = cout
    return _build(nn.Sequential(*layers), (hidden,), num_keypoints, in_channels, input_size, dropout)
