"""The loop as a whole: a season through the real scheduler and its summary.

* ``season``: :func:`run_season` drives ingestion, scoring, monitoring and retraining over a
  replayed range through Airflow's REST API (:class:`AirflowClient`); :func:`summarize` reads
  back what the pipeline left (lake, registry, monitoring tables) and :func:`format_summary`
  prints it. The range is parsed once, at those two entry points, into logical days.
"""

from __future__ import annotations

from airloop.loop.season import (
    AirflowClient,
    format_summary,
    run_season,
    SeasonError,
    SeasonSummary,
    summarize,
)

__all__ = [
    "AirflowClient",
    "SeasonError",
    "SeasonSummary",
    "format_summary",
    "run_season",
    "summarize",
]
