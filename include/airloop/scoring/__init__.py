"""Scoring: nightly batch prediction of one day, idempotent per day and safe to backfill.

Reads the day's schedule from the source, its features as of the cutoff, scores with the
champion (or a pinned version) and publishes ``predictions/ds=D/`` atomically.
"""

from __future__ import annotations

from airloop.scoring.score import (
    choose_model,
    ensure_scoring_runs,
    FeatureLookup,
    FeatureMismatchError,
    missing_inputs,
    NoChampionError,
    NoScheduleError,
    prediction_prefix,
    prediction_time,
    publish_files,
    read_predictions,
    read_schedule,
    score_day,
    score_stream,
    ScoringError,
    ScoringResult,
    ScoringRuns,
    SINK_NICE,
    trace_prediction,
    upstream_partitions,
    UpstreamCorruptError,
    UpstreamNotReadyError,
    _arrow_keys,
    _ParquetSink,
)

__all__ = [
    "FeatureLookup",
    "FeatureMismatchError",
    "NoChampionError",
    "NoScheduleError",
    "SINK_NICE",
    "ScoringError",
    "ScoringResult",
    "ScoringRuns",
    "UpstreamCorruptError",
    "UpstreamNotReadyError",
    "choose_model",
    "ensure_scoring_runs",
    "missing_inputs",
    "prediction_prefix",
    "prediction_time",
    "publish_files",
    "read_predictions",
    "read_schedule",
    "score_day",
    "score_stream",
    "trace_prediction",
    "upstream_partitions",
]
