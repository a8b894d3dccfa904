"""Pure computations on report JSON and scores: drift and classification headline numbers,
the policy's drift share (context columns left out), calibration, ROC AUC."""

from __future__ import annotations

import math
from typing import Any

from airloop.monitoring.config import MonitorInputError


def parse_drift_json(body: dict) -> dict[str, Any]:
    """Headline numbers of an Evidently ``DataDriftPreset`` snapshot (``snapshot.dict()``).

    :returns: ``drift_share``, ``drifted_columns`` (count), ``n_columns``, ``drifted_column_names``
        and ``columns``: ``{name: {"method", "threshold", "score", "drifted"}}``.
    :raises MonitorInputError: when the snapshot has no drifted-columns metric.
    """
    share = count = None
    columns: dict[str, dict] = {}
    for metric in body.get("metrics", []):
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            count, share = metric["value"]["count"], metric["value"]["share"]
        elif kind.endswith("ValueDrift"):
            score, threshold = float(metric["value"]), float(config["threshold"])
            method = str(config.get("method", ""))
            # Distances drift when above the threshold; p-values when below it.
            drifted = score < threshold if "p_value" in method or "test" in method.lower() else score >= threshold
            columns[config["column"]] = {"method": method, "threshold": threshold, "score": score, "drifted": drifted}
    if share is None:
        raise MonitorInputError("the drift report has no DriftedColumnsCount metric")
    return {
        "drift_share": float(share),
        "drifted_columns": int(count),
        "n_columns": len(columns),
        "drifted_column_names": sorted(c for c, v in columns.items() if v["drifted"]),
        "columns": columns,
    }


def is_context_column(column: str, context_columns) -> bool:
    """``column`` is one of ``context_columns`` (also as a feature view's ``view__name``)."""
    return any(column == c or column.endswith(f"__{c}") or column.endswith(f":{c}") for c in context_columns)


def policy_drift_share(columns: dict[str, dict], context_columns) -> tuple[float | None, list[str]]:
    """Share of drifted columns among those that are not context columns, and their names.

    A day's weather is one weather regime: against a reference pooled over weeks it "drifts"
    every day (on the real 2013 data: every weather column on 274 of 274 days). Those columns
    stay in the report; the retraining policy counts the others (schedule, traffic, aircraft,
    delay statistics) and judges weather-driven degradation by the realized AUC instead.
    """
    policy = {c: v for c, v in columns.items() if not is_context_column(c, context_columns)}
    if not policy:
        return None, []
    drifted = sorted(c for c, v in policy.items() if v["drifted"])
    return len(drifted) / len(policy), drifted


def parse_classification_json(body: dict) -> dict[str, float | None]:
    """ROC AUC, accuracy, precision, recall, F1 and log loss of an Evidently classification
    snapshot (``ClassificationPreset``); a metric the snapshot lacks is None."""
    wanted = {"RocAuc": "auc", "Accuracy": "accuracy", "Precision": "precision", "Recall": "recall",
              "F1Score": "f1", "LogLoss": "log_loss"}  # fmt: skip
    out: dict[str, float | None] = dict.fromkeys(wanted.values())
    for metric in body.get("metrics", []):
        name = metric.get("config", {}).get("type", "").rsplit(":", 1)[-1]
        if name in wanted and isinstance(metric.get("value"), (int, float)):
            value = float(metric["value"])
            out[wanted[name]] = None if math.isnan(value) else value
    return out


def classification_numbers(labels, scores, threshold: float | None = None) -> dict[str, float | None]:
    """The numbers :func:`parse_classification_json` reads from Evidently, computed directly
    (scikit-learn, the same definitions): ROC AUC, and at the operating ``threshold`` (Evidently's
    default 0.5) accuracy, precision, recall, F1; log loss. No report object, no figures."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score

    labels = np.asarray(labels, dtype="int64")
    scores = np.asarray(scores, dtype="float64")
    predicted = (scores >= (0.5 if threshold is None else threshold)).astype("int64")
    return {
        "auc": roc_auc(labels, scores),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "log_loss": float(log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }


def calibration_table(labels, scores, bins: int = 10) -> list[dict[str, float]]:
    """Reliability table: per score bin, the mean predicted probability and the observed rate."""
    import numpy as np

    labels, scores = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            table.append({"bin_low": float(edges[b]), "bin_high": float(edges[b + 1]), "rows": int(mask.sum()),
                          "mean_score": float(scores[mask].mean()), "observed_rate": float(labels[mask].mean())})  # fmt: skip
    return table


def expected_calibration_error(table: list[dict[str, float]]) -> float | None:
    total = sum(row["rows"] for row in table)
    if not total:
        return None
    return sum(row["rows"] * abs(row["mean_score"] - row["observed_rate"]) for row in table) / total


def roc_auc(labels, scores) -> float | None:
    """ROC AUC, or None when only one class is present (AUC is undefined, not zero)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=float)))
