"""Turn a landmark dataset into the Kaggle task: 96 x 96 grayscale faces framed like Kaggle's.

Each face is aligned by a least-squares similarity transform (rotation, uniform scale, shift)
that maps its Kaggle-15 anchor points onto the mean Kaggle face; the image is warped with that
transform and the keypoints are mapped with the same matrix, so pixels and labels stay together.

Examples
--------
>>> from facekeypoints.data import read, to_kaggle_task
>>> faces, report = to_kaggle_task(read("../shared/data/ytf68/train.csv"), "kaggle15")  # doctest: +SKIP
>>> faces.images.shape  # doctest: +SKIP
(3045, 96, 96)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from facekeypoints.data.dataset import KeypointData
from facekeypoints.schema import SchemaError, load_schema

__all__ = ["KAGGLE_MEAN_FACE", "ConversionReport", "complete_labels", "resize_faces", "fit_similarity", "kaggle_anchors", "to_kaggle_task"]

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


@dataclass
class ConversionReport:
    """What a conversion did; ``str(report)`` is the summary the CLI prints."""

    faces_in: int
    faces_out: int
    size: int
    target: str
    not_aligned: list[str] = field(default_factory=list)  # ids with fewer than 2 anchor points
    read_skipped: list[str] = field(default_factory=list)  # bad input a skip_bad read left out
    outside: int = 0  # labelled keypoints outside [0, size - 1] after warping (kept, not clipped)
    labelled: int = 0
    rows_with_outside: int = 0
    fit_rms: float = float("nan")  # mean RMS distance (px) of the anchors from the mean face
    eye_centres: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan))  # mean left, right

    def __str__(self) -> str:
        lines = [
            f"converted {self.faces_out} of {self.faces_in} faces to {self.target} at {self.size}x{self.size}",
            f"keypoints outside the image (kept, not clipped): {self.outside} of {self.labelled} labelled, "
            f"in {self.rows_with_outside} faces",
            f"alignment RMS to the Kaggle mean face: {self.fit_rms:.2f} px",
        ]
        if np.isfinite(self.eye_centres).all():
            (lx, ly), (rx, ry) = self.eye_centres
            lines.append(f"mean eye centres: left ({lx:.2f}, {ly:.2f}), right ({rx:.2f}, {ry:.2f})")
        if self.read_skipped:
            lines.append(f"left out when reading (skip_bad): {len(self.read_skipped)}, e.g. {self.read_skipped[0]}")
        if self.not_aligned:
            lines.append(f"not converted (fewer than 2 alignment points): {len(self.not_aligned)}: "
                         f"{self.not_aligned[:10]}{' ...' if len(self.not_aligned) > 10 else ''}")
        return "\n".join(lines)


def kaggle_anchors(data: KeypointData) -> np.ndarray:
    """(N, 15, 2) Kaggle-15 points derived from ``data``'s keypoints, NaN where not derivable."""
    schema = data.schema
    if schema.name == "kaggle15":
        return data.keypoints.astype(np.float64)
    if "kaggle15" in schema.derive:
        return schema.convert(data.keypoints.astype(np.float64), "kaggle15")
    if schema.name not in _PARTIAL_ANCHORS:
        raise SchemaError(f"cannot align schema {schema.name!r} to the Kaggle face: it has no kaggle15 points; "
                          f"alignable: kaggle15, {sorted(_PARTIAL_ANCHORS)} and schemas that derive kaggle15")
    kaggle = load_schema("kaggle15")
    out = np.full((len(data), kaggle.num_keypoints, 2), np.nan)
    for name, sources in _PARTIAL_ANCHORS[schema.name].items():
        idx = [schema.index(s) for s in sources]
        out[:, kaggle.index(name)] = data.keypoints[:, idx].astype(np.float64).mean(axis=1)
    return out


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
    if np.vdot(sc, sc).real == 0:
        raise ValueError("the alignment points coincide: no scale or rotation can be fitted")
    a = np.vdot(sc, dc) / np.vdot(sc, sc)  # vdot conjugates its first argument
    b = d.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 2) points mapped by the (2, 3) affine matrix ``m``; NaN stays NaN."""
    return points @ m[:, :2].T + m[:, 2]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def to_kaggle_task(data: KeypointData, target: str = "kaggle15", *, size: int = 96
                   ) -> tuple[KeypointData, ConversionReport]:
    """Warp every face to a ``size`` x ``size`` grayscale crop framed like the Kaggle faces.

    Returns (faces, report): faces.images (M, size, size) uint8, faces.keypoints (M, K_target, 2)
    in ``target``'s schema, mapped with the same transform as the pixels. Keypoints that land
    outside the crop are kept and counted in the report. Faces with fewer than two alignment
    points cannot be placed; they are left out and listed in ``report.not_aligned`` and in
    ``faces.skipped``. M = N - len(report.not_aligned).
    """
    if data.images is None:
        raise ValueError(f"{data.source or 'data'} holds no images; read it with load_images=True")
    anchors = kaggle_anchors(data)
    labels = data.to_schema(target).keypoints.astype(np.float64)
    template = (KAGGLE_MEAN_FACE + 0.5) * (size / 96.0) - 0.5  # pixel centres at integers
    report = ConversionReport(faces_in=len(data), faces_out=0, size=size, target=target,
                              read_skipped=list(data.skipped))
    keep, images, out_kp, placed = [], [], [], []
    for i in range(len(data)):
        if (~np.isnan(anchors[i]).any(axis=1)).sum() < 2:
            report.not_aligned.append(data.ids[i])
            continue
        m = fit_similarity(anchors[i], template)
        placed.append(_apply(m, anchors[i]))
        images.append(cv2.warpAffine(_gray(data.image(i)), m, (size, size), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
        out_kp.append(_apply(m, labels[i]))
        keep.append(i)
    kp = np.asarray(out_kp, dtype=np.float32).reshape(len(keep), -1, 2)
    faces = KeypointData.from_arrays(
        target, kp, images=np.asarray(images, dtype=np.uint8).reshape(len(keep), size, size),
        ids=[data.ids[i] for i in keep], person=[data.person[i] for i in keep], source=data.source,
        skipped=list(data.skipped) + [f"{i}: fewer than 2 alignment points" for i in report.not_aligned],
    )
    _summarise(report, faces, np.asarray(placed).reshape(len(keep), -1, 2), template)
    return faces, report


def _summarise(report: ConversionReport, faces: KeypointData, placed: np.ndarray, template: np.ndarray) -> None:
    """Fill the report: keypoints outside the crop, fit residual, where the eyes landed.

    placed: (M, 15, 2) the Kaggle anchor points after warping; template: (15, 2).
    """
    kp, size = faces.keypoints, report.size
    labelled = ~np.isnan(kp).any(axis=-1)
    outside = labelled & ((kp < 0) | (kp > size - 1)).any(axis=-1)
    report.faces_out = len(faces)
    report.labelled, report.outside = int(labelled.sum()), int(outside.sum())
    report.rows_with_outside = int(outside.any(axis=1).sum())
    if len(placed):
        with np.errstate(all="ignore"):  # all-NaN anchor columns (partial schemas) average to NaN
            per_face = np.sqrt(np.nanmean(((placed - template) ** 2).sum(axis=-1), axis=1))
            report.fit_rms = float(per_face.mean())
            report.eye_centres = np.nanmean(placed[:, :2], axis=0)


def complete_labels(data: KeypointData, source: KeypointData, *, tolerance: float = 0.05
                    ) -> tuple[KeypointData, dict]:
    """Fill ``data``'s missing Kaggle labels from a fully labelled source of the SAME faces.

    fkd15-ytf's training rows are ytf68's rows, each warped by a similarity transform into the
    Kaggle framing, with labels hidden in Kaggle's missing pattern. For each row the transform is
    recovered from the labelled points (eye centres and nose tip are always there) and the hidden
    points are mapped through it. A row whose labelled points do not fit within ``tolerance`` px
    means the files do not correspond row for row: that is an error, never a silent fill.

    data: kaggle15 (N, 15, 2) with NaN; source: any schema that derives kaggle15, N rows.
    Returns (completed data, report with rows, values filled and the worst fit residual in px).
    """
    if len(source) != len(data):
        raise ValueError(f"{source.source}: {len(source)} rows, but {data.source} has {len(data)}; "
                         "label completion needs the same faces row for row")
    if data.schema.name != "kaggle15":
        raise SchemaError(f"label completion fills kaggle15 labels, not {data.schema.name!r}")
    anchors = kaggle_anchors(source)
    out = data.keypoints.astype(np.float64).copy()
    filled, worst = 0, 0.0
    for i in range(len(data)):
        have = ~np.isnan(out[i]).any(axis=1)
        if have.all():
            continue
        m = fit_similarity(anchors[i], out[i])
        residual = float(np.abs(_apply(m, anchors[i][have]) - out[i][have]).max())
        if not residual <= tolerance:
            raise ValueError(f"{data.source}, row {i + 1}: labelled points are {residual:.3f} px from the "
                             f"transformed {source.source} row {i + 1} (tolerance {tolerance} px): "
                             "the files do not hold the same faces in the same order")
        worst = max(worst, residual)
        hidden = ~have & ~np.isnan(anchors[i]).any(axis=1)
        out[i][hidden] = _apply(m, anchors[i][hidden])
        filled += int(hidden.sum())
    report = {"rows": len(data), "keypoints_filled": filled, "max_residual_px": round(worst, 5),
              "source": str(source.source)}
    return replace(data, keypoints=out.astype(np.float32)), report


def resize_faces(data: KeypointData, size: int) -> KeypointData:
    """Resize whole images to ``size`` x ``size`` grayscale and scale keypoints with them (seed 003
    shrank the IMM photos this way). Aspect ratio is not kept: x and y scale separately."""
    if data.images is None:
        raise ValueError(f"{data.source or 'data'} holds no images; read it with load_images=True")
    images, keypoints = [], data.keypoints.astype(np.float64).copy()
    for i in range(len(data)):
        h, w = data.image_size(i)
        images.append(cv2.resize(_gray(data.image(i)), (size, size), interpolation=cv2.INTER_AREA))
        keypoints[i] = (keypoints[i] + 0.5) * np.array([size / w, size / h]) - 0.5  # pixel centres
    return replace(data, images=np.stack(images).astype(np.uint8), keypoints=keypoints.astype(np.float32))
