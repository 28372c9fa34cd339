"""ResNet and DenseNet regressors: from scratch for small grey images, and ImageNet transfer learning.

* ``resnet18/26/34/50``: torchvision's ResNet from random init (seeds 000, 002), with its standard stem
  (``stem_stride=4``: 7x7/2 conv + max-pool, as the seeds built them) or a finer one for small faces.
* ``resnet50_tl``, ``densenet121_tl``: torchvision ImageNet backbones behind a 1-channel adapter (seed 001).
* ``resnet50_aa``: anti-aliased ResNet-50 (blur pooling, Zhang 2019) from timm (seed 003).

All return (B, K, 2) normalised coordinates from a linear layer on globally pooled features.

Examples
--------
>>> import torch
>>> from facekeypoints.models import create_model
>>> create_model("resnet18", schema="nose1", input_size=64)(torch.zeros(2, 1, 64, 64)).shape
torch.Size([2, 1, 2])
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from facekeypoints.models.registry import register_model

__all__ = ["BackboneRegressor", "resnet18", "resnet26", "resnet34", "resnet50", "resnet50_tl",
           "densenet121_tl", "resnet50_aa", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ADAPTERS = ("conv1x1", "sum", "none")


class BackboneRegressor(nn.Module):
    """``adapter`` (channel mapping, may be Identity) then a classifier ``backbone`` whose K*2 logits
    are read as keypoints. forward: (B, C, H, W) -> (B, K, 2)."""

    def __init__(self, backbone: nn.Module, num_keypoints: int, adapter: nn.Module | None = None):
        super().__init__()
        self.adapter = adapter if adapter is not None else nn.Identity()
        self.backbone = backbone
        self.num_keypoints = num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.adapter(x)).view(x.shape[0], self.num_keypoints, 2)


# ---- from scratch ---------------------------------------------------------------------------------
def _scratch_resnet(block: str, layers: list[int], num_keypoints: int, in_channels: int, input_size: int,
                    stem_stride: int) -> BackboneRegressor:
    """torchvision ResNet with a stem that downsamples by ``stem_stride`` before layer1.

    4 (default): torchvision's standard 7x7/2 conv + max-pool (layer1 at 24x24 for a 96 px input),
    as seeds 000 and 002 built their ResNets (resnet18: 319 MMACs per 96 px face, `facekeypoints models`).
    2: 3x3/1 conv + max-pool (layer1 at 48x48, about 4x the cost); 1: 3x3/1 conv, no pooling
    (layer1 at full size, about 16x the cost).
    """
    if stem_stride not in (1, 2, 4):
        raise ValueError(f"stem_stride must be 1, 2 or 4, got {stem_stride}")
    if input_size < 8 * stem_stride:
        raise ValueError(f"input_size {input_size} is too small for a ResNet with stem_stride {stem_stride}")
    from torchvision.models import resnet as tv_resnet  # imported on first use: start-up time

    net = tv_resnet.ResNet(getattr(tv_resnet, block), layers, num_classes=num_keypoints * 2)
    if stem_stride == 4:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    else:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    if stem_stride == 1:
        net.maxpool = nn.Identity()
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return BackboneRegressor(net, num_keypoints)


@register_model
def resnet18(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96, stem_stride: int = 4) -> BackboneRegressor:
    """ResNet-18 (BasicBlock [2, 2, 2, 2]) from scratch (stem_stride 4: torchvision's stem).

    Reference: seed 000 (Kalabis), table 1: best validation loss (ResNet18, preprocessing + augmentation).
    """
    return _scratch_resnet("BasicBlock", [2, 2, 2, 2], num_keypoints, in_channels, input_size, stem_stride)


@register_model
def resnet26(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96, stem_stride: int = 4) -> BackboneRegressor:
    """ResNet-26 (Bottleneck [2, 2, 2, 2], as timm's resnet26) from scratch (stem_stride 4: torchvision's stem).

    Reference: seed 000 (Kalabis), table 1.
    """
    return _scratch_resnet("Bottleneck", [2, 2, 2, 2], num_keypoints, in_channels, input_size, stem_stride)


@register_model
def resnet34(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96, stem_stride: int = 4) -> BackboneRegressor:
    """ResNet-34 (BasicBlock [3, 4, 6, 3]) from scratch (stem_stride 4: torchvision's stem).

    Reference: seed 000 (Kalabis), section 3.2 and table 1.
    """
    return _scratch_resnet("BasicBlock", [3, 4, 6, 3], num_keypoints, in_channels, input_size, stem_stride)


@register_model
def resnet50(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96, stem_stride: int = 4) -> BackboneRegressor:
    """ResNet-50 (Bottleneck [3, 4, 6, 3]) from scratch (stem_stride 4: torchvision's stem).

    Reference: seed 002 (Mateus & Zeng), section 6.2 and table 1 (ResNet50 vs FCNN).
    """
    return _scratch_resnet("Bottleneck", [3, 4, 6, 3], num_keypoints, in_channels, input_size, stem_stride)


# ---- transfer learning ----------------------------------------------------------------------------
_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _read_state_dict(pretrained: bool | str | Path, weights) -> dict[str, torch.Tensor]:
    """ImageNet weights from torchvision's download (True) or a local .pth/.pt/.safetensors file."""
    if pretrained is True:
        state = weights.get_state_dict(progress=True, check_hash=True)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such pretrained weights file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # pickle and zip errors of every kind: not a weights file
                raise ValueError(f"{path}: not a PyTorch weights file (expected a .pth/.pt state dict of plain "
                                 "tensors, or a .safetensors file)") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path}: expected a plain state dict (parameter name -> tensor)")
    # older torchvision DenseNet files name layers 'norm.1'; modules are now 'norm1'
    return {(m.group(1) + m.group(2)) if (m := _OLD_DENSENET_KEY.match(k)) else k: v for k, v in state.items()}


def _load_backbone(backbone: nn.Module, pretrained: bool | str | Path, weights, head: str) -> None:
    """Load ImageNet weights into ``backbone`` except its classifier ``head`` (replaced for keypoints)."""
    if pretrained is False or pretrained is None:
        return
    source = "torchvision download" if pretrained is True else str(pretrained)
    state = {k: v for k, v in _read_state_dict(pretrained, weights).items() if not k.startswith(head + ".")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not fit torchvision {type(backbone).__name__} "
                         f"(missing {missing[:4]}, unexpected {unexpected[:4]})")


def _adapt_input(backbone: nn.Module, conv_path: str, in_channels: int, adapter: str) -> nn.Module | None:
    """Make an RGB backbone take ``in_channels`` channels of grey values in [0, 1].

    "conv1x1" (seed 001): a learnable 1x1 conv in_channels -> 3 in front, initialised to ImageNet's
    mean/std normalisation of a grey image. "sum": the first conv itself takes in_channels, its
    weights summed over RGB (divided by std, spread over the channels) and the mean folded into a bias.
    "none": the backbone is used as is (in_channels must be 3). Returns the adapter module or None.
    """
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {ADAPTERS}, got {adapter!r}")
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    if adapter == "none":
        if in_channels != 3:
            raise ValueError(f"adapter='none' needs in_channels=3, got {in_channels}")
        return None
    if adapter == "conv1x1":
        conv = nn.Conv2d(in_channels, 3, 1)
        with torch.no_grad():
            conv.weight.copy_((1 / std).view(3, 1, 1, 1).expand(3, in_channels, 1, 1) / in_channels)
            conv.bias.copy_(-mean / std)
        return conv
    parent_path, _, name = conv_path.rpartition(".")
    parent = backbone.get_submodule(parent_path) if parent_path else backbone
    old: nn.Conv2d = getattr(parent, name)
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=True)
    with torch.no_grad():
        scaled = old.weight / std.view(1, 3, 1, 1)
        new.weight.copy_(scaled.sum(1, keepdim=True).expand(-1, in_channels, -1, -1) / in_channels)
        new.bias.copy_(-(scaled * mean.view(1, 3, 1, 1)).sum((1, 2, 3)))
    setattr(parent, name, new)
    return None


@register_model
def resnet50_tl(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
                pretrained: bool | str = False, adapter: str = "conv1x1") -> BackboneRegressor:
    """torchvision ResNet-50 (ImageNet weights when ``pretrained``) behind a grey -> RGB adapter.

    Expects grey values in [0, 1].
    Reference: seed 001 (Ahmed), sections 2.3 and 3.1.
    """
    from torchvision import models as tvm

    net = tvm.resnet50(weights=None)
    net.fc = nn.Linear(net.fc.in_features, num_keypoints * 2)
    _load_backbone(net, pretrained, tvm.ResNet50_Weights.IMAGENET1K_V2, head="fc")
    return BackboneRegressor(net, num_keypoints, _adapt_input(net, "conv1", in_channels, adapter))


@register_model
def densenet121_tl(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
                   pretrained: bool | str = False, adapter: str = "conv1x1") -> BackboneRegressor:
    """torchvision DenseNet-121 (ImageNet weights when ``pretrained``) behind a grey -> RGB adapter.

    Expects grey values in [0, 1].
    Reference: seed 001 (Ahmed), sections 2.3 and 3.2.
    """
    from torchvision import models as tvm

    net = tvm.densenet121(weights=None)
    net.classifier = nn.Linear(net.classifier.in_features, num_keypoints * 2)
    _load_backbone(net, pretrained, tvm.DenseNet121_Weights.IMAGENET1K_V1, head="classifier")
    return BackboneRegressor(net, num_keypoints, _adapt_input(net, "features.conv0", in_channels, adapter))


@register_model
def resnet50_aa(*, num_keypoints: int, in_channels: int = 1, input_size: int = 96,
                pretrained: bool | str = False) -> BackboneRegressor:
    """Anti-aliased ResNet-50: blur pooling before every stride-2 step (timm's ``resnetblur50``).

    ``pretrained=True`` uses timm's download of ``resnetblur50``; a path loads that local file
    (timm sums the RGB stem weights for 1-channel input).
    Reference: seed 003 (Hoang), "Train with Larger Dataset" (blur pooling: Zhang 2019, "Making
    convolutional networks shift-invariant again").
    """
    import timm  # imported here: timm adds about a second to start-up

    extra = {}
    if pretrained not in (False, True, None):
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such pretrained weights file")
        extra["pretrained_cfg_overlay"] = {"file": str(path)}
    net = timm.create_model("resnetblur50", pretrained=bool(pretrained), num_classes=num_keypoints * 2,
                            in_chans=in_channels, **extra)
    return BackboneRegressor(net, num_keypoints)
