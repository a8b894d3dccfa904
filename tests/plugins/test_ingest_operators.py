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
from airloop_plugins.assets import RAW_FLIGHTS, RAW_TABLE_ASSETS, RAW_WEATHER
from airloop_plugins.hooks import LakeHook, SourceHook
from airloop_plugins.operators.ingest import DataContractOperator, DayPublishOperator, SourceExtractOperator, day_run

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-06-10"


def context(**values) -> dict:
    base = {"params": {}, "dag_run": SimpleNamespace(partition_key=None), "outlet_events": defaultdict(SimpleNamespace)}
    base.update(values)
    return base


@pytest.mark.parametrize("operator", [SourceExtractOperator, DataContractOperator, DayPublishOperator])
def test_template_fields_are_constructor_arguments(operator):
    params = inspect.signature(operator.__init__).parameters
    for name in operator.template_fields:
        assert name in params or name == "ds", f"{operator.__name__}.{name} is not a constructor argument"
    assert "ds" in operator.template_fields
    assert operator is DayPublishOperator or "table" in operator.template_fields


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


def test_extract_contract_and_publish_the_day_together_and_tag_both_assets(settings, lake):
    ctx = context(dag_run=SimpleNamespace(partition_key=DAY, run_id="scheduled__2026-06-11T04:00:00+00:00"))
    run = day_run(ctx, DAY)
    summaries = {}
    for table in ("flights", "weather"):
        staged = SourceExtractOperator(task_id=f"e_{table}", table=table).execute(ctx)
        assert staged == {"ds": DAY, "rows": staged["rows"], "staging": run.prefix("staging", table), "run": run.token}
        summaries[table] = DataContractOperator(task_id=f"c_{table}", table=table).execute(ctx)
        assert summaries[table]["valid_rows"] + summaries[table]["quarantined_rows"] == staged["rows"]
    assert summaries["flights"]["rows"] > 900
    # Nothing is published before the publish task, and no asset event is tagged.
    assert [k for k in lake.list_keys("") if not k.startswith("_ingest/")] == [] and not ctx["outlet_events"]

    op = DayPublishOperator(task_id="p", tables=["flights", "weather"], outlets=[RAW_FLIGHTS, RAW_WEATHER])
    result = op.execute(ctx)
    for table, asset in RAW_TABLE_ASSETS.items():
        manifest = require_manifest(lake, f"raw/{table}/ds={DAY}")
        assert manifest["rows"] == summaries[table]["valid_rows"] and manifest["day_commit"] == result["commit"]
        assert ctx["outlet_events"][asset].extra == {
            "ds": DAY, "rows": summaries[table]["valid_rows"], "quarantined_rows": summaries[table]["quarantined_rows"],
        }  # fmt: skip
    assert lake.list_keys("_ingest/") == []  # the run area is gone once published


def test_explicit_ds_wins_over_the_run(settings, lake):
    ctx = context(dag_run=SimpleNamespace(partition_key="2026-06-11"))
    assert SourceExtractOperator(task_id="e", table="weather", ds=DAY).execute(ctx)["ds"] == DAY
    assert lake.list_keys("_ingest/") and all(k.startswith(f"_ingest/ds={DAY}/") for k in lake.list_keys(""))


def test_a_day_outside_the_replayed_year_is_skipped_with_the_reason(settings, lake):
    op = SourceExtractOperator(task_id="e", table="flights", ds="2025-12-29")
    with pytest.raises(AirflowSkipException, match="outside the replayed source, which covers 2025-12-30"):
        op.execute(context())
    assert lake.list_keys("") == []


def test_quality_gate_fails_the_task_without_retry_and_publishes_nothing(settings, lake, monkeypatch):
    """2026-02-09 (source 2013-02-11) has one flight with tailnum 'D942DN'; a zero tolerance fails it."""
    monkeypatch.setenv("AIRLOOP_QUARANTINE_GATE_MIN_ROWS", "0")
    from airloop.core.config import get_settings

    get_settings.cache_clear()
    ctx = context(params={"ds": "2026-02-09"})
    SourceExtractOperator(task_id="e", table="flights").execute(ctx)
    op = DataContractOperator(task_id="c", table="flights", max_quarantine_share=0.0)
    with pytest.raises(AirflowFailException, match=r"flights 2026-02-09: 1 of \d+ rows quarantined \(0\.1\d%\) exceeds the limit of 0\.00% \(and 0 rows\); nothing of the day is published"):
        op.execute(ctx)
    # Nothing is published; the candidate rows stay in the run's area for inspection.
    assert [k for k in lake.list_keys("") if not k.startswith("_ingest/")] == []
    run = day_run(ctx, "2026-02-09")
    assert read_partition_frame(lake, run.prefix("quarantine", "flights"))["tailnum"].tolist() == ["D942DN"]
    assert RAW_FLIGHTS not in ctx["outlet_events"]


def test_an_unreachable_source_raises_a_retryable_error_without_the_password(settings, monkeypatch):
    monkeypatch.setenv("AIRLOOP_SOURCE_URL", "postgresql://airloop:s3cr3t@127.0.0.1:1/source")
    from airloop.core.config import get_settings

    get_settings.cache_clear()
    with pytest.raises(SourceUnavailable) as err:
        SourceExtractOperator(task_id="e", table="flights", ds=DAY).execute(context())
    assert "postgresql://airloop:***@127.0.0.1:1/source" in str(err.value) and "s3cr3t" not in str(err.value)
    assert not isinstance(err.value, (AirflowFailException, AirflowSkipException))  # Airflow retries it


def ingest_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / "ingest_flights.py")).dags["ingest_flights"]  # no DB lookup


def test_ingest_dag_publishes_the_day_once_both_contracts_passed_and_alerts_on_failure():
    from airloop_plugins.notifiers import AirloopNotifier

    dag = ingest_dag()
    assert {t.task_id for t in dag.tasks} == {
        "extract_flights", "contract_flights", "extract_weather", "contract_weather", "publish_day",
    }  # fmt: skip
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff, task.task_id
        callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
        assert any(isinstance(c, AirloopNotifier) and c.event == "failure" for c in callbacks), task.task_id
    assert dag.get_task("contract_flights").upstream_task_ids == {"extract_flights"}
    assert dag.get_task("publish_day").upstream_task_ids == {"contract_flights", "contract_weather"}
    assert [o.name for o in dag.get_task("publish_day").outlets] == ["airloop_raw_flights", "airloop_raw_weather"]
    assert not dag.get_task("contract_weather").outlets  # only a published day updates the assets
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


def extract_at(now: datetime, **kwargs) -> SourceExtractOperator:
    """An extract operator whose wall clock reads ``now``."""
    op = SourceExtractOperator(task_id="extract_weather", table="weather", **kwargs)
    op.now = lambda: now
    return op


def test_a_day_past_the_source_waits_without_holding_a_slot(settings, lake):
    """Weather ends a day before flights: 2026-12-29 (its day ends 2026-12-30 05:00Z) is not there yet."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    now = datetime(2026, 12, 30, 8, 0, tzinfo=timezone.utc)  # 3 h after the day's end: not late (6 h)
    with pytest.raises(AirflowRescheduleException) as wait:
        extract_at(now, ds="2026-12-29").execute(context())
    assert wait.value.reschedule_date == datetime(2026, 12, 30, 8, 10, tzinfo=timezone.utc)  # AIRLOOP_INGEST_POKE_S
    assert lake.list_keys("") == []


@pytest.fixture
def webhook():
    """A real HTTP endpoint that records what alerts POST to it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()


def fire_dag_failure_callbacks(task_id: str, exc: Exception, ds: str) -> None:
    """What the scheduler does when a task fails: call the DAG task's on_failure_callback(s)."""
    task = ingest_dag().get_task(task_id)
    callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
    ti = SimpleNamespace(dag_id="ingest_flights", task_id=task_id, try_number=1)
    for callback in callbacks:
        callback({"ti": ti, "run_id": "scheduled__x", "params": {"ds": ds}, "exception": exc})


def alert_connection(monkeypatch, port: int) -> None:
    import json

    monkeypatch.setenv("AIRFLOW_CONN_AIRLOOP_ALERTS", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", "extra": {"endpoint": "/hooks/ops"}}))  # fmt: skip
    monkeypatch.setenv("AIRLOOP_ALERT_CONN_ID", "airloop_alerts")


def test_a_late_day_fails_without_retry_and_the_dag_notifier_alerts(settings, lake, webhook, monkeypatch):
    now = datetime(2026, 12, 30, 11, 0, tzinfo=timezone.utc)  # the deadline: day's end + 6 h
    with pytest.raises(AirflowFailException) as late:
        extract_at(now, ds="2026-12-29").execute(context())
    message = str(late.value)
    assert "weather for 2026-12-29: no data yet; the replayed source covers 2025-12-30 .. 2026-12-28" in message
    assert "was expected by 2026-12-30T06:00:00-05:00 (the day's end + AIRLOOP_INGEST_LATE_AFTER_H=6 h)" in message

    port, received = webhook
    alert_connection(monkeypatch, port)
    fire_dag_failure_callbacks("extract_weather", late.value, "2026-12-29")
    (alert,) = received
    assert alert["text"] == "[airloop] ingest_flights.extract_weather failed (2026-12-29)"
    assert alert["error"].startswith("AirflowFailException: weather for 2026-12-29: no data yet")


def test_a_late_deadline_is_configurable(settings, monkeypatch):
    from airflow.sdk.exceptions import AirflowRescheduleException

    from airloop.core.config import get_settings

    monkeypatch.setenv("AIRLOOP_INGEST_LATE_AFTER_H", "48")
    monkeypatch.setenv("AIRLOOP_INGEST_POKE_S", "60")
    get_settings.cache_clear()
    with pytest.raises(AirflowRescheduleException) as wait:
        extract_at(datetime(2026, 12, 31, 12, 0, tzinfo=timezone.utc), ds="2026-12-29").execute(context())
    assert wait.value.reschedule_date == datetime(2026, 12, 31, 12, 1, tzinfo=timezone.utc)


def test_a_volume_outside_the_band_fails_the_contract_and_alerts(settings, lake, webhook, monkeypatch):
    """History in the raw zone says ~3000 flights on Wednesdays; the real 2026-06-10 has ~1000."""
    import pandas as pd

    from airloop.core.storage import frame_to_parquet, publish_partition

    for past in ("2026-06-03", "2026-05-27", "2026-05-20"):
        publish_partition(lake, f"raw/flights/ds={past}", {"part.parquet": frame_to_parquet(pd.DataFrame({"x": [1]}))},
                          {"rows": 3000, "source_rows": 3000})  # fmt: skip
    ctx = context(params={"ds": DAY})
    rows = SourceExtractOperator(task_id="e", table="flights").execute(ctx)["rows"]
    with pytest.raises(AirflowFailException) as err:
        DataContractOperator(task_id="c", table="flights").execute(ctx)
    message = str(err.value)
    assert message.startswith(f"VolumeError: flights {DAY}: {rows} source rows is 0.3")
    assert "x the median 3000 of the same weekday on 2026-06-03 (3000), 2026-05-27 (3000), 2026-05-20 (3000)" in message
    assert "the band is [0.55, 1.35]" in message
    assert f"raw/flights/ds={DAY}" not in [k.rsplit("/", 1)[0] for k in lake.list_keys("raw/")]

    port, received = webhook
    alert_connection(monkeypatch, port)
    fire_dag_failure_callbacks("contract_flights", err.value, DAY)
    (alert,) = received
    assert alert["ds"] == DAY and alert["error"].startswith(f"AirflowFailException: VolumeError: flights {DAY}: {rows} source rows")
