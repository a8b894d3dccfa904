"""End to end through a real scheduler: train, gate, register, promote, refuse, roll back.

Replayed window 2026-03-04 .. 2026-03-31 (source 2013-03-06 .. 2013-04-02), prepared with the
library (raw and feature partitions), then every step runs as Airflow DAG runs:

1. ``train_model`` with default parameters: the first model must beat the logistic baseline on
   the holdout; it is registered as v1 and promoted (``MODEL`` asset event).
2. ``train_model`` with ``num_boost_round=1`` (a crippled model): the gate refuses it against
   champion v1, ``promote_or_keep`` is skipped, v2 is ``rejected``, no ``MODEL`` event.
3. ``train_model`` with ``num_boost_round=100``: better than v1 on the same holdout, promoted (v3).
4. ``rollback_model`` to a version that does not exist fails and changes nothing;
   ``rollback_model`` with ``previous`` restores v1.

This module runs its own Airflow stack: the registry's champion is global state, and the shared
stack's other tests install champions of their own (and drift events that trigger training).
The gate's numbers on this window (measured with the library, CPU, features as of commit
8216541): baseline ROC AUC 0.665, default 0.724, one tree 0.682, 100 rounds 0.731.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import PREPARE_HISTORY

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRST, LAST = "2026-03-04", "2026-03-31"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-train"
START_TIMEOUT_S = float(os.environ.get("AIRLOOP_E2E_START_TIMEOUT_S", "420"))
MODEL_NAME = "flight_delay_xgb"

PREPARE = PREPARE_HISTORY  # raw days with the features' lookback, then features, outside Airflow


@pytest.fixture(scope="module")
def stack(tmp_path_factory, loaded_source):
    from harness import AirflowStack

    root = tmp_path_factory.mktemp("train-stack")
    stack = AirflowStack(root / "home", root / "data", extra_env={"AIRLOOP_SOURCE_URL": loaded_source})
    try:
        stack.start(wait_for=["train_model", "rollback_model"], timeout=START_TIMEOUT_S)
        result = subprocess.run(
            [sys.executable, "-c", PREPARE.format(first=FIRST, last=LAST)],
            env=stack.env, capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        for dag_id in ("train_model", "rollback_model"):
            stack.unpause(dag_id)
        yield stack
    finally:
        stack.stop(artifacts=ARTIFACTS)


@pytest.fixture(scope="module")
def registry(stack):
    from airloop.registry import ModelRegistry

    return ModelRegistry(f"sqlite:///{stack.data_dir / 'registry.db'}")


def run(stack, dag_id: str, conf: dict, timeout: float = 900):
    triggered = stack.trigger(dag_id, conf)
    (done,) = stack.wait_for_runs(dag_id, 1, timeout=timeout, where=lambda r: r.run_id == triggered.run_id)
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances(dag_id, done.run_id)}
    return done, states


def model_events(stack, run_id: str) -> list[dict]:
    events = stack.asset_events(source_dag_id="train_model") + stack.asset_events(source_dag_id="rollback_model")
    return [e for e in events if e.get("source_run_id") == run_id]


def test_train_gate_promote_refuse_and_rollback(stack, registry):
    window = {"window_start": FIRST, "window_end": LAST}

    first, states = run(stack, "train_model", {**window, "reason": "e2e: first model"})
    assert first.state == "success", stack.explain("train_model", first)
    assert states == {t: "success" for t in ("build_training_set", "train", "evaluate", "register", "promote_or_keep")}
    champion = registry.champion(MODEL_NAME)
    assert champion is not None and champion.version == 1, stack.explain("train_model", first)
    assert champion.device == "cpu" and "fell back to CPU" in champion.device_reason
    assert (str(champion.window_start), str(champion.window_end)) == (FIRST, LAST)
    assert champion.gate["incumbent"] == "baseline" and champion.gate["promote"] is True
    assert champion.gate["challenger_value"] > champion.metrics["baseline"]["roc_auc"]
    assert "GATE PROMOTE: promoted over baseline" in stack.task_log("train_model", first.run_id, "evaluate")
    events = model_events(stack, first.run_id)
    assert [e["extra"].get("version") for e in events] == [1], events

    crippled, states = run(stack, "train_model", {**window, "num_boost_round": 1, "reason": "e2e: one tree"})
    assert crippled.state == "success", stack.explain("train_model", crippled)
    assert states["promote_or_keep"] == "skipped" and states["register"] == "success"
    rejected = registry.get(MODEL_NAME, 2)
    assert rejected.status == "rejected" and rejected.params["num_boost_round"] == 1
    assert rejected.gate["incumbent"] == "champion v1" and rejected.gate["challenger_value"] < rejected.gate["incumbent_value"]
    assert "GATE KEEP: kept champion v1" in stack.task_log("train_model", crippled.run_id, "evaluate")
    assert registry.champion(MODEL_NAME).version == 1
    assert model_events(stack, crippled.run_id) == []

    better, _ = run(stack, "train_model", {**window, "num_boost_round": 100, "reason": "e2e: fewer rounds"})
    assert better.state == "success", stack.explain("train_model", better)
    assert registry.champion(MODEL_NAME).version == 3, registry.get(MODEL_NAME, 3).gate

    missing, states = run(stack, "rollback_model", {"version": "99", "reason": "e2e: typo"})
    assert missing.state == "failed" and states["rollback"] == "failed"
    assert "has no version 99; its versions are [1, 2, 3]" in stack.task_log("rollback_model", missing.run_id, "rollback")
    assert registry.champion(MODEL_NAME).version == 3

    back, _ = run(stack, "rollback_model", {"version": "previous", "reason": "e2e: v3 misbehaves"})
    assert back.state == "success", stack.explain("rollback_model", back)
    assert registry.champion(MODEL_NAME).version == 1
    last = registry.history(MODEL_NAME)[-1]
    assert (last.action, last.from_version, last.to_version, last.reason) == ("rollback", 3, 1, "e2e: v3 misbehaves")
    assert [e["extra"].get("version") for e in model_events(stack, back.run_id)] == [1]

    cli = stack.airloop("model-history")
    assert cli.returncode == 0 and "refuse" in cli.stdout and "rollback" in cli.stdout, cli.stderr
