"""Daily partitions of the business clock: a ``ds`` is a calendar day in the use case's timezone.

Every DAG run resolves the one ``ds`` it works on from, in order: the ``ds`` param (manual runs
and ``airflow dags test``), the run's partition key (partitioned timetables, backfills,
partitioned-asset runs), the triggering asset events' ``extra["ds"]``, and finally the logical
date or data interval. A run with none of them fails with a message saying how to give one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


class PartitionDateError(ValueError):
    """No partition date could be resolved for a run."""


@dataclass(frozen=True, order=True)
class LogicalDay:
    """One operating day of the business clock: the value every stage works on.

    Parsed once at the boundary (operator, CLI, season, backtest) with :meth:`parse` or
    ``use_case.day(...)``; stages take it as it is and never parse a date string again.

    :param date: the calendar day in the business time zone.
    :param tz: the business time zone (IANA name), e.g. ``America/New_York``.
    :param cutoff_time: local time of day at which the day is scored and its features looked up
        (``02:00`` for flights); :attr:`cutoff` is that instant.
    """

    date: date
    tz: str = "UTC"
    cutoff_time: time = time(0)

    @classmethod
    def parse(cls, value: "str | date | datetime | LogicalDay", tz: str = "UTC", cutoff_time: time | str = time(0)) -> "LogicalDay":
        """The day named by ``value`` (``YYYY-MM-DD``, a date or a datetime's date) in ``tz``."""
        if isinstance(cutoff_time, str):
            hour, _, minute = cutoff_time.partition(":")
            cutoff_time = time(int(hour), int(minute or 0))
        day = value.date if isinstance(value, LogicalDay) else parse_ds(value)
        return cls(day, tz, cutoff_time)

    @property
    def key(self) -> str:
        """The partition key, ``YYYY-MM-DD`` (``ds=`` in lake paths, Airflow's partition key)."""
        return self.date.isoformat()

    @property
    def start(self) -> datetime:
        """Local midnight that opens the day, aware in the business zone (as :func:`day_window`)."""
        return datetime.combine(self.date, time(0), tzinfo=ZoneInfo(self.tz))

    @property
    def end(self) -> datetime:
        """Local midnight that closes the day (the next day's start), aware in the business zone."""
        return self.shift(1).start

    @property
    def window(self) -> tuple[datetime, datetime]:
        """``(start, end)``: the day's instants ``[start, end)``."""
        return self.start, self.end

    @property
    def cutoff(self) -> datetime:
        """The instant the day is scored and its features looked up, UTC-aware.

        On a spring-forward day a nonexistent local time resolves like the scheduler's cron does
        (02:00 New York on the switch day is 07:00 UTC).
        """
        return self.at(self.cutoff_time.hour, self.cutoff_time.minute)

    def at(self, hour: int, minute: int = 0) -> datetime:
        """Local ``hour:minute`` of this day, UTC-aware."""
        local = datetime.combine(self.date, time(hour, minute), tzinfo=ZoneInfo(self.tz))
        return local.astimezone(timezone.utc)

    def shift(self, days: int) -> "LogicalDay":
        """The day ``days`` later (earlier when negative), same zone and cutoff."""
        return LogicalDay(self.date + timedelta(days=days), self.tz, self.cutoff_time)

    def range_to(self, last: "LogicalDay") -> "list[LogicalDay]":
        """Every day from this one to ``last`` inclusive."""
        if last.date < self.date:
            raise PartitionDateError(f"range end {last.key} is before its start {self.key}")
        return [self.shift(i) for i in range((last.date - self.date).days + 1)]

    def __str__(self) -> str:
        return self.key


def parse_ds(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise PartitionDateError(f"{value!r} is not a date in YYYY-MM-DD form") from None


def day_window(ds: date | str, tz: str) -> tuple[datetime, datetime]:
    """The UTC-aware instants ``[start, end)`` of local day ``ds`` in timezone ``tz``."""
    return LogicalDay.parse(ds, tz).window


def ds_range(start: date | str, end: date | str) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    first, last = parse_ds(start), parse_ds(end)
    if last < first:
        raise PartitionDateError(f"range end {last} is before its start {first}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def resolve_ds(context, tz: str = "UTC") -> date:
    """The partition date a task instance works on (see the module docstring for the order)."""
    params = context.get("params") or {}
    if params.get("ds"):
        return parse_ds(params["ds"])
    dag_run = context.get("dag_run")
    key = getattr(dag_run, "partition_key", None) if dag_run is not None else None
    if key:
        return parse_ds(key)
    events = context.get("triggering_asset_events") or {}
    found = sorted({str(e.extra["ds"]) for evs in events.values() for e in evs if (e.extra or {}).get("ds")})
    if len(found) == 1:
        return parse_ds(found[0])
    if len(found) > 1:
        raise PartitionDateError(f"the triggering asset events carry several dates {found}; run once per date")
    logical = context.get("logical_date") or context.get("data_interval_start")
    if logical is not None:
        return logical.astimezone(ZoneInfo(tz)).date()
    raise PartitionDateError(
        "this run has no partition date: trigger it with the 'ds' param (YYYY-MM-DD), "
        "or let the scheduler or a backfill create it"
    )
