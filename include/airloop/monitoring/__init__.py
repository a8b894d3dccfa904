"""Monitoring: Evidently drift and performance reports per day, their headline numbers, the drift policy.

Two checks run for every scored day ``D``: **data drift** (the day's model inputs and scores
against the champion's reference sample) and **performance** (once the day's outcomes are
ingested: its realized AUC against the version's holdout AUC). Reports go to the lake under
``reports/ds=D/drift/`` and ``reports/ds=D/performance/``; headline numbers to the
``monitoring_metrics`` table, one row per (day, kind), upserted. Bad input never raises a false
alarm: a tiny sample is ``skipped``, a day whose outcomes are not ingested yet is
``awaiting_outcomes`` (never an AUC of zero). Every function of one day takes a
:class:`~airloop.core.dates.LogicalDay`.

Submodules:

* ``day``: one day end to end, what the operators and the CLI call (:func:`monitor_drift`,
  :func:`monitor_performance`, :func:`outcome_day`).
* ``drift``: the drift report (:func:`drift_report`), the columns and rows it tests.
* ``performance``: the performance report (:func:`performance_report`), realized labels and
  their join to the predictions.
* ``metrics``: pure computations on report JSON and scores (drift share, policy drift share,
  calibration, ROC AUC).
* ``inputs``: a day's predictions, the reference sample and the outcomes, read from the lake.
* ``lake``: reports published to and read from the lake.
* ``store``: headline numbers and drift events in SQL (:class:`MonitoringStore`).
* ``config`` and ``result``: :class:`MonitorConfig` (settings), :class:`ReportResult`, kinds and
  statuses. ``render``: a report's HTML.
* ``drift_policy``: whether drift warrants retraining (threshold, persistence, cooldown).
* ``effects``: per-column PSI and Evidently's large-sample distances, computed directly.
* ``calibration``: the policy's thresholds measured on a healthy period (:func:`calibrate`),
  stored as a small JSON (``monitoring/calibration.json`` in the lake).
* ``window``: realized AUC over a rolling window of labelled days, with DeLong's upper bound.

No Airflow imports here; Evidently, pandas and SQLAlchemy are imported inside the functions
that use them.
"""

from __future__ import annotations

from airloop.monitoring.calibration import DriftCalibration, calibrate, load_calibration, save_calibration
from airloop.monitoring.config import MonitorConfig, MonitorInputError
from airloop.monitoring.day import monitor_drift, monitor_performance, outcome_day
from airloop.monitoring.drift import drift_report
from airloop.monitoring.drift_policy import DayEvidence, Decision, DriftPolicy, evidence_from_rows
from airloop.monitoring.inputs import load_current, load_outcomes, load_reference, predictions_prefix, scored_outcomes
from airloop.monitoring.lake import publish_report, read_report, report_prefix
from airloop.monitoring.metrics import (
    parse_classification_json,
    parse_drift_json,
    policy_drift_share,
    roc_auc,
)
from airloop.monitoring.performance import join_outcomes, performance_report, realized_labels
from airloop.monitoring.result import (
    AWAITING,
    DRIFT,
    KINDS,
    OK,
    PERFORMANCE,
    SKIPPED,
    ReportResult,
    awaiting_outcomes,
)
from airloop.monitoring.store import MonitoringStore, ensure_monitoring_tables

__all__ = [
    "AWAITING",
    "DRIFT",
    "KINDS",
    "OK",
    "PERFORMANCE",
    "SKIPPED",
    "DayEvidence",
    "Decision",
    "DriftCalibration",
    "DriftPolicy",
    "MonitorConfig",
    "MonitorInputError",
    "MonitoringStore",
    "ReportResult",
    "awaiting_outcomes",
    "calibrate",
    "drift_report",
    "ensure_monitoring_tables",
    "evidence_from_rows",
    "join_outcomes",
    "load_calibration",
    "load_current",
    "load_outcomes",
    "load_reference",
    "monitor_drift",
    "monitor_performance",
    "outcome_day",
    "parse_classification_json",
    "parse_drift_json",
    "performance_report",
    "policy_drift_share",
    "predictions_prefix",
    "scored_outcomes",
    "publish_report",
    "read_report",
    "realized_labels",
    "report_prefix",
    "roc_auc",
    "save_calibration",
]
