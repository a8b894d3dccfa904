"""Realized performance over a rolling window of labelled days, with a confidence bound.

One day's AUC (~900 flights, a few hundred of them late) has a standard error of about 0.03, so
one day against the holdout AUC breaches a 0.05 threshold by chance on many days. The policy
judges instead the AUC of the last ``window_days`` labelled days scored by the same model version,
pooled, and its one-sided upper confidence bound (DeLong's variance: exact, fast, no resampling):
the model is *measurably* worse when even that bound is below the baseline by more than the
calibrated tolerance.

Each labelled day leaves its scores and labels in ``monitoring/labelled/ds=D/`` (a few kB), so
the window is read back without the day's predictions or raw flights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.monitoring.config import LABEL_COLUMN, SCORE_COLUMN

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.dates import LogicalDay
    from airloop.core.storage import Lake

LABELLED_ZONE = "monitoring/labelled"


def delong(labels, scores) -> tuple[float | None, float | None]:
    """ROC AUC and its DeLong variance (Sun & Xu's midrank algorithm); ``(None, None)`` with one class."""
    import numpy as np
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype="int64")
    scores = np.asarray(scores, dtype="float64")
    pos, neg = scores[labels == 1], scores[labels == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return None, None
    tx, ty = rankdata(pos), rankdata(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - tx) / n  # per positive: share of negatives it outranks
    v01 = 1 - (tz[m:] - ty) / m  # per negative: share of positives that outrank it
    variance = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    return float(auc), float(variance)


def z_value(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(confidence))


def auc_bound(labels, scores, confidence: float = 0.95) -> dict | None:
    """``{"auc", "se", "upper"}``: the AUC and its one-sided upper ``confidence`` bound, or None."""
    import math

    auc, variance = delong(labels, scores)
    if auc is None:
        return None
    se = math.sqrt(max(variance, 0.0))
    return {"auc": auc, "se": se, "upper": min(1.0, auc + z_value(confidence) * se)}


def labelled_prefix(key: str) -> str:
    return f"{LABELLED_ZONE}/ds={key}"


def publish_labelled(lake: "Lake", day: "LogicalDay", scored: "pd.DataFrame", model_version: int | None) -> None:
    """Keep ``day``'s scores and realized labels for the windows of the days after it."""
    from airloop.core.storage import frame_to_parquet, publish_partition

    frame = scored[[SCORE_COLUMN, LABEL_COLUMN]].astype({SCORE_COLUMN: "float64", LABEL_COLUMN: "int64"}).reset_index(drop=True)
    manifest = {"ds": day.key, "model_version": model_version, "rows": len(frame)}
    publish_partition(lake, labelled_prefix(day.key), {"part.parquet": frame_to_parquet(frame)}, manifest)


def _read_labelled(lake: "Lake", key: str) -> "tuple[dict, pd.DataFrame] | None":
    import io

    import pyarrow.parquet as pq

    from airloop.core.storage import PartitionNotFound, read_partition_files

    try:
        manifest, files = read_partition_files(lake, labelled_prefix(key))
    except PartitionNotFound:
        return None
    if "part.parquet" not in files:
        return None
    return manifest, pq.read_table(io.BytesIO(files["part.parquet"])).to_pandas()


def window_performance(lake: "Lake", day: "LogicalDay", scored: "pd.DataFrame", *, model_version: int | None,
                       reference_auc: float | None, window_days: int, min_days: int,
                       confidence: float) -> dict:  # fmt: skip
    """Numbers of the window ending on ``day``: ``window_auc``, ``window_auc_upper``, ``window_days``,
    ``window_rows`` and ``auc_drop_bound`` (``reference_auc`` minus the upper bound: positive when
    the model is measurably worse). Only days of ``model_version`` count; with fewer than
    ``min_days`` labelled days the bound is None (not enough evidence yet)."""
    import pandas as pd

    frames = [scored[[SCORE_COLUMN, LABEL_COLUMN]]]
    for back in range(1, window_days):
        found = _read_labelled(lake, day.shift(-back).key)
        if found is not None and found[0].get("model_version") == model_version:
            frames.append(found[1])
    out = {"window_days": len(frames), "window_rows": int(sum(len(f) for f in frames)),
           "window_auc": None, "window_auc_upper": None, "auc_drop_bound": None}  # fmt: skip
    if len(frames) < min_days:
        return out
    pooled = pd.concat(frames, ignore_index=True)
    bound = auc_bound(pooled[LABEL_COLUMN].astype("int64"), pooled[SCORE_COLUMN], confidence)
    if bound is None:
        return out
    out["window_auc"], out["window_auc_upper"] = bound["auc"], bound["upper"]
    if reference_auc is not None:
        out["auc_drop_bound"] = reference_auc - bound["upper"]
    return out
