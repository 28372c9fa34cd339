"""Masked coordinate losses: missing labels (NaN) contribute nothing.

Every loss takes ``pred`` (B, K, 2) and ``target`` (B, K, 2) in normalised coordinates
(see :mod:`facekeypoints.models.codecs`; 1 unit = half the image width, 48 px at 96x96), where a
keypoint whose target x or y is NaN is unlabelled. Element-wise losses are averaged over the
labelled coordinates only; a batch without any label gives 0 that still backpropagates (zero grads).

Examples
--------
>>> import torch
>>> loss = make_loss("wing")
>>> pred = torch.zeros(1, 2, 2)
>>> target = torch.tensor([[[0.1, 0.0], [float("nan"), float("nan")]]])
>>> round(float(loss(pred, target)), 4)   # only the first keypoint's 2 coordinates count
0.1253
>>> sorted(list_losses())
['cgd', 'l1', 'mse', 'smooth_l1', 'wing']
"""
from __future__ import annotations

import difflib
import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F

from facekeypoints.settings import SettingsError, check_keywords

__all__ = ["make_loss", "check_loss_params", "list_losses", "masked_mean", "mse", "l1", "smooth_l1", "wing", "cgd",
           "complete_graph_distance", "labelled_mask"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _tensors(*values: torch.Tensor) -> None:
    """A TypeError naming pred and target for numpy arrays or lists (torch.isfinite's own error named neither)."""
    if not all(isinstance(v, torch.Tensor) for v in values):
        raise TypeError(f"pred and target must be torch tensors, got {[type(v).__name__ for v in values]}")


def labelled_mask(target: torch.Tensor) -> torch.Tensor:
    """(B, K, 2) targets -> (B, K) bool: True where both coordinates are labelled (finite)."""
    _tensors(target)
    if target.ndim != 3 or target.shape[-1] != 2:
        raise ValueError(f"targets must have shape (B, K, 2), got {tuple(target.shape)}")
    return torch.isfinite(target).all(-1)


def _residual(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred - target with unlabelled entries set to 0, (B, K, 2) float mask of labelled coordinates)."""
    _tensors(pred, target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    mask = labelled_mask(target).unsqueeze(-1).expand_as(target)
    # where() on both sides: NaN targets must not reach the graph, even multiplied by 0
    diff = torch.where(mask, pred - torch.where(mask, target, torch.zeros_like(target)), torch.zeros_like(pred))
    return diff, mask.to(pred.dtype)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over entries where ``mask`` is 1; 0 (with grad) when the mask is empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over labelled coordinates. Reference: seeds 000-004."""
    diff, mask = _residual(pred, target)
    return masked_mean(diff.square(), mask)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over labelled coordinates. Reference: seed 003 (Hoang)."""
    diff, mask = _residual(pred, target)
    return masked_mean(diff.abs(), mask)


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, *, beta: float = 0.02) -> torch.Tensor:
    """Huber-style smooth L1: quadratic below ``beta`` (0.02 = about 1 px at 96x96), linear above."""
    if not 0 <= beta < math.inf:  # NaN fails this too
        raise ValueError(f"smooth_l1 loss needs a finite beta >= 0, got beta={beta}")
    diff, mask = _residual(pred, target)
    return masked_mean(F.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none", beta=beta), mask)


def wing(pred: torch.Tensor, target: torch.Tensor, *, w: float = 0.2, epsilon: float = 0.04) -> torch.Tensor:
    """Wing loss (Feng et al., CVPR 2018), per coordinate:
    ``w * ln(1 + |x| / epsilon)`` for |x| < w, else ``|x| - C`` with ``C = w - w * ln(1 + w / epsilon)``.

    Defaults are the paper's w = 10 px and epsilon = 2 px on a 96-pixel image, in normalised units
    (1 unit = 48 px): w = 0.2, epsilon = 0.04.
    """
    if not (0 < w < math.inf and 0 < epsilon < math.inf):  # NaN fails this too
        raise ValueError(f"wing loss needs finite w > 0 and epsilon > 0, got w={w}, epsilon={epsilon}")
    diff, mask = _residual(pred, target)
    x = diff.abs()
    c = w - w * math.log1p(w / epsilon)
    return masked_mean(torch.where(x < w, w * torch.log1p(x / epsilon), x - c), mask)


def complete_graph_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Complete Graph Distance term of seed 001, equation (1), on labelled keypoints.

    Our reading of ``CGD = (1/n) sum_i sum_j |d_i - d_j|``: the face is a complete graph on its
    keypoints; for every ordered pair (i, j) of distinct keypoints, compare the Euclidean length of
    edge i-j in the ground truth, ``||g_i - g_j||``, with its length in the prediction,
    ``||p_i - p_j||``. Per face::

        CGD = (1 / n) * sum_{i != j, both labelled} | ||g_i - g_j|| - ||p_i - p_j|| |

    with n the number of labelled keypoints of that face, then averaged over faces that have at
    least one label. It only sees shape, not position, so it is invariant to translating pred and
    target together (and blind to translating pred alone). (B, K, 2), (B, K, 2) -> scalar.
    """
    _tensors(pred, target)
    labelled = labelled_mask(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    target = torch.where(labelled.unsqueeze(-1), target, torch.zeros_like(target))
    eye = torch.eye(target.shape[1], dtype=torch.bool, device=target.device)
    pairs = (labelled.unsqueeze(2) & labelled.unsqueeze(1) & ~eye).to(pred.dtype)  # (B, K, K)

    def lengths(points: torch.Tensor) -> torch.Tensor:
        sq = (points.unsqueeze(2) - points.unsqueeze(1)).square().sum(-1)
        # sqrt has an infinite slope at 0 (the diagonal, coincident points): clamp keeps grads finite
        return sq.clamp(min=1e-12).sqrt()

    per_face = ((lengths(target) - lengths(pred)).abs() * pairs).sum((1, 2))
    n = labelled.sum(1).to(pred.dtype)
    faces = (n > 0).to(pred.dtype)
    return (per_face / n.clamp(min=1) * faces).sum() / faces.sum().clamp(min=1)


def cgd(pred: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.01) -> torch.Tensor:
    """``MSE + alpha * CGD`` (seed 001, equation (2), alpha = 0.01), both masked.

    Seed 001 worked in pixels. In normalised units MSE shrinks by 48^2 and CGD by 48 at 96x96, so
    alpha = 0.01 here weighs the shape term 48 times more than it did there; alpha = 0.01 / 48
    reproduces the seed's balance.
    Reference: seed 001 (Ahmed), section 2.4.
    """
    if not 0 <= alpha < math.inf:  # a negative weight would reward a wrong shape
        raise ValueError(f"cgd loss needs a finite alpha >= 0, got alpha={alpha}")
    return mse(pred, target) + alpha * complete_graph_distance(pred, target)


_LOSSES: dict[str, Callable[..., torch.Tensor]] = {f.__name__: f for f in (mse, l1, smooth_l1, wing, cgd)}


def list_losses() -> list[str]:
    """Names accepted by :func:`make_loss`."""
    return sorted(_LOSSES)


def make_loss(name: str, **params) -> LossFn:
    """The masked loss ``name`` with its keyword ``params`` bound: ``loss(pred, target) -> scalar``.

    pred and target are (B, K, 2); NaN targets are unlabelled. Unknown names raise ValueError with
    the closest names; unknown parameters raise TypeError listing the valid ones.

    Examples
    --------
    >>> loss = make_loss("wing", w=0.1, epsilon=0.02)
    >>> float(loss(torch.zeros(2, 15, 2), torch.zeros(2, 15, 2)))
    0.0
    >>> make_loss("wign")
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'wign'; known: ['cgd', 'l1', 'mse', 'smooth_l1', 'wing']; did you mean ['wing']?
    """
    try:  # a TypeError, as for any misspelt keyword argument
        params = _checked_params(name, params)
    except SettingsError as err:
        raise TypeError(str(err)) from None
    _check_values(name, params)  # ValueError for a value out of range (wing w <= 0), before any training
    return functools.partial(_LOSSES[name], **params)


def _checked_params(name: str, params: dict) -> dict:
    """``params`` as loss ``name``'s keywords (names and types); ValueError for an unknown loss."""
    if not isinstance(name, str):  # before difflib fails on it with its own words
        raise TypeError(f"loss name must be a str, got {type(name).__name__} {name!r}")
    if name not in _LOSSES:
        close = difflib.get_close_matches(name, list(_LOSSES), n=3)
        raise ValueError(f"unknown loss {name!r}; known: {list_losses()}" + (f"; did you mean {close}?" if close else ""))
    return check_keywords(_LOSSES[name], params, what=f"loss {name!r} parameter", skip=("pred", "target"))


def _check_values(name: str, params: dict) -> None:
    """The loss's own range checks (wing's w > 0, ...) run once on a dummy pair, so a value out of
    range fails here rather than at the first training step."""
    dummy = torch.zeros(1, 2, 2)
    _LOSSES[name](dummy, dummy, **params)


def check_loss_params(name: str, params: dict, *, where: str = "loss_params") -> dict:
    """``params`` checked against loss ``name``'s keywords, their types and their ranges, before
    training starts (a config is checked when it is loaded). Raises SettingsError naming ``where``."""
    try:
        params = _checked_params(name, params)
    except SettingsError as err:
        raise SettingsError(f"{where}: {err}") from None
    except ValueError as err:  # the loss itself is unknown
        raise SettingsError(f"train.loss: {err}") from None
    try:
        _check_values(name, params)
    except (ValueError, RuntimeError) as err:
        raise SettingsError(f"{where}: {str(err).splitlines()[0]}") from None
    return params
