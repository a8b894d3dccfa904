"""Daily ingestion of the upstream flights and weather into the raw zone (see doc_md)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronPartitionTimetable

from airloop.deploy.dagconfig import TIMEZONE, default_args, ds_param
from airloop_plugins.assets import RAW_TABLE_ASSETS
from airloop_plugins.notifiers import failure_notifier
from airloop_plugins.operators.ingest import DataContractOperator, DayPublishOperator, SourceExtractOperator

DOC = """
### Ingest flights

Every night at 00:00 New York time this DAG ingests the operating day that just closed
(partition key `YYYY-MM-DD`, a local day), **all tables of the day or none**:

1. **extract_&lt;table&gt;** runs the parametrized query for exactly that day against the source
   database (replayed 2013 data) and stages the rows in this run's own area (`_ingest/ds=<day>/run=...`).
   A day past the end of the source is *no data yet*: the task is rescheduled (no worker slot held)
   and fails with an alert once `AIRLOOP_INGEST_LATE_AFTER_H` hours past the day's end.
   A day before the source starts is skipped with the reason in the log.
2. **contract_&lt;table&gt;** holds them to the data contract: columns, volume (the day's rows against
   the median of the same weekday over the last weeks, `AIRLOOP_VOLUME_BAND_LOW/HIGH`), each row
   (bad rows get a reason), and the quarantined share (`AIRLOOP_MAX_QUARANTINE_SHARE`). A failure
   stops the day (no retry, an alert) and nothing of it is published.
3. **publish_day** publishes `staging/`, `raw/` and `quarantine/` of both tables in one commit
   (manifests last; a crash after the commit point is rolled forward by the retry) and updates
   the raw-zone assets with `extra.ds`, `extra.rows`, `extra.quarantined_rows`.

Reruns give identical bytes. Backfill: `make backfill DAG=ingest_flights FROM=2026-03-01 TO=2026-03-31`.
Inspect: `airloop partitions raw/flights`, `airloop quarantine flights 2026-03-02`.
"""

with DAG(
    dag_id="ingest_flights",
    schedule=CronPartitionTimetable("0 0 * * *", timezone=TIMEZONE, run_offset=-1, key_format="%Y-%m-%d"),
    start_date=pendulum.datetime(2025, 12, 30, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args=default_args(on_failure_callback=failure_notifier()),
    params={"ds": ds_param()},
    tags=["airloop", "ingestion"],
    doc_md=DOC,
) as dag:
    publish = DayPublishOperator(
        task_id="publish_day", tables=list(RAW_TABLE_ASSETS), outlets=list(RAW_TABLE_ASSETS.values())
    )
    for table in RAW_TABLE_ASSETS:
        extract = SourceExtractOperator(task_id=f"extract_{table}", table=table)
        contract = DataContractOperator(task_id=f"contract_{table}", table=table)
        extract >> contract >> publish
