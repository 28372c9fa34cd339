"""The labellers' offset: mirroring that keeps a labelling habit instead of averaging it away.

Why: people who label faces have habits, e.g. fkd15-ytf's labellers put points about a pixel to
the right of where the mirror-symmetric point is. Mirroring a training face mirrors its labels and
the habit with them (a right shift becomes a left shift), so a model trained with mirroring
cannot learn the habit and pays for it on the data's own labels; without mirroring it learns the
habit and pays for it on photos labelled by others.

Here the label of point k is modelled as ``net(image) + L b[k]``: ``net`` is mirror-symmetric
(mirroring is kept as augmentation), ``b`` is a learned (K, 2) offset in pixels, and ``L`` is
the 2x2 linear part of the face's augmentation (mirror, rotation, zoom), so the offset turns,
scales and mirrors with the face exactly as its labels did. On a mirrored face point k is the
original's point ``flip_index[k]``, so its offset is ``L b[flip_index[k]]``.

Only the part of ``b`` that mirroring reverses can be told apart from what the network learns:
a shift that mirroring keeps (all points 1 px lower, or the eyes wider apart) fits the network as
well. So ``b`` is kept in that mirror-antisymmetric subspace, ``b = (a - M a) / 2`` with ``M a[k]
= (-a[f(k)].x, a[f(k)].y)`` for a free parameter ``a``: the network keeps all it can learn, and
dropping ``b`` (photos) leaves the mirror-symmetric point. The learned ``b`` goes into the model
card (``ModelCard.label_offset``); prediction adds it only when asked (Kaggle crops: yes).
"""
from __future__ import annotations

import torch
from torch import nn

from facekeypoints.schema import KeypointSchema

__all__ = ["LabelOffset"]


class LabelOffset(nn.Module):
    """Learned (K, 2) labeller offset in input pixels, kept mirror-antisymmetric.

    >>> from facekeypoints.schema import load_schema
    >>> offset = LabelOffset(load_schema("kaggle15"))
    >>> offset(torch.eye(3).repeat(4, 1, 1), (96, 96)).shape
    torch.Size([4, 15, 2])
    """

    def __init__(self, schema: KeypointSchema):
        super().__init__()
        self.raw = nn.Parameter(torch.zeros(schema.num_keypoints, 2))
        self.register_buffer("flip_index", torch.tensor(schema.flip_index), persistent=False)

    def pixels(self) -> torch.Tensor:
        """The offset b, (K, 2) pixels: the mirror-antisymmetric part of the raw parameter."""
        mirrored = self.raw[self.flip_index] * self.raw.new_tensor([-1.0, 1.0])
        return (self.raw - mirrored) / 2

    def load_pixels(self, offset) -> None:
        """Start from a known offset (e.g. a checkpoint's card), (K, 2) pixels."""
        with torch.no_grad():
            self.raw.copy_(torch.as_tensor(offset, dtype=self.raw.dtype))

    def forward(self, matrices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Per-face offsets in the models' normalised coordinates (``codecs.encode`` units), (B, K, 2).

        ``matrices`` (B, 3, 3) are the faces' augmentation matrices (``augment_batch(...,
        with_matrices=True)``); a negative determinant means the face was mirrored.
        """
        linear = matrices[:, :2, :2].to(self.raw)
        b = self.pixels()
        mirrored = torch.linalg.det(linear) < 0
        per_face = torch.where(mirrored[:, None, None], b[self.flip_index][None], b[None])  # (B, K, 2)
        moved = torch.einsum("bij,bkj->bki", linear, per_face)
        h, w = size
        return moved * moved.new_tensor([2.0 / w, 2.0 / h])  # a pixel vector in encode()'s units
