"""Reading back: a day's published predictions and the lineage behind one of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.core.storage import Lake
from airloop.scoring.partition import FEATURES_FILE, PART_FILE, prediction_prefix

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.dates import LogicalDay


def read_predictions(lake: Lake, day: "LogicalDay", *, logical_name: str = PART_FILE) -> "pd.DataFrame":
    """``day``'s predictions (or ``features.parquet``), checked against the manifest."""
    from airloop.core.storage import read_partition_frame

    return read_partition_frame(lake, prediction_prefix(day), logical_name=logical_name)


def trace_prediction(lake: Lake, day: "LogicalDay", **match) -> dict:
    """Everything behind the predictions of ``day`` whose key columns equal ``match``.

    Returns the matching rows (key, score, model version, the inputs used) and the lineage: the
    model version (sha256, training window, feature service) and the input partitions.
    """
    from airloop.core.storage import require_manifest

    prefix = prediction_prefix(day)
    manifest = require_manifest(lake, prefix)
    part = read_predictions(lake, day)
    used = read_predictions(lake, day, logical_name=FEATURES_FILE)
    unknown = [c for c in match if c not in part.columns]
    if unknown:
        raise KeyError(f"{unknown} are not columns of {prefix}; the key is {manifest['key']}")
    mask = None
    for col, value in match.items():
        hit = part[col].astype(str) == str(value)
        mask = hit if mask is None else mask & hit
    rows = part[mask] if mask is not None else part.head(0)
    feature_rows = used.loc[rows.index]
    found = [
        {**{k: v for k, v in r.items()}, "features": f}
        for r, f in zip(rows.to_dict("records"), feature_rows.drop(columns=manifest["key"]).to_dict("records"))
    ]
    return {
        "partition": prefix,
        "matches": found,
        "model": manifest["model"],
        "feature_service": manifest["feature_service"],
        "prediction_time": manifest["prediction_time"],
        "inputs": manifest["inputs"],
    }
