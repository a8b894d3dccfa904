"""Feature computation, point-in-time lookups and the online store, on a hand-made raw zone.

The scenario (tests/feature_helpers.py) places flights around the two instants that
matter: the daily snapshot (local midnight closing day D) and the prediction time (02:00).
"""

from __future__ import annotations

import math
import sqlite3

import pandas as pd
import pytest

from airloop import features as F
from airloop.core.storage import read_partition_frame
from airloop.features.training_set import build_training_set
from feature_helpers import D0, D1, D2, leakage_lake, local, logical_day

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def store(settings):
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    return store


@pytest.fixture
def hand_lake(lake):
    leakage_lake(lake)
    return lake


def compute(settings, lake, *days):
    for day in days:
        F.compute_features(logical_day(day), settings=settings, lake=lake)


def lake_bytes(lake, prefix: str) -> dict[str, bytes]:
    return {key: lake.read_bytes(key) for key in lake.list_keys(prefix)}


# --- computation -----------------------------------------------------------------------------


def test_snapshot_counts_only_flights_landed_before_it(settings, hand_lake):
    compute(settings, hand_lake, D0, D1)
    carrier_d0 = read_partition_frame(hand_lake, f"features/carrier_delay_stats/v2/ds={D0}").set_index("carrier")
    # A (lands 13:10) and E (23:50) landed before D0 closed; B lands 06:00 on D1.
    assert carrier_d0.loc["AA", "carrier_flights_1d"] == 2
    assert carrier_d0.loc["AA", "carrier_dep_delay_mean_1d"] == pytest.approx(5.0)
    assert carrier_d0.loc["AA", "carrier_delayed_share_28d"] == 0.0
    assert carrier_d0.loc["AA", "event_timestamp"] == pd.Timestamp(logical_day(D0).end)
    # UA's only flight was cancelled: no landed flight, no row.
    assert "UA" not in carrier_d0.index

    carrier_d1 = read_partition_frame(hand_lake, f"features/carrier_delay_stats/v2/ds={D1}").set_index("carrier")
    # D1 closes after B, F and C landed: the 1-day window holds exactly those three.
    assert carrier_d1.loc["AA", "carrier_flights_1d"] == 3
    assert carrier_d1.loc["AA", "carrier_dep_delay_mean_1d"] == pytest.approx((120 + 0 + 500) / 3)
    assert carrier_d1.loc["AA", "carrier_delayed_share_1d"] == pytest.approx(2 / 3)
    assert carrier_d1.loc["AA", "carrier_flights_7d"] == 5

    route_d0 = read_partition_frame(hand_lake, f"features/route_delay_stats/v2/ds={D0}").set_index("route")
    assert route_d0.loc["JFK-LAX", "route_flights_28d"] == 1
    assert route_d0.loc["JFK-LAX", "route_dep_delay_mean_28d"] == pytest.approx(10.0)


def test_manifest_names_the_raw_partitions_used(settings, hand_lake):
    manifests = F.compute_features(logical_day(D1), settings=settings, lake=hand_lake)
    used = [p["partition"] for p in manifests["carrier_delay_stats"]["raw_partitions"]]
    assert used == [f"raw/flights/ds={D0}", f"raw/flights/ds={D1}"]
    # Days of the 32-day lookback before the source's first day are listed as such, not as used.
    assert len(manifests["carrier_delay_stats"]["days_before_history_start"]) == 32 - 1
    # The destinations' time zones (gate arrivals) come from the airports table, recorded.
    assert manifests["carrier_delay_stats"]["dimensions"]["airports"]["rows"] == 1458
    assert [p["partition"] for p in manifests["origin_weather"]["raw_partitions"]] == [f"raw/weather/ds={D1}"]
    assert manifests["aircraft_attributes"]["dimensions"]["planes"]["rows"] == 3322


@pytest.mark.parametrize(
    "lookback, first_day, expected",
    [(0, D0, [D1]), (1, D0, [D0, D1]), (3, D0, [D0, D1]), (3, D1, [D1]), (2, D2, [])],
    ids=["same-day", "one-back", "before-history", "history-starts-that-day", "history-starts-later"],
)
def test_raw_partitions_needed_count_back_from_the_day_given(lookback, first_day, expected):
    from airloop.features.compute import raw_partitions_needed

    assert raw_partitions_needed(logical_day(D1), {"flights": lookback}, first_day) == {"flights": expected}


def test_rerun_publishes_identical_bytes(settings, hand_lake):
    compute(settings, hand_lake, D1)
    first = lake_bytes(hand_lake, "features/")
    compute(settings, hand_lake, D1)
    assert lake_bytes(hand_lake, "features/") == first
    assert len(first) == 2 * 5  # a manifest and a part file per view


def test_missing_raw_partition_fails_naming_date_and_path_before_any_write(settings, hand_lake):
    hand_lake.delete(hand_lake.list_keys(f"raw/flights/ds={D0}/"))
    with pytest.raises(F.MissingRawPartition) as err:
        F.compute_features(logical_day(D1), settings=settings, lake=hand_lake)
    assert str(D0) in str(err.value)
    assert f"raw/flights/ds={D0}" in str(err.value)
    assert hand_lake.list_keys("features/") == []


def test_every_missing_raw_partition_is_named_at_once(settings, hand_lake):
    for table in ("flights", "weather"):
        for day in (D0, D1):
            hand_lake.delete(hand_lake.list_keys(f"raw/{table}/ds={day}/"))
    with pytest.raises(F.MissingRawPartition) as err:
        F.compute_features(logical_day(D1), settings=settings, lake=hand_lake)
    assert err.value.missing == {"flights": [D0, D1], "weather": [D1]}
    assert f"flights {D0}..{D1} (2 days); weather {D1}" in str(err.value)
    assert "3 raw partitions are missing in all" in str(err.value)
    assert hand_lake.list_keys("features/") == []


def test_day_spans_groups_consecutive_days():
    from datetime import date

    from airloop.features.errors import day_spans

    days = [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 7), date(2026, 1, 2)]
    assert day_spans(days) == "2026-01-01..2026-01-03 (3 days), 2026-01-07"
    assert day_spans([date(2025, 12, 31), date(2026, 1, 1)]) == "2025-12-31..2026-01-01 (2 days)"


def test_computation_not_matching_the_definition_fails_before_any_write(settings, hand_lake, monkeypatch):
    from dataclasses import replace

    use_case = F.load_feature_use_case(settings)
    spec = use_case.features
    broken = spec.view("route_delay_stats")
    renamed = replace(broken, compute=lambda ds, frames, ctx: broken.compute(ds, frames, ctx).rename(columns={"route_flights_1d": "route_n_1d"}))
    patched = replace(use_case, features=replace(spec, views=tuple(renamed if v.name == broken.name else v for v in spec.views)))
    monkeypatch.setattr("airloop.features.compute.load_feature_use_case", lambda settings: patched)
    with pytest.raises(F.FeatureSchemaMismatch, match="route_n_1d"):
        F.compute_features(logical_day(D1), settings=settings, lake=hand_lake)
    assert hand_lake.list_keys("features/") == []  # not even the views computed before it


# --- point-in-time lookups -------------------------------------------------------------------


def test_no_leakage_in_training_rows(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1)
    ts = build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake)
    frame = ts.frame.set_index("flight")
    # X was cancelled: unlabelled, not a training row.
    assert sorted(frame.index) == [4, 5]
    c = frame.loc[4]
    assert c["is_delayed"] == 1
    assert c["event_timestamp"] == local(D1, "02:00")
    # C's own 790-minute delay, B (landed 06:00 D1) and F (landed 01:15 D1, after the snapshot)
    # appear nowhere: the carrier's record is A and E only.
    assert c["carrier_flights_1d"] == 2
    assert c["carrier_dep_delay_mean_28d"] == pytest.approx(5.0)
    assert c["carrier_delayed_share_28d"] == 0.0
    assert c["origin_flights_7d"] == 2
    assert c["route_flights_28d"] == 1 and c["route_dep_delay_mean_1d"] == pytest.approx(10.0)
    assert c["temp"] == 23.0  # JFK's last observation of D0: D1's own are not ingested by 02:00
    assert c["aircraft_seats"] == 55 and c["aircraft_age_years"] == 9.0
    # F's aircraft is not in the planes table: nulls, and still a training row.
    assert math.isnan(frame.loc[5, "aircraft_seats"])
    for column in ts.feature_columns:
        assert column in ts.frame.columns


def test_snapshot_of_a_day_is_seen_only_from_the_next_prediction_time(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1, D2)
    entity = pd.DataFrame({"origin": ["JFK"] * 3, "carrier": ["AA"] * 3, "route": ["JFK-LAX"] * 3, "tailnum": ["N10156"] * 3})
    entity["event_timestamp"] = [local(D1, "23:59"), pd.Timestamp(logical_day(D1).end), local(D2, "02:00")]
    out = F.historical_features(entity, settings=settings, store=store, lake=hand_lake)
    # 23:59 on D1: still the D0 snapshot... but the TTL (6 h) has expired by then: nulls.
    assert math.isnan(out.loc[0, "carrier_flights_1d"])
    # At the instant D1 closes and at 02:00 on D2: the D1 snapshot (B, F and C now landed).
    assert list(out.loc[1:, "carrier_flights_1d"]) == [3, 3]


def test_weather_is_the_last_observation_of_the_day_before(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1)
    entity = pd.DataFrame({"origin": ["JFK", "EWR", "LGA"], "carrier": ["AA"] * 3, "route": ["JFK-LAX"] * 3, "tailnum": ["N10156"] * 3})
    out = F.features_as_of(entity, local(D1, "02:00"), settings=settings, store=store, lake=hand_lake)
    assert out["temp"].tolist() == [23.0, 223.0, 121.0]  # LGA's last report was at 21:00
    late = F.features_as_of(entity, local(D1, "23:59"), settings=settings, store=store, lake=hand_lake)
    assert late["temp"].isna().all()  # D0's snapshot is past its TTL, D1's not yet taken


def test_lookups_at_prediction_time_need_only_the_days_before(settings, hand_lake, store):
    """At D 02:00 only D-1 has been ingested: training rows and scoring of D must not need D."""
    compute(settings, hand_lake, D0, D1)
    expected = build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake).frame
    hand_lake.delete([k for k in hand_lake.list_keys("features/") if f"ds={D1}/" in k])
    assert not [k for k in hand_lake.list_keys("features/") if f"ds={D1}/" in k]
    again = build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake).frame
    pd.testing.assert_frame_equal(again, expected)
    entity = expected[["origin", "carrier", "route", "tailnum"]]
    scored = F.features_as_of(entity, local(D1, "02:00"), settings=settings, store=store, lake=hand_lake)
    assert scored["carrier_flights_1d"].tolist() == expected["carrier_flights_1d"].tolist()


def test_entity_with_no_history_gets_nulls_not_an_exception(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1)
    entity = pd.DataFrame({
        "origin": ["JFK", "XYZ"], "carrier": ["ZZ", "AA"], "route": ["JFK-NOWHERE", "XYZ-LAX"], "tailnum": [None, "N0NE"],
    })
    out = F.features_as_of(entity, local(D1, "02:00"), settings=settings, store=store, lake=hand_lake)
    assert len(out) == 2
    assert out.loc[0, ["carrier_flights_1d", "route_flights_1d", "aircraft_seats"]].isna().all()
    assert out.loc[0, "temp"] == 23.0 and out.loc[0, "origin_flights_1d"] == 2
    assert out.loc[1, ["temp", "origin_flights_1d", "route_flights_1d", "aircraft_seats"]].isna().all()
    assert out.loc[1, "carrier_flights_1d"] == 2


def test_features_as_of_equals_the_general_join(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1, D2)
    entity = pd.DataFrame({
        "origin": ["JFK", "EWR", "LGA", "JFK"], "carrier": ["AA", "UA", "AA", "ZZ"],
        "route": ["JFK-LAX", "JFK-BOS", "LGA-ORD", "JFK-BOS"], "tailnum": ["N10156", None, "N102UW", "NZZZ99"],
    })
    for instant in (local(D1, "02:00"), local(D1, "13:00"), local(D2, "02:00")):
        fast = F.features_as_of(entity, instant, settings=settings, store=store, lake=hand_lake)
        general = F.historical_features(entity.assign(event_timestamp=instant), settings=settings, store=store, lake=hand_lake)
        pd.testing.assert_frame_equal(fast, general, check_dtype=False)


def test_missing_feature_partition_fails_the_lookup(settings, hand_lake, store):
    compute(settings, hand_lake, D1)  # D0's features never computed
    with pytest.raises(F.MissingFeaturePartition, match=f"ds={D0}"):
        build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake)


def test_training_set_fingerprint_is_stable_and_tracks_the_window(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1, D2)
    first = build_training_set(D1, D2, settings=settings, store=store, lake=hand_lake)
    again = build_training_set(D1, D2, settings=settings, store=store, lake=hand_lake)
    shorter = build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake)
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != shorter.fingerprint
    assert first.window == (D1, D2)
    # Each day's rows are looked up at that day's own cutoff (02:00 New York).
    cutoffs = first.frame.groupby("ds")["event_timestamp"].first().to_dict()
    assert cutoffs == {d.key: pd.Timestamp(d.cutoff) for d in (logical_day(D1), logical_day(D2))}
    assert first.label_column == "is_delayed" and first.feature_service == "flight_delay_v1"


def test_feature_columns_are_request_columns_then_the_service_features(settings):
    columns = F.feature_columns(settings=settings)
    assert columns[:4] == ["sched_hour", "day_of_week", "month", "distance"]
    assert "carrier_delayed_share_28d" in columns and "temp" in columns and "aircraft_engine_code" in columns
    assert len(columns) == len(set(columns)) == 4 + 9 + 3 * 9 + 4


# --- online store ----------------------------------------------------------------------------


def online_rows(settings) -> list[tuple]:
    path = F.feast_environment(settings)["AIRLOOP_FEAST_ONLINE_PATH"]
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return [
            (table, *row)
            for table in tables
            for row in conn.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" ORDER BY 1, 2')
        ]


def test_materializing_twice_leaves_the_online_store_identical(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1)
    F.materialize(logical_day(D0), logical_day(D1), settings=settings, store=store, lake=hand_lake)
    first = online_rows(settings)
    results = F.materialize(logical_day(D0), logical_day(D1), settings=settings, store=store, lake=hand_lake)
    assert online_rows(settings) == first
    assert len(first) > 3322 * 4  # every plane's four attributes, and the rest
    assert {r.view for r in results} == {v.name for v in F.service_layout(store, "flight_delay_v1").views}


def test_out_of_order_backfill_keeps_newer_online_values(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1)
    F.materialize(logical_day(D1), logical_day(D1), settings=settings, store=store, lake=hand_lake)
    newer = online_rows(settings)
    results = {r.view: r for r in F.materialize(logical_day(D0), logical_day(D0), settings=settings, store=store, lake=hand_lake)}
    after = online_rows(settings)
    assert set(newer) <= set(after)  # every newer value is still there, unchanged
    assert results["carrier_delay_stats"].kept_newer == 1 and results["carrier_delay_stats"].written == 0
    assert results["aircraft_attributes"].kept_newer == 3322 and results["aircraft_attributes"].written == 0
    # Entities only the older interval knows are loaded: LGA and EWR weather (JFK's is newer).
    assert results["origin_weather"].written == 2 and results["origin_weather"].kept_newer == 1
    assert len(after) == len(newer) + 2 * 9


def test_skew_check_online_equals_offline_and_catches_a_stale_store(settings, hand_lake, store):
    compute(settings, hand_lake, D0, D1, D2)
    sample = pd.DataFrame({
        "origin": ["JFK", "EWR", "JFK"], "carrier": ["AA", "AA", "UA"], "route": ["JFK-LAX", "JFK-BOS", "LGA-ORD"],
        "tailnum": ["N10156", "N102UW", "NZZZ99"],
    })
    F.materialize(logical_day(D0), logical_day(D1), settings=settings, store=store, lake=hand_lake)
    report = F.skew_check(sample, logical_day(D1), settings=settings, store=store, lake=hand_lake)
    assert report.ok, report.mismatches
    assert report.rows == 3 and report.features == 40
    assert report.as_of == logical_day(D1).end  # offline values as of the instant D1 closes
    # EWR's last observation (23:00 on D0) is past the weather TTL at D1's close: null on both
    # sides, counted as an expired online value.
    assert report.expired_online == 1
    # The online store holds D1's values; offline as of D2's close differs (weather, stats).
    stale = F.skew_check(sample, logical_day(D2), settings=settings, store=store, lake=hand_lake)
    assert not stale.ok
    assert {m["feature"] for m in stale.mismatches} >= {"temp", "carrier_flights_1d"}


def test_materialize_fails_on_a_missing_last_partition_before_writing(settings, hand_lake, store):
    compute(settings, hand_lake, D0)
    with pytest.raises(F.MissingFeaturePartition, match=f"ds={D1}"):
        F.materialize(logical_day(D0), logical_day(D1), settings=settings, store=store, lake=hand_lake)
    assert online_rows(settings) == []


def test_cli_works_on_the_use_cases_days(settings, hand_lake, store, capsys):
    """``airloop features compute|materialize|skew-check`` make each day with the use case (once)."""
    import json

    from airloop.cli import main

    assert main(["features", "compute", str(D0), str(D1), "--view", "origin_weather"]) == 0
    assert json.loads(capsys.readouterr().out) == {str(D0): {"origin_weather": 3}, str(D1): {"origin_weather": 1}}
    assert main(["features", "compute", str(D1), str(D0)]) == 1
    assert f"range end {D0} is before its start {D1}" in capsys.readouterr().err
    assert main(["features", "compute", str(D0), str(D1)]) == 0
    capsys.readouterr()
    assert main(["features", "materialize", str(D0), str(D1)]) == 0
    materialized = {r["view"]: r for r in json.loads(capsys.readouterr().out)}
    assert materialized["carrier_delay_stats"]["rows_read"] == 2 and materialized["carrier_delay_stats"]["written"] == 1
    assert main(["features", "skew-check", str(D1), "--sample", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["as_of"] == logical_day(D1).end.isoformat()


def test_feast_leaves_sqlite_datetime_binding_alone(settings, hand_lake, store, tmp_path):
    """Feast's SQLite online store registers process-wide sqlite3 adapters (datetimes as epoch
    seconds); after Airloop's Feast calls, other SQLite databases must compare datetimes as before."""
    from datetime import datetime

    compute(settings, hand_lake, D0)
    F.materialize(logical_day(D0), logical_day(D0), settings=settings, store=store, lake=hand_lake)
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (ts TIMESTAMP)")
        conn.execute("INSERT INTO t VALUES ('2013-01-06 05:00:00')")
        found = conn.execute("SELECT count(*) FROM t WHERE ts >= ?", (datetime(2013, 1, 6, 0, 0),)).fetchone()[0]
    assert found == 1


def test_default_feature_service_is_the_use_cases(settings):
    assert F.default_feature_service(settings) == "flight_delay_v1"
    with pytest.raises(AttributeError):
        F.NOT_A_SETTING  # noqa: B018


@pytest.mark.parametrize(
    "ds, utc_hour",
    [("2026-03-07", 7), ("2026-03-08", 7), ("2026-03-09", 6), ("2026-10-31", 6), ("2026-11-01", 7), ("2026-11-02", 7)],
    ids=["before-spring", "spring-forward", "after-spring", "before-fall", "fall-back", "after-fall"],
)
def test_prediction_time_across_daylight_saving_stays_within_the_snapshot_ttl(settings, ds, utc_hour):
    """02:00 New York (02:00 does not exist on the spring-forward day: Python reads it as 03:00
    EDT = 07:00 UTC); the snapshot taken at that day's midnight is 2-3 h old, inside the 6 h TTL.
    The lookup instant of a day is its cutoff (training sets look day D's rows up there)."""
    day = F.load_feature_use_case(settings).day(ds)
    instant = day.cutoff
    assert instant.utcoffset().total_seconds() == 0 and (instant.hour, instant.minute) == (utc_hour, 0)
    age = instant - day.start
    assert 2 * 3600 <= age.total_seconds() <= 3 * 3600


def test_tampered_feature_file_is_refused(settings, hand_lake, store):
    from airloop.core.storage import PartitionCorrupt

    compute(settings, hand_lake, D0, D1)
    key = next(k for k in hand_lake.list_keys(f"features/route_delay_stats/v2/ds={D0}/") if k.endswith(".parquet"))
    hand_lake.local_path(key).write_bytes(hand_lake.read_bytes(key)[:-10] + b"0123456789")
    with pytest.raises(PartitionCorrupt, match="route_delay_stats"):
        build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake)


def test_s3_lake_gives_the_same_training_rows_as_a_local_one(settings, hand_lake, store, s3_env):
    """Same hand-made raw zone on a real S3-compatible server (moto): same partitions, same rows."""
    import uuid

    from airloop.core.storage import open_lake

    s3_settings = settings.with_overrides(lake_url=f"s3://airloop-feat-{uuid.uuid4().hex[:8]}/lake", s3_endpoint_url=s3_env)
    s3 = open_lake(s3_settings)
    s3.ensure_bucket()
    leakage_lake(s3)
    compute(s3_settings, s3, D0, D1)
    compute(settings, hand_lake, D0, D1)
    # The feature partitions, not the registered-layout record that applying the repo wrote
    # into the local lake (features/_registered/, see airloop.features.registered_layout).
    partitions = lambda lake: {k: v for k, v in lake_bytes(lake, "features/").items() if not k.startswith("features/_registered/")}  # noqa: E731
    assert partitions(s3) == partitions(hand_lake) != {}
    on_s3 = build_training_set(D1, D1, settings=s3_settings, store=store, lake=s3)
    local = build_training_set(D1, D1, settings=settings, store=store, lake=hand_lake)
    pd.testing.assert_frame_equal(on_s3.frame, local.frame)
    assert on_s3.fingerprint == local.fingerprint
