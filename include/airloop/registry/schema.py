"""The registry's tables (SQLAlchemy rows) and how values are stored in them.

Three tables, the same names and columns as every registry ever written (a user's existing
registry keeps working):

- ``model_versions``: one row per trained model: training window, FeatureService, training-set
  fingerprint, parameters, metrics, code version, device, artifact URI and sha256, reference
  sample URI, status (``pending`` -> ``candidate`` -> ``champion`` -> ``retired``, or
  ``rejected`` by the gate, or ``failed`` when publishing its artifacts failed).
- ``model_aliases``: ``(model_name, alias)`` is the primary key, so the database itself allows
  exactly one ``champion`` per model.
- ``promotion_history``: what changed (promote, rollback, refuse), when, why, by whom and which
  run, with the gate's numbers.

Instants are stored as UTC (:class:`UtcDateTime`), JSON columns take :func:`_jsonable` values.
The instants written (``created_at``, ``updated_at``, ``at``) come from the registry's clock
(:class:`airloop.core.clock.Clock`), never from the wall clock read here.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CHAMPION = "champion"
STATUSES = ("pending", "candidate", "champion", "retired", "rejected", "failed")
ACTIONS = ("promote", "rollback", "refuse")


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the registry stores UTC instants only")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_name", "version", name="model_version"),
        CheckConstraint("status IN ('" + "','".join(STATUSES) + "')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    feature_service: Mapped[str] = mapped_column(String(200))
    feature_columns: Mapped[list] = mapped_column(JSON)
    categories: Mapped[dict] = mapped_column(JSON, default=dict)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    fingerprint: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    code_version: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(16))
    device_reason: Mapped[str] = mapped_column(Text, default="")
    training_rows: Mapped[int] = mapped_column(Integer, default=0)
    artifact_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reference_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    gate: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AliasRow(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_name", "version"], ["model_versions.model_name", "model_versions.version"], name="version"
        ),
    )

    # The primary key is the rule: one row, hence one version, per (model, alias).
    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(50), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(250), default="")


class HistoryRow(Base):
    __tablename__ = "promotion_history"
    __table_args__ = (CheckConstraint("action IN ('" + "','".join(ACTIONS) + "')", name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    alias: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(20))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    candidate_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so numpy numbers and dates fit a JSON column."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)
