"""Keypoint error metrics. All take pixel coordinates (N, K, 2) with NaN where a label is missing;
only labelled points count, so partly labelled rows (most Kaggle rows) are scored fairly. A point is
labelled when both its coordinates are (``KeypointData.labelled_mask``'s rule): one NaN coordinate
leaves the whole point out of every metric.
Only a NaN label means "unlabelled": a NaN prediction at a labelled point is an error (``rmse`` and
``mae`` give NaN instead, so a diverged model in training scores NaN, never well).

Examples
--------
>>> import numpy as np
>>> gt = np.array([[[10.0, 10.0], [np.nan, np.nan]]]); pred = np.array([[[13.0, 14.0], [0.0, 0.0]]])
>>> float(rmse(pred, gt)), float(mae(pred, gt))
(3.5355339059327378, 3.5)
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from facekeypoints.schema import KeypointSchema, load_schema

__all__ = ["rmse", "mae", "mean_error", "per_keypoint_rmse", "normalised_errors", "nme", "ced", "summarize"]


def _points(a, what: str) -> np.ndarray:
    """``a`` as a float64 (N, K, 2) array; ``what`` (the argument) is named in errors."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iuf":  # None, strings, objects, bools, complex: not pixel coordinates
        raise TypeError(f"{what}: expected an (N, K, 2) array of numbers, got {type(a).__name__} of dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[-1] != 2:  # e.g. one face (K, 2): add the face axis, a[None]
        raise ValueError(f"{what}: expected shape (N, K, 2) (faces, keypoints, x and y), got {arr.shape}")
    return arr.astype(np.float64)


def _labels(gt) -> np.ndarray:
    """``gt`` as float64 (N, K, 2) with both coordinates NaN at every point not labelled in both."""
    gt = _points(gt, "gt")
    if np.isinf(gt).any():  # only NaN marks a missing label; inf - inf would silently drop the point
        raise ValueError(f"gt: {int(np.isinf(gt).any(-1).sum())} points are infinite; expected finite pixel "
                         "coordinates, or NaN where a point is unlabelled")
    return np.where(np.isnan(gt).any(-1, keepdims=True), np.nan, gt)


def _errors(pred: np.ndarray, gt: np.ndarray, nan_predictions: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """(pred - gt, labelled coordinates: both of each labelled point; NaN in the difference elsewhere).
    A NaN prediction at a labelled point raises, or with ``nan_predictions="keep"`` stays NaN in the
    difference (the caller's score becomes NaN)."""
    pred, gt = _points(pred, "pred"), _labels(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    labelled = ~np.isnan(gt)
    if nan_predictions == "raise":
        broken = (np.isnan(pred) & labelled).any(-1)
        if broken.any():  # dropping them would score a model that gives no answer better than a wrong one
            raise ValueError(f"pred: {int(broken.sum())} predicted points are NaN where the ground truth labels "
                             f"them (of {int(labelled.any(-1).sum())} labelled points); a model that predicts "
                             "NaN cannot be scored")
    return pred - gt, labelled


def _scored(pred, gt, schema) -> tuple[np.ndarray, np.ndarray, KeypointSchema]:
    """(pred - gt, gt as float64, the schema) with K checked against the schema (a name or object)."""
    schema = load_schema(schema)
    d, _ = _errors(pred, gt)
    if d.shape[1] != schema.num_keypoints:  # other indices than the eyes would be taken as the eyes
        raise ValueError(f"pred and gt: expected shape (N, {schema.num_keypoints}, 2) for schema "
                         f"{schema.name!r}, got {d.shape}")
    return d, _labels(gt), schema


def rmse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Root mean squared error over labelled coordinates: the Kaggle FKD metric (pixels). NaN when
    a prediction at a labelled coordinate is NaN (e.g. a diverged model), never a better score."""
    d, labelled = _errors(pred, gt, nan_predictions="keep")  # training validates diverged models too
    d = d[labelled]
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error over labelled coordinates (seed 003's Kaggle metric), pixels; NaN as ``rmse``."""
    d, labelled = _errors(pred, gt, nan_predictions="keep")
    d = d[labelled]
    return float(np.mean(np.abs(d))) if d.size else float("nan")


def mean_error(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean signed error (x, y) in pixels over labelled coordinates: a systematic offset.

    Far from 0 it means predictions and labels disagree on a convention: e.g. labels that sit to
    one side of the mirror-symmetric point, which mirroring augmentation cannot learn.
    """
    d, _ = _errors(pred, gt)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN axis gives NaN, as documented
        return float(np.nanmean(d[..., 0])), float(np.nanmean(d[..., 1]))


def per_keypoint_rmse(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(K,) RMSE per keypoint over the rows where it is labelled; NaN for a never-labelled keypoint."""
    d = _errors(pred, gt)[0] ** 2
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


def normalised_errors(pred: np.ndarray, gt: np.ndarray, schema: KeypointSchema | str) -> np.ndarray:
    """(N, K) each point's distance from its label over the row's normaliser (see ``nme``); NaN
    where unlabelled. Averaging a subset of its columns gives the NME of a face region."""
    d, gt, schema = _scored(pred, gt, schema)
    d = np.linalg.norm(d, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return d / _normalizer(gt, schema)[:, None]


def nme(pred: np.ndarray, gt: np.ndarray, schema: KeypointSchema | str) -> np.ndarray:
    """(N,) normalised mean error per row: mean point-to-point distance over labelled keypoints,
    divided by the inter-ocular distance (schema.normalization), else by the labelled points'
    bounding-box diagonal. NaN where a row lacks either, or has a single labelled point."""
    d, gt, schema = _scored(pred, gt, schema)
    d = np.linalg.norm(d, axis=-1)  # (N, K), NaN where unlabelled
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without labels give NaN, by design
        return np.nanmean(d, axis=1) / _normalizer(gt, schema)


def ced(nme_per_row: np.ndarray, max_threshold: float = 0.10, steps: int = 101) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative error distribution: (thresholds, fraction of rows with NME <= t, AUC in [0, 1]).

    The AUC is the area under the curve up to ``max_threshold``, divided by it (as in 300-W).
    ``nme_per_row`` is 1-d (NaN rows are left out; a negative NME is refused); ``steps`` thresholds,
    2 to 100000. Without a row left, the fractions and the AUC are NaN, as ``summarize`` says.
    """
    e = np.asarray(nme_per_row)
    if e.dtype.kind not in "iuf":
        raise TypeError(f"nme_per_row: expected a 1-d array of numbers, got {type(nme_per_row).__name__} "
                        f"of dtype {e.dtype}")
    if e.ndim != 1:
        raise ValueError(f"nme_per_row: expected a 1-d array (one NME per row), got shape {e.shape}")
    if isinstance(max_threshold, bool) or not isinstance(max_threshold, numbers.Real):
        raise TypeError(f"max_threshold: expected a number, got {type(max_threshold).__name__}")
    if not (np.isfinite(max_threshold) and max_threshold > 0):  # the AUC is divided by it
        raise ValueError(f"max_threshold: expected a finite number > 0, got {max_threshold}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"steps: expected an int, got {type(steps).__name__}")
    if not 2 <= steps <= 100_000:  # one threshold has no area; more only costs memory
        raise ValueError(f"steps: expected 2 to 100000 thresholds, got {steps}")
    e = np.sort(e[~np.isnan(e)].astype(np.float64))
    if e.size and e[0] < 0:  # a distance cannot be: it would count as under every threshold
        raise ValueError(f"nme_per_row: {int((e < 0).sum())} values are negative (e.g. {e[0]:g}); an NME is a "
                         "distance, 0 or more")
    t = np.linspace(0.0, float(max_threshold), int(steps))
    if not e.size:
        return t, np.full_like(t, np.nan), float("nan")
    # rows with NME <= t, counted on the sorted errors: no (steps, rows) table in memory
    frac = np.searchsorted(e, t, side="right") / e.size
    area = float(np.sum((frac[1:] + frac[:-1]) * np.diff(t)) / 2 / max_threshold)
    return t, frac, area


def summarize(pred: np.ndarray, gt: np.ndarray, schema: KeypointSchema | str) -> dict:
    """Every metric in one dict: rmse, mae, nme, fr_8, fr_10, auc_10, per_keypoint_rmse, ...

    A metric no row defines (e.g. NME without labelled eyes) is NaN; ``infer.results.finite_json``
    turns those into None for JSON, as the CLI does (``json.dumps`` alone would write ``NaN``)."""
    schema = load_schema(schema)
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
        "labelled_coordinates": int((~np.isnan(_labels(gt))).sum()),
        "per_keypoint_rmse": {n: (None if np.isnan(v) else float(v)) for n, v in zip(schema.keypoints, pk)},
        "ced": {"thresholds": t.round(4).tolist(), "fraction": frac.round(4).tolist()},
    }
