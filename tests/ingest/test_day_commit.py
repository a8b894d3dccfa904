"""All or nothing per day: a fault at every write of a day's ingestion, on a local and an S3 lake.

The last good day was ingested from a partial delivery (half the flights, some weather hours
missing); the new attempt reads the full day. Each write of the attempt (each table's extract,
each candidate's data and manifest, the commit record, each published data file and manifest) is
made to fail in turn. Before the commit point every published partition of the day (staging,
raw, quarantine; both tables) must stay byte-identical; after it, the day is reported as
unfinished and a rerun rolls it forward. Either way a rerun ends byte-identical to a clean
ingestion of the full day.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from airloop.core.storage import LocalLake, StorageError, read_partition_frame
from airloop.ingest import (
    ContractError,
    DayRun,
    QualityGateError,
    SourceUnavailable,
    day_status,
    ingest_tables,
    recover_day,
)
from airloop.ingest.commit import pending_commits
from testkit import FailingLake

OFFSET = timedelta(days=4746)
DAY = date(2026, 3, 8)  # source 2013-03-10: the 23-hour spring-forward day
TABLES = ["flights", "weather"]


def day_source(settings, path, *, keep_flights=1.0, weather_hours=None, rename=None, bad_distances=0) -> str:
    """A SQLite source holding only DAY's rows (optionally fewer of them, or a renamed column)."""
    src = DAY - OFFSET
    url = f"sqlite:///{path}"
    full, target = create_engine(settings.source_url), create_engine(url)
    for table in TABLES:
        rows = pd.read_sql(
            text(f"SELECT * FROM {table} WHERE year = :y AND month = :m AND day = :d"),
            full, params={"y": src.year, "m": src.month, "d": src.day},
        )  # fmt: skip
        rows["time_hour"] = pd.to_datetime(rows["time_hour"])
        if table == "flights":
            rows = rows.iloc[: int(len(rows) * keep_flights)].copy()
            rows.loc[rows.index[:bad_distances], "distance"] = -5.0
        if table == "weather" and weather_hours is not None:
            rows = rows[rows["hour"].isin(weather_hours)]
        if rename and table in rename:
            rows = rows.rename(columns=rename[table])
        rows.to_sql(table, target, index=False)
    full.dispose()
    target.dispose()
    return url


def published(lake) -> dict[str, bytes]:
    """Every published key of the lake (run areas left out) with its bytes."""
    return {k: lake.read_bytes(k) for k in lake.list_keys("") if not k.startswith("_ingest/")}


def restore(lake, files: dict[str, bytes]) -> None:
    lake.delete(lake.list_keys(""))
    for key, data in files.items():
        lake.write_bytes(key, data)


@pytest.fixture
def sources(settings, tmp_path):
    """Settings for the partial delivery (the last good day) and for the full day."""
    old = settings.with_overrides(source_url=day_source(settings, tmp_path / "old.db", keep_flights=0.5, weather_hours=range(0, 20)))
    new = settings.with_overrides(source_url=day_source(settings, tmp_path / "new.db"))
    return old, new


@pytest.fixture(params=["local", "s3"])
def lake_settings(request, sources, tmp_path):
    """(last good settings, new settings, lake) on a local folder or a bucket of a real S3 server."""
    old, new = sources
    if request.param == "s3":
        import uuid

        endpoint = request.getfixturevalue("s3_env")
        url = f"s3://airloop-commit-{uuid.uuid4().hex[:8]}/lake"
        old = old.with_overrides(lake_url=url, s3_endpoint_url=endpoint)
        new = new.with_overrides(lake_url=url, s3_endpoint_url=endpoint)
        from airloop.core.storage import open_lake

        open_lake(new).ensure_bucket()
    from airloop.core.storage import open_lake

    return request.param, old, new, open_lake(new)


def reference_bytes(new, tmp_path) -> dict[str, bytes]:
    """The full day ingested into an empty local lake: what every rerun must converge to."""
    clean = new.with_overrides(lake_url=(tmp_path / "reference-lake").as_uri())
    ingest_tables(DAY, clean, TABLES)
    return published(LocalLake(tmp_path / "reference-lake"))


def normalized(files: dict[str, bytes]) -> dict[str, bytes]:
    return dict(sorted(files.items()))


@pytest.mark.slow
def test_a_fault_at_every_write_keeps_the_last_good_day_or_rolls_it_forward(lake_settings, tmp_path, monkeypatch):
    kind, old, new, lake = lake_settings
    import airloop.core.storage as storage

    ingest_tables(DAY, old, TABLES)
    last_good = published(lake)
    assert {k.split("/")[0] for k in last_good} == {"staging", "raw", "quarantine"} and len(last_good) == 12
    reference = reference_bytes(new, tmp_path)
    assert normalized(reference) != normalized(last_good)  # the attempt really changes the day

    # A counting pass names every write of one attempt, in order.
    counter = FailingLake(lake, 10**9)
    monkeypatch.setattr(storage, "open_lake", lambda settings=None, url=None: counter)
    ingest_tables(DAY, new, TABLES, run=DayRun(DAY.isoformat(), "counting"))
    writes = counter.writes
    commit_at = writes.index(DayRun(DAY.isoformat(), "counting").commit_key)
    assert commit_at > 0 and any(w.startswith("raw/") for w in writes[commit_at:])
    labels = [w.replace("run=counting/", "") for w in writes]
    if kind == "local":
        points = range(len(writes))
    else:  # the real S3 server is slower: the last candidate write, the commit point, each manifest of the day
        points = [commit_at - 1, commit_at] + [i for i, w in enumerate(writes) if i > commit_at and w.endswith("_manifest.json")]

    outcomes = []
    for fail_at in points:
        restore(lake, last_good)
        failing = FailingLake(lake, fail_at)
        monkeypatch.setattr(storage, "open_lake", lambda settings=None, url=None, _lake=failing: _lake)
        run = DayRun(DAY.isoformat(), f"attempt-{fail_at}")
        with pytest.raises(StorageError, match="simulated failure"):
            ingest_tables(DAY, new, TABLES, run=run)
        monkeypatch.setattr(storage, "open_lake", lambda settings=None, url=None: lake)
        problems = day_status(lake, DAY.isoformat(), TABLES)
        if fail_at <= commit_at:
            assert normalized(published(lake)) == normalized(last_good), f"failure at {labels[fail_at]} changed the day"
            assert problems == [], labels[fail_at]
        else:
            # Past the commit point: reported, and every table still reads whole (old or new).
            assert problems and "not fully applied" in problems[0], labels[fail_at]
            for table in TABLES:
                assert len(read_partition_frame(lake, f"raw/{table}/ds={DAY}")) > 0
        summaries, commit = ingest_tables(DAY, new, TABLES)  # the rerun
        assert normalized(published(lake)) == normalized(reference), f"rerun after a failure at {labels[fail_at]}"
        assert day_status(lake, DAY.isoformat(), TABLES) == [] and pending_commits(lake, DAY.isoformat()) == []
        outcomes.append((labels[fail_at], "kept" if fail_at <= commit_at else "rolled forward"))
    assert {o for _, o in outcomes} == {"kept", "rolled forward"}
    print(f"\n{kind}: {len(outcomes)} failure points", *(f"{label}: {o}" for label, o in outcomes), sep="\n  ")


def test_a_crash_between_two_tables_manifests_is_detected_and_recovered_alone(sources, capsys, monkeypatch):
    """What a reader meets between two manifests of one commit, and ``recover_day`` mending it."""
    old, new = sources
    from airloop.core.storage import open_lake

    lake = open_lake(new)
    ingest_tables(DAY, old, TABLES)
    counter = FailingLake(lake, 10**9)
    import airloop.core.storage as storage

    with pytest.MonkeyPatch.context() as mp:
        restore_point = published(lake)
        mp.setattr(storage, "open_lake", lambda settings=None, url=None: counter)
        ingest_tables(DAY, new, TABLES, run=DayRun(DAY.isoformat(), "count"))
        raw_flights = counter.writes.index(f"raw/flights/ds={DAY}/_manifest.json")
        restore(lake, restore_point)
        failing = FailingLake(lake, raw_flights + 1)  # raw/flights written, raw/weather not
        mp.setattr(storage, "open_lake", lambda settings=None, url=None: failing)
        with pytest.raises(StorageError):
            ingest_tables(DAY, new, TABLES, run=DayRun(DAY.isoformat(), "crashed"))
    problems = day_status(lake, DAY.isoformat(), TABLES)
    assert "commit of run crashed is not fully applied" in problems
    assert any("raw/flights of 2026-03-08 was published with weather in commit" in p for p in problems), problems
    assert published(lake) != restore_point
    from airloop.cli import main

    assert main(["ingest-status", DAY.isoformat()]) == 1
    assert "inconsistent: commit of run crashed is not fully applied" in capsys.readouterr().out
    assert main(["ingest-status", DAY.isoformat(), "--repair"]) == 0
    assert "2026-03-08: consistent (flights, weather)" in capsys.readouterr().out
    assert day_status(lake, DAY.isoformat(), TABLES) == [] and recover_day(lake, DAY.isoformat()) == ()
    assert lake.list_keys("_ingest/") == []


def test_a_schema_break_keeps_every_table_of_the_last_good_day(sources, tmp_path, settings):
    """The reported case: weather's source renames a column; staging of both tables stays as it was."""
    old, _ = sources
    broken = old.with_overrides(source_url=day_source(settings, tmp_path / "broken.db", rename={"weather": {"temp": "temperature"}}))
    from airloop.core.storage import open_lake

    lake = open_lake(old)
    ingest_tables(DAY, old, TABLES)
    last_good = published(lake)
    with pytest.raises(ContractError, match=r"weather for 2026-03-08 .*missing required columns \['temp'\].*'temperature'"):
        ingest_tables(DAY, broken, TABLES, run=DayRun(DAY.isoformat(), "broken"))
    assert published(lake) == last_good
    # The broken delivery is kept in the attempt's area for inspection, never published.
    assert any(k.startswith(f"_ingest/ds={DAY}/run=broken/staging/weather/") for k in lake.list_keys("_ingest/"))


def test_an_extract_error_of_the_second_table_keeps_the_first_unpublished(sources, monkeypatch):
    old, new = sources
    from airloop.core.storage import open_lake
    from airloop.ingest.source import SourceDatabase

    lake = open_lake(old)
    ingest_tables(DAY, old, TABLES)
    last_good = published(lake)
    real_extract = SourceDatabase.extract

    def flaky(self, table, start, end):
        if table.name == "weather":
            raise SourceUnavailable("cannot reach the source database (simulated)")
        return real_extract(self, table, start, end)

    monkeypatch.setattr(SourceDatabase, "extract", flaky)
    with pytest.raises(SourceUnavailable):
        ingest_tables(DAY, new, TABLES)
    assert published(lake) == last_good


def test_a_failed_quality_gate_publishes_nothing(sources, settings, tmp_path):
    old, _ = sources
    bad = old.with_overrides(source_url=day_source(settings, tmp_path / "bad.db", bad_distances=30))
    from airloop.core.storage import open_lake

    lake = open_lake(old)
    ingest_tables(DAY, old, TABLES)
    last_good = published(lake)
    with pytest.raises(QualityGateError, match=r"flights 2026-03-08: 30 of \d+ rows quarantined .* nothing of the day is published"):
        ingest_tables(DAY, bad, TABLES)
    assert published(lake) == last_good


def test_publishing_a_run_without_every_candidate_names_what_is_missing(lake):
    from airloop.ingest import DayCommitError, publish_day

    with pytest.raises(DayCommitError, match=r"run nothing has no candidate for staging/flights, quarantine/flights, raw/flights"):
        publish_day(lake, DayRun(DAY.isoformat(), "nothing"), ["flights"])
    assert lake.list_keys("") == []


@pytest.mark.parametrize("token", ["", "a/b", "../x", "x" * 81])
def test_run_tokens_cannot_leave_their_area(token):
    with pytest.raises(ValueError, match="run token"):
        DayRun(DAY.isoformat(), token)


def test_an_airflow_run_id_gives_a_readable_unique_area():
    a = DayRun.for_run_id("2026-03-08", "scheduled__2026-03-09T05:00:00+00:00")
    b = DayRun.for_run_id("2026-03-08", "scheduled__2026-03-09T05:00:00-00:00")
    assert a.token.startswith("scheduled__2026-03-09T05-00-00-00-00-") and a.token != b.token
    assert a.root == f"_ingest/ds=2026-03-08/run={a.token}"
