"""The upstream source database, reached through SQLAlchemy (SQLite file or any SQLAlchemy URL).

The source holds the use case's original data (2013 for the flights) and is *replayed*: a
query for a replayed window subtracts ``replay_offset_days`` before it reaches the database, and
the use case's transform adds it back to every timestamp it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING

from airloop.core.redaction import redact_text, redact_url, url_secrets

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.usecase import SourceTable, UseCase

log = logging.getLogger(__name__)


class SourceUnavailable(ConnectionError):
    """The source database cannot be reached; the message names its URL without the password."""


@dataclass(frozen=True)
class Extract:
    """Rows of one table for one replayed window, with the query that produced them."""

    table: str
    frame: "pd.DataFrame"
    query: str
    source_start: datetime
    source_end: datetime


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


class SourceDatabase:
    """Read access (and the one-off load) of the upstream database.

    :param url: SQLAlchemy URL; its password never appears in logs or errors.
    :param replay_offset_days: days between source time and replayed time.
    """

    def __init__(self, url: str, *, replay_offset_days: int = 0, connect_timeout_s: int = 10):
        self.url = url
        self.replay_offset_days = replay_offset_days
        self.connect_timeout_s = connect_timeout_s

    @cached_property
    def engine(self):
        """The SQLAlchemy engine (a missing driver ends in a message naming the package to install)."""
        from airloop.core.database import create_engine

        if self.url.startswith("sqlite"):
            return create_engine(self.url, connect_args={"timeout": 30})
        args = {"connect_timeout": self.connect_timeout_s} if self.url.startswith("postgresql") else {}
        return create_engine(self.url, pool_pre_ping=True, connect_args=args)

    @property
    def safe_url(self) -> str:
        """The URL with its credentials masked: what logs, errors and manifests show."""
        return redact_url(self.url)

    def safe_error(self, exc: BaseException) -> str:
        """A driver's error message with this URL's credentials masked (drivers may echo them)."""
        return redact_text(str(getattr(exc, "orig", None) or exc), secrets=url_secrets(self.url))

    def _sqlite_path(self):
        """The file of a ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
        from pathlib import Path

        if not self.url.startswith("sqlite:///") or self.url.removeprefix("sqlite:///") in ("", ":memory:"):
            return None
        return Path(self.url.removeprefix("sqlite:///").split("?", 1)[0])

    def _connect(self, *, create: bool = False):
        from sqlalchemy.exc import DBAPIError

        path = self._sqlite_path()
        if not create and path is not None and not path.exists():
            # SQLite would silently create an empty file; a reader needs the loaded source.
            raise SourceUnavailable(
                f"the source database {self.safe_url} does not exist: load it with `airloop load-source`"
            )
        try:
            return self.engine.connect()
        except DBAPIError as exc:  # refused, timed out, bad credentials, an option the driver rejects
            raise SourceUnavailable(f"cannot reach the source database {self.safe_url}: {self.safe_error(exc)}") from None

    @property
    def shift(self) -> timedelta:
        return timedelta(days=self.replay_offset_days)

    def load(self, use_case: "UseCase") -> dict[str, int]:
        """Load the use case's upstream data into this database (replacing its tables)."""
        if use_case.source_loader is None:
            raise ValueError(f"use case {use_case.name!r} defines no source_loader")
        if self.url.startswith("sqlite:///"):
            from pathlib import Path

            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        with self._connect(create=True):
            pass
        return use_case.source_loader(self.engine)

    def has_table(self, name: str) -> bool:
        from sqlalchemy import inspect

        path = self._sqlite_path()
        if path is not None and not path.exists():
            return False
        with self._connect() as conn:
            return inspect(conn).has_table(name)

    def coverage(self, table: "SourceTable") -> tuple[datetime, datetime] | None:
        """First and last instant of ``table`` in *replayed* UTC time, or None when empty."""
        import pandas as pd
        from sqlalchemy import text

        from sqlalchemy import inspect

        col = self._quote(table.time_column)
        with self._connect() as conn:
            if not inspect(conn).has_table(table.name):
                raise SourceUnavailable(
                    f"the source database {self.safe_url} has no table {table.name!r}: "
                    "load it with `airloop load-source`"
                )
            row = conn.execute(text(f"SELECT MIN({col}), MAX({col}) FROM {self._quote(table.name)}")).one()
        if row[0] is None:
            return None
        first, last = (pd.Timestamp(v).tz_localize("UTC").to_pydatetime() + self.shift for v in row)
        return first, last

    def _quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    def extract(self, table: "SourceTable", start: datetime, end: datetime) -> Extract:
        """Rows of ``table`` whose time column lies in the replayed window ``[start, end)``.

        The query is parametrized; only identifiers from the use case are spliced in (quoted).
        """
        import pandas as pd
        from sqlalchemy import DateTime, bindparam, text

        source_start, source_end = _naive_utc(start - self.shift), _naive_utc(end - self.shift)
        col = self._quote(table.time_column)
        query = (
            f"SELECT * FROM {self._quote(table.name)} "
            f"WHERE {col} >= :window_start AND {col} < :window_end ORDER BY {col}"
        )
        log.info("extracting %s for source window [%s, %s) from %s", table.name, source_start, source_end, self.safe_url)
        with self._connect() as conn:
            # Typed bind parameters: SQLAlchemy formats the instants itself, so a process-wide
            # sqlite3 datetime adapter (Feast registers one) cannot change what the query compares.
            statement = text(query).bindparams(
                bindparam("window_start", type_=DateTime()), bindparam("window_end", type_=DateTime())
            )
            frame = pd.read_sql(statement, conn, params={"window_start": source_start, "window_end": source_end})
        return Extract(table.name, frame, query, source_start, source_end)

    def daily_rows(self, table: "SourceTable", timezone: str) -> dict:
        """Rows of ``table`` per replayed local day of ``timezone`` (``date -> count``), the whole source.

        The same day boundaries as :meth:`extract` with a :class:`~airloop.core.dates.LogicalDay`'s
        window: what the volume check's calibration counts.
        """
        import pandas as pd
        from sqlalchemy import text

        col = self._quote(table.time_column)
        with self._connect() as conn:
            frame = pd.read_sql(text(f"SELECT {col} AS t FROM {self._quote(table.name)}"), conn)
        instants = pd.to_datetime(frame["t"], utc=True) + self.shift
        days = instants.dt.tz_convert(timezone).dt.date
        return {day: int(n) for day, n in days.value_counts().sort_index().items()}
