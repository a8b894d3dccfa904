"""A drift policy inside a backtest judges with the drift signal calibrated on the initial model's
training window (issue #15), not the uncalibrated defaults (PSI 0.2, AUC tolerance 0.02).

Cheap: a synthetic 40-day training set stands for the window (no ingestion, no Feast), the
initial model is trained with the backtest's own step, then calibrated and the policy built.
"""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest

from airloop.backtest import Workspace, WorkspaceError
from airloop.backtest.policies import DriftTriggeredPolicy, TrainDecision, make_policy
from airloop.backtest.steps import TRAIN_DELAY, PolicyRun, StageTimer, calibrate_initial, train, use_calibration
from airloop.core.clock import ReplayClock
from airloop.core.usecase import ModelSpec, load_use_case
from airloop.monitoring import DriftPolicy, MonitorConfig, load_calibration
from airloop.monitoring.calibration import CALIBRATION_KEY
from airloop.monitoring.columns import NOT_MONITORED
from airloop.registry import ModelRegistry
from airloop.training import publish_training_set

from training_data import synthetic_training_set

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
FIRST_DAY = USE_CASE.day("2026-06-10")  # mid-range: the replayed June, after the window below
WINDOW = (date(2026, 4, 20), date(2026, 5, 29))  # 40 days
SPEC = ModelSpec(
    name="synthetic_delay", label="is_delayed", slice_column="origin",
    params={"objective": "binary:logistic", "num_boost_round": 40, "max_depth": 4, "learning_rate": 0.1,
            "min_child_weight": 20, "seed": 3, "nthread": 2},
    threshold=0.3, primary_metric="roc_auc", promotion_margin=0.002, guardrails={}, min_rows=500,
    min_class_rows=30, max_null_share=0.5, min_slice_rows=100, reference_rows=500,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    for name in ("AIRLOOP_DRIFT_AUC_DROP", "AIRLOOP_DRIFT_CALIBRATION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def training_set():
    return synthetic_training_set(days=40, rows_per_day=250, start=WINDOW[0])


def _run(workspace: Workspace, policy, training_set) -> PolicyRun:
    """A policy's run in ``workspace`` whose shared lake already holds the window's training set."""
    shared = workspace.shared_lake()
    prefix = publish_training_set(training_set, shared)["prefix"]
    index = f"training_sets/_windows/{WINDOW[0].isoformat()}_{WINDOW[1].isoformat()}.json"
    shared.write_bytes(index, json.dumps({"prefix": prefix, "build_cpu_s": 0.0}).encode())
    clock = ReplayClock(FIRST_DAY.start)
    folder = workspace.policy_dir(policy.name)
    folder.mkdir(parents=True, exist_ok=True)
    return PolicyRun(
        name=policy.name, policy=policy, settings=None, lake=workspace.policy_lake(policy.name), shared_settings=None,
        shared_lake=shared, use_case=SimpleNamespace(model=SPEC), clock=clock,
        registry=ModelRegistry(f"sqlite:///{folder / 'registry.db'}", clock=clock), store=None, config=MonitorConfig(),
        cpu_clock=lambda: 0.0, train_overrides={}, timer=StageTimer(),
    )  # fmt: skip


def _initial(run: PolicyRun) -> dict:
    decision = TrainDecision(WINDOW[0], WINDOW[1], "initial model")
    trained = train(run, FIRST_DAY, decision, at=FIRST_DAY.cutoff - TRAIN_DELAY)
    assert trained["status"] == "promoted", trained
    return calibrate_initial(run, WINDOW[0], WINDOW[1], trained["version"])


def test_a_drift_policy_in_a_backtest_uses_the_calibration_of_its_initial_window(tmp_path, training_set):
    run = _run(Workspace(tmp_path / "ws"), make_policy("scheduled+drift:7"), training_set)
    assert run.policy.drift_policy.auc_drop_threshold == DriftPolicy.auc_drop_threshold  # before: the default
    summary = _initial(run)

    # Written to the policy's own lake, where monitor_drift reads it (load_calibration(lake)).
    path = tmp_path / "ws" / "policies" / "scheduled+drift_7" / "lake" / CALIBRATION_KEY
    assert path.exists()
    calibration = load_calibration(run.lake)
    assert calibration.source["from"] == WINDOW[0].isoformat() and calibration.source["to"] == WINDOW[1].isoformat()
    assert summary["auc_tolerance"] == pytest.approx(calibration.auc_tolerance)
    # The AUC part was measured on the initial version's holdout days against its holdout AUC.
    assert calibration.auc_tolerance is not None and calibration.auc["windows"] >= 1
    assert calibration.auc_tolerance != pytest.approx(DriftPolicy.auc_drop_threshold)  # the check below can fail
    assert calibration.auc["baseline"] == pytest.approx(run.registry.champion(SPEC.name).metrics["roc_auc"])
    # Every column the drift check compares is calibrated: the model inputs and the score.
    monitored = {c for c in training_set.feature_columns if c not in NOT_MONITORED}
    assert {"score", "origin", *monitored} <= set(calibration.columns)
    assert "is_delayed" not in calibration.columns and "flight" not in calibration.columns

    use_calibration(run)
    assert run.policy.drift_policy.auc_drop_threshold == pytest.approx(calibration.auc_tolerance)
    assert run.policy.drift_policy == DriftPolicy.from_env(calibration)
    assert run.policy.describe()["drift_policy"]["auc_drop_threshold"] == pytest.approx(calibration.auc_tolerance)

    # Deterministic: the same window and version give the same bytes (a resumed backtest).
    first = path.read_bytes()
    assert calibrate_initial(run, WINDOW[0], WINDOW[1], run.registry.champion(SPEC.name).version) == summary
    assert path.read_bytes() == first


def test_the_environment_and_an_explicit_drift_policy_still_win(tmp_path, training_set, monkeypatch):
    explicit = DriftPolicy(auc_drop_threshold=0.05)
    run = _run(Workspace(tmp_path / "ws"), DriftTriggeredPolicy(drift_policy=explicit), training_set)
    _initial(run)
    use_calibration(run)
    assert run.policy.drift_policy is explicit  # given by the caller: kept as given

    monkeypatch.setenv("AIRLOOP_DRIFT_AUC_DROP", "0.07")
    run.policy = make_policy("drift")
    use_calibration(run)
    assert run.policy.drift_policy.auc_drop_threshold == pytest.approx(0.07)  # as live: the env overrides


def test_a_drift_workspace_without_calibration_is_refused_and_other_policies_pass(tmp_path, training_set):
    workspace = Workspace(tmp_path / "ws")
    run = _run(workspace, make_policy("drift"), training_set)
    with pytest.raises(WorkspaceError, match="calibration.json is missing"):
        use_calibration(run)
    frozen = _run(workspace, make_policy("frozen"), training_set)
    use_calibration(frozen)  # no drift policy to build: nothing asked of the workspace
    assert not frozen.lake.exists(CALIBRATION_KEY)


def test_calibrating_an_unknown_initial_version_names_it(tmp_path, training_set):
    run = _run(Workspace(tmp_path / "ws"), make_policy("drift"), training_set)
    with pytest.raises(RuntimeError, match="initial model v9 is not in the workspace registry"):
        calibrate_initial(run, WINDOW[0], WINDOW[1], 9)
    assert not run.lake.exists(CALIBRATION_KEY)
