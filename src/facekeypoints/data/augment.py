"""Training augmentation on torch batches; keypoints move exactly with the pixels.

Conventions
-----------
- Images are (B, C, H, W) float tensors holding values in ``value_range`` (``Preprocess.value_range``).
- Keypoints are (B, K, 2) float pixel coordinates (x, y), 0-based, with pixel centres at integers:
  pixel i covers [i - 0.5, i + 0.5]. NaN marks a missing label; a point with either coordinate
  NaN comes back with both NaN (rotation mixes x and y), and no point is ever dropped.
- Keypoints pushed outside the image by a transform are kept as they are, not clipped: the loss
  may still use them, and clipping would teach the model wrong positions.

Geometry is one pixel-space affine matrix per sample (mirror, scale, rotation about the image
centre, then shift), applied to the pixels once with ``grid_sample`` (bilinear,
``align_corners=False``, which is the pixel-centre convention above; the grid is the one
``affine_grid`` would build) and to the keypoints with the same matrix. Any matrix that reverses
orientation (negative determinant) also swaps left/right keypoint labels through
``schema.flip_index``, so a mirrored face stays correctly labelled.

Padding is ``"border"`` by default: ``"zeros"`` means black for the "unit" scale but mid-grey for
"centered", and its hard edges are a strong, label-free cue; repeating the border does neither.

Examples
--------
>>> import torch
>>> from facekeypoints.schema import load_schema
>>> from facekeypoints.data.augment import Augment, augment_batch
>>> g = torch.Generator().manual_seed(0)
>>> images, keypoints = torch.rand(4, 1, 96, 96), torch.full((4, 15, 2), 40.0)
>>> out, kp = augment_batch(images, keypoints, load_schema("kaggle15"), Augment(), g)
>>> out.shape, kp.shape
(torch.Size([4, 1, 96, 96]), torch.Size([4, 15, 2]))
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facekeypoints.settings import from_dict
from facekeypoints.schema import KeypointSchema

__all__ = ["Augment", "augment_batch", "random_affine", "warp_affine", "mirror", "mirror_keypoints"]

# RGB -> YIQ (NTSC). Hue is an angle in the I-Q plane and saturation its radius, so both are linear.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_N_PARAMS = 9  # random numbers drawn per sample, always, so one setting never shifts another's draws


@dataclass(frozen=True)
class Augment:
    """Random augmentation settings; every range is symmetric around "no change".

    Attributes
    ----------
    flip_prob : probability of a horizontal mirror (left/right labels swap with it).
    rotate_deg : rotation angle drawn from U[-rotate_deg, rotate_deg] degrees, about the image
        centre; positive turns the picture clockwise on screen (y points down).
    shift : translation drawn from U[-shift, shift] times the image width (x) and height (y).
    scale : (low, high) zoom factor drawn uniformly; > 1 enlarges the face.
    brightness : intensity multiplied by U[1 - b, 1 + b] (0.5 is seed 001's +-50%).
    contrast : distance from the image mean multiplied by U[1 - c, 1 + c].
    noise_std : std of additive Gaussian noise on the [0, 1] scale. Seed 001's "variance 0.1"
        is ``noise_std = sqrt(0.1) = 0.316``: strong noise, a third of the full intensity range.
    color_jitter : RGB only. Saturation multiplied by U[1 - j, 1 + j] and hue turned by
        U[-j/4, j/4] of a full turn (in YIQ, a linear approximation of HSV hue). For 1-channel
        images it does nothing: only brightness, contrast and noise apply to grayscale.
    padding : ``grid_sample`` padding for pixels that come from outside: "border" or "zeros".

    After photometric changes, values are clamped to the value range, as a camera saturates.
    """

    flip_prob: float = 0.5
    rotate_deg: float = 20.0
    shift: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.5
    contrast: float = 0.3
    noise_std: float = 0.0
    color_jitter: float = 0.0
    padding: str = "border"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"Augment.flip_prob must be in [0, 1], got {self.flip_prob!r}")
        # upper bounds too: shift 8 (meant as 8 px or 8 %) would move every face out of its crop
        for name, high, unit in (("rotate_deg", 180.0, "degrees"), ("shift", 0.5, "a fraction of the image size"),
                                 ("noise_std", 1.0, "on the [0, 1] scale"), ("color_jitter", 1.0, "a fraction"),
                                 ("brightness", 1.0, "a fraction"), ("contrast", 1.0, "a fraction")):
            if not 0 <= getattr(self, name) <= high:
                raise ValueError(f"augment.{name} must be in [0, {high:g}] ({unit}), got {getattr(self, name)!r}")
        if len(self.scale) != 2 or not 0.25 <= self.scale[0] <= self.scale[1] <= 4:
            raise ValueError(f"augment.scale must be (low, high) zoom factors with 0.25 <= low <= high <= 4, "
                             f"got {self.scale!r}")
        if self.padding not in ("border", "zeros"):
            raise ValueError(f"Augment.padding must be 'border' or 'zeros', got {self.padding!r}")

    @property
    def geometric(self) -> bool:
        """True when any setting can move pixels."""
        return self.flip_prob > 0 or self.rotate_deg > 0 or self.shift > 0 or self.scale != (1.0, 1.0)

    def to_dict(self) -> dict:
        """Plain-type dict (``scale`` as a list) for run configs and checkpoints."""
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Augment":
        """Inverse of ``to_dict``; unknown keys and mistyped values are an error (with the closest valid name)."""
        return from_dict(cls, d, where="augment.")


def random_affine(cfg: Augment, batch: int, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Draw (B, 3, 3) float64 CPU matrices mapping input pixel (x, y, 1) to its output position.

    Draws ``batch`` x 9 uniforms from ``generator`` whatever ``cfg`` says, as ``augment_batch`` does,
    so the same seed gives the matrices ``augment_batch`` used.
    """
    return torch.from_numpy(_affine_from_uniforms(cfg, _uniforms(batch, generator), size))


def _uniforms(batch: int, generator: torch.Generator) -> np.ndarray:
    # parameter maths runs in numpy: on a busy CPU, torch's thread pool makes each tiny op cost milliseconds
    return torch.rand(batch, _N_PARAMS, generator=generator, device=generator.device).double().cpu().numpy()


def _affine_from_uniforms(cfg: Augment, u: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B, 9) uniforms (columns 0-4 used) -> (B, 3, 3): shift . rotate . zoom . mirror, about the centre."""
    h, w = size
    sym = 2 * u - 1  # U[-1, 1]
    flip = np.where(u[:, 0] < cfg.flip_prob, -1.0, 1.0)
    angle = np.deg2rad(cfg.rotate_deg * sym[:, 1])
    lo, hi = cfg.scale
    zoom = lo + (hi - lo) * u[:, 2]
    cos, sin = np.cos(angle) * zoom, np.sin(angle) * zoom
    matrix = np.zeros((len(u), 3, 3))
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos * flip, -sin, sin * flip, cos
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    shift = cfg.shift * sym[:, 3:5] * np.array([w, h])
    # x_out = L (x_in - c) + c + shift
    matrix[:, :2, 2] = centre + shift - matrix[:, :2, :2] @ centre
    matrix[:, 2, 2] = 1.0
    return matrix


def warp_affine(images: torch.Tensor, keypoints: torch.Tensor, matrices, schema: KeypointSchema,
                padding: str = "border") -> tuple[torch.Tensor, torch.Tensor]:
    """Move images (B, C, H, W) and pixel keypoints (B, K, 2) by pixel-space matrices (B, 3, 3).

    ``matrices`` (tensor or numpy) map input pixel positions to output positions; the output has
    the input's size. Samples whose matrix has a negative determinant (a mirror) also get
    left/right labels swapped. Returns (images (B, C, H, W), keypoints (B, K, 2)).
    """
    _check_batch(images, keypoints, schema)
    b, _, h, w = images.shape
    m = matrices.detach().cpu().double().numpy() if isinstance(matrices, torch.Tensor) else np.asarray(matrices, float)
    if m.shape != (b, 3, 3):
        raise ValueError(f"matrices must be ({b}, 3, 3) for {b} images, got {m.shape}")
    to_norm = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
    # the grid maps each OUTPUT position to where it samples the INPUT, in [-1, 1] coordinates
    theta = (to_norm @ np.linalg.inv(m) @ np.linalg.inv(to_norm))[:, :2]
    grid = _sampling_grid(theta, h, w, images)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    return warped, _move_keypoints(keypoints, m, schema)


def _sampling_grid(theta: np.ndarray, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) -> (B, H, W, 2) with ``like``'s dtype and device: ``affine_grid(align_corners=False)``.

    Built as x and y planes, each one broadcast add of a per-row and a per-column term (small, in
    numpy), returned as a strided view: several times faster on the CPU than ``affine_grid``'s
    batched matmul, and ``grid_sample`` reads the view without a copy.
    """
    xs = (2 * np.arange(w) + 1) / w - 1
    ys = (2 * np.arange(h) + 1) / h - 1
    by_column = torch.from_numpy(theta[:, :, 0, None] * xs).to(like)  # (B, 2, W)
    by_row = torch.from_numpy(theta[:, :, 1, None] * ys + theta[:, :, 2, None]).to(like)  # (B, 2, H)
    planes = by_row[..., :, None] + by_column[..., None, :]  # (B, 2, H, W)
    return planes.permute(0, 2, 3, 1)


def _move_keypoints(keypoints: torch.Tensor, m: np.ndarray, schema: KeypointSchema) -> torch.Tensor:
    """(B, K, 2) keypoints through (B, 3, 3) float64 matrices, with label swap where det < 0."""
    kp = keypoints.detach().cpu().double().numpy()
    x, y = kp[..., 0], kp[..., 1]
    # elementwise rather than matmul: IEEE 0 * NaN = NaN, so a missing point never becomes a number
    new_x = m[:, 0, 0, None] * x + m[:, 0, 1, None] * y + m[:, 0, 2, None]
    new_y = m[:, 1, 0, None] * x + m[:, 1, 1, None] * y + m[:, 1, 2, None]
    moved = np.stack([new_x, new_y], -1)
    mirrored = np.linalg.det(m[:, :2, :2]) < 0
    moved[mirrored] = moved[mirrored][:, list(schema.flip_index)]
    return torch.from_numpy(moved).to(device=keypoints.device, dtype=keypoints.dtype)


def augment_batch(images: torch.Tensor, keypoints: torch.Tensor, schema: KeypointSchema, cfg: Augment,
                  generator: torch.Generator, *, value_range: tuple[float, float] = (0.0, 1.0),
                  with_matrices: bool = False) -> tuple[torch.Tensor, ...]:
    """Randomly augment a batch; the same ``generator`` state gives the same result.

    images : (B, C, H, W) float tensor with values in ``value_range`` (pass
        ``Preprocess.value_range``). keypoints : (B, K, 2) pixel coordinates, NaN where missing.
    Returns new (images (B, C, H, W), keypoints (B, K, 2)); the inputs are not modified. With
    ``with_matrices`` also the (B, 3, 3) float64 pixel matrices that moved each face (identity
    when nothing geometric is on), e.g. for ``train.label_offset``.
    Geometry is applied first (one resampling), then brightness, contrast, colour, noise.
    """
    _check_batch(images, keypoints, schema)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not value_range[0] < value_range[1]:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    b, _, h, w = images.shape
    u = _uniforms(b, generator)
    matrices = _affine_from_uniforms(cfg, u, (h, w)) if cfg.geometric else np.repeat(np.eye(3)[None], b, 0)
    if cfg.geometric:
        images, keypoints = warp_affine(images, keypoints, matrices, schema, cfg.padding)
    else:
        keypoints = keypoints.clone()
        keypoints[keypoints.isnan().any(-1)] = float("nan")  # as the warp does: a point is whole or missing
    images = _photometric(images, cfg, u[:, 5:9], generator, value_range)
    return (images, keypoints, torch.from_numpy(matrices)) if with_matrices else (images, keypoints)


def _check_batch(images: torch.Tensor, keypoints: torch.Tensor, schema: KeypointSchema) -> None:
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.is_floating_point()):
        what = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (B, C, H, W), got {what}")
    want = (images.shape[0], schema.num_keypoints, 2)
    if not isinstance(keypoints, torch.Tensor) or tuple(keypoints.shape) != want:
        got = tuple(keypoints.shape) if isinstance(keypoints, torch.Tensor) else type(keypoints).__name__
        raise ValueError(f"keypoints must be a tensor {want} for {images.shape[0]} images and schema "
                         f"{schema.name!r}, got {got}")


def _photometric(images: torch.Tensor, cfg: Augment, u: np.ndarray, generator: torch.Generator,
                 value_range: tuple[float, float]) -> torch.Tensor:
    """Brightness, contrast, RGB saturation/hue and noise on (B, C, H, W); u is (B, 4) uniforms.

    Defined on the [0, 1] scale; brightness and contrast fold into one per-image ``a * x + b`` in
    the caller's scale, and the colour matrix keeps greys grey, so it commutes with that step.
    """
    colour = cfg.color_jitter > 0 and images.shape[1] == 3
    if not (cfg.brightness or cfg.contrast or cfg.noise_std or colour):
        return images
    lo, hi = value_range
    if colour:
        images = torch.einsum("bij,bjhw->bihw", _colour_matrices(cfg.color_jitter, u[:, 2], u[:, 3]).to(images), images)
    gain = 1 + cfg.brightness * (2 * u[:, 0] - 1)  # brightness: x -> gain * x
    stretch = 1 + cfg.contrast * (2 * u[:, 1] - 1)  # contrast: x -> m + stretch * (x - m)
    mean = (images.mean(dim=(1, 2, 3)).double().cpu().numpy() - lo) / (hi - lo) if cfg.contrast else 0.0
    # on [0, 1]: y = gain * (stretch * x + (1 - stretch) * mean); rewritten for x in [lo, hi]
    scale = torch.from_numpy(gain * stretch).to(images).view(-1, 1, 1, 1)
    offset = torch.from_numpy(lo * (1 - gain * stretch) + (hi - lo) * gain * (1 - stretch) * mean).to(images)
    out = torch.addcmul(offset.view(-1, 1, 1, 1), images, scale).clamp_(lo, hi)
    if cfg.noise_std:
        noise = torch.randn(out.shape, generator=generator, device=generator.device, dtype=out.dtype)
        out.add_(noise.to(out.device), alpha=cfg.noise_std * (hi - lo)).clamp_(lo, hi)
    return out


def _colour_matrices(strength: float, u_sat: np.ndarray, u_hue: np.ndarray) -> torch.Tensor:
    """(B,) uniforms each -> (B, 3, 3) RGB matrices scaling saturation and turning hue in YIQ space.

    Saturation from U[1 - s, 1 + s], hue from U[-s/4, s/4] of a turn.
    """
    sat = 1 + strength * (2 * u_sat - 1)
    hue = 2 * math.pi * (strength / 4) * (2 * u_hue - 1)
    cos, sin = np.cos(hue) * sat, np.sin(hue) * sat
    chroma = np.zeros((len(u_sat), 3, 3))
    chroma[:, 0, 0] = 1.0
    chroma[:, 1, 1], chroma[:, 1, 2], chroma[:, 2, 1], chroma[:, 2, 2] = cos, -sin, sin, cos
    return torch.from_numpy(np.linalg.inv(_RGB_TO_YIQ) @ chroma @ _RGB_TO_YIQ)


def mirror_keypoints(keypoints, schema: KeypointSchema, width: int):
    """Mirror (..., K, 2) pixel keypoints (tensor or numpy) of images ``width`` pixels wide.

    x becomes ``width - 1 - x`` and left/right labels swap (``schema.flip_index``), so applying it
    to predictions made on a mirrored image maps them back to the original. Twice is the identity
    up to float rounding of ``width - 1 - x`` (bit-exact when that difference is representable,
    e.g. for coordinates on a 1/256-pixel grid; otherwise off by at most one float32 step at
    ``width``, ~8e-6 px at 96).
    """
    return schema.flip(keypoints, width)


def mirror(images: torch.Tensor, keypoints: torch.Tensor, schema: KeypointSchema) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror images (B, C, H, W) left to right and their keypoints (B, K, 2), swapping labels.

    Pixels are reversed exactly (no resampling), so mirroring twice gives back the same pixels.
    Used for flip test-time augmentation. Returns (images (B, C, H, W), keypoints (B, K, 2)).
    """
    _check_batch(images, keypoints, schema)
    return torch.flip(images, dims=(-1,)), mirror_keypoints(keypoints, schema, images.shape[-1])
