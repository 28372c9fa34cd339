"""The one prediction path: images or crops -> model input -> model -> keypoints in image pixels.

Training's validation, ``evaluate``, ``submit``, ``predict`` on a Kaggle CSV and the photo/video
predictor all call these functions, so they cannot drift apart:

- ``predict_inputs``: preprocessed inputs (N, C, S, S) -> keypoints in input pixels, optionally
  averaged with the mirrored and turned inputs' predictions (test-time augmentation);
- ``predict_crops``: uint8 faces already framed like the training data (any square size) ->
  keypoints in the crops' pixels;
- ``predict_frames``: faces given by a frame in a larger image -> keypoints in that image's pixels.

A *runner* is any callable mapping (N, C, S, S) float32 numpy inputs to (N, K, 2) normalised
coordinates (``facekeypoints.models.codecs``) with a ``card`` attribute: ``TorchRunner`` here, or
ONNX Runtime's ``facekeypoints.infer.onnx.OnnxRunner``.

Examples
--------
>>> import numpy as np
>>> from facekeypoints.models import create_model
>>> from facekeypoints.models.checkpoint import card_for
>>> model = create_model("keypoint_net", schema="kaggle15")
>>> runner = TorchRunner(model, card_for(model))
>>> predict_crops(runner, np.zeros((2, 48, 48), np.uint8), mirror=True).shape   # 48 px crops, rescaled
(2, 15, 2)
"""
from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facekeypoints.data import framing
from facekeypoints.models.card import ModelCard
from facekeypoints.models.codecs import decode

if TYPE_CHECKING:
    import torch

# torch is imported by TorchRunner alone: the ONNX Runtime path through this module never loads it
# (importing torch costs ~0.6 GB of memory and seconds of start-up)

__all__ = ["TorchRunner", "predict_inputs", "predict_crops", "predict_frames", "plane"]


class TorchRunner:
    """A model run with PyTorch: ``runner(x)`` maps (N, C, S, S) float32 -> (N, K, 2) normalised float32.

    ``TorchRunner(model, card)`` wraps a model in memory (training's validation);
    ``TorchRunner.load(path)`` reads a checkpoint.
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, card: ModelCard, device: str = "cpu", source: str = "<model>"):
        import torch

        self.device = torch.device(device)
        self.model = getattr(model, "module", model).to(self.device).eval()
        self.card, self.source = card, source

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "cpu", threads: int | None = None) -> "TorchRunner":
        """A checkpoint's model; ``threads`` calls ``torch.set_num_threads`` (process-wide; None leaves it)."""
        import torch

        from facekeypoints.models.checkpoint import load_model

        if threads is not None:  # torch's own refusal of 0 did not name the argument; 1.5 or "2" was truncated
            if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
                raise TypeError(f"threads must be a whole number >= 1 or None, got {type(threads).__name__} "
                                f"{threads!r}")
            if threads < 1:
                raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
            torch.set_num_threads(int(threads))
        model, card = load_model(checkpoint)
        return cls(model, card, device=device, source=str(checkpoint))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, K, 2) float32 normalised coordinates."""
        import torch

        if len(x) == 0:
            return np.zeros((0, self.card.schema.num_keypoints, 2), np.float32)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device))
        return out.float().cpu().numpy()


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def predict_inputs(runner, x: np.ndarray, *, mirror: bool = False, rotate: float = 0.0, batch_size: int = 256,
                   label_offset: bool = False) -> np.ndarray:
    """Preprocessed inputs (N, C, S, S) float32 -> (N, K, 2) float64 keypoints in input pixels.

    With ``mirror`` each input is also run mirrored, its keypoints mirrored back (left/right names
    swapped by the card's schema) and the two predictions averaged. With ``rotate`` (degrees) each
    input is also run turned by +rotate and -rotate about its centre, the keypoints turned back,
    and the three looks averaged (each mirrored too with ``mirror``): the model's error on a face
    depends on its tilt, and averaging looks at three tilts cancels part of it (rotate=4 took the
    shipped default's validation RMSE from 1.406 to 1.393 with mirroring; README, "Test-time
    augmentation"). With ``label_offset``
    the card's labeller offset (if it has one) is added: where the training data's labellers put
    each point.
    """
    x = np.asarray(x, np.float32)
    size = tuple(x.shape[-2:])
    if not (np.isfinite(rotate) and 0 <= rotate < 90):
        raise ValueError(f"rotate (test-time rotation) must be in [0, 90) degrees, got {rotate}")
    # each look: (the turn into it, the turn back out), None for the face as it is
    turns = [(None, None)] + [(m, cv2.invertAffineTransform(m)) for m in
                              ([_rotation(size, rotate), _rotation(size, -rotate)] if rotate else [])]
    parts = [np.zeros((0, runner.card.schema.num_keypoints, 2))]
    for i in range(0, len(x), batch_size):
        batch, looks = x[i:i + batch_size], []
        for turn, back_out in turns:
            turned = batch if turn is None else _turn(batch, turn)
            p = decode(runner(turned).astype(np.float64), size)
            if mirror:
                back = decode(runner(np.ascontiguousarray(turned[..., ::-1])).astype(np.float64), size)
                p = 0.5 * (p + runner.card.schema.flip(back, size[-1]))
            if back_out is not None:  # back into the unturned input's pixels
                p = p @ back_out[:, :2].T + back_out[:, 2]
            looks.append(p)
        parts.append(looks[0] if len(looks) == 1 else np.mean(looks, axis=0))
    out = np.concatenate(parts)
    if label_offset and runner.card.label_offset is not None:
        out += np.asarray(runner.card.label_offset)
    return out


def _rotation(size: tuple[int, int], degrees: float) -> np.ndarray:
    """The (2, 3) matrix turning an input of ``size`` by ``degrees`` about its centre."""
    h, w = size
    return cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)


def _turn(batch: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, C, S, S) float32 inputs turned by ``matrix``; edge pixels repeated into the corners
    (a constant border would put a dark wedge where no training face had one)."""
    n, c, h, w = batch.shape
    planes = [cv2.warpAffine(p, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
              for p in batch.reshape(n * c, h, w)]
    return np.stack(planes).reshape(n, c, h, w) if planes else batch


def plane(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB uint8 -> the model's colour: grey (OpenCV luma, as the data
    converter) for 1 channel, RGB for 3. Converting before cutting crops warps one plane, not three."""
    if channels == 1:
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)


def predict_crops(runner, crops: np.ndarray, *, mirror: bool = False, rotate: float = 0.0, batch_size: int = 256,
                  label_offset: bool = True) -> np.ndarray:
    """Faces already framed like the training data (e.g. Kaggle CSV images): (N, H, H[, 3]) uint8
    -> (N, K, 2) keypoints in the crops' pixels. Crops of another size than the model's input are
    rescaled (bilinear); crops of the input size go in untouched. Such crops come with labels made
    like the training data's, so ``label_offset`` (the card's labeller offset) is on by default."""
    crops = np.asarray(crops)
    if crops.ndim == 4 and crops.shape[3] == 1:  # grey with a channel axis
        crops = crops[..., 0]
    if crops.dtype != np.uint8 or crops.ndim not in (3, 4) or crops.shape[1] != crops.shape[2] or \
            (crops.ndim == 4 and crops.shape[3] != 3):
        raise ValueError(f"crops must be (N, H, H), (N, H, H, 1) or (N, H, H, 3) uint8, got {crops.dtype} "
                         f"{crops.shape}")
    if crops.shape[1] < 1:  # nothing to rescale: the frame's scale was a division by zero
        raise ValueError(f"crops must be at least 1x1 pixels, got shape {crops.shape}")
    size = runner.card.input_size
    if crops.shape[1] == size:
        x = runner.card.preprocess([plane(c, runner.card.in_channels) for c in crops]) if len(crops) else \
            np.zeros((0, runner.card.in_channels, size, size), np.float32)
        return predict_inputs(runner, x, mirror=mirror, rotate=rotate, batch_size=batch_size, label_offset=label_offset)
    frame = framing.resize_frame(crops.shape[1:3], size)
    planes = {i: plane(c, runner.card.in_channels) for i, c in enumerate(crops)}
    return predict_frames(runner, planes, np.arange(len(crops)), np.repeat(frame[None], len(crops), 0),
                          mirror=mirror, rotate=rotate, batch_size=batch_size, label_offset=label_offset)


def _cut(runner, planes: dict, owners: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(F, S, S[, 3]) uint8 crops of the faces framed by ``frames`` in ``planes[owners[f]]``."""
    card, size = runner.card, runner.card.input_size
    crops = np.empty((len(frames), size, size) + (() if card.in_channels == 1 else (3,)), np.uint8)
    order = np.argsort(owners, kind="stable")
    firsts, starts = np.unique(owners[order], return_index=True)
    for i, idx in zip(firsts, np.split(order, starts[1:])):
        if card.framing == "resize":  # exactly the training's whole-image shrink
            crops[idx] = framing.resize_image(planes[int(i)], size)
        else:
            crops[idx] = framing.warp_crops(planes[int(i)], frames[idx], size)
    return crops


def predict_frames(runner, planes: dict, owners: np.ndarray, frames: np.ndarray, *, mirror: bool = False,
                   rotate: float = 0.0, batch_size: int = 256, timings: dict | None = None,
                   label_offset: bool = False) -> np.ndarray:
    """Faces framed by ``frames`` (F, 2, 3) -> (F, K, 2) float64 keypoints in original-image pixels.

    ``label_offset`` adds the card's labeller offset (``predict_inputs``); off for photos, where
    the point itself is wanted rather than one labeller's habit.

    Face f lies in ``planes[owners[f]]``, an (H, W) or (H, W, 3) uint8 image already in the model's
    colour (see ``plane``). ``timings`` (ms), when given, gains preprocess, model and postprocess time.
    """
    timings = {} if timings is None else timings
    card = runner.card
    start = time.perf_counter()
    crops = _cut(runner, planes, np.asarray(owners), np.asarray(frames).reshape(-1, 2, 3))
    x = card.preprocess(crops) if len(crops) else np.zeros((0, card.in_channels, card.input_size, card.input_size),
                                                          np.float32)
    timings["preprocess"] = timings.get("preprocess", 0.0) + _elapsed_ms(start)
    start = time.perf_counter()
    in_crop = predict_inputs(runner, x, mirror=mirror, rotate=rotate, batch_size=batch_size, label_offset=label_offset)
    timings["model"] = timings.get("model", 0.0) + _elapsed_ms(start)
    start = time.perf_counter()
    inverse = framing.invert(np.asarray(frames).reshape(-1, 2, 3))
    keypoints = np.einsum("fij,fkj->fki", inverse[:, :, :2], in_crop) + inverse[:, None, :, 2]
    timings["postprocess"] = timings.get("postprocess", 0.0) + _elapsed_ms(start)
    return keypoints
