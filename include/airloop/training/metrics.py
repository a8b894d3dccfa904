"""Holdout metrics of a model's scores: ROC AUC, log loss, Brier, calibration, precision/recall at
the threshold, and per-slice AUC (the numbers the gate compares).
"""

from __future__ import annotations

from typing import Any


def evaluate_scores(
    y_true, scores, *, threshold: float, slices=None, min_slice_rows: int = 1, calibration_bins: int = 10
) -> dict:
    """ROC AUC, log loss, Brier, calibration error, precision/recall at ``threshold``, per-slice AUC.

    ``worst_slice_roc_auc`` is the lowest AUC among slices with at least ``min_slice_rows``
    rows and both classes (None when no slice qualifies).
    """
    import numpy as np
    from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score, roc_auc_score

    y = np.asarray(y_true, dtype="int64")
    p = np.clip(np.asarray(scores, dtype="float64"), 1e-7, 1 - 1e-7)
    flagged = (p >= threshold).astype("int64")
    bins = np.minimum((p * calibration_bins).astype("int64"), calibration_bins - 1)
    ece = 0.0
    for b in range(calibration_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    metrics: dict[str, Any] = {
        "rows": int(len(y)),
        "positive_rate": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "threshold": float(threshold),
        "precision": float(precision_score(y, flagged, zero_division=0)),
        "recall": float(recall_score(y, flagged, zero_division=0)),
        "flagged_rate": float(flagged.mean()),
    }
    if slices is not None:
        keys = np.asarray(slices).astype(str)
        per_slice = {}
        for key in sorted(set(keys.tolist())):
            mask = keys == key
            ys, ps = y[mask], p[mask]
            both = len(set(ys.tolist())) == 2
            per_slice[key] = {
                "rows": int(mask.sum()),
                "positive_rate": float(ys.mean()),
                "roc_auc": float(roc_auc_score(ys, ps)) if both else None,
                "brier": float(brier_score_loss(ys, ps)),
            }
        metrics["slices"] = per_slice
        eligible = [(s["roc_auc"], k) for k, s in per_slice.items() if s["roc_auc"] is not None and s["rows"] >= min_slice_rows]
        worst = min(eligible) if eligible else (None, None)
        metrics["worst_slice_roc_auc"], metrics["worst_slice"] = worst
    return metrics
