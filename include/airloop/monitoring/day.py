"""One day, end to end (what the operators and the CLI call): :func:`monitor_drift`,
:func:`monitor_performance` and :func:`outcome_day`.

Each check reads the day's inputs, makes its report, publishes it to the lake and upserts its
headline numbers in SQL (``render=False``: the numbers only, no report). The performance check
also keeps the day's scores and labels (``monitoring/labelled/``) and measures the rolling
window the drift policy judges (:mod:`airloop.monitoring.window`). The reference is the ``reference.parquet`` of the model version that
scored the day, and the performance baseline that version's holdout AUC, both from the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.monitoring.calibration import load_calibration
from airloop.monitoring.config import LABEL_COLUMN, SCORE_COLUMN, MonitorConfig
from airloop.monitoring.drift import drift_report
from airloop.monitoring.inputs import load_current, load_outcomes, load_reference, predictions_prefix
from airloop.monitoring.lake import publish_report
from airloop.monitoring.metrics import roc_auc
from airloop.monitoring.performance import join_outcomes, performance_report
from airloop.monitoring.result import DRIFT, OK, PERFORMANCE, SKIPPED, ReportResult, awaiting_outcomes
from airloop.monitoring.store import MonitoringStore
from airloop.monitoring.window import publish_labelled, window_performance

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import Lake
    from airloop.monitoring.calibration import DriftCalibration


def monitor_drift(
    day: "LogicalDay",
    *,
    settings: "Settings",
    lake: "Lake | None" = None,
    store: MonitoringStore | None = None,
    reference: "pd.DataFrame | None" = None,
    config: MonitorConfig | None = None,
    render: bool = True,
    calibration: "DriftCalibration | None" = None,
) -> ReportResult:
    """Drift check of scored ``day``: report to the lake, headline numbers to SQL.

    The reference is the ``reference.parquet`` of the model version that scored the day (from
    the registry) unless given. Raises :class:`~airloop.core.storage.PartitionNotFound` when the day
    was not scored.

    :param render: False computes and stores the headline numbers only: no Evidently report, no
        HTML, nothing published under ``reports/`` (a backtest, where no one reads the pages).
    :param calibration: the drift signal's thresholds; default: the calibration in force
        (:func:`~airloop.monitoring.calibration.load_calibration`), or the uncalibrated defaults.
    """
    from airloop.core.storage import open_lake

    from airloop.core.usecase import load_use_case

    lake = lake or open_lake(settings)
    store = store or MonitoringStore(settings.registry_url)
    config = config or MonitorConfig.from_env(load_use_case(settings.use_case))
    current = load_current(lake, day)
    version = _single_version(current)
    if reference is None:
        record = _registry_version(settings, version)
        if record is None or not getattr(record, "reference_uri", None):
            result = ReportResult(ds=day.key, kind=DRIFT, status=SKIPPED, model_version=version, rows_current=len(current),
                                  message=f"no reference sample recorded for model version {version}")  # fmt: skip
            store.upsert(result, measured_on=day.key)
            return result
        reference = load_reference(lake, record.reference_uri)
    if calibration is None:
        calibration = load_calibration(lake)
    result = drift_report(day, reference, current, config=config, model_version=version, render_html=render,
                          calibration=calibration)  # fmt: skip
    prefix = publish_report(lake, result) if render else None
    store.upsert(result, report_prefix=prefix, measured_on=day.key)
    return result


def outcome_day(day: "LogicalDay", config: MonitorConfig | None = None) -> "LogicalDay":
    """The earlier scored day whose outcomes the monitoring run of ``day`` evaluates."""
    lag = (config or MonitorConfig()).outcome_lag_days
    return day.shift(-lag)


def monitor_performance(
    day: "LogicalDay",
    *,
    settings: "Settings",
    lake: "Lake | None" = None,
    store: MonitoringStore | None = None,
    reference: "pd.DataFrame | None" = None,
    config: MonitorConfig | None = None,
    measured_on: "LogicalDay | None" = None,
    render: bool = True,
) -> ReportResult:
    """Performance check of scored ``day`` on its realized outcomes (``raw/flights/ds``).

    Gives ``awaiting_outcomes`` (stored, no numbers) while the day is not ingested, and
    ``skipped`` when the day was never scored.

    :param measured_on: the monitoring day that ran this check (stored beside the numbers).
    :param render: False computes and stores the headline numbers only (no Evidently report, no
        HTML, nothing published under ``reports/``).
    """
    from airloop.core.storage import PartitionNotFound, open_lake, read_partition_frame

    lake = lake or open_lake(settings)
    store = store or MonitoringStore(settings.registry_url)
    config = config or MonitorConfig.from_env()
    measured = measured_on.key if measured_on is not None else None
    try:
        predictions = read_partition_frame(lake, predictions_prefix(day))
    except PartitionNotFound:
        result = ReportResult(ds=day.key, kind=PERFORMANCE, status=SKIPPED, message=f"{day.key} was not scored")
        store.upsert(result, measured_on=measured)
        return result
    version = _single_version(predictions)
    outcomes = load_outcomes(lake, day, late_minutes=config.late_minutes)
    if outcomes is None:
        result = awaiting_outcomes(day, f"outcomes of {day.key} are not ingested yet (raw/flights/ds={day.key})", version)
        store.upsert(result, measured_on=measured)
        return result
    # The baseline is the AUC the version had on its holdout (registry metrics): the reference
    # sample is scored in-sample, so its AUC is optimistic and would show a drop every day.
    record = _registry_version(settings, version)
    reference_auc = _holdout_auc(record)
    if reference_auc is None:
        if reference is None and record is not None and record.reference_uri:
            reference = load_reference(lake, record.reference_uri)
        if reference is not None and {LABEL_COLUMN, SCORE_COLUMN} <= set(reference.columns):
            labelled = reference[reference[LABEL_COLUMN].notna()]
            reference_auc = roc_auc(labelled[LABEL_COLUMN].astype(int), labelled[SCORE_COLUMN])
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    key = use_case.prediction.key if use_case.prediction is not None else None
    threshold = use_case.model.threshold if use_case.model is not None else None
    scored = join_outcomes(predictions, outcomes, key)
    result = performance_report(
        day, scored, reference_auc=reference_auc, config=config, model_version=version, threshold=threshold,
        render_html=render,
    )
    if result.status == OK:
        # The policy judges the rolling window of labelled days, not this day alone.
        labelled = scored[scored[LABEL_COLUMN].notna()]
        publish_labelled(lake, day, labelled, version)
        window = window_performance(lake, day, labelled, model_version=version, reference_auc=reference_auc,
                                    window_days=config.auc_window_days, min_days=config.auc_window_min_days,
                                    confidence=config.auc_confidence)  # fmt: skip
        result.metrics.update(window)
        result.body.setdefault("airloop", {}).update(window)
    prefix = publish_report(lake, result) if render else None
    store.upsert(result, report_prefix=prefix, measured_on=measured)
    return result


def _holdout_auc(record) -> float | None:
    metrics = getattr(record, "metrics", None) or {}
    value = metrics.get("roc_auc")
    return float(value) if isinstance(value, (int, float)) else None


def _single_version(frame: "pd.DataFrame") -> int | None:
    if "model_version" not in frame.columns or frame.empty:
        return None
    versions = frame["model_version"].dropna().unique()
    return int(versions[0]) if len(versions) else None


def _registry_version(settings: "Settings", model_version: int | None):
    """The registry's record of ``model_version`` (or the champion), or None without a registry."""
    try:
        from airloop.registry import ModelRegistry
    except ImportError:  # the registry stage is not installed: no reference available
        return None
    from airloop.core.usecase import load_use_case

    registry = ModelRegistry(settings.registry_url)
    model_name = _model_name(settings, load_use_case(settings.use_case))
    if model_version is None:
        return registry.champion(model_name)
    try:
        return registry.get(model_name, int(model_version))
    except LookupError:
        return None


def _model_name(settings: "Settings", use_case) -> str:
    return use_case.model.name if use_case.model is not None else use_case.name
