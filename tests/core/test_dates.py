"""The typed logical day: parsed once, carrying its zone, window, cutoff and partition key."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest

from airloop.core.dates import LogicalDay, PartitionDateError, day_window, resolve_ds
from airloop.usecases.flights import USE_CASE

NY = "America/New_York"


@pytest.mark.parametrize(
    ("ds", "start_utc", "end_utc", "cutoff_utc"),
    [
        ("2026-03-08", "2026-03-08T05:00", "2026-03-09T04:00", "2026-03-08T07:00"),  # spring forward: 23 h
        ("2026-11-01", "2026-11-01T04:00", "2026-11-02T05:00", "2026-11-01T07:00"),  # fall back: 25 h
        ("2026-06-10", "2026-06-10T04:00", "2026-06-11T04:00", "2026-06-10T06:00"),
        ("2026-12-31", "2026-12-31T05:00", "2027-01-01T05:00", "2026-12-31T07:00"),  # year edge
    ],
)
def test_window_and_cutoff_follow_the_business_clock(ds, start_utc, end_utc, cutoff_utc):
    day = USE_CASE.day(ds)
    utc = lambda s: datetime.fromisoformat(s).replace(tzinfo=timezone.utc)  # noqa: E731
    assert (day.start, day.end) == (utc(start_utc), utc(end_utc))
    assert day.window == day_window(ds, NY)  # the same instants the stages used before
    assert day.cutoff == utc(cutoff_utc) and day.cutoff.tzinfo == timezone.utc
    assert day.key == ds == str(day)


def test_parse_accepts_typed_values_and_keeps_zone_and_cutoff():
    day = LogicalDay.parse("2026-04-06", NY, "02:30")
    assert day == LogicalDay(date(2026, 4, 6), NY, time(2, 30))
    assert LogicalDay.parse(day, NY, "02:30") == day
    assert LogicalDay.parse(datetime(2026, 4, 6, 23, 59), NY).date == date(2026, 4, 6)
    assert USE_CASE.day(day) is day  # already typed: not re-stamped with the use case's cutoff
    assert USE_CASE.day(date(2026, 4, 6)) == LogicalDay(date(2026, 4, 6), NY, time(2, 0))


def test_shift_and_range_keep_zone_and_cutoff_across_month_and_year():
    day = USE_CASE.day("2026-12-30")
    assert day.shift(2) == USE_CASE.day("2027-01-01")
    assert day.shift(-30).key == "2026-11-30"
    days = USE_CASE.day("2026-02-27").range_to(USE_CASE.day("2026-03-02"))
    assert [d.key for d in days] == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert {(d.tz, d.cutoff_time) for d in days} == {(NY, time(2, 0))}


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", "", "2026/03/01"])
def test_a_bad_day_is_refused_naming_the_value(bad):
    with pytest.raises(PartitionDateError, match="YYYY-MM-DD"):
        USE_CASE.day(bad)


def test_a_range_ending_before_it_starts_is_refused():
    with pytest.raises(PartitionDateError, match="before its start"):
        USE_CASE.day("2026-03-02").range_to(USE_CASE.day("2026-03-01"))


def test_days_order_and_hash_by_date():
    a, b = USE_CASE.day("2026-03-01"), USE_CASE.day("2026-03-02")
    assert a < b and sorted([b, a]) == [a, b] and len({a, USE_CASE.day("2026-03-01")}) == 1


def test_resolve_ds_order_param_then_partition_key_then_events():
    class Run:
        partition_key = "2026-05-02"

    class Event:
        extra = {"ds": "2026-05-03"}

    assert resolve_ds({"params": {"ds": "2026-05-01"}, "dag_run": Run()}, NY) == date(2026, 5, 1)
    assert resolve_ds({"params": {}, "dag_run": Run()}, NY) == date(2026, 5, 2)
    assert resolve_ds({"triggering_asset_events": {"a": [Event()]}}, NY) == date(2026, 5, 3)
    with pytest.raises(PartitionDateError, match="no partition date"):
        resolve_ds({}, NY)
