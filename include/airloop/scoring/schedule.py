"""The schedule: the rows of a day to score, read from the source in chunks, known columns only.

At a day's prediction time only its schedule is known: :func:`read_schedule` selects the use
case's ``PredictionSpec.known_columns`` explicitly (outcome columns are never read), holds each
chunk to the table's data contract and replays it, counting what it rejects in
:class:`ScheduleRead` for the manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timezone
from typing import TYPE_CHECKING, Iterator

from airloop.scoring.errors import ScoringError

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.dates import LogicalDay
    from airloop.core.usecase import PredictionSpec, UseCase
    from airloop.ingest import SourceDatabase

log = logging.getLogger(__name__)


def prediction_spec(use_case: "UseCase") -> "PredictionSpec":
    if use_case.prediction is None:
        raise ScoringError(f"use case {use_case.name!r} defines no PredictionSpec (use_case.prediction)")
    return use_case.prediction


@dataclass
class ScheduleRead:
    """What the schedule reader did, for the manifest (filled as the chunks stream)."""

    table: str
    query: str
    source_window: tuple[str, str]
    rows_read: int = 0
    rows_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "table": self.table,
            "query": self.query,
            "source_window": list(self.source_window),
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rejected_reasons": dict(sorted(self.rejected_reasons.items())),
        }


def schedule_query(source: "SourceDatabase", use_case: "UseCase") -> str:
    """The parametrized query selecting the known-at-prediction-time columns of one window."""
    spec = prediction_spec(use_case)
    table = use_case.table(spec.table)
    quote = source.engine.dialect.identifier_preparer.quote
    unknown = [c for c in spec.known_columns if c not in {col.name for col in table.columns}]
    if unknown:
        raise ScoringError(f"PredictionSpec.known_columns {unknown} are not columns of table {table.name!r}")
    order = [k for k in table.key if k in spec.known_columns]
    time_col = quote(table.time_column)
    return (
        f"SELECT {', '.join(quote(c) for c in spec.known_columns)} FROM {quote(table.name)} "
        f"WHERE {time_col} >= :window_start AND {time_col} < :window_end "
        f"ORDER BY {', '.join(quote(c) for c in order)}"
    )


def read_schedule(
    source: "SourceDatabase", use_case: "UseCase", day: "LogicalDay", *, chunk_rows: int
) -> tuple[ScheduleRead, Iterator["pd.DataFrame"]]:
    """Stream ``day``'s schedule from the source in chunks, typed, checked and replayed.

    Only ``PredictionSpec.known_columns`` are selected. Each chunk is held to the table's data
    contract (on those columns); rows that fail it cannot be scored and are counted in
    :class:`ScheduleRead` with their reasons, like ingestion quarantines them.
    """
    import pandas as pd
    from sqlalchemy import DateTime, bindparam, text
    from sqlalchemy.exc import InterfaceError, OperationalError

    from airloop.ingest import validate
    from airloop.ingest import SourceUnavailable

    spec = prediction_spec(use_case)
    table = use_case.table(spec.table)
    known = replace(table, columns=tuple(table.column(c) for c in spec.known_columns))
    start, end = day.window
    shift = source.shift
    window_start = (start - shift).astimezone(timezone.utc).replace(tzinfo=None)
    window_end = (end - shift).astimezone(timezone.utc).replace(tzinfo=None)
    query = schedule_query(source, use_case)
    info = ScheduleRead(table.name, query, (window_start.isoformat(), window_end.isoformat()))

    def chunks() -> Iterator["pd.DataFrame"]:
        try:
            conn = source.engine.connect()
        except (OperationalError, InterfaceError) as exc:
            raise SourceUnavailable(f"cannot reach the source database {source.safe_url}: {source.safe_error(exc)}") from None
        with conn:
            # Typed parameters: SQLAlchemy renders them in the dialect's own datetime format. Plain
            # datetimes go through sqlite3's global adapters, which Feast's SQLite online store
            # replaces (datetime -> epoch int): the window would then silently match no row.
            statement = text(query).bindparams(bindparam("window_start", type_=DateTime()), bindparam("window_end", type_=DateTime()))
            params = {"window_start": window_start, "window_end": window_end}
            for raw in pd.read_sql(statement, conn, params=params, chunksize=chunk_rows):
                info.rows_read += len(raw)
                checked = validate(raw, known)
                if len(checked.quarantined):
                    info.rows_rejected += len(checked.quarantined)
                    for reason, n in checked.reason_counts().items():
                        info.rejected_reasons[reason] = info.rejected_reasons.get(reason, 0) + n
                    log.warning("%d schedule rows of %s fail the contract and are not scored", len(checked.quarantined), day)
                valid = checked.valid
                yield table.transform(valid, source.replay_offset_days) if table.transform else valid

    return info, chunks()
