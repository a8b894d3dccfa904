"""End to end through a real scheduler: drifted inputs fire exactly one retraining, calm ones none.

Each scored day enters the way nightly scoring publishes it: its ``predictions/ds=D/`` partition
in the lake, then a **predictions** asset event with partition key ``D``, which the scheduler
turns into a partition-aware ``monitor_model`` run. The champion (v1, registered here with its
reference sample) scored every day. Three consecutive days whose inputs are shifted on purpose
must make the drift policy emit one **drift** event, which must start exactly one
``train_model`` run carrying the suggested window; a fourth drifted day (cooldown) and three
calm days start none.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "flight_delay_xgb"
# Far from the dates other e2e tests use, and > cooldown + streak apart from each other.
CALM = ["2026-05-04", "2026-05-05", "2026-05-06"]
DRIFTED = ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04"]
KEY = ["carrier", "flight", "origin", "dest", "sched_dep_ts"]


def day_frame(n: int, seed: int, shift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "carrier": rng.choice(["AA", "B6", "DL", "UA"], n, p=[0.7, 0.1, 0.1, 0.1] if shift else None), "flight": np.arange(n), "origin": rng.choice(["EWR", "JFK"], n),
        "dest": rng.choice(["LAX", "ORD", "SFO"], n),
        "sched_dep_ts": pd.Timestamp("2026-05-01T10:00Z") + pd.to_timedelta(np.arange(n), unit="min"),
        "distance": rng.normal(2400 if shift else 1100, 250, n), "sched_hour": rng.integers(14 if shift else 5, 23, n),
        "day_of_week": rng.integers(0, 7, n), "origin_delay_rate_7d": rng.beta(2, 8, n) + (0.3 if shift else 0.0),
    })  # fmt: skip
    frame["score"] = (0.1 + 0.6 * frame["origin_delay_rate_7d"] + rng.normal(0, 0.05, n)).clip(0.001, 0.999)
    return frame


@pytest.fixture(scope="module")
def monitored_stack(airflow_stack):
    """The shared stack with a champion (reference sample recorded) and seven scored days."""
    from airloop.registry import ModelRegistry
    from airloop.core.storage import LocalLake, frame_to_parquet, publish_partition

    stack = airflow_stack
    lake = LocalLake(stack.data_dir / "lake")
    reference = day_frame(3000, 1, shift=False)
    reference["is_delayed"] = (np.random.default_rng(2).uniform(size=len(reference)) < reference["score"]).astype(int)
    lake.write_bytes(f"models/{MODEL}/v1-e2e/reference.parquet", frame_to_parquet(reference))
    registry = ModelRegistry(f"sqlite:///{stack.data_dir / 'registry.db'}")
    champion = registry.champion(MODEL)
    # The stack is shared: an earlier module (the lineage e2e) may have promoted a real model,
    # whose reference sample is real flights, not this test's frames. This test's champion is
    # registered and promoted unless it already serves (a rerun in the same session).
    if champion is None or champion.code_version != "e2e":
        mv = registry.reserve_version(MODEL, feature_service="flight_delay_v1", feature_columns=["distance", "sched_hour"],
                                      window_start=date(2026, 1, 1), window_end=date(2026, 3, 31), fingerprint="e2e",
                                      params={}, metrics={"roc_auc": 0.7}, code_version="e2e", device="cpu")  # fmt: skip
        registry.finalize_version(MODEL, mv.version, artifact_uri=f"models/{MODEL}/v1-e2e/model.ubj", sha256="0" * 64,
                                  reference_uri=lake.uri(f"models/{MODEL}/v1-e2e/reference.parquet"))  # fmt: skip
        registry.promote(MODEL, mv.version, reason="e2e champion", actor="test")
    version = registry.champion(MODEL).version
    for i, ds in enumerate(CALM + DRIFTED):
        frame = day_frame(700, 100 + i, shift=ds in DRIFTED)
        publish_partition(lake, f"predictions/ds={ds}", {
            "part.parquet": frame_to_parquet(frame[KEY + ["score"]].assign(model_version=version)),
            "features.parquet": frame_to_parquet(frame.drop(columns=["score"])),
        }, {"ds": ds, "rows": len(frame)})  # fmt: skip
    stack.unpause("monitor_model")
    stack.unpause("train_model")
    yield stack
    stack.pause("train_model")


def predictions_asset_id(stack) -> int:
    body = stack.api("GET", "/api/v2/assets", params={"name_pattern": "airloop_predictions", "limit": 10})
    (asset,) = [a for a in body["assets"] if a["name"] == "airloop_predictions"]
    return asset["id"]


def score_event(stack, ds: str) -> None:
    """What nightly scoring does after publishing ``predictions/ds=D/``: an event for partition D."""
    stack.api("POST", "/api/v2/assets/events",
              json={"asset_id": predictions_asset_id(stack), "partition_key": ds, "extra": {"ds": ds}})  # fmt: skip


def monitor(stack, ds: str):
    score_event(stack, ds)
    (run,) = stack.wait_for_runs("monitor_model", 1, timeout=420, where=lambda r: r.partition_key == ds)
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances("monitor_model", run.run_id)}
    assert run.state == "success", stack.explain("monitor_model", run)
    return run, states


def retraining_runs(stack):
    """train_model runs started by monitoring (asset-triggered, or by its trigger_retraining task)."""
    return [r for r in stack.runs("train_model") if r.run_type == "asset_triggered" or r.run_id.startswith("drift__")]


def test_calm_days_are_monitored_and_fire_no_retraining(monitored_stack):
    stack = monitored_stack
    for ds in CALM:
        run, states = monitor(stack, ds)
        assert states == {"drift_report": "success", "performance_report": "success", "drift_policy": "skipped",
                          "trigger_retraining": "skipped"}, ds
        assert "did not fire" in stack.task_log("monitor_model", run.run_id, "drift_policy")
    assert retraining_runs(stack) == []


def test_drifted_days_fire_exactly_one_retraining_with_the_suggested_window(monitored_stack):
    from airloop.monitoring import MonitoringStore

    stack = monitored_stack
    runs, fired = [], []
    for ds in DRIFTED:
        run, states = monitor(stack, ds)
        assert states["drift_report"] == "success"
        runs.append(run)
        fired.append(states["drift_policy"])
    # 3 consecutive breaching days are needed; the 4th is in the cooldown of the same episode.
    assert fired == ["skipped", "skipped", "success", "skipped"]
    assert "2 consecutive breaching day(s), 3 needed" in stack.task_log("monitor_model", runs[1].run_id, "drift_policy")
    assert "same drift episode as the firing on 2026-06-03" in stack.task_log("monitor_model", runs[3].run_id, "drift_policy")
    firing_run = runs[2]

    deadline = time.monotonic() + 180
    while not retraining_runs(stack) and time.monotonic() < deadline:
        time.sleep(3)
    (retrain,) = retraining_runs(stack)
    time.sleep(10)  # nothing else may arrive
    assert len(retraining_runs(stack)) == 1
    stack.pause("train_model")  # the retraining itself is train_model's test; spare the CPU
    assert retrain.run_id == "drift__2026-06-03"
    assert (retrain.conf["window_start"], retrain.conf["window_end"]) == ("2026-05-06", "2026-06-02")
    assert retrain.conf["reason"].startswith("drift on 2026-06-03: 3 consecutive breaching days")
    # The drift asset event carries the evidence too (for lineage and partition-aware consumers).
    (event,) = [e for e in stack.asset_events() if e["uri"] == "airloop://monitoring/drift"]
    assert event["extra"]["ds"] == "2026-06-03" and event["extra"]["window_end"] == "2026-06-02"
    assert event["extra"]["drift_share"] >= 0.5 and "distance" in event["extra"]["drifted_columns"]

    store = MonitoringStore(f"sqlite:///{stack.data_dir / 'registry.db'}")
    assert [e["ds"] for e in store.drift_events()] == ["2026-06-03"]
    links = stack.api("GET", f"/api/v2/dags/monitor_model/dagRuns/{firing_run.run_id}/taskInstances/drift_report/links")
    assert links["extra_links"]["Evidently report"].endswith("/airloop/reports/2026-06-03/drift")
