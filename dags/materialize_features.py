"""Daily features: compute from the raw zone, apply the Feast repo when it changed, load online (see doc_md)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, IdentityMapper, PartitionedAssetTimetable

from airloop.deploy.dagconfig import TIMEZONE, default_args, ds_param
from airloop_plugins.assets import FEATURES, RAW_FLIGHTS, RAW_WEATHER
from airloop_plugins.operators.features import FeastApplyOperator, FeastMaterializeOperator, FeatureComputeOperator

DOC = """
### Materialize features

Runs once per day partition, when **both** raw-zone assets (`raw/flights` and `raw/weather`)
have an event for it: a `PartitionedAssetTimetable` with an `IdentityMapper`, so the run's
partition key is the ingested day (`YYYY-MM-DD`) and backfills of `ingest_flights` flow through
day by day. Chosen over a second daily schedule because the data, not the clock, decides when
features can be computed: a late or re-run ingestion triggers the day again. Manual runs and
`airflow dags test` take the `ds` param.

1. **apply_feature_repo** applies `feature_repo/` to the Feast registry only when its
   definitions differ from the registry's (compared by hash). An incompatible change (a released
   feature service's features, a feature's type, an entity's join key) fails here, before
   anything is written.
2. **compute_features** computes the day's partition of every feature view
   (`features/<view>/ds=<day>/`) from the raw partitions it needs (the day, and up to 31 days
   before it for the trailing delay statistics); it fails naming the date and path of a missing
   raw partition before writing. Reruns publish identical bytes.
3. **materialize_online** loads the day's rows, with one day of overlap for late corrections,
   into the online store; newer online values are never replaced by older ones, so backfills in
   any order are safe. It updates the `airloop_features` asset with `extra.ds`.

Inspect: `airloop features list`, `airloop features skew-check <day>`.
"""

with DAG(
    dag_id="materialize_features",
    schedule=PartitionedAssetTimetable(assets=RAW_FLIGHTS & RAW_WEATHER, default_partition_mapper=IdentityMapper()),
    start_date=pendulum.datetime(2025, 12, 30, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={"ds": ds_param()},
    tags=["airloop", "features"],
    doc_md=DOC,
) as dag:
    apply_repo = FeastApplyOperator(task_id="apply_feature_repo")
    compute = FeatureComputeOperator(task_id="compute_features")
    materialize = FeastMaterializeOperator(task_id="materialize_online", overlap_days=1, outlets=[FEATURES])
    apply_repo >> compute >> materialize
