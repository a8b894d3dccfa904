"""Daily ingestion of the upstream flights and weather into the raw zone (see doc_md)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronPartitionTimetable

from airloop.deploy.dagconfig import TIMEZONE, default_args, ds_param
from airloop_plugins.assets import RAW_TABLE_ASSETS
from airloop_plugins.operators import DataContractOperator, SourceExtractOperator

DOC = """
### Ingest flights

Every night at 00:00 New York time this DAG ingests the operating day that just closed
(partition key `YYYY-MM-DD`, a local day) for each source table (`flights`, `weather`):

1. **extract_&lt;table&gt;** runs the parametrized query for exactly that day against the source
   database (replayed 2013 data) and stages the rows.
2. **contract_&lt;table&gt;** checks them against the data contract: valid rows go to
   `raw/<table>/ds=<day>/`, bad rows (with a reason per row) to `quarantine/<table>/ds=<day>/`,
   each partition's `_manifest.json` last. The task fails when the quarantined share is above
   `AIRLOOP_MAX_QUARANTINE_SHARE`, and otherwise updates the raw-zone asset with `extra.ds`.

Reruns replace the day's partitions with identical bytes. Days outside the replayed year are
skipped with a message. Backfill: `make backfill DAG=ingest_flights FROM=2026-03-01 TO=2026-03-31`.
Inspect: `airloop partitions raw/flights`, `airloop quarantine flights 2026-03-02`.
"""

with DAG(
    dag_id="ingest_flights",
    schedule=CronPartitionTimetable("0 0 * * *", timezone=TIMEZONE, run_offset=-1, key_format="%Y-%m-%d"),
    start_date=pendulum.datetime(2025, 12, 30, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args=default_args(),
    params={"ds": ds_param()},
    tags=["airloop", "ingestion"],
    doc_md=DOC,
) as dag:
    for table, asset in RAW_TABLE_ASSETS.items():
        extract = SourceExtractOperator(task_id=f"extract_{table}", table=table)
        contract = DataContractOperator(task_id=f"contract_{table}", table=table, outlets=[asset])
        extract >> contract
