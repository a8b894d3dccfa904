"""Weekly or drift-triggered training with a champion/challenger gate (see doc_md)."""

from __future__ import annotations

import pendulum
from croniter import croniter
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, chain

from airloop.core.config import env_str
from airloop.deploy.dagconfig import DS_PATTERN, TIMEZONE, default_args
from airloop.deploy.routing import resource_kwargs
from airloop.training.approval import ApprovalSettings
from airloop_plugins.assets import DRIFT, MODEL
from airloop_plugins.operators.training import (
    ChampionChallengerOperator,
    ModelPromoteOperator,
    ModelRegisterOperator,
    ModelTrainOperator,
    TrainingSetOperator,
)

DOC = """
### Train model

Runs every Monday at 03:00 New York time (`AIRLOOP_TRAIN_SCHEDULE`: another cron, or `none` for
drift events and manual runs only), **or** when the monitoring DAG updates the **drift** asset,
**or** by hand with the params below. Five tasks:

1. **build_training_set** (`cpu` pool): the labelled flights of the window with features as of
   each day's prediction time, stored under `training_sets/<fingerprint>/`. The window comes from
   the `window_start`/`window_end` params, else the drift event's suggested window
   (`extra.window_start/window_end`), else the last `window_days` ingested days. Never from a
   logical date (asset-triggered runs have none).
2. **train** (`gpu` pool and queue): XGBoost and a logistic-regression baseline on the same
   features; the last 20% of days are the holdout (strictly after training). On a worker without
   a GPU, `AIRLOOP_GPU_POLICY` decides: `fallback` (train on CPU, recorded) or `fail`.
   Too few rows, a single class or mostly-null features fail the run; the champion is untouched.
3. **evaluate**: challenger and champion scored on the same holdout. Promote only when the
   primary metric (ROC AUC) improves by the margin and no guardrail (Brier calibration, worst
   origin slice) regresses beyond its tolerance; the first model must beat the baseline. The
   numbers are in this task's log.
4. **register**: version `N` in the registry, artifacts in `models/<name>/vN/` (XGBoost UBJ,
   reference sample, metadata), sha256 recorded.
5. **promote_or_keep**: promotes (updates the **model** asset) or records the refusal and is
   *skipped*.

With `AIRLOOP_PROMOTION_APPROVAL=approve`, **approve_promotion** runs between 4 and 5: a promotion
the gate allowed waits for a person in the UI's *Required actions* (challenger against champion,
overall and per slice, guardrails, link to the model card). Approve promotes; Reject (with a
reason) or no answer within `AIRLOOP_APPROVAL_TIMEOUT_HOURS` keeps the champion. The registry's
history names who decided. Every version's model card is on the Airloop *Model versions* page.

Params: window, `num_boost_round` / `max_depth` / `learning_rate` overrides, `device`, `reason`.
CLI: `airloop models`, `airloop model-history`, `airloop rollback`.
"""

# AIRLOOP_TRAIN_SCHEDULE: the time-based cadence (a cron in New York time, default weekly), or
# `none`: only drift events and manual runs train (the backtest's `drift` policy).
TRAIN_SCHEDULE = env_str("AIRLOOP_TRAIN_SCHEDULE", "0 3 * * 1").strip()
if TRAIN_SCHEDULE.lower() != "none" and not croniter.is_valid(TRAIN_SCHEDULE):
    raise ValueError(f"AIRLOOP_TRAIN_SCHEDULE must be a cron expression (e.g. '0 3 * * 1') or 'none', got {TRAIN_SCHEDULE!r}")
SCHEDULE = (DRIFT if TRAIN_SCHEDULE.lower() == "none"
            else AssetOrTimeSchedule(timetable=CronTriggerTimetable(TRAIN_SCHEDULE, timezone=TIMEZONE), assets=DRIFT))  # fmt: skip

# AIRLOOP_PROMOTION_APPROVAL: auto (the gate decides) or approve (a person confirms each promotion).
APPROVAL = ApprovalSettings.from_env()

with DAG(
    dag_id="train_model",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2025, 12, 30, tz=TIMEZONE),
    catchup=False,
    # One training at a time: a second run would race the first to the champion alias.
    max_active_runs=1,
    default_args=default_args(),
    render_template_as_native_obj=True,
    params={
        "window_start": Param(None, type=["null", "string"], pattern=DS_PATTERN, title="Window start",
                              description="First day of the training window (YYYY-MM-DD); empty: automatic."),
        "window_end": Param(None, type=["null", "string"], pattern=DS_PATTERN, title="Window end",
                            description="Last day of the training window, inclusive."),
        "window_days": Param(None, type=["null", "integer"], minimum=7, maximum=366, title="Window days",
                             description="Length of the automatic window (default: the model spec's)."),
        "num_boost_round": Param(None, type=["null", "integer"], minimum=1, maximum=5000, title="Boosting rounds"),
        "max_depth": Param(None, type=["null", "integer"], minimum=1, maximum=16, title="Max tree depth"),
        "learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1, title="Learning rate"),
        "device": Param("cuda", enum=["cuda", "cpu"], title="Device",
                        description="cuda: use a GPU when the worker has one (AIRLOOP_GPU_POLICY decides otherwise)."),
        "reason": Param("scheduled retraining", type="string", minLength=3, title="Reason",
                        description="Why this run trains; recorded in the promotion history."),
    },  # fmt: skip
    tags=["airloop", "training"],
    doc_md=DOC,
) as dag:
    training_set = TrainingSetOperator(
        task_id="build_training_set",
        window_start="{{ params.window_start }}",
        window_end="{{ params.window_end }}",
        window_days="{{ params.window_days }}",
        **resource_kwargs("cpu"),
    )
    train = ModelTrainOperator(
        task_id="train",
        training_set="{{ ti.xcom_pull(task_ids='build_training_set')['prefix'] }}",
        overrides={
            "num_boost_round": "{{ params.num_boost_round }}",
            "max_depth": "{{ params.max_depth }}",
            "learning_rate": "{{ params.learning_rate }}",
        },
        device="{{ params.device }}",
        **resource_kwargs("train"),
    )
    evaluate = ChampionChallengerOperator(
        task_id="evaluate",
        training_set="{{ ti.xcom_pull(task_ids='build_training_set')['prefix'] }}",
        candidate="{{ ti.xcom_pull(task_ids='train')['candidate_prefix'] }}",
        **resource_kwargs("cpu"),
    )
    register = ModelRegisterOperator(
        task_id="register",
        candidate="{{ ti.xcom_pull(task_ids='train')['candidate_prefix'] }}",
        decision="{{ ti.xcom_pull(task_ids='evaluate') }}",
        **resource_kwargs("default"),
    )
    promote = ModelPromoteOperator(
        task_id="promote_or_keep",
        version="{{ ti.xcom_pull(task_ids='register')['version'] }}",
        decision="{{ ti.xcom_pull(task_ids='evaluate') }}",
        reason="{{ params.reason }} (window: {{ ti.xcom_pull(task_ids='build_training_set')['window_source'] }})",
        outlets=[MODEL],
        approval="{{ ti.xcom_pull(task_ids='approve_promotion') }}" if APPROVAL.required else None,
        **resource_kwargs("default"),
    )
    if APPROVAL.required:
        from airloop_plugins.operators.approval import PromotionApprovalOperator, approval_notifier

        approve = PromotionApprovalOperator(
            task_id="approve_promotion",
            version="{{ ti.xcom_pull(task_ids='register')['version'] }}",
            decision="{{ ti.xcom_pull(task_ids='evaluate') }}",
            timeout_hours=APPROVAL.timeout_hours,
            assigned_users=[{"id": user, "name": user} for user in APPROVAL.approvers] or None,
            notifiers=[approval_notifier()],
            **resource_kwargs("default"),
        )
        chain(training_set, train, evaluate, register, approve, promote)
    else:
        chain(training_set, train, evaluate, register, promote)
