"""Scoring: nightly batch prediction of one day, idempotent per day and safe to backfill.

Reads the day's schedule from the source, its features as of the cutoff, scores with the
champion (or a pinned version) and publishes ``predictions/ds=D/`` atomically. Every function
that works on one day takes the :class:`~airloop.core.dates.LogicalDay` the boundary made.

Modules, in the order :func:`score_day` uses them:

* ``day``: :func:`score_day`, one day end to end, and its :class:`ScoringResult`;
* ``model_choice``: :func:`choose_model`, the pinned version or the champion serving then;
* ``upstream``: the feature partitions a day waits for (:func:`upstream_partitions`) and their
  check against their manifests (:func:`missing_inputs`, ``verify_inputs``);
* ``lookup``: :class:`FeatureLookup`, the features of the rows to score as of the cutoff;
* ``schedule``: :func:`read_schedule`, the day's rows from the source, known columns only;
* ``stream``: :func:`score_stream`, chunks scored and written as Parquet row groups;
* ``publish``: :func:`publish_files`, local files published as a partition, manifest last;
* ``partition``: :func:`prediction_prefix` and the files and columns of a partition;
* ``readback``: :func:`read_predictions` and :func:`trace_prediction`;
* ``runs``: the ``scoring_runs`` table (:class:`ScoringRuns`) beside the registry;
* ``errors``: :class:`ScoringError` and the refusals.
"""

from __future__ import annotations

from airloop.scoring.day import ScoringResult, score_day
from airloop.scoring.errors import (
    FeatureMismatchError,
    NoChampionError,
    NoScheduleError,
    ScoringError,
    UpstreamCorruptError,
    UpstreamNotReadyError,
)
from airloop.scoring.lookup import FeatureLookup
from airloop.scoring.model_choice import choose_model
from airloop.scoring.partition import prediction_prefix
from airloop.scoring.publish import publish_files
from airloop.scoring.readback import read_predictions, trace_prediction
from airloop.scoring.runs import ScoringRuns, ensure_scoring_runs
from airloop.scoring.schedule import read_schedule
from airloop.scoring.stream import score_stream
from airloop.scoring.upstream import days_with_inputs, missing_inputs, upstream_partitions, view_prefixes

__all__ = [
    "FeatureLookup",
    "FeatureMismatchError",
    "NoChampionError",
    "NoScheduleError",
    "ScoringError",
    "ScoringResult",
    "ScoringRuns",
    "UpstreamCorruptError",
    "UpstreamNotReadyError",
    "choose_model",
    "days_with_inputs",
    "ensure_scoring_runs",
    "missing_inputs",
    "prediction_prefix",
    "publish_files",
    "read_predictions",
    "read_schedule",
    "score_day",
    "score_stream",
    "trace_prediction",
    "upstream_partitions",
    "view_prefixes",
]
