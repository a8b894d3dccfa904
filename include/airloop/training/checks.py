"""Checks on the training data and the time split: the rows a model may be trained and judged on.

:func:`check_training_frame` refuses data that cannot make a trustworthy model
(:class:`TrainingDataError` with the numbers); :func:`time_split` keeps the holdout strictly after
the training days.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.usecase import ModelSpec

# The day column of a training set (``YYYY-MM-DD`` strings, as the builder writes them).
TIME_COLUMN = "ds"


class TrainingDataError(ValueError):
    """The training data cannot make a trustworthy model; the message has the numbers."""


def check_training_frame(frame: "pd.DataFrame", feature_columns: list[str], label: str, spec: "ModelSpec") -> dict:
    """Refuse data that cannot make a trustworthy model; return the numbers checked.

    :raises TrainingDataError: missing columns, a label that is not 0/1, fewer than
        ``spec.min_rows`` rows, fewer than ``spec.min_class_rows`` of either class, or feature
        columns null in more than ``spec.max_null_share`` of rows.
    """
    missing = [c for c in [*feature_columns, label, TIME_COLUMN] if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"training set lacks columns {missing}")
    rows = len(frame)
    if rows < spec.min_rows:
        raise TrainingDataError(f"training window has {rows} labelled rows; at least {spec.min_rows} are needed")
    labels = frame[label]
    if labels.isna().any():
        raise TrainingDataError(f"label {label!r} has {int(labels.isna().sum())} null values; unlabelled rows must be dropped")
    values = set(labels.unique().tolist())
    if not values <= {0, 1}:
        raise TrainingDataError(f"label {label!r} must be 0/1, found values {sorted(values)[:10]}")
    positives = int((labels == 1).sum())
    negatives = rows - positives
    if min(positives, negatives) < spec.min_class_rows:
        raise TrainingDataError(
            f"label {label!r} has {positives} positive and {negatives} negative rows; each class needs at "
            f"least {spec.min_class_rows} (a single-class window cannot train a classifier)"
        )
    null_share = {c: float(frame[c].isna().mean()) for c in feature_columns}
    limits = {c: spec.null_share_limits.get(c, spec.max_null_share) for c in feature_columns}
    too_null = {c: round(s, 4) for c, s in null_share.items() if s > limits[c]}
    if too_null:
        exceptions = {c: limits[c] for c in too_null if c in spec.null_share_limits}
        raise TrainingDataError(
            f"{len(too_null)} of {len(feature_columns)} feature columns are null in more than "
            f"{spec.max_null_share:.0%} of {rows} rows: {too_null}"
            + (f" (their own limits: {exceptions})" if exceptions else "")
        )
    overall = float(sum(null_share.values()) / max(len(null_share), 1))
    return {
        "rows": rows,
        "positives": positives,
        "negatives": negatives,
        "positive_rate": positives / rows,
        "null_share_overall": overall,
        "null_share_max": max(null_share.values(), default=0.0),
    }


def time_split(frame: "pd.DataFrame", spec: "ModelSpec") -> tuple["pd.DataFrame", "pd.DataFrame", dict]:
    """Split by day: the last ``validation_share`` of the window's days are the holdout.

    Every validation row's day is strictly after every training row's day.
    """
    days = sorted(frame[TIME_COLUMN].astype(str).str[:10].unique())
    if len(days) < 2:
        raise TrainingDataError(f"the window holds {len(days)} day(s) of data; a time split needs at least 2")
    n_valid = min(len(days) - 1, max(1, round(len(days) * spec.validation_share)))
    first_valid = days[-n_valid]
    day_of_row = frame[TIME_COLUMN].astype(str).str[:10]
    train, valid = frame[day_of_row < first_valid], frame[day_of_row >= first_valid]
    for part, name in ((train, "training"), (valid, "validation")):
        pos = int(part[spec.label].sum())
        neg = len(part) - pos
        if min(pos, neg) < spec.min_class_rows:
            raise TrainingDataError(
                f"the {name} part ({name == 'training' and days[0] or first_valid} .. "
                f"{name == 'training' and days[-n_valid - 1] or days[-1]}) has {pos} positive and {neg} negative "
                f"rows; each class needs at least {spec.min_class_rows}"
            )
    info = {
        "train_start": days[0],
        "train_end": days[-n_valid - 1],
        "valid_start": first_valid,
        "valid_end": days[-1],
        "train_rows": int(len(train)),
        "valid_rows": int(len(valid)),
    }
    return train, valid, info
