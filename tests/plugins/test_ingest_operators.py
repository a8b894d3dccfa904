"""Ingestion operators and hooks: thin constructors, templated dates, ds resolution, real execution.

``execute`` runs against the real source database and a real lake; only the Airflow context
(the edge) is a plain dict.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airloop.core.dates import PartitionDateError, resolve_ds
from airloop.ingest.source import SourceUnavailable
from airloop.core.storage import S3Lake, read_partition_frame, require_manifest
from airloop_plugins.assets import RAW_FLIGHTS
from airloop_plugins.hooks import LakeHook, SourceHook
from airloop_plugins.operators import DataContractOperator, SourceExtractOperator

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-06-10"


def context(**values) -> dict:
    base = {"params": {}, "dag_run": SimpleNamespace(partition_key=None), "outlet_events": defaultdict(SimpleNamespace)}
    base.update(values)
    return base


@pytest.mark.parametrize("operator", [SourceExtractOperator, DataContractOperator])
def test_template_fields_are_constructor_arguments(operator):
    params = inspect.signature(operator.__init__).parameters
    for name in operator.template_fields:
        assert name in params or name == "ds", f"{operator.__name__}.{name} is not a constructor argument"
    assert "ds" in operator.template_fields and "table" in operator.template_fields


def test_constructors_only_assign():
    op = DataContractOperator(task_id="c", table="flights", ds="{{ params.ds }}", max_quarantine_share=0.5)
    assert (op.table, op.ds, op.max_quarantine_share) == ("flights", "{{ params.ds }}", 0.5)
    # No hook, settings or use case is created before execute.
    assert not {"lake_hook", "source_hook", "settings", "use_case"} & set(vars(op))
    with pytest.raises(TypeError):
        SourceExtractOperator(task_id="e", table="flights", unknown_argument=1)


def test_ds_and_table_are_rendered_from_the_run():
    op = SourceExtractOperator(task_id="e", table="{{ params.table }}", ds="{{ params.ds }}")
    op.render_template_fields({"params": {"ds": DAY, "table": "weather"}})
    assert (op.ds, op.table) == (DAY, "weather")


def event(ds):
    return SimpleNamespace(extra={"ds": ds} if ds else {})


@pytest.mark.parametrize(
    "ctx, expected",
    [
        ({"params": {"ds": "2026-01-05"}, "dag_run": SimpleNamespace(partition_key="2026-01-09")}, date(2026, 1, 5)),
        ({"params": {"ds": None}, "dag_run": SimpleNamespace(partition_key="2026-01-09")}, date(2026, 1, 9)),
        ({"triggering_asset_events": {"a": [event("2026-01-07"), event("2026-01-07")], "b": [event(None)]}}, date(2026, 1, 7)),
        # A scheduled run at 00:00 New York: logical date in UTC is the next day 05:00.
        ({"logical_date": datetime(2026, 1, 8, 5, 0, tzinfo=timezone.utc)}, date(2026, 1, 8)),
    ],
    ids=["param-wins", "partition-key", "asset-events", "logical-date"],
)
def test_ds_resolution_order(ctx, expected):
    assert resolve_ds(ctx, "America/New_York") == expected


def test_ds_resolution_refuses_ambiguous_or_missing_dates():
    events = {"a": [event("2026-01-07")], "b": [event("2026-01-08")]}
    with pytest.raises(PartitionDateError, match=r"several dates \['2026-01-07', '2026-01-08'\]"):
        resolve_ds({"triggering_asset_events": events})
    with pytest.raises(PartitionDateError, match="trigger it with the 'ds' param"):
        resolve_ds({"params": {}, "dag_run": SimpleNamespace(partition_key=None)})
    with pytest.raises(PartitionDateError, match="not a date in YYYY-MM-DD form"):
        resolve_ds({"params": {"ds": "10/06/2026"}})


def test_extract_then_contract_publish_the_day_and_tag_the_asset(settings, lake):
    ctx = context(dag_run=SimpleNamespace(partition_key=DAY))
    staged = SourceExtractOperator(task_id="e", table="flights").execute(ctx)
    assert staged == {"ds": DAY, "rows": staged["rows"], "staging": f"staging/flights/ds={DAY}"} and staged["rows"] > 900

    op = DataContractOperator(task_id="c", table="flights", outlets=[RAW_FLIGHTS])
    summary = op.execute(ctx)
    assert summary["valid_rows"] + summary["quarantined_rows"] == staged["rows"]
    assert require_manifest(lake, f"raw/flights/ds={DAY}")["rows"] == summary["valid_rows"]
    assert ctx["outlet_events"][RAW_FLIGHTS].extra == {
        "ds": DAY, "rows": summary["valid_rows"], "quarantined_rows": summary["quarantined_rows"],
    }  # fmt: skip


def test_explicit_ds_wins_over_the_run(settings, lake):
    ctx = context(dag_run=SimpleNamespace(partition_key="2026-06-11"))
    assert SourceExtractOperator(task_id="e", table="weather", ds=DAY).execute(ctx)["ds"] == DAY
    assert lake.list_keys("staging/weather/") and all(f"ds={DAY}" in k for k in lake.list_keys("staging/weather/"))


def test_a_day_outside_the_replayed_year_is_skipped_with_the_reason(settings, lake):
    op = SourceExtractOperator(task_id="e", table="flights", ds="2025-12-29")
    with pytest.raises(AirflowSkipException, match="outside the replayed source, which covers 2025-12-30"):
        op.execute(context())
    assert lake.list_keys("") == []


def test_quality_gate_fails_the_task_without_retry_after_publishing(settings, lake, monkeypatch):
    """2026-02-09 (source 2013-02-11) has one flight with tailnum 'D942DN'; a zero tolerance fails it."""
    monkeypatch.setenv("AIRLOOP_QUARANTINE_GATE_MIN_ROWS", "0")
    from airloop.core.config import get_settings

    get_settings.cache_clear()
    ctx = context(params={"ds": "2026-02-09"})
    SourceExtractOperator(task_id="e", table="flights").execute(ctx)
    op = DataContractOperator(task_id="c", table="flights", max_quarantine_share=0.0, outlets=[RAW_FLIGHTS])
    with pytest.raises(AirflowFailException, match=r"flights 2026-02-09: 1 of \d+ rows quarantined \(0\.1\d%\) exceeds the limit of 0\.00%"):
        op.execute(ctx)
    # Valid rows and the quarantined one were published before the gate; no asset event was tagged.
    assert read_partition_frame(lake, "quarantine/flights/ds=2026-02-09")["tailnum"].tolist() == ["D942DN"]
    assert require_manifest(lake, "raw/flights/ds=2026-02-09")["quarantined_rows"] == 1
    assert RAW_FLIGHTS not in ctx["outlet_events"]


def test_an_unreachable_source_raises_a_retryable_error_without_the_password(settings, monkeypatch):
    monkeypatch.setenv("AIRLOOP_SOURCE_URL", "postgresql://airloop:s3cr3t@127.0.0.1:1/source")
    from airloop.core.config import get_settings

    get_settings.cache_clear()
    with pytest.raises(SourceUnavailable) as err:
        SourceExtractOperator(task_id="e", table="flights", ds=DAY).execute(context())
    assert "postgresql://airloop:***@127.0.0.1:1/source" in str(err.value) and "s3cr3t" not in str(err.value)
    assert not isinstance(err.value, (AirflowFailException, AirflowSkipException))  # Airflow retries it


def test_ingest_dag_retries_its_tasks_with_backoff():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "ingest_flights.py")).dags["ingest_flights"]  # no DB lookup
    assert {t.task_id for t in dag.tasks} == {"extract_flights", "contract_flights", "extract_weather", "contract_weather"}
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff, task.task_id
    assert dag.get_task("contract_flights").upstream_task_ids == {"extract_flights"}
    assert [o.name for o in dag.get_task("contract_weather").outlets] == ["airloop_raw_weather"]
    timetable = dag.timetable  # one partition per New York day, keyed by the day that just closed
    assert type(timetable).__name__ == "CronPartitionTimetable"
    assert (timetable.key_format, timetable.run_offset, str(timetable.timezone)) == ("%Y-%m-%d", -1, "America/New_York")


def test_hooks_follow_the_settings_and_keep_no_run_state(settings):
    source = SourceHook().get_conn()
    assert source.url == settings.source_url and source.replay_offset_days == settings.replay_offset_days
    assert LakeHook().get_conn().url == (settings.data_dir / "lake").as_uri()


def test_lake_hook_takes_s3_credentials_and_endpoint_from_an_airflow_connection(settings, moto_server, monkeypatch):
    import json
    import uuid

    bucket = f"airloop-hook-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRLOOP_LAKE_URL", f"s3://{bucket}/lake")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRLOOP_LAKE",
        json.dumps({"conn_type": "aws", "login": "hook-key", "password": "hook-secret", "extra": {"endpoint_url": moto_server}}),
    )
    from airloop.core.config import get_settings

    get_settings.cache_clear()
    lake = LakeHook(lake_conn_id="airloop_lake").get_conn()
    assert isinstance(lake, S3Lake)
    assert lake.client.meta.endpoint_url == moto_server
    assert lake.client._request_signer._credentials.access_key == "hook-key"
    lake.ensure_bucket()
    lake.write_bytes("probe.txt", b"through the connection")
    assert lake.read_bytes("probe.txt") == b"through the connection"
