"""End to end through a real scheduler: one replayed day's lineage, from the manifests and from the
OpenLineage events the provider wrote to its file transport (#18).

Day D = 2026-02-20 (source 2013-02-22; in summer the source's ``wind_gust`` is all null and the
training data check refuses the window). The history before it (raw partitions of the features'
lookback and of the training window, feature partitions of the window) is prepared with the
library; then the scheduler runs every stage: ``ingest_flights`` for D-1 and D (a backfill),
which triggers ``materialize_features`` per day; ``train_model`` on D-14 .. D-2 (registers a
version, promoted or not: the shared stack may hold another champion); ``batch_predict`` of D
pinned to that version; ``monitor_model`` of D (triggered by the predictions event).

Checked: the chain from ``predictions/ds=D`` back to its raw partitions (through the day
before's features, and through the model's training set), and forward from a raw partition to
every prediction that used it, answered alike by the manifests and by the events; each stage's
event carries its facets; ``airloop lineage`` answers from the events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from harness import PREPARE_HISTORY

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAY = date(2026, 2, 20)
D, BEFORE = DAY.isoformat(), (DAY - timedelta(days=1)).isoformat()
WINDOW = ((DAY - timedelta(days=14)).isoformat(), (DAY - timedelta(days=2)).isoformat())
MODEL_NAME = "flight_delay_xgb"

PREPARE = PREPARE_HISTORY  # raw days with the features' lookback, then features, outside Airflow


@pytest.fixture(scope="module")
def replayed(airflow_stack):
    """The shared stack after one day went through every stage; yields (stack, model version)."""
    stack = airflow_stack
    result = subprocess.run(
        [sys.executable, "-c", PREPARE.format(first=WINDOW[0], last=(DAY - timedelta(days=2)).isoformat())],
        env=stack.env, capture_output=True, text=True, timeout=1200, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    keys = {BEFORE, D}
    in_days = lambda r: r.partition_key in keys  # noqa: E731

    stack.unpause("materialize_features")
    try:
        stack.unpause("ingest_flights")
        stack.backfill("ingest_flights", BEFORE, D, reprocess="completed")
        for run in stack.wait_for_runs("ingest_flights", 2, timeout=900, where=in_days):
            assert run.state == "success", stack.explain("ingest_flights", run)
        for run in stack.wait_for_runs("materialize_features", 2, timeout=900, where=in_days):
            assert run.state == "success", stack.explain("materialize_features", run)
    finally:
        stack.pause("materialize_features")
        stack.pause("ingest_flights")

    stack.unpause("train_model")
    try:
        triggered = stack.trigger("train_model", {"window_start": WINDOW[0], "window_end": WINDOW[1], "reason": "e2e: lineage"})
        (trained,) = stack.wait_for_runs("train_model", 1, timeout=900, where=lambda r: r.run_id == triggered.run_id)
    finally:
        stack.pause("train_model")
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances("train_model", trained.run_id)}
    assert all(states[t] == "success" for t in ("build_training_set", "train", "evaluate", "register")), stack.explain("train_model", trained)
    from airloop.registry import ModelRegistry

    registry = ModelRegistry(f"sqlite:///{stack.data_dir / 'registry.db'}")
    (version,) = [v.version for v in registry.versions(MODEL_NAME) if v.run_id.endswith(trained.run_id)]

    stack.unpause("monitor_model")
    stack.unpause("batch_predict")
    try:
        scoring = stack.trigger("batch_predict", {"model_version": version}, partition_key=D)
        (scored,) = stack.wait_for_runs("batch_predict", 1, timeout=900, where=lambda r: r.run_id == scoring.run_id)
        assert scored.state == "success", stack.explain("batch_predict", scored)
        (monitored,) = stack.wait_for_runs("monitor_model", 1, timeout=900, where=lambda r: r.partition_key == D)
        drift = {ti["task_id"]: ti["state"] for ti in stack.task_instances("monitor_model", monitored.run_id)}["drift_report"]
        assert drift == "success", stack.explain("monitor_model", monitored)
    finally:
        stack.pause("batch_predict")
        stack.pause("monitor_model")
    return stack, version


def test_one_day_lineage_from_manifests_and_openlineage_events(replayed):
    from airloop.core.storage import LocalLake, read_manifest
    from airloop.lineage import EventLineage, ManifestLineage, events_path, read_events

    stack, version = replayed
    lake = LocalLake(stack.data_dir / "lake")
    manifests = ManifestLineage(lake)
    predictions, model = f"predictions/ds={D}", f"models/{MODEL_NAME}/v{version}"
    training_set = read_manifest(lake, model) and json.loads(
        lake.read_bytes(next(f"{model}/{f['name']}" for f in read_manifest(lake, model)["files"] if f["logical_name"] == "metadata.json"))
    )["training_set_prefix"]
    window_day = WINDOW[0]

    # Back from the prediction partition: the day before's raw partitions through its features,
    # and the training window's raw partitions through the model and its training set.
    up = manifests.upstream(predictions)
    assert up.of_kind("model") == [model] and up.of_kind("training_set") == [training_set]
    raw = set(up.of_kind("raw"))
    assert {f"raw/flights/ds={BEFORE}", f"raw/weather/ds={BEFORE}", f"raw/flights/ds={window_day}"} <= raw
    assert all(p.endswith(f"ds={BEFORE}") for p in manifests.inputs_of(predictions) if p.startswith("features/"))

    # Forward from raw partitions to every prediction that used them.
    assert manifests.downstream(f"raw/weather/ds={BEFORE}").of_kind("predictions") == [predictions]
    forward = manifests.downstream(f"raw/flights/ds={window_day}")
    assert predictions in forward.of_kind("predictions") and model in forward.of_kind("model")
    assert f"reports/ds={D}/drift" in forward.of_kind("report")

    # The events the provider wrote (file transport under the Airflow home) say the same.
    path = events_path(stack.env)
    assert path.parent == stack.home / "logs" / "openlineage"
    events = read_events(path)
    complete = [e for e in events if e.get("eventType") == "COMPLETE"]
    graph = EventLineage(events, lake.url)
    made_by = {
        f"raw/flights/ds={BEFORE}": "ingest_flights.publish_day",
        f"features/origin_weather/ds={BEFORE}": "materialize_features.compute_features",
        training_set: "train_model.build_training_set",
        model: "train_model.register",
        predictions: "batch_predict.score",
        f"reports/ds={D}/drift": "monitor_model.drift_report",
    }
    for node, job in made_by.items():
        assert job in graph.jobs.get(node, set()), (node, job, graph.jobs.get(node))
        assert graph.inputs_of(node) == sorted(manifests.inputs_of(node)), node
    event_up = graph.upstream(predictions)
    assert {f"raw/flights/ds={BEFORE}", f"raw/weather/ds={BEFORE}", f"raw/flights/ds={window_day}", model, training_set} <= set(event_up.reached)
    assert graph.downstream(f"raw/weather/ds={BEFORE}").of_kind("predictions") == [predictions]

    # Facets: schema, rows, fingerprint and code version of the partition; the model's metrics.
    def output(job: str, node: str) -> dict:
        for event in complete:
            for dataset in event.get("outputs") or []:
                if event["job"]["name"] == job and graph.node(dataset) == node:
                    return dataset
        raise AssertionError(f"no COMPLETE event of {job} names {node}")

    scored = output("batch_predict.score", predictions)
    facet = scored["facets"]["airloop_partition"]
    assert facet["rows"] == read_manifest(lake, predictions)["rows"] > 0 and len(facet["fingerprint"]) == 64 and facet["codeVersion"]
    assert "score" in [f["name"] for f in scored["facets"]["schema"]["fields"]]
    assert scored["outputFacets"]["outputStatistics"]["rowCount"] == facet["rows"]
    registered = output("train_model.register", model)
    assert registered["facets"]["version"]["datasetVersion"] == str(version)
    assert 0.5 < registered["facets"]["airloop_model"]["metrics"]["roc_auc"] < 1
    assert registered["facets"]["airloop_model"]["trainingSet"] == training_set

    cli = stack.airloop("lineage", predictions, "--upstream", "--events")
    assert cli.returncode == 0, cli.stderr
    assert f"raw/weather/ds={BEFORE}" in cli.stdout and "OpenLineage events at" in cli.stdout
