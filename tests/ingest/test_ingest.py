"""Ingestion library on the real source: exact day windows, manifests, reruns, and every bad input."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from airloop.ingest.contract import ContractError
from airloop.ingest import (
    DayRun,
    IngestSummary,
    NoDataYet,
    OutsideSourceCoverage,
    QualityGateError,
    check_quality_gate,
    extract_to_staging,
    ingest_day,
    publish_day,
    read_quarantine,
    validate_staged,
)
from airloop.ingest.source import SourceDatabase, SourceUnavailable
from airloop.core.storage import (
    LocalLake,
    S3Lake,
    StorageError,
    frame_to_parquet,
    list_partitions,
    open_lake,
    publish_partition,
    read_partition_files,
    read_partition_frame,
    require_manifest,
)
from airloop.usecases.flights import USE_CASE

OFFSET = timedelta(days=4746)
DAY = date(2026, 6, 10)  # source 2013-06-12, a Wednesday
RUN = DayRun(DAY.isoformat(), "test-run")


def count_in_source(url: str, table: str, replayed_day: date) -> int:
    """Independent count: the source's own local-date columns, no time windows involved."""
    src = replayed_day - OFFSET
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE year = :y AND month = :m AND day = :d"),
            {"y": src.year, "m": src.month, "d": src.day},
        ).scalar_one()
    engine.dispose()
    return n


def zone_bytes(lake, day: date) -> dict[str, bytes]:
    keys = [k for z in ("staging", "raw", "quarantine") for k in lake.list_keys(f"{z}/") if f"ds={day}" in k]
    return {k: lake.read_bytes(k) for k in keys}


@pytest.mark.parametrize("table", ["flights", "weather"])
def test_ingest_day_publishes_exactly_the_local_day(settings, lake, table):
    summary = ingest_day(table, DAY, settings)
    expected = count_in_source(settings.source_url, table, DAY)
    assert summary.rows == expected > 0
    assert summary.valid_rows + summary.quarantined_rows == expected

    raw = require_manifest(lake, f"raw/{table}/ds={DAY}")
    assert raw["rows"] == summary.valid_rows and raw["source_rows"] == expected
    assert raw["quarantine_partition"] == f"quarantine/{table}/ds={DAY}"
    assert raw["replayed_window"] == {"start": "2026-06-10T00:00:00-04:00", "end": "2026-06-11T00:00:00-04:00"}
    assert raw["source"]["window_start"] == "2013-06-12T04:00:00"
    assert ":window_start" in raw["source"]["query"] and "2013" not in raw["source"]["query"]
    assert raw["code_version"]

    frame = read_partition_frame(lake, f"raw/{table}/ds={DAY}")
    assert len(frame) == summary.valid_rows
    assert set(zip(frame["year"], frame["month"], frame["day"])) == {(2026, 6, 10)}
    assert frame["time_hour"].min() >= pd.Timestamp("2026-06-10T04:00Z")
    assert frame["time_hour"].max() < pd.Timestamp("2026-06-11T04:00Z")


def test_raw_flights_have_exact_departure_instants_and_keep_real_gaps(settings, lake):
    ingest_day("flights", DAY, settings)
    frame = read_partition_frame(lake, f"raw/flights/ds={DAY}")
    local = frame["sched_dep_ts"].dt.tz_convert("America/New_York")
    assert (local.dt.hour * 100 + local.dt.minute == frame["sched_dep_time"]).all()
    assert (local.dt.dayofweek == DAY.weekday()).all()  # weekday-aligned replay
    # Cancelled flights: no departure time, no arrival delay; valid, kept.
    cancelled = frame[frame["dep_time"].isna()]
    assert len(cancelled) > 0 and cancelled["arr_delay"].isna().all()


def test_a_rerun_replaces_the_day_with_identical_bytes(settings, lake):
    for table in ("flights", "weather"):
        ingest_day(table, DAY, settings)
    first = zone_bytes(lake, DAY)
    for table in ("flights", "weather"):
        ingest_day(table, DAY, settings)
    assert zone_bytes(lake, DAY) == first
    assert len(first) == 12  # 3 zones x 2 tables x (part file + manifest)


def test_real_bad_rows_land_in_quarantine_with_reasons(settings, lake):
    """2013-02-11: one 'D942DN' tailnum; 2013-02-12: the 1048 mph wind reading at EWR."""
    flights_day, weather_day = date(2013, 2, 11) + OFFSET, date(2013, 2, 12) + OFFSET
    flights = ingest_day("flights", flights_day, settings)
    weather = ingest_day("weather", weather_day, settings)
    assert flights.quarantined_rows == 1 and weather.quarantined_rows == 1
    q = read_quarantine(lake, "flights", USE_CASE.day(flights_day))
    assert q["tailnum"].tolist() == ["D942DN"]
    assert q["_quarantine_reason"].tolist() == ["tailnum: 'D942DN' does not match /N[A-Z0-9]{1,6}/"]
    # The raw manifest names it (the README's example).
    assert require_manifest(lake, f"raw/flights/ds={flights_day}")["quarantine_reasons"] == {
        "tailnum: does not match": {"rows": 1, "sample_keys": [
            {"carrier": "DL", "flight": "2247", "origin": "LGA", "time_hour": "2013-02-11 19:00:00.000000", "minute": "0"}]}}  # fmt: skip
    # The quarantined row shows its replayed instant next to the source value.
    assert q["_replayed_time_hour"].iloc[0] == pd.Timestamp("2013-02-11T19:00Z") + OFFSET
    w = read_quarantine(lake, "weather", USE_CASE.day(weather_day))
    assert w["_quarantine_reason"].iloc[0].startswith("wind_speed: 1048.36")
    assert require_manifest(lake, f"quarantine/weather/ds={weather_day}")["reasons"] == {"wind_speed: above": 1}
    assert weather.valid_rows == count_in_source(settings.source_url, "weather", weather_day) - 1


def test_one_bad_reading_in_a_small_table_does_not_stop_the_night(settings):
    """72 weather rows, 1 quarantined (1.4% > the 1% share): tolerated by the minimum-rows rule."""
    summary = ingest_day("weather", date(2013, 2, 12) + OFFSET, settings)
    assert summary.quarantined_share > settings.max_quarantine_share
    check_quality_gate(summary, settings.max_quarantine_share, settings.quarantine_gate_min_rows)


def test_quality_gate_fails_with_the_numbers(settings):
    summary = IngestSummary("flights", "2026-03-02", 900, 860, 40, "raw/flights/ds=2026-03-02", "quarantine/flights/ds=2026-03-02")
    with pytest.raises(QualityGateError) as err:
        check_quality_gate(summary, 0.01, 2)
    message = str(err.value)
    assert "flights 2026-03-02: 40 of 900 rows quarantined (4.44%) exceeds the limit of 1.00%" in message
    assert "nothing of the day is published" in message
    check_quality_gate(summary, 0.05, 2)  # 4.4% is within 5%
    check_quality_gate(summary, 0.01, 40)  # 40 rows tolerated outright


def test_empty_interval_inside_the_source_range_gives_an_empty_partition(settings, tmp_path):
    """A day the source covers but has no rows for: an empty partition with a manifest, no crash."""
    small = f"sqlite:///{tmp_path / 'gappy.db'}"
    full = create_engine(settings.source_url)
    target = create_engine(small)
    for table in ("flights", "weather"):
        rows = pd.read_sql(text(f"SELECT * FROM {table} WHERE month = 5 AND day IN (1, 3)"), full)
        rows["time_hour"] = pd.to_datetime(rows["time_hour"])
        rows.to_sql(table, target, index=False)
    full.dispose()
    target.dispose()
    gap = date(2013, 5, 2) + OFFSET
    gappy = settings.with_overrides(source_url=small)
    lake = open_lake(gappy)
    for table in ("flights", "weather"):
        summary = ingest_day(table, gap, gappy)
        assert (summary.rows, summary.valid_rows, summary.quarantined_rows) == (0, 0, 0)
        check_quality_gate(summary, gappy.max_quarantine_share, 0)
        manifest = require_manifest(lake, f"raw/{table}/ds={gap}")
        assert manifest["rows"] == 0 and manifest["source_rows"] == 0
        empty = read_partition_frame(lake, f"raw/{table}/ds={gap}")
        full_day = ingest_day(table, date(2013, 5, 1) + OFFSET, gappy)
        assert full_day.rows > 0
        reference = read_partition_frame(lake, f"raw/{table}/ds={date(2013, 5, 1) + OFFSET}")
        # Same columns and types as a full day, so readers need no special case.
        assert empty.dtypes.astype(str).to_dict() == reference.dtypes.astype(str).to_dict()


def test_a_day_before_the_source_is_outside_it_and_writes_nothing(settings, lake):
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    with pytest.raises(OutsideSourceCoverage) as err:
        extract_to_staging("flights", USE_CASE.day(date(2025, 12, 29)), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert "flights for 2025-12-29 is outside the replayed source, which covers 2025-12-30 .. 2026-12-29" in str(err.value)
    assert lake.list_keys("") == []


@pytest.mark.parametrize("day", [date(2026, 12, 30), date(2031, 1, 1)])
def test_a_day_past_the_end_of_the_source_is_no_data_yet_not_a_skip(settings, lake, day):
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    with pytest.raises(NoDataYet) as err:
        extract_to_staging("flights", USE_CASE.day(day), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert not isinstance(err.value, OutsideSourceCoverage)  # callers that skip those must not skip this
    assert f"flights for {day}: no data yet; the replayed source covers 2025-12-30 .. 2026-12-29" in str(err.value)
    assert lake.list_keys("") == []


def test_the_last_replayed_day_has_flights_but_no_weather_yet(settings, lake):
    """The source's weather ends on 2013-12-30: 2013-12-31 (replayed 2026-12-29) has flights only."""
    last = date(2013, 12, 31) + OFFSET
    assert ingest_day("flights", last, settings).rows == count_in_source(settings.source_url, "flights", last)
    with pytest.raises(NoDataYet, match="weather for 2026-12-29: no data yet"):
        ingest_day("weather", last, settings)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://airloop:s3cr3t@127.0.0.1:1/source", "postgresql://airloop:***@127.0.0.1:1/source"),
        ("postgresql://airloop:s3cr3t@127.0.0.1:1/source?sslmode=disable", "postgresql://airloop:***@127.0.0.1:1/source"),
        ("postgresql://airloop:s3@cr3t-tail@127.0.0.1:1/source", "postgresql://airloop:***@127.0.0.1:1/source"),
        ("postgresql+psycopg://airloop:s3:cr3t/x@127.0.0.1:1/source", "postgresql+psycopg://airloop:***@127.0.0.1:1/source"),
        ("postgresql://airloop@127.0.0.1:1/source?password=s3cr3t-q&sslmode=disable",
         "postgresql://airloop@127.0.0.1:1/source?password=***&sslmode=disable"),
    ],
    ids=["postgres-closed-port", "postgres-with-query", "unencoded-at", "colon-and-slash", "password-in-query"],
)  # fmt: skip
def test_an_unreachable_source_names_its_url_without_the_password(lake, url, shown):
    source = SourceDatabase(url, replay_offset_days=4746, connect_timeout_s=2)
    with pytest.raises(SourceUnavailable) as err:
        extract_to_staging("flights", USE_CASE.day(DAY), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert f"cannot reach the source database {shown}" in str(err.value)
    assert 'server at "127.0.0.1", port 1 failed' in str(err.value)  # the driver's own reason, right host
    assert "cr3t" not in str(err.value) and err.value.__cause__ is None
    assert lake.list_keys("") == []


def test_an_unencoded_at_in_the_password_reaches_the_right_host(lake):
    """SQLAlchemy alone would try the host 'cr3t-tail@127.0.0.1' and print it in its error."""
    source = SourceDatabase("postgresql://airloop:s3@cr3t-tail@127.0.0.1:1/source", connect_timeout_s=2)
    assert (source.engine.url.host, source.engine.url.password) == ("127.0.0.1", "s3@cr3t-tail")
    assert "cr3t" not in repr(source.engine.url)


@pytest.mark.parametrize(
    "url, driver",
    [("mysql://airloop:s3cr3t@127.0.0.1:1/source", "pip install mysqlclient"),
     ("mysql+pymysql://airloop:s3cr3t@127.0.0.1:1/source", "pip install PyMySQL"),
     ("mssql+pyodbc://airloop:s3cr3t@127.0.0.1:1/source", "pip install pyodbc")],
)  # fmt: skip
def test_a_source_dialect_without_its_driver_says_what_to_install(lake, url, driver):
    from airloop.core.database import DatabaseDriverMissing

    source = SourceDatabase(url, replay_offset_days=4746)
    with pytest.raises(DatabaseDriverMissing, match=driver) as err:
        extract_to_staging("flights", USE_CASE.day(DAY), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert "s3cr3t" not in str(err.value) and "airloop:***@127.0.0.1:1" in str(err.value)
    assert err.value.__cause__ is None and lake.list_keys("") == []


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores the parameter, and says so
def test_no_manifest_or_file_of_the_day_holds_the_source_password(settings, lake):
    url = f"{settings.source_url}?password=s3cr3t-q&api_key=s3cr3t-k"
    source = SourceDatabase(url, replay_offset_days=4746)
    manifest = extract_to_staging("flights", USE_CASE.day(DAY), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert manifest["source"]["url"] == f"{settings.source_url}?password=***&api_key=***"
    validate_staged("flights", USE_CASE.day(DAY), use_case=USE_CASE, lake=lake, run=RUN, replay_offset_days=4746)
    publish_day(lake, RUN, ["flights"])
    keys = lake.list_keys("")
    assert {k.split("/")[0] for k in keys} == {"staging", "raw", "quarantine"}
    assert not [k for k in keys if b"s3cr3t" in lake.read_bytes(k)]


def test_a_missing_sqlite_source_is_not_created_empty_and_says_how_to_load_it(lake, tmp_path):
    path = tmp_path / "never-loaded.db"
    source = SourceDatabase(f"sqlite:///{path}", replay_offset_days=4746)
    assert source.has_table("flights") is False
    with pytest.raises(SourceUnavailable, match="does not exist: load it with `airloop load-source`"):
        extract_to_staging("flights", USE_CASE.day(DAY), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert not path.exists()


def test_a_source_without_the_table_says_how_to_load_it(lake, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE planes (tailnum TEXT)"))
    engine.dispose()
    source = SourceDatabase(url, replay_offset_days=4746)
    with pytest.raises(SourceUnavailable, match="has no table 'flights': load it with `airloop load-source`"):
        extract_to_staging("flights", USE_CASE.day(DAY), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    assert lake.list_keys("") == []


def test_missing_columns_in_staging_raise_and_publish_nothing(settings, lake):
    ingest_day("flights", DAY, settings)
    before = {k: lake.read_bytes(k) for k in lake.list_keys("")}
    source = SourceDatabase(settings.source_url, replay_offset_days=4746)
    extract_to_staging("flights", USE_CASE.day(DAY), use_case=USE_CASE, source=source, lake=lake, run=RUN)
    staged = read_partition_frame(lake, RUN.prefix("staging", "flights"))
    publish_partition(
        lake,
        RUN.prefix("staging", "flights"),
        {"part.parquet": frame_to_parquet(staged.drop(columns=["distance"]).rename(columns={"carrier": "airline"}))},
        require_manifest(lake, RUN.prefix("staging", "flights")),
    )
    with pytest.raises(ContractError, match=r"missing required columns \['carrier', 'distance'\].*'airline'"):
        validate_staged("flights", USE_CASE.day(DAY), use_case=USE_CASE, lake=lake, run=RUN, replay_offset_days=4746)
    # The published day is untouched; only the run's own area holds the broken delivery.
    assert {k: lake.read_bytes(k) for k in lake.list_keys("") if not k.startswith("_ingest/")} == before


def test_validating_a_day_that_was_never_staged_names_the_run_area(lake):
    from airloop.core.storage import PartitionNotFound

    with pytest.raises(PartitionNotFound, match=f"_ingest/ds={DAY}/run=test-run/staging/flights"):
        validate_staged("flights", USE_CASE.day(DAY), use_case=USE_CASE, lake=lake, run=RUN, replay_offset_days=4746)


def test_local_lake_is_the_default(settings):
    assert isinstance(open_lake(settings), LocalLake)
    assert open_lake(settings).root == settings.data_dir / "lake"


def test_cli_ingest_skips_days_outside_the_source_and_reports_the_gate(settings, capsys, monkeypatch):
    from airloop.cli import main

    assert main(["ingest", "2025-12-29", "2025-12-30", "--table", "weather"]) == 0
    out, err = capsys.readouterr()
    assert "skipped: weather for 2025-12-29 is outside the replayed source" in err
    assert json_rows(out) == [count_in_source(settings.source_url, "weather", date(2025, 12, 30))]

    assert main(["ingest", "2026-12-28", "2026-12-29", "--table", "weather"]) == 1  # never a silent success
    out, err = capsys.readouterr()
    assert "not ingested, weather for 2026-12-29: no data yet" in err
    assert json_rows(out) == [count_in_source(settings.source_url, "weather", date(2026, 12, 28))]

    monkeypatch.setenv("AIRLOOP_QUARANTINE_GATE_MIN_ROWS", "0")
    from airloop.core.config import get_settings

    get_settings.cache_clear()
    assert main(["ingest", "2026-02-10", "--table", "weather"]) == 1
    err = capsys.readouterr().err
    assert "quality gate failed: weather 2026-02-10: 1 of 72 rows quarantined" in err
    assert "nothing of the day is published; the day's candidate rows" in err
    assert main(["quarantine", "weather", "2026-02-10"]) == 1  # refused: not published
    assert "PartitionNotFound" in capsys.readouterr().err

    monkeypatch.delenv("AIRLOOP_QUARANTINE_GATE_MIN_ROWS")
    get_settings.cache_clear()
    assert main(["ingest", "2026-02-10", "--table", "weather"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "weather", "2026-02-10"]) == 0
    shown = capsys.readouterr().out
    assert "wind_speed: 1048.36058 above the maximum 200" in shown and "1 quarantined rows" in shown
    assert main(["partitions", "raw/weather"]) == 0
    assert "raw/weather/ds=2026-02-10" in capsys.readouterr().out
    assert main(["quarantine", "flights", "2026-02-10"]) == 1
    assert "PartitionNotFound" in capsys.readouterr().err


def json_rows(out: str) -> list[int]:
    import json

    decoder, rows, text_left = json.JSONDecoder(), [], out.strip()
    while text_left:
        value, end = decoder.raw_decode(text_left)
        rows.append(value["rows"])
        text_left = text_left[end:].strip()
    return rows


@pytest.mark.parametrize(
    "url, shown",
    [("postgresql://airloop:s3@cr3t@127.0.0.1:1/source?token=s3cr3t-t", "postgresql://airloop:***@127.0.0.1:1/source?token=***"),
     ("mysql://airloop:s3cr3t@127.0.0.1:1/source", "pip install mysqlclient")],
)  # fmt: skip
def test_cli_errors_about_the_source_never_print_its_password(settings, capsys, monkeypatch, url, shown):
    from airloop.cli import main
    from airloop.core.config import get_settings

    monkeypatch.setenv("AIRLOOP_SOURCE_URL", url)
    get_settings.cache_clear()
    assert main(["ingest", "2026-02-10", "--table", "weather"]) == 1
    out, err = capsys.readouterr()
    assert shown in err and "cr3t" not in out + err


def test_the_raw_manifest_names_each_quarantine_reason_with_sample_keys_and_reruns_identically(settings, tmp_path):
    """A delivery with bad rows of three kinds: the raw manifest says what was left out, and why."""
    src = DAY - OFFSET
    url = f"sqlite:///{tmp_path / 'bad-rows.db'}"
    full, target = create_engine(settings.source_url), create_engine(url)
    for table in ("flights", "weather"):
        rows = pd.read_sql(text(f"SELECT * FROM {table} WHERE year = :y AND month = :m AND day = :d"), full,
                           params={"y": src.year, "m": src.month, "d": src.day})  # fmt: skip
        rows["time_hour"] = pd.to_datetime(rows["time_hour"])
        if table == "flights":
            rows.loc[rows.index[:7], "distance"] = -5.0
            rows.loc[rows.index[100:102], "tailnum"] = "D942DN"
            rows.loc[rows.index[200], "origin"] = "XXX"
            bad = rows.loc[list(rows.index[:7]) + list(rows.index[100:102]) + [rows.index[200]]]
        rows.to_sql(table, target, index=False)
    full.dispose()
    target.dispose()
    delivery = settings.with_overrides(source_url=url, quarantine_gate_min_rows=10)
    lake = open_lake(delivery)

    summary = ingest_day("flights", DAY, delivery)
    assert summary.quarantined_rows == 10
    manifest = require_manifest(lake, f"raw/flights/ds={DAY}")
    reasons = manifest["quarantine_reasons"]
    assert {label: r["rows"] for label, r in reasons.items()} == {
        "distance: below": 7, "origin: not one of": 1, "tailnum: does not match": 2}  # fmt: skip
    assert sum(r["rows"] for r in reasons.values()) == manifest["quarantined_rows"] == 10
    # Sample keys are real keys of quarantined rows, at most five per reason, smallest first.
    q = read_quarantine(lake, "flights", USE_CASE.day(DAY))
    key = list(USE_CASE.table("flights").key)
    negative = sorted(q[q["_quarantine_reason"].str.startswith("distance:")][key].astype(object).values.tolist())
    assert reasons["distance: below"]["sample_keys"] == [dict(zip(key, k)) for k in negative[:5]]
    assert len(negative) == 7
    assert {(k["carrier"], k["flight"]) for k in reasons["tailnum: does not match"]["sample_keys"]} == {
        (c, str(f)) for c, f in bad.loc[bad["tailnum"] == "D942DN", ["carrier", "flight"]].values}  # fmt: skip
    assert reasons["origin: not one of"]["sample_keys"][0]["origin"] == "XXX"

    first = zone_bytes(lake, DAY)
    ingest_day("flights", DAY, delivery)
    assert zone_bytes(lake, DAY) == first
