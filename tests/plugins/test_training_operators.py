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

OPERATORS = [TrainingSetOperator, ModelTrainOperator, ChampionChallengerOperator, ModelRegisterOperator,
             ModelPromoteOperator, ModelRollbackOperator]  # fmt: skip

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
    registered = ModelRegisterOperator(task_id="register", candidate=trained["candidate_prefix"]).execute(ctx)
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
    op = TrainingSetOperator(task_id="build_training_set", window_start="None", window_end="None", window_days="None")
    with pytest.raises(AirflowFailException, match="no training window"):
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
