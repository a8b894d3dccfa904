"""Nightly batch scoring of the day's scheduled flights (see doc_md)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronPartitionTimetable, Param

from airloop.core.config import env_int
from airloop.deploy.dagconfig import TIMEZONE, default_args, ds_param
from airloop_plugins.assets import PREDICTIONS
from airloop_plugins.operators.scoring import BatchPredictOperator, PredictionInputsSensor

WAIT_TIMEOUT_S = env_int("AIRLOOP_SCORING_WAIT_TIMEOUT_S", 6 * 3600, minimum=1)
POKE_INTERVAL_S = env_int("AIRLOOP_SCORING_POKE_INTERVAL_S", 300, minimum=1)

DOC = f"""
### Batch predict

Every night at **02:00 New York time** this DAG scores day D, the day that is starting (partition
key `YYYY-MM-DD` = D; `CronPartitionTimetable(run_offset=0)`), before its first departure:

1. **wait_for_features** waits until every feature view's partition of D-1 is published
   (`features/<view>/ds=D-1/`). It is a sensor in **reschedule mode**: each poke is a few manifest
   reads, and between pokes (every {POKE_INTERVAL_S} s) the task gives its worker and pool slot
   back. A deferrable sensor would free the slot too, but needs an async lake client in the
   triggerer for a check that takes milliseconds; reschedule mode gets the same effect with the
   code the scoring task already uses. After {WAIT_TIMEOUT_S} s (`AIRLOOP_SCORING_WAIT_TIMEOUT_S`)
   it fails, naming the partitions still missing.
2. **score** reads D's *schedule* from the source (scheduled columns only, never the outcomes),
   looks up the features as of D 02:00, scores every flight in chunks with the model, and
   publishes `predictions/ds=D/` (`part.parquet`: flight key, `score`, `model_version`;
   `features.parquet`: the model inputs used; `_manifest.json` last). It updates the
   predictions asset with `extra.ds` and `extra.model_version`.

**Model**: the `model_version` param pins a version. Otherwise the champion that was serving at
D 02:00 (the promotion history): tonight's run gets tonight's champion, and a backfill of past
days gets the model that served them, so it reproduces history instead of rewriting it. A past
day scored before any promotion is refused with the version to pin.

Reruns replace the partition with identical bytes. Run facts (duration, run id) go to the
`scoring_runs` table. **Backfill** (the range is of partition dates; a run's instant is 02:00,
so give the day after the last one as `--to-date`):
`airflow backfill create --dag-id batch_predict --from-date 2026-03-01 --to-date 2026-04-01
--dag-run-conf '{{"model_version": 3}}'`.
Inspect: `airloop predictions show 2026-03-02`, `airloop predictions trace 2026-03-02 --carrier UA --flight 1545`.
"""

with DAG(
    dag_id="batch_predict",
    schedule=CronPartitionTimetable("0 2 * * *", timezone=TIMEZONE, run_offset=0, key_format="%Y-%m-%d"),
    start_date=pendulum.datetime(2025, 12, 31, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args=default_args(),
    params={
        "ds": ds_param(),
        "model_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Model version",
            description="Pin a registry version. Empty: the champion serving at the day's 02:00.",
        ),
    },
    tags=["airloop", "scoring"],
    doc_md=DOC,
) as dag:
    wait = PredictionInputsSensor(
        task_id="wait_for_features", mode="reschedule", poke_interval=POKE_INTERVAL_S, timeout=WAIT_TIMEOUT_S
    )
    score = BatchPredictOperator(task_id="score", model_version="{{ params.model_version }}", outlets=[PREDICTIONS])
    wait >> score
