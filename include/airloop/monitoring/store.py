"""Headline numbers and drift events in SQL (:class:`MonitoringStore`).

``monitoring_metrics`` in the registry database holds one row per (day, kind), upserted;
``drift_events`` one row per day the drift policy fired.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING

from airloop.core.clock import clock_or_system
from airloop.monitoring.result import ReportResult

if TYPE_CHECKING:
    from airloop.core.clock import Clock
    from airloop.core.config import Settings

_METRIC_COLUMNS = ("drift_share", "policy_drift_share", "drifted_columns", "n_columns", "auc", "reference_auc", "auc_drop", "accuracy",
                   "precision", "recall", "f1", "log_loss", "positive_rate", "mean_score", "calibration_error",
                   "drift_signal", "window_auc", "window_auc_upper", "auc_drop_bound", "window_days", "window_rows")  # fmt: skip
_INTEGER_COLUMNS = ("drifted_columns", "n_columns", "window_days", "window_rows")
_LIST_COLUMNS = ("drifted_column_names", "null_columns", "drift_signal_columns")  # JSON lists in Text


def _tables():
    import sqlalchemy as sa

    metadata = sa.MetaData()
    metrics = sa.Table(
        "monitoring_metrics",
        metadata,
        sa.Column("ds", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("message", sa.Text, nullable=False, default=""),
        sa.Column("model_version", sa.Integer),
        sa.Column("rows_current", sa.Integer),
        sa.Column("rows_reference", sa.Integer),
        *[sa.Column(name, sa.Integer if name in _INTEGER_COLUMNS else sa.Float) for name in _METRIC_COLUMNS],
        *[sa.Column(name, sa.Text) for name in _LIST_COLUMNS],
        sa.Column("report_prefix", sa.String(200)),
        sa.Column("measured_on", sa.String(10)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    events = sa.Table(
        "drift_events",
        metadata,
        sa.Column("ds", sa.String(10), primary_key=True),
        sa.Column("model_version", sa.Integer),
        sa.Column("window_start", sa.String(10), nullable=False),
        sa.Column("window_end", sa.String(10), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),  # JSON
        sa.Column("run_id", sa.String(250)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    return metadata, metrics, events


class MonitoringStore:
    """The ``monitoring_metrics`` and ``drift_events`` tables in the registry database.

    :param url: SQLAlchemy URL (``settings.registry_url``).
    :param clock: where ``updated_at`` and ``created_at`` come from (default: the real time; a
        backtest passes its replayed clock).
    """

    def __init__(self, url: str, *, clock: "Clock | None" = None):
        from airloop.core.database import create_engine

        self.url = url
        self.clock = clock_or_system(clock)
        kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = create_engine(url, **kwargs)  # the driver checked, errors without the password
        self.metadata, self.metrics, self.events = _tables()
        self._ready = False

    def ensure_tables(self) -> str:
        """Create the tables when missing (idempotent; checked once per store)."""
        import sqlalchemy as sa

        if self._ready:
            return "monitoring tables exist"
        existing = set(sa.inspect(self.engine).get_table_names())
        self.metadata.create_all(self.engine)
        added = self._add_missing_columns() if "monitoring_metrics" in existing else []
        self._ready = True
        created = [t for t in ("monitoring_metrics", "drift_events") if t not in existing]
        notes = ([f"created {', '.join(created)}"] if created else []) + ([f"added columns {', '.join(added)}"] if added else [])
        return "; ".join(notes) if notes else "monitoring tables exist"

    def _add_missing_columns(self) -> list[str]:
        """A table made by an older version lacks the newer (nullable) metric columns: add them."""
        import sqlalchemy as sa

        have = {c["name"] for c in sa.inspect(self.engine).get_columns("monitoring_metrics")}
        missing = [c for c in self.metrics.columns if c.name not in have]
        with self.engine.begin() as conn:
            for column in missing:
                kind = column.type.compile(dialect=self.engine.dialect)
                conn.execute(sa.text(f'ALTER TABLE monitoring_metrics ADD COLUMN "{column.name}" {kind}'))
        return [c.name for c in missing]

    def upsert(self, result: ReportResult, *, report_prefix: str | None = None, measured_on: str | None = None) -> None:
        """Replace the row of ``(result.ds, result.kind)`` (a rerun overwrites, never appends)."""
        import sqlalchemy as sa

        self.ensure_tables()
        row = {
            "ds": str(result.ds), "kind": result.kind, "status": result.status, "message": result.message or "",
            "model_version": result.model_version, "rows_current": result.rows_current,
            "rows_reference": result.rows_reference,
            **{name: result.metrics.get(name) for name in _METRIC_COLUMNS},
            **{name: json.dumps(result.metrics.get(name, [])) for name in _LIST_COLUMNS},
            "report_prefix": report_prefix, "measured_on": measured_on,
            "updated_at": self.clock.now(),
        }  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.metrics).where(self.metrics.c.ds == row["ds"], self.metrics.c.kind == row["kind"]))
            conn.execute(sa.insert(self.metrics).values(**row))

    def rows(self, kind: str | None = None, start: date | None = None, end: date | None = None) -> list[dict]:
        """Metric rows ordered by day (JSON list columns decoded), of days in ``[start, end]``."""
        import sqlalchemy as sa

        self.ensure_tables()
        query = sa.select(self.metrics).order_by(self.metrics.c.ds, self.metrics.c.kind)
        if kind:
            query = query.where(self.metrics.c.kind == kind)
        if start:
            query = query.where(self.metrics.c.ds >= str(start))
        if end:
            query = query.where(self.metrics.c.ds <= str(end))
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(query)]
        for row in out:
            for col in _LIST_COLUMNS:
                row[col] = json.loads(row[col]) if row[col] else []
        return out

    def record_event(self, ds: str, *, model_version: int | None, window_start: str, window_end: str,
                     evidence: dict, run_id: str | None = None) -> bool:  # fmt: skip
        """Record that the drift policy fired on ``ds``.

        :returns: True when newly recorded, or already recorded by the same ``run_id`` (a retry of
            the task that recorded it must still emit); False when another run recorded it.
        """
        import sqlalchemy as sa

        self.ensure_tables()
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(self.events.c.run_id).where(self.events.c.ds == str(ds))).first()
            if existing is not None:
                return run_id is not None and existing.run_id == run_id
            conn.execute(sa.insert(self.events).values(
                ds=str(ds), model_version=model_version, window_start=window_start, window_end=window_end,
                evidence=json.dumps(evidence, sort_keys=True, default=str), run_id=run_id,
                created_at=self.clock.now(),
            ))  # fmt: skip
        return True

    def drift_events(self) -> list[dict]:
        import sqlalchemy as sa

        self.ensure_tables()
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(sa.select(self.events).order_by(self.events.c.ds))]
        for row in out:
            row["evidence"] = json.loads(row["evidence"])
        return out

    def fired_days(self) -> list[date]:
        """The days the drift policy fired on, read back from ``drift_events``."""
        return [date.fromisoformat(str(event["ds"])) for event in self.drift_events()]


def ensure_monitoring_tables(settings: "Settings") -> str:
    """Set-up step (``python -m airloop setup``): create the monitoring tables."""
    return MonitoringStore(settings.registry_url).ensure_tables()
