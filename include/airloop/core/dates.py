"""Daily partitions of the business clock: a ``ds`` is a calendar day in the use case's timezone.

Every DAG run resolves the one ``ds`` it works on from, in order: the ``ds`` param (manual runs
and ``airflow dags test``), the run's partition key (partitioned timetables, backfills,
partitioned-asset runs), the triggering asset events' ``extra["ds"]``, and finally the logical
date or data interval. A run with none of them fails with a message saying how to give one.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class PartitionDateError(ValueError):
    """No partition date could be resolved for a run."""


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
    day = parse_ds(ds)
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


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
