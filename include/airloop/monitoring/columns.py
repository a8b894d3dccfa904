"""Which columns of a day are tested for drift (:func:`split_columns`), which never are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.monitoring.config import LABEL_COLUMN

if TYPE_CHECKING:
    import pandas as pd

# Columns never tested for drift: those that identify or time a row rather than describe it, and
# calendar columns that are constant within a daily partition by construction (one day's
# day_of_week against a reference spread over every weekday "drifts" every day: a false alarm).
NOT_MONITORED = frozenset(
    {
        LABEL_COLUMN, "model_version", "ds", "event_timestamp", "sched_dep_ts", "time_hour", "flight",
        "tailnum", "year", "month", "day", "day_of_week", "minute", "prediction_time", "scored_at",
        "arr_delay", "dep_delay", "dep_time", "arr_time", "air_time", "flight_id", "row_id",
    }
)  # fmt: skip


def split_columns(reference: "pd.DataFrame", current: "pd.DataFrame", columns: list[str] | None = None):
    """Choose the columns to test: shared by both sides, not identifiers, not entirely null.

    :returns: ``(numerical, categorical, null_columns)``; ``null_columns`` are shared columns
        entirely null on at least one side (Evidently cannot test them; they are reported).
    """
    import pandas as pd

    shared = [c for c in (columns or list(current.columns)) if c in reference.columns and c in current.columns]
    numerical, categorical, null_columns = [], [], []
    for col in shared:
        if col in NOT_MONITORED:
            continue
        if reference[col].isna().all() or current[col].isna().all():
            null_columns.append(col)
            continue
        dtype = reference[col].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categorical.append(col)
        else:
            numerical.append(col)
    return numerical, categorical, null_columns
