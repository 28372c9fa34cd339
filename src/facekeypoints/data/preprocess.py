"""Turn uint8 face crops into the float arrays a model reads; shared by training and inference.

This module needs only numpy and OpenCV (no torch), so ONNX inference can import it. A
``Preprocess`` is saved in checkpoints and ONNX metadata through ``to_dict``/``from_dict``, so a
model always sees the same input at inference as in training.

It does not crop or resize: images must already be ``size`` x ``size`` (framing a face is the
detector's and the data converter's job, and resizing here would silently move keypoints).

Examples
--------
>>> import numpy as np
>>> from facekeypoints.data.preprocess import Preprocess
>>> pre = Preprocess(size=96, scale="centered", clahe=True)
>>> x = pre(np.full((2, 96, 96), 128, np.uint8))
>>> x.shape, x.dtype, float(x.max()) <= 0.5
((2, 1, 96, 96), dtype('float32'), True)
>>> Preprocess.from_dict(pre.to_dict()) == pre
True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facekeypoints.settings import from_dict

__all__ = ["Preprocess", "SCALES", "DETECTOR_STRIDE", "detector_input"]

# The face detector's input and output conventions, here (numpy only) so that its training
# (models.face_detector, train.detector) and its ONNX inference (infer.detectors) share one copy.
DETECTOR_STRIDE = 4  # input pixels per output cell


def detector_input(images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) RGB uint8 -> (B, 3, H, W) float32 in [-1, 1], the face detector's input."""
    return (np.asarray(images, np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5

MAX_CLAHE_GRID = 64  # tiles per side; see Preprocess.__post_init__

# scale name -> (offset subtracted after dividing by 255); the value range is [-offset, 1 - offset]
SCALES = {"unit": 0.0, "centered": 0.5}


@dataclass(frozen=True)
class Preprocess:
    """Deterministic uint8 -> float32 conversion.

    Attributes
    ----------
    size : side of the square input, in pixels; inputs of any other size are rejected.
    channels : 1 (grayscale; RGB input is converted with OpenCV's luma weights) or 3 (RGB;
        grayscale input is replicated to three channels).
    scale : "unit" maps 0..255 to [0, 1]; "centered" maps it to [-0.5, 0.5].
    clahe : apply contrast-limited adaptive histogram equalisation (OpenCV) to the uint8 image
        before scaling; for RGB it equalises the L channel of CIE Lab so hues do not shift.
    clahe_clip, clahe_grid : OpenCV's ``clipLimit`` and ``tileGridSize`` (grid x grid tiles).
    """

    size: int = 96
    channels: int = 1
    scale: str = "unit"
    clahe: bool = False
    clahe_clip: float = 2.0
    clahe_grid: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"Preprocess.size must be a positive int, got {self.size!r}")
        # True == 1 and 3.0 == 3 would pass "in (1, 3)" and be saved as such in checkpoints
        if isinstance(self.channels, bool) or not isinstance(self.channels, int):
            raise TypeError(f"Preprocess.channels must be the int 1 or 3, got {type(self.channels).__name__} "
                            f"{self.channels!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"Preprocess.channels must be 1 or 3, got {self.channels!r}")
        if not isinstance(self.scale, str):  # a list is unhashable: "in SCALES" would fail naming no field
            raise TypeError(f"Preprocess.scale must be one of {sorted(SCALES)}, got {type(self.scale).__name__} "
                            f"{self.scale!r}")
        if self.scale not in SCALES:
            raise ValueError(f"Preprocess.scale must be one of {sorted(SCALES)}, got {self.scale!r}")
        if not isinstance(self.clahe, bool):
            raise ValueError(f"Preprocess.clahe must be true or false, got {self.clahe!r}")
        if isinstance(self.clahe_clip, bool) or not isinstance(self.clahe_clip, (int, float)):
            raise TypeError(f"Preprocess.clahe_clip must be a number, got {type(self.clahe_clip).__name__} "
                            f"{self.clahe_clip!r}")
        if not (np.isfinite(self.clahe_clip) and self.clahe_clip > 0):
            raise ValueError(f"Preprocess.clahe_clip must be a finite number > 0, got {self.clahe_clip!r}")
        if not isinstance(self.clahe_grid, int) or isinstance(self.clahe_grid, bool) or self.clahe_grid < 1:
            raise ValueError(f"Preprocess.clahe_grid must be a positive int, got {self.clahe_grid!r}")
        # OpenCV allocates per-tile histograms for grid x grid tiles: 10**6 asks for about a terabyte,
        # and tiles under a pixel or two equalise nothing on any input size this package uses
        if self.clahe_grid > MAX_CLAHE_GRID:
            raise ValueError(f"Preprocess.clahe_grid must be at most {MAX_CLAHE_GRID}, got {self.clahe_grid}")

    @property
    def value_range(self) -> tuple[float, float]:
        """(low, high) of the output values: (0, 1) for "unit", (-0.5, 0.5) for "centered"."""
        offset = SCALES[self.scale]
        return (-offset, 1.0 - offset)

    def to_dict(self) -> dict:
        """Plain-type dict for checkpoints, ONNX metadata and YAML configs."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        """Inverse of ``to_dict``; unknown keys and mistyped values are an error (with the closest valid name)."""
        return from_dict(cls, d, where="preprocess.")

    def __call__(self, images) -> np.ndarray:
        """uint8 images -> float32 (N, C, size, size).

        ``images`` is one image (H, W) or (H, W, 3), a batch (N, H, W) or (N, H, W, 3), or a list
        of equally shaped images; colour is RGB. A single image comes back with N = 1.
        """
        batch = self._as_batch(images)
        if not len(batch):  # OpenCV's per-image and per-pixel steps have nothing to stack or reshape
            return np.zeros((0, self.channels, self.size, self.size), np.float32)
        if self.channels == 1:
            gray = _to_gray(batch) if batch.ndim == 4 else batch
            if self.clahe:
                gray = self._clahe_gray(gray)
            planes = gray[:, None]
        else:
            rgb = batch if batch.ndim == 4 else np.repeat(batch[..., None], 3, axis=-1)
            if self.clahe:
                rgb = self._clahe_rgb(rgb)
            planes = rgb.transpose(0, 3, 1, 2)
        out = planes.astype(np.float32) * np.float32(1 / 255)
        if SCALES[self.scale]:
            out -= np.float32(SCALES[self.scale])
        return np.ascontiguousarray(out)

    def _as_batch(self, images) -> np.ndarray:
        """Check dtype and size; return (N, size, size) or (N, size, size, 3) uint8."""
        if isinstance(images, (list, tuple)) and not images:  # an empty batch (no face found)
            return np.zeros((0, self.size, self.size), np.uint8)
        if isinstance(images, (list, tuple)):
            shapes = {np.shape(im) for im in images}
            if len(shapes) != 1:
                raise ValueError(f"Preprocess got images of different shapes {sorted(shapes)}; "
                                 f"all must be {self.size}x{self.size}")
            images = np.stack(images)
        arr = np.asarray(images)
        if arr.dtype != np.uint8:
            raise ValueError(f"Preprocess expects uint8 images (0..255), got dtype {arr.dtype}")
        s = self.size
        if arr.ndim == 3 and arr.shape[:2] == (s, s) and arr.shape[1:] != (s, s) and arr.shape[-1] != 3:
            # one (s, s, C) image: read as a batch it would be reported as "s x C" pixels
            raise ValueError(f"a colour image must have 3 (RGB) channels, got {arr.shape[-1]} (shape {arr.shape}); "
                             "give an (H, W) grey or (H, W, 3) RGB image")
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3 and arr.shape[1:] != (s, s)):
            arr = arr[None]  # a single image
        if arr.ndim == 4 and arr.shape[-1] != 3:
            raise ValueError(f"colour images must be (N, H, W, 3) RGB, got shape {arr.shape}")
        if arr.ndim not in (3, 4):
            raise ValueError(f"images must be (H, W), (H, W, 3), (N, H, W) or (N, H, W, 3), got shape {arr.shape}")
        if arr.shape[1:3] != (s, s):
            raise ValueError(
                f"images are {arr.shape[1]}x{arr.shape[2]} (H x W) but this Preprocess takes {s}x{s}; "
                "Preprocess does not crop or resize: frame the face first (face detector crop, or "
                "the data converter), so keypoints are transformed together with the pixels"
            )
        return arr

    def _make_clahe(self):
        return cv2.createCLAHE(clipLimit=float(self.clahe_clip), tileGridSize=(self.clahe_grid, self.clahe_grid))

    def _clahe_gray(self, gray: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 -> (N, H, W) uint8, equalised image by image (tiles are per image)."""
        clahe = self._make_clahe()
        return np.stack([clahe.apply(np.ascontiguousarray(im)) for im in gray])

    def _clahe_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> same, with CLAHE on the Lab lightness only."""
        lab = _per_pixel(rgb, cv2.COLOR_RGB2LAB)
        lab[..., 0] = self._clahe_gray(lab[..., 0])
        return _per_pixel(lab, cv2.COLOR_LAB2RGB)


def _per_pixel(batch: np.ndarray, code: int) -> np.ndarray:
    """Apply a per-pixel OpenCV colour conversion to (N, H, W, C) in one call (stacked as one tall image)."""
    n, h, w = batch.shape[:3]
    out = cv2.cvtColor(np.ascontiguousarray(batch).reshape(n * h, w, -1), code)
    return out.reshape(n, h, w, -1) if out.ndim == 3 else out.reshape(n, h, w)


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8 with OpenCV's weights (0.299 R + 0.587 G + 0.114 B)."""
    return _per_pixel(rgb, cv2.COLOR_RGB2GRAY)
