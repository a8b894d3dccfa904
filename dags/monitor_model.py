"""Nightly monitoring of the champion: drift, realized performance, drift-triggered retraining."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, IdentityMapper, PartitionedAssetTimetable

from airloop.deploy.dagconfig import TIMEZONE, default_args, ds_param
from airloop_plugins.assets import DRIFT, PREDICTIONS
from airloop_plugins.notifiers import drift_notifier, failure_notifier
from airloop_plugins.operators.monitoring import DriftPolicyOperator, DriftReportOperator, PerformanceReportOperator

DOC = """
### Monitor model

Runs once per scored day `D`, as soon as nightly scoring updates the **predictions** asset for
that partition (partition-aware: the run's partition key is `D`). Trigger it by hand for any day
with the `ds` param.

1. **drift_report**: Evidently data-drift report of day `D`'s model inputs and scores
   (`predictions/ds=D/`) against the reference sample of the model version that scored them
   (drawn from its training window, recorded in the registry). A sample smaller than
   `AIRLOOP_MONITOR_MIN_ROWS` is recorded as *skipped* with the reason, never as drift.
2. **performance_report**: Evidently classification report (ROC AUC, precision/recall, log
   loss, calibration) on the realized outcomes of the **earlier** scored day
   `D - AIRLOOP_MONITOR_OUTCOME_LAG_DAYS` (default 1: yesterday's flights have all landed and
   `ingest_flights` ingested them at midnight). Until `raw/flights/ds=D-1/` exists it records
   *awaiting outcomes*, not zero.
3. **drift_policy**: fires when the drift signal (share of the policy's columns whose PSI exceeds
   its calibrated threshold) reaches `AIRLOOP_DRIFT_SHARE_THRESHOLD` (0.5), or the realized AUC of
   the last 7 labelled days, at its 95% upper bound, is below the champion's holdout AUC by the
   calibrated tolerance (`airloop monitor calibrate FROM TO`), on `AIRLOOP_DRIFT_CONSECUTIVE_DAYS`
   (3) consecutive days under the same champion, outside a `AIRLOOP_DRIFT_COOLDOWN_DAYS` (14) cooldown. Then it updates the **drift** asset with the
   evidence and a suggested training window (`window_start`, `window_end`) and sends a drift
   alert. Otherwise the task is *skipped* with the reason (and so is the next task).
4. **trigger_retraining**: starts `train_model` on that window (run id `drift__D`, so a rerun
   never starts a second retraining). Why not only the asset: in Airflow 3.3 an asset event
   emitted by a *partitioned* run carries its partition key, and such events do not queue
   non-partitioned consumers (`AssetManager._queue_dagruns`), so `train_model`'s schedule on
   the drift asset cannot fire from here; the explicit trigger carries the same window.

Reports: `reports/ds=D/drift/` and `reports/ds=D/performance/` (HTML + complete JSON); numbers:
`monitoring_metrics` in the registry database. See them under **Airloop > Monitoring** in the
UI, or the *Evidently report* link of a report task. Failures alert through
`AIRLOOP_ALERT_CONN_ID` (smtp or http connection; log only when unset).
CLI: `airloop monitor 2026-03-02`, `airloop monitoring`.
"""

with DAG(
    dag_id="monitor_model",
    schedule=PartitionedAssetTimetable(assets=PREDICTIONS, default_partition_mapper=IdentityMapper()),
    start_date=pendulum.datetime(2025, 12, 30, tz=TIMEZONE),
    catchup=False,
    # One day at a time: the drift policy reads the days before it.
    max_active_runs=1,
    default_args=default_args(on_failure_callback=failure_notifier()),
    params={"ds": ds_param()},
    tags=["airloop", "monitoring"],
    doc_md=DOC,
) as dag:
    drift = DriftReportOperator(task_id="drift_report")
    performance = PerformanceReportOperator(task_id="performance_report")
    policy = DriftPolicyOperator(task_id="drift_policy", outlets=[DRIFT], notifier=drift_notifier())
    fired = "ti.xcom_pull(task_ids='drift_policy')"
    retrain = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id="train_model",
        trigger_run_id="drift__{{ %s['ds'] }}" % fired,
        conf={
            "window_start": "{{ %s['window_start'] }}" % fired,
            "window_end": "{{ %s['window_end'] }}" % fired,
            "reason": "drift on {{ %s['ds'] }}: {{ %s['reason'] }}" % (fired, fired),
        },
        skip_when_already_exists=True,
    )
    [drift, performance] >> policy >> retrain
