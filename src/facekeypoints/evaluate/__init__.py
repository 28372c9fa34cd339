"""Metrics (RMSE, MAE, NME, failure rate, CED/AUC) and the evaluation runner."""
from facekeypoints.evaluate.metrics import ced, mae, nme, per_keypoint_rmse, rmse, summarize

__all__ = ["rmse", "mae", "per_keypoint_rmse", "nme", "ced", "summarize"]
