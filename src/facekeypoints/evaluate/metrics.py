"""Keypoint error metrics. All take pixel coordinates (N, K, 2) with NaN where a label is missing;
only labelled coordinates count, so partly labelled rows (most Kaggle rows) are scored fairly.

Examples
--------
>>> import numpy as np
>>> gt = np.array([[[10.0, 10.0], [np.nan, np.nan]]]); pred = np.array([[[13.0, 14.0], [0.0, 0.0]]])
>>> float(rmse(pred, gt)), float(mae(pred, gt))
(3.5355339059327378, 3.5)
"""
from __future__ import annotations

import warnings

import numpy as np

from facekeypoints.schema import KeypointSchema

__all__ = ["rmse", "mae", "mean_error", "per_keypoint_rmse", "normalised_errors", "nme", "ced", "summarize"]


def _errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred - gt


def rmse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Root mean squared error over labelled coordinates: the Kaggle FKD metric (pixels)."""
    d = _errors(pred, gt)
    d = d[~np.isnan(d)]
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error over labelled coordinates (seed 003's Kaggle metric), pixels."""
    d = _errors(pred, gt)
    d = d[~np.isnan(d)]
    return float(np.mean(np.abs(d))) if d.size else float("nan")


def mean_error(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean signed error (x, y) in pixels over labelled coordinates: a systematic offset.

    Far from 0 it means predictions and labels disagree on a convention: e.g. labels that sit to
    one side of the mirror-symmetric point, which mirroring augmentation cannot learn.
    """
    d = _errors(pred, gt)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN axis gives NaN, as documented
        return float(np.nanmean(d[..., 0])), float(np.nanmean(d[..., 1]))


def per_keypoint_rmse(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(K,) RMSE per keypoint over the rows where it is labelled; NaN for a never-labelled keypoint."""
    d = _errors(pred, gt) ** 2
    labelled = ~np.isnan(d).any(axis=-1)  # (N, K)
    sums = np.where(labelled[..., None], d, 0.0).sum(axis=(0, 2))
    counts = labelled.sum(axis=0) * 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(sums / counts)


def _normalizer(gt: np.ndarray, schema: KeypointSchema) -> np.ndarray:
    """(N,) distance each row's error is divided by: inter-ocular when the schema names two
    normalisation points, else the diagonal of the labelled points' bounding box."""
    if len(schema.normalization) == 2:
        a, b = (schema.index(n) for n in schema.normalization)
        distance = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
        return np.where(distance > 0, distance, np.nan)  # coinciding eye labels: NME undefined, not infinite
    lo, hi = np.nanmin(gt, axis=1), np.nanmax(gt, axis=1)
    size = np.linalg.norm(hi - lo, axis=-1)
    return np.where(size > 0, size, np.nan)  # one labelled point (e.g. nose1) has no size: NME undefined


def normalised_errors(pred: np.ndarray, gt: np.ndarray, schema: KeypointSchema) -> np.ndarray:
    """(N, K) each point's distance from its label over the row's normaliser (see ``nme``); NaN
    where unlabelled. Averaging a subset of its columns gives the NME of a face region."""
    d = np.linalg.norm(_errors(pred, gt), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return d / _normalizer(np.asarray(gt, np.float64), schema)[:, None]


def nme(pred: np.ndarray, gt: np.ndarray, schema: KeypointSchema) -> np.ndarray:
    """(N,) normalised mean error per row: mean point-to-point distance over labelled keypoints,
    divided by the inter-ocular distance (schema.normalization), else by the labelled points'
    bounding-box diagonal. NaN where a row lacks either, or has a single labelled point."""
    d = np.linalg.norm(_errors(pred, gt), axis=-1)  # (N, K), NaN where unlabelled
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without labels give NaN, by design
        return np.nanmean(d, axis=1) / _normalizer(np.asarray(gt, np.float64), schema)


def ced(nme_per_row: np.ndarray, max_threshold: float = 0.10, steps: int = 101) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative error distribution: (thresholds, fraction of rows with NME <= t, AUC in [0, 1]).

    The AUC is the area under the curve up to ``max_threshold``, divided by it (as in 300-W).
    """
    e = nme_per_row[~np.isnan(nme_per_row)]
    t = np.linspace(0.0, max_threshold, steps)
    frac = (e[None, :] <= t[:, None]).mean(axis=1) if e.size else np.zeros_like(t)
    area = float(np.sum((frac[1:] + frac[:-1]) * np.diff(t)) / 2 / max_threshold)
    return t, frac, area


def summarize(pred: np.ndarray, gt: np.ndarray, schema: KeypointSchema) -> dict:
    """Every metric in one JSON-ready dict: rmse, mae, nme, fr_8, fr_10, auc_10, per_keypoint_rmse, ..."""
    per_row = nme(pred, gt, schema)
    valid = per_row[~np.isnan(per_row)]
    t, frac, area = ced(per_row)
    pk = per_keypoint_rmse(pred, gt)
    return {
        "rmse": rmse(pred, gt),
        "mae": mae(pred, gt),
        "mean_error_xy": list(mean_error(pred, gt)),
        "nme": float(valid.mean()) if valid.size else float("nan"),
        "fr_8": float((valid > 0.08).mean()) if valid.size else float("nan"),
        "fr_10": float((valid > 0.10).mean()) if valid.size else float("nan"),
        "auc_10": area if valid.size else float("nan"),
        "rows": int(len(gt)),
        "rows_with_nme": int(valid.size),
        "labelled_coordinates": int((~np.isnan(np.asarray(gt))).sum()),
        "per_keypoint_rmse": {n: (None if np.isnan(v) else float(v)) for n, v in zip(schema.keypoints, pk)},
        "ced": {"thresholds": t.round(4).tolist(), "fraction": frac.round(4).tolist()},
    }
