"""End to end: ``ingest_flights`` backfilled through a real scheduler writes exactly the source's days.

Row counts are checked against an independent SQL count on the source database (by the 2013
local date of each flight / observation), not against anything the pipeline computed.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = "ingest_flights"
OFFSET = timedelta(days=4746)
# Replayed 2026-03-07 .. 03-09 = source 2013-03-09 .. 03-11: spans the US daylight-saving switch
# (2013-03-10 is a 23-hour local day), so the local-day windows are exercised where they differ.
DAYS = [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
TABLES = ("flights", "weather")


def source_counts(source_url: str, day: date) -> dict[str, int]:
    """Rows per table of one replayed day, counted straight from the source by 2013 local date."""
    from sqlalchemy import create_engine, text

    src = day - OFFSET
    engine = create_engine(source_url)
    with engine.connect() as conn:
        flights = conn.execute(
            text("SELECT COUNT(*) FROM flights WHERE year = :y AND month = :m AND day = :d"),
            {"y": src.year, "m": src.month, "d": src.day},
        ).scalar_one()
        weather = conn.execute(
            text("SELECT COUNT(*) FROM weather WHERE year = :y AND month = :m AND day = :d"),
            {"y": src.year, "m": src.month, "d": src.day},
        ).scalar_one()
    engine.dispose()
    return {"flights": flights, "weather": weather}


def lake_of(stack):
    from airloop.core.storage import LocalLake

    return LocalLake(stack.data_dir / "lake")


def snapshot(lake, days) -> dict[str, bytes]:
    """Every file of the raw and quarantine partitions of ``days``, by key."""
    keys = [
        key
        for zone in ("raw", "quarantine")
        for table in TABLES
        for day in days
        for key in lake.list_keys(f"{zone}/{table}/ds={day.isoformat()}/")
    ]
    return {key: lake.read_bytes(key) for key in keys}


def test_backfill_ingests_each_day_exactly_and_reruns_identically(airflow_stack, loaded_source):
    from airloop.core.storage import partition_prefix, read_partition_frame, require_manifest

    stack = airflow_stack
    stack.unpause(DAG_ID)
    keys = {d.isoformat() for d in DAYS}
    first = stack.backfill(DAG_ID, DAYS[0].isoformat(), DAYS[-1].isoformat(), reprocess="completed")
    runs = stack.wait_for_runs(DAG_ID, len(DAYS), timeout=600, where=lambda r: r.partition_key in keys)

    assert sorted(r.partition_key for r in runs) == sorted(keys)
    assert all(r.run_type == "backfill" for r in runs)
    for run in runs:
        assert run.state == "success", stack.explain(DAG_ID, run)

    # Each run updated both raw-zone assets, tagged with its day (downstream DAGs read it).
    for run in runs:
        events = stack.asset_events(source_dag_id=DAG_ID, source_run_id=run.run_id)
        assert sorted(e["name"] for e in events) == ["airloop_raw_flights", "airloop_raw_weather"]
        assert {e["extra"]["ds"] for e in events} == {run.partition_key}
        assert {e["partition_key"] for e in events} == {run.partition_key}

    lake = lake_of(stack)
    for day in DAYS:
        expected = source_counts(loaded_source, day)
        for table in TABLES:
            raw = require_manifest(lake, partition_prefix("raw", table, day.isoformat()))
            quarantine = require_manifest(lake, partition_prefix("quarantine", table, day.isoformat()))
            assert raw["rows"] + quarantine["rows"] == expected[table], (table, day, raw, quarantine)
            assert raw["source_rows"] == expected[table]
            frame = read_partition_frame(lake, partition_prefix("raw", table, day.isoformat()))
            assert len(frame) == raw["rows"]
            # Every row is of its partition's local day, in replayed time.
            assert set(zip(frame["year"], frame["month"], frame["day"])) == {(day.year, day.month, day.day)}
        assert expected["flights"] > 500 and expected["weather"] >= 60

    before = snapshot(lake, DAYS)
    assert any("/part-" in k for k in before)

    # Rerun the same days. For a partitioned DAG, reprocessing creates new runs beside the
    # completed ones (Airflow 3.3 keeps the old runs as history). The partitions are byte-identical.
    first_ids = {r.run_id for r in runs}
    stack.wait_for_backfill(first, timeout=120)
    second = stack.backfill(DAG_ID, DAYS[0].isoformat(), DAYS[-1].isoformat(), reprocess="completed")
    stack.wait_for_backfill(second, timeout=600)
    rerun = stack.wait_for_runs(
        DAG_ID, len(DAYS), timeout=60, where=lambda r: r.partition_key in keys and r.run_id not in first_ids
    )
    assert sorted(r.partition_key for r in rerun) == sorted(keys)
    for run in rerun:
        assert run.state == "success", stack.explain(DAG_ID, run)
    after = snapshot(lake, DAYS)
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] != before[k]] == []


def test_dags_test_writes_the_s3_lake_on_a_real_s3_server(airflow_stack, loaded_source, s3_env):
    """``airflow dags test`` of the whole DAG with ``AIRLOOP_LAKE_URL=s3://...`` against moto's server."""
    import json
    import uuid

    from airloop.core.storage import S3Lake, list_partitions, read_partition_frame, require_manifest

    day = date(2026, 4, 15)
    bucket = f"airloop-e2e-{uuid.uuid4().hex[:8]}"
    env = {
        "AIRLOOP_LAKE_URL": f"s3://{bucket}/lake",
        "AIRLOOP_S3_ENDPOINT_URL": s3_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    setup = airflow_stack.airloop("setup", "--skip-pools", env=env)
    assert setup.returncode == 0 and f"bucket {bucket} created" in setup.stdout, setup.stderr[-2000:]

    # `dags test` runs the tasks in its own process with this environment; with the DAG paused the
    # stack's scheduler leaves that run alone (unpaused, it would run the tasks itself).
    airflow_stack.pause(DAG_ID)
    result = airflow_stack.cli("dags", "test", DAG_ID, "--conf", json.dumps({"ds": day.isoformat()}), timeout=300, env=env)
    log = (result.stdout + result.stderr)[-6000:]

    lake = S3Lake(f"s3://{bucket}/lake", endpoint_url=s3_env)
    expected = source_counts(loaded_source, day)
    for table in TABLES:
        assert list_partitions(lake, f"raw/{table}") == [f"raw/{table}/ds={day}"], log
        manifest = require_manifest(lake, f"raw/{table}/ds={day}")
        quarantined = require_manifest(lake, f"quarantine/{table}/ds={day}")["rows"]
        assert manifest["rows"] + quarantined == expected[table] > 0
        assert len(read_partition_frame(lake, f"raw/{table}/ds={day}")) == manifest["rows"]
    # Nothing of this run went to the stack's local lake.
    assert not lake_of(airflow_stack).list_keys(f"raw/flights/ds={day}/")


def test_a_day_outside_the_replayed_year_is_skipped_not_failed(airflow_stack):
    """A run for 2025-12-29 (the day before the replayed source starts) ends green with skips."""
    stack = airflow_stack
    stack.unpause(DAG_ID)
    run = stack.trigger(DAG_ID, partition_key="2025-12-29")
    (done,) = stack.wait_for_runs(DAG_ID, 1, timeout=300, where=lambda r: r.run_id == run.run_id)
    assert done.state == "success", stack.explain(DAG_ID, done)
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances(DAG_ID, run.run_id)}
    assert set(states.values()) == {"skipped"}, states
    log = stack.task_log(DAG_ID, run.run_id, "extract_flights")
    assert "outside the replayed source, which covers 2025-12-30" in log
    # The reason is also the skipped task's XCom (its XCom tab in the UI; Airflow 3.3 has no run
    # note a task can write).
    entry = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/extract_flights/xcomEntries/skip_reason",
                      params={"deserialize": True})  # fmt: skip
    assert "flights for 2025-12-29 is outside the replayed source, which covers 2025-12-30" in str(entry["value"])
    assert stack.asset_events(source_dag_id=DAG_ID, source_run_id=run.run_id) == []
    assert not lake_of(stack).list_keys("raw/flights/ds=2025-12-29/")


def test_a_day_past_the_source_waits_in_reschedule_not_a_silent_success(airflow_stack):
    """A run for 2026-12-30 (after the replayed source ends; not late yet): the extract tasks are
    rescheduled by the real scheduler (``up_for_reschedule``, no worker slot held), nothing is
    published, and the run is not a success."""
    import time

    stack = airflow_stack
    stack.unpause(DAG_ID)
    run = stack.trigger(DAG_ID, partition_key="2026-12-30")
    deadline, states = time.monotonic() + 240, {}
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti["state"] for ti in stack.task_instances(DAG_ID, run.run_id)}
        if states.get("extract_flights") == "up_for_reschedule" and states.get("extract_weather") == "up_for_reschedule":
            break
        time.sleep(3)
    try:
        assert states.get("extract_flights") == "up_for_reschedule", states
        assert states.get("publish_day") in (None, "no_status", "scheduled"), states
        log = stack.task_log(DAG_ID, run.run_id, "extract_flights")
        assert "Waiting: flights for 2026-12-30: no data yet" in log, log[-3000:]
        assert not [k for k in lake_of(stack).list_keys("") if "2026-12-30" in k]
        (current,) = [r for r in stack.runs(DAG_ID) if r.run_id == run.run_id]
        assert current.state != "success"
    finally:  # do not leave a waiting run behind in the shared stack
        stack.api("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}", json={"state": "failed"})


def test_airloop_backfill_shows_progress_and_a_rerun_resumes_without_redoing_days(airflow_stack):
    """`make backfill` = `airloop backfill DAG FROM TO`: progress lines, a summary, and nothing redone."""
    from harness import ADMIN_PASSWORD

    stack = airflow_stack
    stack.unpause(DAG_ID)
    env = {"AIRLOOP_AIRFLOW_URL": stack.base_url, "AIRLOOP_AIRFLOW_PASSWORD": ADMIN_PASSWORD}
    stack.wait_for_backfills_of(DAG_ID)  # Airflow runs one backfill per DAG at a time
    out = stack.airloop("backfill", DAG_ID, "2026-03-14", "2026-03-15", "--poll", "2", timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ingest_flights: 2 days to run, 2026-03-14 .. 2026-03-15" in out.stdout
    assert "[backfill " in out.stdout and "2/2 days done" in out.stdout
    assert "2 succeeded, 0 failed, 0 not finished, of 2 days" in out.stdout
    runs = [r for r in stack.runs(DAG_ID) if r.partition_key in {"2026-03-14", "2026-03-15"}]
    assert sorted(r.state for r in runs) == ["success", "success"]

    again = stack.airloop("backfill", DAG_ID, "2026-03-14", "2026-03-15", timeout=120, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to run: every day of 2026-03-14..2026-03-15 of ingest_flights is already done" in again.stdout
    assert len([r for r in stack.runs(DAG_ID) if r.partition_key in {"2026-03-14", "2026-03-15"}]) == 2
