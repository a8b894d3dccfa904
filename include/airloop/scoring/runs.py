"""Scoring runs: the ``scoring_runs`` table beside the registry, one row per scoring attempt.

What the manifest leaves out on purpose (so a rerun writes identical bytes): run ids, wall-clock
times, durations, the Airflow run and the error of a failed attempt.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay


def _runs_table(metadata):
    from sqlalchemy import Column, DateTime, Float, Integer, String, Table, Text

    return Table(
        "scoring_runs",
        metadata,
        Column("run_id", String(64), primary_key=True),
        Column("ds", String(10), nullable=False, index=True),
        Column("status", String(16), nullable=False),
        Column("model_name", String(128)),
        Column("model_version", Integer),
        Column("model_sha256", String(64)),
        Column("model_policy", String(32)),
        Column("rows", Integer),
        Column("rows_missing_features", Integer),
        Column("partition", String(512)),
        Column("manifest_sha256", String(64)),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("finished_at", DateTime(timezone=True)),
        Column("duration_s", Float),
        Column("airflow_run_id", String(250)),
        Column("error", Text),
    )


class ScoringRuns:
    """The ``scoring_runs`` table: one row per scoring attempt (what the manifest leaves out)."""

    def __init__(self, url: str):
        from sqlalchemy import MetaData

        self.url = url
        self.metadata = MetaData()
        self.table = _runs_table(self.metadata)

    @cached_property
    def engine(self):
        from airloop.core.database import create_engine

        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        args = {"connect_args": {"timeout": 30}} if self.url.startswith("sqlite") else {"pool_pre_ping": True}
        return create_engine(self.url, **args)

    def ensure(self) -> bool:
        """Create the table when missing; return True when it was created."""
        from sqlalchemy import inspect

        existed = inspect(self.engine).has_table("scoring_runs")
        self.metadata.create_all(self.engine, checkfirst=True)
        return not existed

    def start(self, run_id: str, day: "LogicalDay", started_at: datetime, airflow_run_id: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    run_id=run_id, ds=day.key, status="running", started_at=started_at, airflow_run_id=airflow_run_id
                )
            )

    def finish(self, run_id: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.run_id == run_id).values(**values))

    def list(self, day: "LogicalDay | None" = None, limit: int = 50) -> list[dict]:
        """The latest attempts first (of ``day`` only, when given)."""
        from sqlalchemy import select

        query = select(self.table).order_by(self.table.c.started_at.desc()).limit(limit)
        if day is not None:
            query = query.where(self.table.c.ds == day.key)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


def ensure_scoring_runs(settings: "Settings") -> str:
    """Set-up step: the ``scoring_runs`` table in the registry database."""
    from airloop.core.config import redact_url

    runs = ScoringRuns(settings.registry_url)  # beside the registry
    return f"scoring_runs table {'created' if runs.ensure() else 'exists'} in {redact_url(settings.registry_url)}"
