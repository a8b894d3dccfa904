"""Hand-made raw zones for the features tests: flights and weather rows written as raw partitions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from airloop.core.dates import LogicalDay
from airloop.core.storage import frame_to_parquet, partition_prefix, publish_partition
from airloop.core.usecase import load_use_case

NY = ZoneInfo("America/New_York")
FLIGHTS = load_use_case("airloop.usecases.flights:USE_CASE")
# The replayed first day of the source (2013-01-01 + 4746 days): history starts here.
D0 = date(2025, 12, 30)
D1 = D0 + timedelta(days=1)
D2 = D0 + timedelta(days=2)


def logical_day(value: date | str) -> LogicalDay:
    """``value`` as the flights use case's day (New York, 02:00 cutoff), as a caller's boundary makes it."""
    return FLIGHTS.day(value)


def local(day: date, hhmm: str) -> pd.Timestamp:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return pd.Timestamp(datetime.combine(day, time(hour, minute), tzinfo=NY)).tz_convert("UTC")


# Time zones of the destinations the hand-made flights use (as the airports table has them).
DEST_ZONES = {"LAX": "America/Los_Angeles", "BOS": "America/New_York", "ORD": "America/Chicago",
              "HNL": "Pacific/Honolulu", "SJU": "America/Puerto_Rico"}


def gate_clock(instant: pd.Timestamp, dest: str) -> float:
    """``arr_time`` of a flight reaching the gate of ``dest`` at ``instant``: local HHMM."""
    loc = instant.tz_convert(DEST_ZONES[dest])
    return float(loc.hour * 100 + loc.minute)


def flight(
    day: date, hhmm: str, *, carrier="AA", origin="JFK", dest="LAX", dep_delay=0.0, air_time=300.0,
    arr_delay=0.0, tailnum="N10156", number=1, distance=2475.0, taxi_in=0.0, arr_time="gate",
) -> dict:
    """One raw flights row (all raw columns), scheduled at local ``hhmm`` on ``day``.

    ``arr_time`` is by default the destination's local clock when the flight reaches its gate,
    ``taxi_in`` minutes after landing (scheduled departure + ``dep_delay`` + ``air_time``); None
    when it has no arrival delay (cancelled, diverted). Pass a number (or None) to set it.
    """
    sched = local(day, hhmm)
    loc = sched.tz_convert(NY)
    if arr_time == "gate":
        arr_time = None if arr_delay is None else gate_clock(sched + pd.Timedelta(minutes=dep_delay + air_time + taxi_in), dest)
    return {
        "carrier": carrier, "flight": number, "tailnum": tailnum, "origin": origin, "dest": dest,
        "sched_dep_ts": sched, "time_hour": sched.floor("h"), "year": loc.year, "month": loc.month, "day": loc.day,
        "hour": loc.hour, "minute": loc.minute, "sched_dep_time": loc.hour * 100 + loc.minute,
        "sched_arr_time": 1200, "dep_time": None if dep_delay is None else 800.0, "arr_time": arr_time,
        "dep_delay": dep_delay, "arr_delay": arr_delay, "air_time": air_time, "distance": distance,
    }


def weather(day: date, origin: str, hours, temp_of=lambda h: float(h)) -> list[dict]:
    """Hourly raw weather rows at ``origin`` for the local ``hours`` of ``day`` (temp = hour by default)."""
    rows = []
    for hour in hours:
        ts = local(day, f"{hour:02d}:00")
        rows.append({
            "origin": origin, "time_hour": ts, "year": day.year, "month": day.month, "day": day.day, "hour": hour,
            "temp": temp_of(hour), "dewp": 20.0, "humid": 50.0, "wind_dir": 180.0, "wind_speed": 5.0,
            "wind_gust": None, "precip": 0.0, "pressure": 1010.0, "visib": 10.0,
        })
    return rows


def publish_raw(lake, table: str, day: date, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    for col in ("dep_delay", "arr_delay", "air_time", "dep_time", "arr_time", "wind_gust", "temp"):
        if col in frame:
            frame[col] = frame[col].astype("float64")
    for col in ("sched_dep_ts", "time_hour"):
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
    prefix = partition_prefix("raw", table, day.isoformat())
    publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(frame)}, {"table": table, "ds": day.isoformat(), "rows": len(frame)})


# Flights of the leakage scenario (see test_features.py).
A = dict(carrier="AA", origin="JFK", dest="LAX", dep_delay=10.0, air_time=300.0, arr_delay=5.0, number=1)
B = dict(carrier="AA", origin="JFK", dest="LAX", dep_delay=120.0, air_time=330.0, arr_delay=200.0, number=2)
E = dict(carrier="AA", origin="JFK", dest="BOS", dep_delay=0.0, air_time=50.0, arr_delay=3.0, number=3, distance=187.0)
C = dict(carrier="AA", origin="JFK", dest="LAX", dep_delay=500.0, air_time=300.0, arr_delay=790.0, number=4)
F = dict(carrier="AA", origin="JFK", dest="BOS", dep_delay=0.0, air_time=45.0, arr_delay=-5.0, number=5, tailnum="NZZZ99", distance=187.0)
X = dict(carrier="UA", origin="LGA", dest="ORD", dep_delay=None, air_time=None, arr_delay=None, number=6, tailnum="N102UW", distance=733.0)


def leakage_lake(lake) -> None:
    """Three days of hand-made raw data.

    D0: A lands 13:10 (before the D0 snapshot), E lands 23:50 (before), B departs 00:30 D1 and
        lands 06:00 D1 (after the D0 snapshot *and* after D1's prediction time).
    D1: F lands 01:15 (before D1's 02:00 prediction time, but after the D0 snapshot); C, the
        predicted row, leaves 17:20 and lands 22:20 with a 790-minute arrival delay; X cancelled.
    D2: nothing but weather.
    Weather: JFK every hour of D0..D2 (temp = local hour); LGA D0 00-21h only; EWR D0 00-23h only.
    """
    publish_raw(lake, "flights", D0, [flight(D0, "08:00", **A), flight(D0, "22:30", **B), flight(D0, "23:00", **E)])
    publish_raw(lake, "flights", D1, [flight(D1, "00:30", **F), flight(D1, "09:00", **C), flight(D1, "10:00", **X)])
    publish_raw(lake, "flights", D2, [flight(D2, "09:00", **{**A, "number": 7})])
    for day in (D0, D1, D2):
        rows = weather(day, "JFK", range(24))
        if day == D0:
            rows += weather(day, "LGA", range(22), temp_of=lambda h: 100.0 + h) + weather(day, "EWR", range(24), temp_of=lambda h: 200.0 + h)
        publish_raw(lake, "weather", day, rows)


# --- An independent reckoning of gate arrivals (plain Python and zoneinfo, row by row) -----------

# The destinations the airports table lacks, as a person looks them up: all on Atlantic time.
UNLISTED_ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico",
                  "STT": "America/St_Thomas"}
# Every zone a flight from New York can land in: an unlisted destination's clock is read in each.
US_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
            "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico")
UTC = ZoneInfo("UTC")


def clock_reading(lower: datetime, hhmm: int, zone: str) -> datetime:
    """The first instant at or after ``lower`` when ``zone``'s clocks show ``hhmm`` (2400: midnight).

    A wall time shown twice (autumn) or skipped (spring) takes its latest reading (``fold``).
    """
    tz = ZoneInfo(zone)
    hours, minutes = divmod(hhmm, 100)
    first = lower.astimezone(tz).date() - timedelta(days=1)
    readings = []
    for days in range(4):
        wall = datetime.combine(first + timedelta(days=days), time()) + timedelta(hours=hours, minutes=minutes)
        readings.append(max(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)))
    return min(r for r in readings if r >= lower)


def reckon_arrivals(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    """Per flight: ``true_arrival`` (its destination's real zone) and ``known_at`` (the instant the
    feature store may count it: the true arrival, or for a destination the airports table lacks
    the latest reading of its clock in any US zone); both NaT without a real arrival."""
    listed = dict(zip(airports["faa"], airports["tzone"]))
    true, known = [], []
    for row in flights[["sched_dep_ts", "dep_delay", "air_time", "arr_time", "arr_delay", "dest"]].itertuples(index=False):
        if any(pd.isna(v) for v in (row.dep_delay, row.air_time, row.arr_time, row.arr_delay)):
            true.append(None), known.append(None)
            continue
        lower = row.sched_dep_ts.to_pydatetime() + timedelta(minutes=row.dep_delay + row.air_time)
        zone = listed.get(row.dest) or UNLISTED_ZONES[row.dest]
        true.append(clock_reading(lower, int(row.arr_time), zone))
        known.append(true[-1] if row.dest in listed else max(clock_reading(lower, int(row.arr_time), z) for z in US_ZONES))
    as_utc = lambda values: pd.to_datetime(pd.Series(values, index=flights.index, dtype="object"), utc=True)  # noqa: E731
    return pd.DataFrame({"true_arrival": as_utc(true), "known_at": as_utc(known)})


def expected_delay_stats(flights: pd.DataFrame, known_at: pd.Series, snapshot: pd.Timestamp, key: pd.Series, prefix: str,
                         tz: str = "America/New_York") -> pd.DataFrame:
    """The delay statistics of the snapshot closing a day, from raw rows (1/7/28-day windows).

    Counts flights whose ``known_at`` precedes ``snapshot``; windows start at local midnights
    1, 7 and 28 days back; an entity with an arrival in the last 29 days gets a row.
    """
    close = snapshot.tz_convert(tz)
    starts = {w: (close.tz_localize(None) - pd.Timedelta(days=n)).tz_localize(tz).tz_convert("UTC")
              for w, n in {"1d": 1, "7d": 7, "28d": 28, "universe": 29}.items()}
    known = known_at.notna() & (known_at < snapshot) & (known_at >= starts["universe"])
    rows = flights[known].assign(entity=key[known], at=known_at[known])
    out = pd.DataFrame(index=pd.Index(sorted(rows["entity"].unique()), name=key.name))
    for window in ("1d", "7d", "28d"):
        inside = rows[rows["at"] >= starts[window]]
        grouped = inside.groupby("entity")
        out[f"{prefix}_flights_{window}"] = grouped.size().reindex(out.index).fillna(0).astype("int64")
        out[f"{prefix}_dep_delay_mean_{window}"] = grouped["dep_delay"].mean().reindex(out.index)
        out[f"{prefix}_delayed_share_{window}"] = grouped["arr_delay"].apply(lambda s: float((s > 15).mean())).reindex(out.index)
    return out
