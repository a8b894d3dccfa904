"""Scoring operators: thin constructors, templated fields, the upstream sensor and real execution.

``execute`` runs against the real source, lake, registry and features (``feature_env`` from
``tests/scoring/test_feature_lookup.py``); only the Airflow context (the edge) is a dict.
"""

from __future__ import annotations

import inspect
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from airloop.scoring import ScoringRuns, prediction_prefix, read_predictions, upstream_partitions
from airloop.core.storage import frame_to_parquet, publish_partition, read_manifest
from airloop.core.usecase import load_use_case
from airloop_plugins.assets import PREDICTIONS
from airloop_plugins.operators.scoring import BatchPredictOperator, PredictionInputsSensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scoring"))
from test_feature_lookup import SCORED, clear_predictions, feature_env  # noqa: E402,F401  (session fixture)

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
DAY = "2026-03-02"  # as the operator's templated ds arrives


def context(**values) -> dict:
    base = {
        "params": {},
        "dag_run": SimpleNamespace(partition_key=None, run_id="scheduled__2026-03-02"),
        "outlet_events": defaultdict(SimpleNamespace),
    }
    base.update(values)
    return base


@pytest.mark.parametrize("operator", [BatchPredictOperator, PredictionInputsSensor])
def test_template_fields_are_constructor_arguments(operator):
    params = inspect.signature(operator.__init__).parameters
    for name in operator.template_fields:
        assert name in params or name == "ds", f"{operator.__name__}.{name} is not a constructor argument"


def test_constructors_only_assign():
    op = BatchPredictOperator(task_id="s", ds="{{ params.ds }}", model_version="{{ params.model_version }}", chunk_rows=10)
    assert (op.ds, op.model_version, op.chunk_rows) == ("{{ params.ds }}", "{{ params.model_version }}", 10)
    assert not {"lake_hook", "source_hook", "registry_hook", "settings", "use_case"} & set(vars(op))
    with pytest.raises(TypeError):
        BatchPredictOperator(task_id="s", unknown_argument=1)


def test_model_version_is_rendered_from_the_params():
    op = BatchPredictOperator(task_id="s", model_version="{{ params.model_version }}", ds="{{ params.ds }}")
    op.render_template_fields({"params": {"ds": DAY, "model_version": 4}})
    assert (op.ds, op.model_version) == (DAY, "4")
    assert op.pinned_version({"params": {}}) == "4"
    empty = BatchPredictOperator(task_id="s", model_version="{{ params.model_version }}")
    empty.render_template_fields({"params": {"model_version": None}})
    assert empty.pinned_version({"params": {"model_version": None}}) is None


# --- sensor -------------------------------------------------------------------------------------


def publish_views(lake, ds: str) -> list[str]:
    prefixes = upstream_partitions(USE_CASE.day(ds), USE_CASE)
    for prefix in prefixes:
        publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(pd.DataFrame({"x": [1]}))}, {"rows": 1})
    return prefixes


def test_sensor_waits_for_every_view_of_the_previous_day(settings, lake):
    sensor = PredictionInputsSensor(task_id="w", ds=DAY, mode="reschedule", poke_interval=60, timeout=600)
    assert sensor.poke(context()) is False
    assert len(sensor._missing) == len(USE_CASE.features.views)
    assert all(p.endswith("ds=2026-03-01") for p in sensor._missing)
    prefixes = publish_views(lake, "2026-03-02")
    lake.delete([f"{prefixes[0]}/_manifest.json"])  # one view still being written
    assert sensor.poke(context()) is False and sensor._missing == [prefixes[0]]
    publish_views(lake, "2026-03-02")
    assert sensor.poke(context()) is True


def test_sensor_timeout_names_the_missing_partitions(settings, lake):
    publish_views(lake, DAY)
    second = upstream_partitions(USE_CASE.day(DAY), USE_CASE)[1]
    lake.delete([f"{second}/_manifest.json"])
    sensor = PredictionInputsSensor(task_id="w", ds=DAY, mode="poke", poke_interval=0, timeout=0)
    with pytest.raises(AirflowSensorTimeout, match=f"{second}.*ingest_flights"):
        sensor.execute(context())


# --- scoring ------------------------------------------------------------------------------------


def test_no_champion_fails_without_retry_saying_what_to_do(settings, lake):
    op = BatchPredictOperator(task_id="s", ds=DAY)
    with pytest.raises(AirflowFailException, match="NoChampionError.*train_model"):
        op.execute(context())


def test_unknown_pinned_version_fails_naming_it(settings, lake):
    op = BatchPredictOperator(task_id="s", ds=DAY)
    with pytest.raises(AirflowFailException, match="model_version=7"):
        op.execute(context(params={"model_version": 7}))


def test_day_outside_the_source_is_skipped(settings, lake):
    op = BatchPredictOperator(task_id="s", ds="2031-01-01")
    with pytest.raises(AirflowSkipException, match="outside the replayed source"):
        op.execute(context())


def test_scores_the_partition_key_day_and_tags_the_asset(feature_env, monkeypatch):
    from airloop.core.config import get_settings

    for key, value in feature_env.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    clear_predictions(feature_env)
    op = BatchPredictOperator(task_id="s", outlets=[PREDICTIONS])
    ctx = context(
        dag_run=SimpleNamespace(partition_key=SCORED.key, run_id="backfill__x"),
        params={"model_version": feature_env.version},
    )
    summary = op.execute(ctx)
    get_settings.cache_clear()

    part = read_predictions(feature_env.lake, SCORED)
    assert summary["rows"] == len(part) > 500 and summary["ds"] == SCORED.key
    assert ctx["outlet_events"][PREDICTIONS].extra == {
        "ds": SCORED.key,
        "model_version": feature_env.version,
        "rows": len(part),
        "rows_missing_features": summary["rows_missing_features"],
    }
    manifest = read_manifest(feature_env.lake, prediction_prefix(SCORED))
    assert manifest["model"]["version"] == feature_env.version
    [run] = [r for r in ScoringRuns(feature_env.settings.registry_url).list() if r["run_id"] == summary["run_id"]]
    assert run["airflow_run_id"] == "backfill__x" and run["model_policy"] == "pinned" and run["status"] == "success"
    assert all(p["partition"].endswith(f"ds={SCORED.shift(-1).key}") for p in manifest["inputs"]["partitions"])


# --- the DAG's wiring ---------------------------------------------------------------------------


def test_batch_predict_dag_keys_runs_by_the_day_they_score():
    import runpy

    import pendulum

    from airflow.serialization.serialized_objects import DagSerialization

    dag = runpy.run_path(str(Path(__file__).resolve().parents[2] / "dags" / "batch_predict.py"))["dag"]
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable  # as the scheduler sees it
    # Scheduled at D 02:00 New York: the partition key is D (not D-1), across both DST switches.
    for run_at, key in [
        (pendulum.datetime(2026, 3, 2, 7, tz="UTC"), "2026-03-02"),
        (pendulum.datetime(2026, 3, 8, 7, tz="UTC"), "2026-03-08"),
        (pendulum.datetime(2026, 11, 1, 7, tz="UTC"), "2026-11-01"),
    ]:
        assert timetable._get_partition_info(run_at)[1] == key
    # A backfill's --to-date is the day after the last day to score.
    infos = timetable.iter_partition_dagrun_infos(
        earliest=pendulum.datetime(2026, 3, 1, tz="UTC"), latest=pendulum.datetime(2026, 3, 4, tz="UTC")
    )
    assert [i.partition_key for i in infos] == ["2026-03-01", "2026-03-02", "2026-03-03"]

    wait, score = dag.get_task("wait_for_features"), dag.get_task("score")
    assert wait.mode == "reschedule" and wait.timeout > wait.poke_interval > 0
    assert score.upstream_task_ids == {"wait_for_features"}
    assert [o.name for o in score.outlets] == [PREDICTIONS.name]
    assert dag.params.get_param("model_version").value is None
