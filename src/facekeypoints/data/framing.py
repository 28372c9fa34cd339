"""Where a face sits in the model's input, and back: the one framing module.

Used by the data converter (training crops), training, evaluation and inference, so a face is
framed the same way everywhere. A frame is a (2, 3) affine matrix M mapping original image pixels
to crop pixels (pixel centres at integer coordinates, as in OpenCV); keypoints return to the
original image through M's inverse.

Two framings (``FRAMINGS``; a model card names the one its model was trained in):

- ``"kaggle"``: the face placed like the mean Kaggle face (``KAGGLE_MEAN_FACE``, scaled by
  ``template``). Training faces are aligned to it by a similarity transform of their labelled
  anchor points (``frames_from_keypoints``). At inference a face is framed in two steps:

  1. from a detector box: the box's centre and size, shifted and scaled by three measured
     constants (``BOX_FRAME``), give a square frame with no rotation (``frame_from_box``);
  2. refinement: the keypoints predicted in that frame are aligned to the template exactly as the
     training faces were, the face is predicted again in that frame, and the two predictions are
     averaged. The average beat the second pass alone everywhere we measured
     (``benchmarks/bench_infer.py refine``, default Haar detector, a quick 25-epoch keypoint_net;
     NME in % of the inter-ocular distance, one pass / second pass / average): ytf68 with 60
     persons held out of training, 586 faces: 8.09 / 7.81 / 7.75; IMM, 237 faces, 5 points:
     7.19 / 7.38 / 7.12; 300-W samples, 12 faces: 8.11 / 8.19 / 7.91. Keypoint jitter on
     grace_hopper written 60 times with pixel noise (std 3), detector run on every frame:
     1.91 / 2.52 / 1.53 px per frame.
- ``"resize"``: the whole image resized to the input (aspect not kept), as seed 003 shrank the
  IMM photos (``resize_frame``, ``resize_image``).

Examples
--------
>>> import numpy as np
>>> m = frame_from_box(np.array([100.0, 100.0, 200.0, 200.0]), 96)
>>> crop_points = to_crop(m, np.array([[150.0, 150.0]])); back = to_image(m, crop_points)
>>> bool(np.allclose(back, [[150.0, 150.0]]))
True
>>> bool(np.allclose(to_crop(resize_frame((200, 100), 96), np.array([[-0.5, -0.5]])), -0.5))
True
"""
from __future__ import annotations

import cv2
import numpy as np

from facekeypoints.schema import KeypointSchema, SchemaError, load_schema

__all__ = ["FRAMINGS", "KAGGLE_MEAN_FACE", "BOX_FRAME", "BOX_FRAMES", "MAX_SHAPE_ERROR", "framing_for", "template", "fit_similarity",
           "anchor_points", "can_refine", "frame_from_box", "frame_shift", "box_iou", "box_from_frame", "frames_from_keypoints", "resize_frame",
           "to_crop", "to_image", "invert", "warp_crops", "resize_image"]

# How a model sees a face: aligned like the Kaggle faces, or the whole image resized.
FRAMINGS = ("kaggle", "resize")

# Training's ``data.frame`` (how training data reach the input) -> the framing the model then
# expects: "none" (faces already in the Kaggle framing, e.g. Kaggle CSVs) and "kaggle" (aligned to
# it by their labels) both give "kaggle"; "resize" gives "resize".
_FRAMING_OF_DATA = {"none": "kaggle", "kaggle": "kaggle", "resize": "resize"}

# Mean (x, y) of each Kaggle-15 keypoint, in 96 x 96 pixels, over the 2140 fully labelled rows of
# the real Kaggle training.csv (../shared/data/kaggle-fkd/training_keypoints_only.csv), rounded
# to 0.01 px: a statistic of that data. Order: the kaggle15 schema's.
KAGGLE_MEAN_FACE = np.array([
    [66.22, 36.84], [29.64, 37.06], [59.27, 37.86], [73.41, 37.64], [36.60, 37.92],
    [22.36, 38.03], [56.15, 29.22], [79.62, 29.66], [39.27, 29.41], [15.76, 30.45],
    [47.95, 57.25], [63.42, 75.89], [32.97, 76.13], [48.08, 72.68], [48.15, 82.63],
], dtype=np.float64)

# Schemas with no full kaggle15 derivation still have some Kaggle points to align on.
# IMM: eye centres are the means of the 8 eye-contour points; mouth_0/mouth_4 are the
# subject's right/left corners (imm58.yaml names sides from the subject's view).
_PARTIAL_ANCHORS = {
    "imm58": {
        "left_eye_center": [f"left_eye_{i}" for i in range(8)],
        "right_eye_center": [f"right_eye_{i}" for i in range(8)],
        "nose_tip": ["nose_05"],
        "mouth_left_corner": ["mouth_4"],
        "mouth_right_corner": ["mouth_0"],
    },
}

# Frame from a Haar box of width w centred at (cx, cy): a square of side BOX_FRAME[2] * w centred at
# (cx + BOX_FRAME[0] * w, cy + BOX_FRAME[1] * w). Measured by benchmarks/calibrate_framing.py: the
# default HaarDetector run on the ytf68 training images (../shared/data/ytf68/train.csv), each
# face's ideal frame taken from its true keypoints (68 points -> kaggle15, similarity to the
# template), and the median offset and size ratio taken over the 2888 of 3045 faces with exactly
# one detection (10th-90th percentiles: x -0.028..0.034, y -0.025..0.023, side 0.91..1.13: the
# spread the refinement pass removes). The Kaggle framing is, by chance, almost exactly the Haar box.
BOX_FRAME = (0.0025, -0.0012, 1.0066)

# The same constants for each box source, measured the same way (`python benchmarks/calibrate_framing.py
# --boxes SOURCE`, box size = mean of width and height, as frame_from_box takes it): dlib's HOG
# boxes are smaller and sit lower on the face (2941 faces with one box; 10th-90th percentile of
# the side 0.99..1.27); "landmarks" is the bounding box of a face's labelled 68 points, which
# starts at the brows, so the frame sits well above its centre (3045 faces).
BOX_FRAMES = {"haar": BOX_FRAME, "dlib": (0.0115, -0.0718, 1.1261), "landmarks": (-0.0018, -0.1918, 1.1759)}

# A prediction whose kaggle15 points lie further than this from the aligned template (RMS, as a
# fraction of the template's inter-ocular distance) is not face-shaped: no refinement from it, and
# video tracking drops it and re-detects. The true keypoints of the ytf68 faces score 0.08 (median),
# 0.28 (99.9th percentile) and 0.46 (worst) (benchmarks/calibrate_framing.py).
MAX_SHAPE_ERROR = 0.5


def framing_for(data_frame: str, source: str = "config") -> str:
    """The framing (``FRAMINGS``) a model trained with ``data.frame`` = ``data_frame`` expects."""
    if data_frame not in _FRAMING_OF_DATA:
        raise ValueError(f"{source}: data.frame {data_frame!r} is not one of {sorted(_FRAMING_OF_DATA)}")
    return _FRAMING_OF_DATA[data_frame]


def template(size: int) -> np.ndarray:
    """(15, 2) float64 mean Kaggle face for a ``size`` x ``size`` input (pixel centres at integers)."""
    return (KAGGLE_MEAN_FACE + 0.5) * (size / 96.0) - 0.5


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) matrix M of the similarity transform minimising sum |M [src; 1] - dst|^2.

    src, dst: (P, 2) with P >= 2 corresponding points (rows with NaN are ignored).
    Closed form (Umeyama 1991 without reflection), written with complex numbers: z -> a z + b.
    """
    ok = ~(np.isnan(src).any(axis=1) | np.isnan(dst).any(axis=1))
    if ok.sum() < 2:
        raise ValueError(f"a similarity transform needs at least 2 labelled points, got {int(ok.sum())}")
    s = src[ok, 0] + 1j * src[ok, 1]
    d = dst[ok, 0] + 1j * dst[ok, 1]
    sc, dc = s - s.mean(), d - d.mean()
    if np.vdot(sc, sc).real < 1e-6 * len(sc):  # all within ~0.001 px: float rounding, not a face's size
        raise ValueError("the alignment points coincide: no scale or rotation can be fitted")
    a = np.vdot(sc, dc) / np.vdot(sc, sc)  # vdot conjugates its first argument
    b = d.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def anchor_points(schema: KeypointSchema, keypoints: np.ndarray) -> np.ndarray:
    """(N, K, 2) keypoints in ``schema`` -> (N, 15, 2) float64 Kaggle-15 points, NaN where not derivable.

    SchemaError when ``schema`` has no Kaggle points to align a face on (see ``can_refine``).
    """
    keypoints = np.asarray(keypoints, np.float64).reshape(-1, schema.num_keypoints, 2)
    if schema.name == "kaggle15":
        return keypoints
    if "kaggle15" in schema.derive:
        return schema.convert(keypoints, "kaggle15")
    if schema.name not in _PARTIAL_ANCHORS:
        raise SchemaError(f"cannot align schema {schema.name!r} to the Kaggle face: it has no kaggle15 points; "
                          f"alignable: kaggle15, {sorted(_PARTIAL_ANCHORS)} and schemas that derive kaggle15")
    kaggle = load_schema("kaggle15")
    out = np.full((len(keypoints), kaggle.num_keypoints, 2), np.nan)
    for name, sources in _PARTIAL_ANCHORS[schema.name].items():
        out[:, kaggle.index(name)] = keypoints[:, [schema.index(s) for s in sources]].mean(axis=1)
    return out


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
    return to_crop(invert(m), points)


def box_iou(a, b) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0 when either is empty).

    >>> box_iou([0, 0, 10, 10], [5, 0, 15, 10])
    0.3333333333333333
    """
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def frame_shift(old: np.ndarray, new: np.ndarray, size: int) -> np.ndarray:
    """How far two frames of the same faces ((2, 3) or (F, 2, 3) each) lie apart: the largest
    distance between their crops' corners in the image, as a fraction of the crop's side (F,).

    >>> m = frame_from_box(np.array([10.0, 10.0, 110.0, 110.0]), 96)
    >>> float(frame_shift(m, m, 96)[0])
    0.0
    """
    corners = np.array([[0.0, 0.0], [size - 1.0, 0.0], [0.0, size - 1.0], [size - 1.0, size - 1.0]])
    old, new = (invert(np.asarray(f, np.float64).reshape(-1, 2, 3)) for f in (old, new))
    a = np.einsum("fij,kj->fki", old[:, :, :2], corners) + old[:, None, :, 2]
    b = np.einsum("fij,kj->fki", new[:, :, :2], corners) + new[:, None, :, 2]
    side = np.maximum(np.linalg.norm(a[:, 1] - a[:, 0], axis=-1), 1e-9)
    return np.linalg.norm(a - b, axis=-1).max(axis=1) / side


def invert(frames: np.ndarray) -> np.ndarray:
    """(2, 3) or (F, 2, 3) frames -> their inverse affine maps, same shape."""
    frames = np.asarray(frames, np.float64)
    if frames.ndim == 2:
        return cv2.invertAffineTransform(frames)
    return np.array([cv2.invertAffineTransform(m) for m in frames]).reshape(frames.shape)


def can_refine(schema: KeypointSchema) -> bool:
    """Whether ``schema``'s keypoints give Kaggle anchor points to align a face on."""
    try:
        anchor_points(schema, np.zeros((0, schema.num_keypoints, 2)))
    except SchemaError:
        return False
    return True


def frames_from_keypoints(keypoints: np.ndarray, schema: KeypointSchema, size: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Align faces to the template by their keypoints: how training faces are framed from their
    labels, and how inference re-frames a face from its first prediction.

    keypoints: (N, K, 2) original-image pixels in ``schema``. Returns (frames (N, 2, 3), shape_error
    (N,)): shape_error is the RMS distance of the aligned anchors from the template as a fraction of
    the template's inter-ocular distance (inf where no frame can be fitted; that frame is NaN).
    """
    # float32, the precision keypoints have (model outputs, label files): the same input gives the
    # same frame whether it comes from a prediction or from a KeypointData
    anchors = anchor_points(schema, np.asarray(keypoints, np.float32))
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


def warp_crops(image: np.ndarray, frames: np.ndarray, size: int, *, antialias: bool = True) -> np.ndarray:
    """Cut one ``size`` x ``size`` crop per (2, 3) frame out of ``image`` (H, W) or (H, W, 3) uint8.

    Returns (N, size, size[, 3]) uint8. Bilinear with replicated borders. With ``antialias`` a
    frame that shrinks the face by more than 2x first area-averages the face's region down to the
    crop's scale, so large faces are not aliased (inference). Without it every crop is one plain
    bilinear warp: how fkd15-ytf's crops were made from the ytf68 photos, so the data converter
    uses it to reproduce them.
    """
    # numpy's own errors for 0 or 96.0 ("negative dimensions", "'float' object cannot be interpreted")
    # name no argument
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"warp_crops: size must be a positive int, got {size!r}")
    out = np.empty((len(frames), size, size) + image.shape[2:], np.uint8)
    for i, m in enumerate(frames):
        src, frame = image, m
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if antialias and scale < 0.5:
            src, frame = _shrunk_roi(image, m, size, scale)
        out[i] = cv2.warpAffine(src, frame, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """The whole (H, W[, 3]) uint8 image area-averaged to ``size`` x ``size``: the pixels of ``resize_frame``."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
