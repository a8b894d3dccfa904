"""The loop as a whole: a season through the real scheduler and its summary.

* ``season``: :func:`run_season` drives ingestion, scoring, monitoring and retraining over a
  replayed range through Airflow's REST API (:class:`AirflowClient`); :func:`summarize` reads
  back what the pipeline left (lake, registry, monitoring tables) and :func:`format_summary`
  prints it. The range is parsed once, at those two entry points, into logical days.
* ``warmup``: :func:`plan_warmup` derives what a season backfills before its first day (raw
  history, feature days, the first training window) from the use case's feature lookbacks and
  model window; :class:`WarmupError` names the days when a range cannot run on the data.
"""

from __future__ import annotations

from airloop.loop.season import (
    AirflowClient,
    data_range,
    format_summary,
    run_season,
    SeasonError,
    SeasonSummary,
    season_plan,
    summarize,
)
from airloop.loop.warmup import plan_warmup, raw_lookback_days, replay_offset_for, WarmupError, WarmupPlan

__all__ = [
    "AirflowClient",
    "SeasonError",
    "SeasonSummary",
    "WarmupError",
    "WarmupPlan",
    "data_range",
    "format_summary",
    "plan_warmup",
    "replay_offset_for",
    "raw_lookback_days",
    "run_season",
    "season_plan",
    "summarize",
]
