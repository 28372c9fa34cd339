"""Stand-in models for tests: checkpoints whose predictions are known exactly."""
from pathlib import Path

import numpy as np
import torch

from facekeypoints.data.framing import template
from facekeypoints.models import create_model
from facekeypoints.models.checkpoint import card_for, save_checkpoint
from facekeypoints.models.codecs import encode


def mean_face_checkpoint(path: str | Path, wobble: float = 0.0, seed: int = 0) -> Path:
    """Save an ``fcnn`` kaggle15 checkpoint (small, fast) that predicts the mean Kaggle face in every
    crop plus, with ``wobble`` > 0, a small image-dependent offset (random output weights of that std).

    A stand-in for trained weights: its keypoints are face-shaped, so framing, refinement and
    tracking can be exercised and checked exactly (with ``wobble=0`` a face's keypoints are the
    template mapped back through its frame).
    """
    torch.manual_seed(seed)
    model = create_model("fcnn", schema="kaggle15")
    last = model.head[-1]
    with torch.no_grad():
        torch.nn.init.normal_(last.weight, std=wobble) if wobble > 0 else last.weight.zero_()
        last.bias.copy_(torch.from_numpy(encode(template(96), (96, 96)).reshape(-1).astype(np.float32)))
    save_checkpoint(path, model, card_for(model))
    return Path(path)


class FakeRunner:
    """A runner (see facekeypoints.models.predict) that answers with ``fn(x)`` and keeps ``card``:
    to count model calls or force an answer without touching the prediction path."""

    backend = "fake"

    def __init__(self, card, fn):
        self.card, self.fn, self.source = card, fn, "<fake>"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)
