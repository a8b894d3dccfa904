"""Training-stage operators against a real local lake and SQLite registry; DAG routing."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airloop.registry import ModelRegistry
from airloop.deploy.routing import profile
from airloop.training import publish_training_set
from airloop_plugins.assets import MODEL
from airloop_plugins.operators.training import (
    ChampionChallengerOperator,
    ModelPromoteOperator,
    ModelRegisterOperator,
    ModelRollbackOperator,
    ModelTrainOperator,
    TrainingSetOperator,
)

from training_data import synthetic_training_set

from airloop_plugins.operators.approval import PromotionApprovalOperator

OPERATORS = [TrainingSetOperator, ModelTrainOperator, ChampionChallengerOperator, ModelRegisterOperator,
             ModelPromoteOperator, ModelRollbackOperator, PromotionApprovalOperator]  # fmt: skip

# Every task of the training DAGs and the resource profile it must run on.
EXPECTED_PROFILES = {
    "train_model": {
        "build_training_set": "cpu",
        "train": "train",
        "evaluate": "cpu",
        "register": "default",
        "promote_or_keep": "default",
    },
    "rollback_model": {"rollback": "default"},
}


class OutletEvents(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(extra=None)
        return self[key]


def context(run_id: str, user: str | None = None, events=None) -> dict:
    dag_run = SimpleNamespace(dag_id="train_model", run_id=run_id, triggering_user_name=user)
    return {"dag_run": dag_run, "outlet_events": OutletEvents(), "triggering_asset_events": events or {}}


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_template_fields_are_constructor_arguments(operator):
    params = inspect.signature(operator.__init__).parameters
    assert operator.template_fields and all(field in params for field in operator.template_fields)


@pytest.fixture(scope="module")
def dagbag():
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_PROFILES))
def test_every_task_runs_on_its_resource_profile(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert {t.task_id for t in dag.tasks} == set(EXPECTED_PROFILES[dag_id]), "a task without an expected profile"
    for task in dag.tasks:
        expected = profile(EXPECTED_PROFILES[dag_id][task.task_id])
        assert (task.pool, task.queue, task.pool_slots) == (expected.pool, expected.queue, expected.pool_slots), task.task_id
    if dag_id == "train_model":
        assert dag.get_task("train").pool == "gpu" and dag.get_task("train").queue == "gpu"


def test_train_model_is_scheduled_weekly_or_on_drift(dagbag):
    from airflow.sdk import AssetOrTimeSchedule

    dag = dagbag.dags["train_model"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule) or type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.max_active_runs == 1
    assert [o.name for o in dag.get_task("promote_or_keep").outlets] == [MODEL.name]
    assert dagbag.dags["rollback_model"].schedule is None


@pytest.mark.parametrize("value, weekly", [("none", False), ("0 4 * * *", True)])
def test_train_model_schedule_is_a_setting(monkeypatch, value, weekly):
    """``AIRLOOP_TRAIN_SCHEDULE=none`` trains on drift events and manual runs only; a cron replaces
    the weekly cadence; a bad cron is an import error that names it."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    folder = Path(__file__).resolve().parents[2] / "dags"
    monkeypatch.setenv("AIRLOOP_TRAIN_SCHEDULE", value)
    dag = DagBag(dag_folder=str(folder / "train_model.py")).dags["train_model"]
    name = type(dag.timetable).__name__
    if weekly:
        assert name == "AssetOrTimeSchedule" and "expression='0 4 * * *'" in repr(dag.timetable.timetable)
    else:
        assert name == "AssetTriggeredTimetable", name
    monkeypatch.setenv("AIRLOOP_TRAIN_SCHEDULE", "every monday")
    bag = DagBag(dag_folder=str(folder / "train_model.py"))
    assert "train_model" not in bag.dags and "AIRLOOP_TRAIN_SCHEDULE must be a cron expression (e.g. '0 3 * * 1') or 'none', got 'every monday'" in "".join(bag.import_errors.values())


@pytest.fixture
def stack(settings, lake):
    training_set = synthetic_training_set(days=40, rows_per_day=400)
    summary = publish_training_set(training_set, lake)
    return SimpleNamespace(prefix=summary["prefix"], lake=lake, registry=ModelRegistry(settings.registry_url))


def run_training(stack, run_id: str, overrides=None) -> tuple[dict, dict, dict]:
    ctx = context(run_id)
    trained = ModelTrainOperator(task_id="train", training_set=stack.prefix, overrides=overrides, device="cuda").execute(ctx)
    decision = ChampionChallengerOperator(task_id="evaluate", training_set=stack.prefix,
                                          candidate=trained["candidate_prefix"]).execute(ctx)  # fmt: skip
    registered = ModelRegisterOperator(task_id="register", candidate=trained["candidate_prefix"], decision=decision).execute(ctx)
    promote = ModelPromoteOperator(task_id="promote_or_keep", version=str(registered["version"]), decision=decision,
                                   reason="test", outlets=[MODEL])  # fmt: skip
    return trained, decision, {"op": promote, "ctx": ctx, "version": registered["version"]}


def test_train_evaluate_register_promote_then_refuse_then_rollback(stack, monkeypatch, caplog):
    monkeypatch.setenv("AIRLOOP_GPU_POLICY", "fallback")
    # v1: stumps (no interactions) still beat the linear baseline; v3: depth 2 beats v1.
    trained, decision, p = run_training(stack, "run-1", overrides={"max_depth": 1})
    assert trained["device"]["device"] == "cpu" and trained["device"]["requested"] == "cuda"
    assert decision["incumbent"] == "baseline" and decision["promote"], decision["reason"]
    extra = p["op"].execute(p["ctx"])
    assert extra == {"model_name": "flight_delay_xgb", "version": 1, "previous_version": None, "action": "promote"}
    assert p["ctx"]["outlet_events"][MODEL].extra == extra
    assert stack.registry.champion("flight_delay_xgb").device == "cpu"

    _, refused, p2 = run_training(stack, "run-2", overrides={"num_boost_round": 1, "max_depth": None})
    assert refused["promote"] is False and refused["incumbent"] == "champion v1"
    with pytest.raises(AirflowSkipException, match="gate kept the champion: kept champion v1"):
        p2["op"].execute(p2["ctx"])
    assert MODEL not in p2["ctx"]["outlet_events"]  # nothing emitted for a refusal
    assert stack.registry.get("flight_delay_xgb", 2).status == "rejected"

    # A third, stronger model replaces v1; rollback("previous") restores v1.
    _, better, p3 = run_training(stack, "run-3", overrides={"max_depth": 2})
    assert better["promote"] and better["incumbent"] == "champion v1", better["reason"]
    assert p3["op"].execute(p3["ctx"])["previous_version"] == 1
    rollback = ModelRollbackOperator(task_id="rollback", to="previous", reason="v3 misbehaves", outlets=[MODEL])
    ctx = context("manual-1", user="alice")
    assert rollback.execute(ctx)["version"] == 1
    assert stack.registry.champion("flight_delay_xgb").version == 1
    assert stack.registry.history("flight_delay_xgb")[-1].actor == "alice via train_model/manual-1"


def test_rollback_to_a_missing_version_fails_without_retry(stack):
    op = ModelRollbackOperator(task_id="rollback", to="42", reason="r" * 5)
    with pytest.raises(AirflowFailException, match="flight_delay_xgb has no champion"):
        op.execute(context("m"))
    run_training(stack, "run-1")[2]["op"].execute(context("run-1"))
    with pytest.raises(AirflowFailException, match="has no version 42; its versions are \\[1\\]"):
        ModelRollbackOperator(task_id="rollback", to="42", reason="typo").execute(context("m"))
    with pytest.raises(AirflowFailException, match="needs a reason"):
        ModelRollbackOperator(task_id="rollback", to="previous", reason="None").execute(context("m"))


def test_fail_policy_fails_the_train_task_without_a_gpu(stack, monkeypatch):
    from airloop.core.devices import detect_gpu

    if detect_gpu().available:
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("AIRLOOP_GPU_POLICY", "fail")
    op = ModelTrainOperator(task_id="train", training_set=stack.prefix, device="cuda")
    with pytest.raises(AirflowFailException, match="AIRLOOP_GPU_POLICY=fail"):
        op.execute(context("run-1"))
    assert stack.lake.list_keys("models/") == []


def test_bad_training_data_fails_without_retry_and_writes_nothing(settings, lake):
    frame = synthetic_training_set(days=10, rows_per_day=50).frame.assign(is_delayed=1)
    ts = synthetic_training_set(days=10, rows_per_day=50).with_frame(frame, "all-late")
    prefix = publish_training_set(ts, lake)["prefix"]
    with pytest.raises(AirflowFailException, match="training data refused: training window has 500 labelled rows"):
        ModelTrainOperator(task_id="train", training_set=prefix).execute(context("run-1"))
    assert lake.list_keys("models/") == []


def test_training_set_without_any_window_source_fails_clearly(settings):
    # Nothing ingested yet (a fresh start): inputs not there yet, a skip with the reason, no retries.
    op = TrainingSetOperator(task_id="build_training_set", window_start="None", window_end="None", window_days="None")
    with pytest.raises(AirflowSkipException, match="inputs not there yet: no training window.*ingest some partitions first"):
        op.execute(context("run-1"))
    op = TrainingSetOperator(task_id="build_training_set", window_start="2026-03-05", window_end="None")
    with pytest.raises(AirflowFailException, match="give both"):
        op.execute(context("run-1"))


@pytest.mark.parametrize(
    "bounds, extra, message",
    [
        ({"window_start": "Jan 5", "window_end": "2026-01-31"}, None, "window_start must be a date YYYY-MM-DD, got 'Jan 5'"),
        ({}, {"ds": "2026-04-30", "window_end": "30/04/2026"}, "event window_end must be a date YYYY-MM-DD"),
    ],
)
def test_training_set_window_bounds_are_parsed_once_at_the_operator(settings, bounds, extra, message):
    """The operator turns the params and the drift event's extra into dates (or fails naming the
    bad one); :func:`airloop.training.resolve_window` only ever sees dates."""
    from airloop_plugins.assets import DRIFT

    events = {DRIFT: [SimpleNamespace(extra=extra)]} if extra else None
    op = TrainingSetOperator(task_id="build_training_set", **{"window_start": "None", "window_end": "None", **bounds})
    with pytest.raises(AirflowFailException, match=message):
        op.execute(context("run-1", events=events))


def test_training_set_skips_a_window_whose_features_are_not_computed_yet(settings, lake):
    """Raw days ingested, their features not computed yet (e.g. the raw lookback of a fresh
    start): a skip naming what is missing, not a failure that burns retries."""
    from airloop import features as F

    from feature_helpers import D1, D2, leakage_lake

    leakage_lake(lake)
    F.apply_definitions(settings)
    op = TrainingSetOperator(task_id="build_training_set", window_start=str(D1), window_end=str(D2))
    ti = SimpleNamespace(xcom={}, xcom_push=lambda key, value: ti.xcom.update({key: value}))
    with pytest.raises(AirflowSkipException, match=rf"inputs not there yet for the window {D1} \.\. {D2}: feature partition") as skipped:
        op.execute({**context("run-1"), "ti": ti})
    assert ti.xcom == {"skip_reason": str(skipped.value)}  # the task instance's XCom tab shows why
    assert lake.list_keys("training_sets/") == []


def test_automatic_window_ends_at_the_newest_day_with_features(settings, lake):
    """The weekly run's window is chosen among ingested days whose lookups can be served: a raw
    day whose day-before features are not computed yet (the newest day, a warm-up's raw
    lookback) is left out instead of making the whole run skip."""
    from airloop import features as F
    from airloop.core.usecase import load_use_case
    from airloop.scoring import days_with_inputs, view_prefixes

    from feature_helpers import D0, D1, D2, leakage_lake, logical_day

    leakage_lake(lake)
    F.apply_definitions(settings)
    use_case = load_use_case(settings.use_case)
    op = TrainingSetOperator(task_id="build_training_set", window_start="None", window_end="None")
    assert op.available_days() == []  # three raw days, no feature partition yet
    F.compute_features(logical_day(D0), settings=settings, lake=lake)
    assert op.available_days() == [D1]  # D1 reads D0's features; D0 and D2 read days not computed
    F.compute_features(logical_day(D1), settings=settings, lake=lake)
    assert op.available_days() == [D1, D2]
    prefixes = view_prefixes(settings, use_case, lake=lake)
    days = [logical_day(d) for d in (D0, D1, D2)]
    assert days_with_inputs(lake, use_case, days, prefixes) == days[1:]
    assert days_with_inputs(lake, use_case, [], prefixes) == []


def test_training_set_window_comes_from_the_drift_event(settings, capsys):
    """An asset-triggered run has no logical date: the window is the drift event's suggestion
    (the build then stops: this empty lake has no feature store applied and no partitions)."""
    from airloop.features import FeatureError

    from airloop_plugins.assets import DRIFT

    event = SimpleNamespace(extra={"ds": "2026-04-30", "window_start": "2026-02-01", "window_end": "2026-04-29"})
    op = TrainingSetOperator(task_id="build_training_set", window_start="None", window_end="None")
    with pytest.raises(FeatureError):
        op.execute(context("asset-run", events={DRIFT: [event]}))
    assert "Training window 2026-02-01 .. 2026-04-29 (drift event window" in capsys.readouterr().out


# --- the human gate (AIRLOOP_PROMOTION_APPROVAL=approve) ------------------------------------------


def approval_op(decision, version, **kwargs):
    from airloop_plugins.operators.approval import PromotionApprovalOperator, approval_notifier

    return PromotionApprovalOperator(task_id="approve_promotion", version=str(version), decision=decision,
                                     timeout_hours=6, notifiers=[approval_notifier()], **kwargs)  # fmt: skip


def hitl_context(op, run_id: str) -> dict:
    ti = SimpleNamespace(id="0199-ti", dag_id="train_model", run_id=run_id, task_id=op.task_id, map_index=-1)
    return {**context(run_id), "task": op, "task_instance": ti, "ti": ti}


def answer(option: str | None, user: str | None = None, comment: str | None = None, timedout: bool = False) -> dict:
    from datetime import datetime, timezone

    return {"chosen_options": [option], "params_input": {"comment": comment},
            "responded_at": datetime(2026, 6, 15, 9, 30, tzinfo=timezone.utc),
            "responded_by_user": {"id": user, "name": user} if user else None, "timedout": timedout}  # fmt: skip


def review(decision, version, run_id, event, monkeypatch):
    """The approval task as the scheduler drives it: execute parks it, the answer resumes it."""
    from airflow.sdk.exceptions import TaskAwaitingInput

    import airflow.providers.standard.operators.hitl as hitl

    requests = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kw: requests.append(kw))  # the Execution API edge
    op = approval_op(decision, version)
    ctx = hitl_context(op, run_id)
    with pytest.raises(TaskAwaitingInput) as parked:
        op.execute(ctx)
    assert parked.value.method_name == "execute_complete" and parked.value.timeout.total_seconds() == 6 * 3600
    (request,) = requests
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    return op.execute_complete(ctx, event), request


def test_approval_approve_reject_and_timeout_on_the_registry(stack, monkeypatch):
    monkeypatch.setenv("AIRLOOP_GPU_POLICY", "fallback")
    registry, name = stack.registry, "flight_delay_xgb"

    # v1 beats the baseline; alice approves: v1 is the champion, the history names her.
    _, decision, p = run_training(stack, "run-1", overrides={"max_depth": 1})
    assert decision["promote"], decision["reason"]
    approved, request = review(decision, p["version"], "run-1", answer("Approve", "alice", "looks good"), monkeypatch)
    assert approved["outcome"] == "approved" and approved["by"] == "alice" and approved["at"] == "2026-06-15T09:30:00+00:00"
    assert request["subject"] == "Promote flight_delay_xgb v1 over baseline?"
    assert "/airloop/models/flight_delay_xgb/versions/1/card" in request["body"] and "| EWR |" in request["body"]
    p["op"].approval = approved
    assert p["op"].execute(p["ctx"])["action"] == "promote"
    entry = registry.history(name)[-1]
    assert registry.champion(name).version == 1
    assert entry.actor == "alice via train_model/run-1" and "approved by alice: looks good" in entry.reason
    assert entry.details["review"]["outcome"] == "approved"

    # v2 passes the gate (deeper trees) but bob rejects it: v1 stays, v2 is rejected with his reason.
    _, better, p2 = run_training(stack, "run-2", overrides={"max_depth": 3})
    assert better["promote"] and better["incumbent"] == "champion v1", better["reason"]
    rejected, request = review(better, p2["version"], "run-2", answer("Reject", "bob", "wait for the holiday data"), monkeypatch)
    assert "| guardrail |" in request["body"] and "champion v1" in request["body"]
    p2["op"].approval = rejected
    with pytest.raises(AirflowSkipException, match="review kept the champion: kept champion v1: rejected by bob: wait for the holiday data"):
        p2["op"].execute(p2["ctx"])
    assert MODEL not in p2["ctx"]["outlet_events"]
    assert registry.champion(name).version == 1 and registry.get(name, p2["version"]).status == "rejected"
    entry = registry.history(name)[-1]
    assert (entry.action, entry.candidate_version, entry.actor) == ("refuse", p2["version"], "bob via train_model/run-2")
    assert "rejected by bob: wait for the holiday data" in registry.get(name, p2["version"]).status_reason

    # v3 passes the gate; nobody answers: the scheduler applies the default (Reject) at the timeout.
    _, again, p3 = run_training(stack, "run-3", overrides={"max_depth": 4})
    assert again["promote"], again["reason"]
    timed_out, _ = review(again, p3["version"], "run-3", answer("Reject", None, timedout=True), monkeypatch)
    assert timed_out["outcome"] == "timed_out" and timed_out["by"] is None
    p3["op"].approval = timed_out
    with pytest.raises(AirflowSkipException, match="no approval within 6 h"):
        p3["op"].execute(p3["ctx"])
    assert registry.champion(name).version == 1 and registry.get(name, p3["version"]).status == "rejected"
    assert registry.history(name)[-1].actor == "train_model/run-3"  # nobody decided: the run is the actor


def test_approval_is_not_asked_when_the_gate_kept_the_champion(stack, monkeypatch):
    import airflow.providers.standard.operators.hitl as hitl

    monkeypatch.setenv("AIRLOOP_GPU_POLICY", "fallback")
    run_training(stack, "run-1", overrides={"max_depth": 1})[2]["op"].execute(context("run-1"))
    _, refused, p2 = run_training(stack, "run-2", overrides={"num_boost_round": 1, "max_depth": None})
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kw: pytest.fail("no approval must be requested"))
    op = approval_op(refused, p2["version"])
    result = op.execute(hitl_context(op, "run-2"))
    assert result == {"asked": False, "reason": refused["reason"]}
    p2["op"].approval = result
    with pytest.raises(AirflowSkipException, match="gate kept the champion: kept champion v1"):
        p2["op"].execute(p2["ctx"])
    assert stack.registry.history("flight_delay_xgb")[-1].actor == "train_model/run-2"


def test_approval_timeout_without_defaults_and_bad_answers(stack, monkeypatch):
    from airloop.training.approval import apply_review

    op = approval_op({"promote": True, "reason": "r"}, 1)
    ctx = hitl_context(op, "run-1")
    timed_out = op.execute_complete(ctx, {"error": "no response", "error_type": "timeout"})
    assert timed_out["outcome"] == "timed_out" and timed_out["timeout_hours"] == 6
    with pytest.raises(ValueError, match="not in"):
        op.execute_complete(ctx, answer("Maybe", "eve"))
    with pytest.raises(ValueError, match="review outcome must be one of"):
        apply_review({"promote": True, "reason": "r"}, {"asked": True, "outcome": "perhaps"})
    with pytest.raises(ValueError, match="the gate did not promote"):
        apply_review({"promote": False, "reason": "r"}, {"asked": True, "outcome": "approved", "by": "eve"})


def test_approval_notifier_says_what_waits_and_where(stack, monkeypatch, capsys):
    from airloop_plugins.operators.approval import approval_notifier

    monkeypatch.setenv("AIRLOOP_GPU_POLICY", "fallback")
    monkeypatch.delenv("AIRLOOP_ALERT_CONN_ID", raising=False)
    _, decision, p = run_training(stack, "run-1", overrides={"max_depth": 1})
    op = approval_op(decision, p["version"], assigned_users=[{"id": "alice", "name": "alice"}])
    ctx = hitl_context(op, "run-1")
    op.prepare_review(ctx, decision)
    notifier = approval_notifier()
    body = notifier.payload(ctx)
    assert body["event"] == "approval" and body["approval"]["assigned_users"] == ["alice"]
    assert body["approval"]["model_card"].endswith("/airloop/models/flight_delay_xgb/versions/1/card")
    assert body["approval"]["required_action"] == "/dags/train_model/runs/run-1/tasks/approve_promotion/required_actions"
    assert notifier.subject(body) == "[airloop] decision waits: Promote flight_delay_xgb v1 over baseline?"
    notifier.notify(ctx)
    assert "ALERT [airloop] decision waits: Promote flight_delay_xgb v1" in capsys.readouterr().out


def test_approval_settings_are_validated(monkeypatch):
    from airloop.core.config import SettingsError
    from airloop.training.approval import ApprovalSettings

    monkeypatch.delenv("AIRLOOP_PROMOTION_APPROVAL", raising=False)
    assert ApprovalSettings.from_env() == ApprovalSettings("auto", 48.0, ())
    monkeypatch.setenv("AIRLOOP_PROMOTION_APPROVAL", " Approve ")
    monkeypatch.setenv("AIRLOOP_APPROVERS", "alice,,bob ")
    assert ApprovalSettings.from_env().required and ApprovalSettings.from_env().approvers == ("alice", "bob")
    monkeypatch.setenv("AIRLOOP_PROMOTION_APPROVAL", "yes")
    with pytest.raises(SettingsError, match="AIRLOOP_PROMOTION_APPROVAL must be one of auto, approve .* got 'yes'"):
        ApprovalSettings.from_env()
    monkeypatch.setenv("AIRLOOP_PROMOTION_APPROVAL", "approve")
    for bad, message in (("0", "be between 0.01 and 720, got 0"), ("two", "be a number, got 'two'"),
                         ("nan", "be a finite number, got 'nan'")):  # fmt: skip
        monkeypatch.setenv("AIRLOOP_APPROVAL_TIMEOUT_HOURS", bad)
        with pytest.raises(SettingsError, match=f"AIRLOOP_APPROVAL_TIMEOUT_HOURS must {message}"):
            ApprovalSettings.from_env()
