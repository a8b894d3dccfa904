"""The performance check of one day (:func:`performance_report`) on its realized outcomes.

Once the outcomes of a scored day are known (its flights landed and were ingested into
``raw/flights``): an Evidently classification report on the realized labels (ROC AUC,
precision / recall, log loss) plus a calibration table, compared with the AUC the version had
on its holdout. A day whose outcomes are not ingested yet gives ``awaiting_outcomes`` (never an
AUC of zero).
"""

from __future__ import annotations

import warnings

from typing import TYPE_CHECKING

from airloop.monitoring.config import LABEL_COLUMN, SCORE_COLUMN, MonitorConfig, MonitorInputError
from airloop.monitoring.metrics import (
    calibration_table,
    classification_numbers,
    expected_calibration_error,
    parse_classification_json,
)
from airloop.monitoring.render import snapshot_html
from airloop.monitoring.result import OK, PERFORMANCE, SKIPPED, ReportResult

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.dates import LogicalDay

# Candidate join keys between predictions and realized outcomes, most specific first.
OUTCOME_KEYS = (
    ("carrier", "flight", "origin", "sched_dep_ts"),
    ("carrier", "flight", "origin", "time_hour", "minute"),
    ("flight_id",),
)


def realized_labels(raw_flights: "pd.DataFrame", *, late_minutes: int = 15) -> "pd.DataFrame":
    """Realized outcomes of flown flights: ``is_delayed`` = arrival delay > ``late_minutes``.

    Flights without an arrival delay (cancelled or diverted) are unlabelled and dropped.
    """
    flown = raw_flights[raw_flights["arr_delay"].notna()].copy()
    flown[LABEL_COLUMN] = (flown["arr_delay"] > late_minutes).astype("int64")
    return flown


def join_outcomes(predictions: "pd.DataFrame", outcomes: "pd.DataFrame", key: tuple[str, ...] | None = None) -> "pd.DataFrame":
    """Predictions joined to realized labels on ``key`` (the use case's prediction key), else on
    the most specific flight key both frames have."""
    for key in ([tuple(key)] if key else []) + list(OUTCOME_KEYS):
        if all(c in predictions.columns and c in outcomes.columns for c in key):
            right = outcomes[list(key) + [LABEL_COLUMN]].drop_duplicates(list(key))
            left = predictions.drop(columns=[LABEL_COLUMN], errors="ignore")
            return left.merge(right, on=list(key), how="inner")
    raise MonitorInputError(
        f"predictions ({sorted(predictions.columns)}) and outcomes share no flight key of {OUTCOME_KEYS}"
    )


def performance_report(
    day: "LogicalDay",
    scored: "pd.DataFrame",
    *,
    reference_auc: float | None = None,
    config: MonitorConfig | None = None,
    model_version: int | None = None,
    threshold: float | None = None,
    render_html: bool = True,
) -> ReportResult:
    """Evidently classification report of ``day``'s scores against its realized labels.

    :param scored: rows with ``score`` and ``is_delayed`` (0/1).
    :param reference_auc: the AUC expected of the model (its holdout AUC); ``auc_drop`` is the
        difference (positive = worse now).
    :param threshold: operating threshold on the score for precision / recall (Evidently: 0.5).
    :param render_html: False computes the same numbers directly (scikit-learn), without an
        Evidently report or HTML: ``body`` then holds only the ``airloop`` numbers.
    :returns: status ``skipped`` when fewer than ``config.min_rows`` rows are labelled or only
        one class occurred (AUC is undefined then, not zero).
    """
    config = config or MonitorConfig()
    result = ReportResult(ds=day.key, kind=PERFORMANCE, status=SKIPPED, model_version=model_version, rows_current=len(scored))
    if len(scored) < config.min_rows:
        result.message = f"{len(scored)} labelled predictions (fewer than {config.min_rows}): performance not assessed"
        return result
    labels = scored[LABEL_COLUMN].astype("int64")
    if labels.nunique() < 2:
        result.message = f"every labelled flight has is_delayed={int(labels.iloc[0])}: AUC is undefined"
        return result
    frame = scored[[LABEL_COLUMN, SCORE_COLUMN]].astype({LABEL_COLUMN: "int64", SCORE_COLUMN: "float64"})
    snapshot = None
    if render_html:
        from evidently import BinaryClassification, DataDefinition, Dataset, Report
        from evidently.presets import ClassificationPreset

        definition = DataDefinition(
            classification=[BinaryClassification(target=LABEL_COLUMN, prediction_probas=SCORE_COLUMN)],
            numerical_columns=[SCORE_COLUMN],
        )
        with warnings.catch_warnings():
            # A day where no flight scores above the threshold has no precision: Evidently's
            # sklearn calls warn once per metric; the report shows 0, as our own numbers do.
            warnings.filterwarnings("ignore", message="Precision is ill-defined")
            snapshot = Report([ClassificationPreset(probas_threshold=threshold)]).run(Dataset.from_pandas(frame, data_definition=definition), None)
        result.body = snapshot.dict()
        numbers = parse_classification_json(result.body)
    else:
        numbers = classification_numbers(frame[LABEL_COLUMN], frame[SCORE_COLUMN], threshold)
    calibration = calibration_table(frame[LABEL_COLUMN], frame[SCORE_COLUMN])
    numbers.update(
        {
            "positive_rate": float(frame[LABEL_COLUMN].mean()),
            "mean_score": float(frame[SCORE_COLUMN].mean()),
            "calibration_error": expected_calibration_error(calibration),
            "reference_auc": reference_auc,
            "auc_drop": (reference_auc - numbers["auc"]) if reference_auc is not None and numbers["auc"] is not None else None,
        }
    )
    result.body["airloop"] = {"calibration": calibration, **numbers}
    result.metrics.update(numbers)
    result.status = OK
    if snapshot is not None:
        result.html = snapshot_html(snapshot, None)
    return result
