"""Monitoring: Evidently drift and performance reports per day, their headline numbers, the drift policy.

``reports`` makes and stores the reports and their numbers; ``drift_policy`` decides whether
drift warrants retraining (threshold, cooldown).
"""

from __future__ import annotations

from airloop.monitoring.reports import (
    AWAITING,
    DRIFT,
    drift_report,
    ensure_monitoring_tables,
    join_outcomes,
    KINDS,
    load_current,
    load_outcomes,
    load_reference,
    monitor_drift,
    monitor_performance,
    MonitorConfig,
    MonitoringStore,
    OK,
    outcome_day,
    parse_classification_json,
    parse_drift_json,
    PERFORMANCE,
    performance_report,
    predictions_prefix,
    read_report,
    roc_auc,
    SKIPPED,
)

__all__ = [
    "AWAITING",
    "DRIFT",
    "KINDS",
    "MonitorConfig",
    "MonitoringStore",
    "OK",
    "PERFORMANCE",
    "SKIPPED",
    "drift_report",
    "ensure_monitoring_tables",
    "join_outcomes",
    "load_current",
    "load_outcomes",
    "load_reference",
    "monitor_drift",
    "monitor_performance",
    "outcome_day",
    "parse_classification_json",
    "parse_drift_json",
    "performance_report",
    "predictions_prefix",
    "read_report",
    "roc_auc",
]
