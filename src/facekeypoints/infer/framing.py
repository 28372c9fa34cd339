"""Where a face sits in the model's input: the same framing as the training crops, and back.

Models trained on the Kaggle task see 96 x 96 crops in which the face is placed like the mean
Kaggle face (``facekeypoints.data.convert.KAGGLE_MEAN_FACE``, the template the data converter
aligns every training face to). At inference a face is framed the same way, in two steps:

1. from a detector box: the box's centre and size, shifted and scaled by three measured constants
   (``BOX_FRAME``), give a square frame with no rotation;
2. refinement: the keypoints predicted in that frame are aligned to the template by a similarity
   transform (rotation, scale, shift), exactly as the converter framed the training faces, the
   face is predicted again in that frame, and the two predictions are averaged. The average beat
   the second pass alone everywhere we measured (``benchmarks/bench_infer.py refine``, default
   Haar detector, a quick 25-epoch keypoint_net; NME in % of the inter-ocular distance, one pass /
   second pass / average): ytf68 with 60 persons held out of training, 586 faces: 8.09 / 7.81 /
   7.75; IMM, 237 faces, 5 points: 7.19 / 7.38 / 7.12; 300-W samples, 12 faces: 8.11 / 8.19 /
   7.91. Keypoint jitter on grace_hopper written 60 times with pixel noise (std 3), detector run on
   every frame: 1.91 / 2.52 / 1.53 px per frame.

A frame is a (2, 3) affine matrix M mapping original image pixels to crop pixels (pixel centres at
integer coordinates, as in OpenCV); keypoints return to the original image through M's inverse.

Examples
--------
>>> import numpy as np
>>> m = frame_from_box(np.array([100.0, 100.0, 200.0, 200.0]), 96)
>>> crop_points = to_crop(m, np.array([[150.0, 150.0]])); back = to_image(m, crop_points)
>>> bool(np.allclose(back, [[150.0, 150.0]]))
True
"""
from __future__ import annotations

import cv2
import numpy as np

from facekeypoints.data.convert import KAGGLE_MEAN_FACE, fit_similarity, kaggle_anchors
from facekeypoints.data.dataset import KeypointData
from facekeypoints.schema import KeypointSchema, SchemaError

__all__ = ["BOX_FRAME", "MAX_SHAPE_ERROR", "template", "frame_from_box", "frames_from_keypoints", "resize_frame",
           "box_from_frame", "to_crop", "to_image", "warp_crops", "can_refine"]

# Frame from a Haar box of width w centred at (cx, cy): a square of side BOX_FRAME[2] * w centred at
# (cx + BOX_FRAME[0] * w, cy + BOX_FRAME[1] * w). Measured by benchmarks/calibrate_framing.py: the
# default HaarDetector run on the ytf68 training images (../shared/data/ytf68/train.csv), each
# face's ideal frame taken from its true keypoints (68 points -> kaggle15, similarity to the
# template), and the median offset and size ratio taken over the 2888 of 3045 faces with exactly
# one detection (10th-90th percentiles: x -0.028..0.034, y -0.025..0.023, side 0.91..1.13: the
# spread the refinement pass removes). The Kaggle framing is, by chance, almost exactly the Haar box.
BOX_FRAME = (0.0025, -0.0012, 1.0066)

# A prediction whose kaggle15 points lie further than this from the aligned template (RMS, as a
# fraction of the template's inter-ocular distance) is not face-shaped: no refinement from it, and
# video tracking drops it and re-detects. The true keypoints of the ytf68 faces score 0.08 (median),
# 0.28 (99.9th percentile) and 0.46 (worst) (benchmarks/calibrate_framing.py).
MAX_SHAPE_ERROR = 0.5


def template(size: int) -> np.ndarray:
    """(15, 2) float64 mean Kaggle face for a ``size`` x ``size`` input (the converter's scaling)."""
    return (KAGGLE_MEAN_FACE + 0.5) * (size / 96.0) - 0.5


def frame_from_box(box: np.ndarray, size: int, box_frame: tuple[float, float, float] = BOX_FRAME) -> np.ndarray:
    """(4,) box x1, y1, x2, y2 -> (2, 3) frame matrix of a ``size`` crop (no rotation)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w = 0.5 * ((x2 - x1) + (y2 - y1))  # Haar boxes are square; others are averaged
    cx, cy = 0.5 * (x1 + x2) + box_frame[0] * w, 0.5 * (y1 + y2) + box_frame[1] * w
    s = size / (box_frame[2] * w)
    c = (size - 1) / 2.0
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]])


def resize_frame(image_size: tuple[int, int], size: int) -> np.ndarray:
    """(2, 3) frame of a whole (H, W) image resized to ``size`` x ``size`` (aspect not kept), as
    ``cv2.resize`` maps pixel centres and as training's ``data.frame: resize`` shrank the photos."""
    h, w = image_size
    sx, sy = size / w, size / h
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def box_from_frame(m: np.ndarray, size: int, box_frame: tuple[float, float, float] = BOX_FRAME) -> np.ndarray:
    """(2, 3) frame -> (4,) the box the detector would draw for it (inverse of frame_from_box, rotation ignored)."""
    c = (size - 1) / 2.0
    cx, cy = to_image(m, np.array([[c, c]]))[0]
    w = size / (np.hypot(m[0, 0], m[1, 0]) * box_frame[2])
    cx, cy = cx - box_frame[0] * w, cy - box_frame[1] * w
    return np.array([cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2])


def to_crop(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 2) original-image pixels -> crop pixels through the (2, 3) frame ``m``."""
    return points @ m[:, :2].T + m[:, 2]


def to_image(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 2) crop pixels -> original-image pixels (the inverse of ``to_crop``)."""
    inv = cv2.invertAffineTransform(np.asarray(m, np.float64))
    return points @ inv[:, :2].T + inv[:, 2]


def can_refine(schema: KeypointSchema) -> bool:
    """Whether ``schema``'s keypoints give Kaggle anchor points to align a face on."""
    try:
        kaggle_anchors(KeypointData.from_arrays(schema, np.zeros((0, schema.num_keypoints, 2))))
    except SchemaError:
        return False
    return True


def frames_from_keypoints(keypoints: np.ndarray, schema: KeypointSchema, size: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Align predicted faces to the template, as the data converter framed the training faces.

    keypoints: (N, K, 2) original-image pixels in ``schema``. Returns (frames (N, 2, 3), shape_error
    (N,)): shape_error is the RMS distance of the aligned anchors from the template as a fraction of
    the template's inter-ocular distance (inf where no frame can be fitted; that frame is NaN).
    """
    anchors = kaggle_anchors(KeypointData.from_arrays(schema, np.asarray(keypoints, np.float32)))
    target = template(size)
    iod = np.linalg.norm(target[0] - target[1])
    frames = np.full((len(anchors), 2, 3), np.nan)
    error = np.full(len(anchors), np.inf)
    for i, points in enumerate(anchors):
        try:
            m = fit_similarity(points.astype(np.float64), target)
        except ValueError:  # coincident or too few points: not a face
            continue
        with np.errstate(invalid="ignore"):
            err = np.sqrt(np.nanmean(((to_crop(m, points) - target) ** 2).sum(-1))) / iod
        frames[i], error[i] = m, err
    return frames, error


def _shrunk_roi(image: np.ndarray, m: np.ndarray, size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Area-average the frame's region of ``image`` down by ``scale``; returns (pixels, frame on them)."""
    corners = to_image(m, np.array([[-1.0, -1.0], [size, -1.0], [-1.0, size], [size, size]]))
    h, w = image.shape[:2]
    x0, y0 = (max(0, int(np.floor(v)) - 1) for v in corners.min(0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 2), min(h, int(np.ceil(corners[:, 1].max())) + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the frame lies outside the image: nothing to shrink
        return image, m
    roi = image[y0:y1, x0:x1]
    out_w, out_h = max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))
    small = cv2.resize(roi, (out_w, out_h), interpolation=cv2.INTER_AREA)
    fx, fy = out_w / roi.shape[1], out_h / roi.shape[0]
    # small pixel q is original pixel (q + 0.5) / f - 0.5 + origin
    back = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0], [0, 0, 1]])
    return small, m @ back


def warp_crops(image: np.ndarray, frames: np.ndarray, size: int) -> np.ndarray:
    """Cut one ``size`` x ``size`` crop per (2, 3) frame out of ``image`` (H, W) or (H, W, 3) uint8.

    Returns (N, size, size[, 3]) uint8. Bilinear with replicated borders, as the data converter
    warps training faces. A frame that shrinks the face by more than 2x first area-averages the
    face's region down to the crop's scale, so large faces are not aliased.
    """
    out = np.empty((len(frames), size, size) + image.shape[2:], np.uint8)
    for i, m in enumerate(frames):
        src, frame = image, m
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if scale < 0.5:
            src, frame = _shrunk_roi(image, m, size, scale)
        out[i] = cv2.warpAffine(src, frame, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out
