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


def publish_raw_history(lake, ds: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Raw partitions of every day before ``ds - 1`` that ``ds - 1``'s features read (from the
    use case's lookbacks), except the days in ``skip``; returns the days published."""
    from datetime import timedelta

    from airloop.core.storage import partition_prefix

    previous = USE_CASE.day(ds).shift(-1)
    lookback = max(n for v in USE_CASE.features.views for n in v.inputs.values())
    days = [previous.date - timedelta(days=i) for i in range(1, lookback + 1)]
    tables = {t for v in USE_CASE.features.views for t, n in v.inputs.items() if n}
    for day in days:
        if day.isoformat() in skip:
            continue
        for table in tables:
            publish_partition(lake, partition_prefix("raw", table, day.isoformat()),
                              {"part.parquet": frame_to_parquet(pd.DataFrame({"x": [1]}))}, {"rows": 1})  # fmt: skip
    return [d.isoformat() for d in days if d.isoformat() not in skip]


def test_sensor_waits_for_every_view_of_the_previous_day(settings, lake):
    publish_raw_history(lake, DAY)  # the history is there: the night's features are worth a wait
    sensor = PredictionInputsSensor(task_id="w", ds=DAY, mode="reschedule", poke_interval=60, timeout=600)
    assert sensor.poke(context()) is False
    assert len(sensor._missing) == len(USE_CASE.features.views)
    assert all(p.endswith("ds=2026-03-01") for p in sensor._missing)
    prefixes = publish_views(lake, "2026-03-02")
    lake.delete([f"{prefixes[0]}/_manifest.json"])  # one view still being written
    assert sensor.poke(context()) is False and sensor._missing == [prefixes[0]]
    publish_views(lake, "2026-03-02")
    assert sensor.poke(context()) is True


def test_sensor_skips_at_once_when_the_raw_history_is_not_ingested(settings, lake):
    """A fresh start: the features of D - 1 read weeks of raw history nobody ingested; no wait
    brings them, so the run is skipped with the reason instead of failing after hours."""
    published = publish_raw_history(lake, DAY, skip=("2026-02-10", "2026-02-11"))
    assert published[-1] < "2026-02-10" < published[0]  # a gap in the middle of the lookback
    sensor = PredictionInputsSensor(task_id="w", ds=DAY, mode="reschedule", poke_interval=60, timeout=600)
    with pytest.raises(AirflowSkipException) as skipped:
        sensor.poke(context())
    reason = str(skipped.value)
    assert "inputs not there yet: scoring 2026-03-02 needs the features of 2026-03-01" in reason
    assert "flights 2026-02-10..2026-02-11 (2 days)" in reason
    assert "make backfill DAG=ingest_flights FROM=2026-02-10 TO=2026-02-11" in reason


def test_sensor_timeout_names_the_missing_partitions(settings, lake):
    publish_raw_history(lake, DAY)
    publish_views(lake, DAY)
    second = upstream_partitions(USE_CASE.day(DAY), USE_CASE)[1]
    lake.delete([f"{second}/_manifest.json"])
    sensor = PredictionInputsSensor(task_id="w", ds=DAY, mode="poke", poke_interval=0, timeout=0)
    with pytest.raises(AirflowSensorTimeout, match=f"{second}.*ingest_flights"):
        sensor.execute(context())


# --- scoring ------------------------------------------------------------------------------------


def test_no_model_yet_is_skipped_saying_what_to_do(settings, lake):
    """A fresh start has no champion: not a fault of this run (train_model promotes the first)."""
    op = BatchPredictOperator(task_id="s", ds=DAY)
    with pytest.raises(AirflowSkipException, match="inputs not there yet: no champion .* run the train_model DAG"):
        op.execute(context())


def test_a_past_day_before_the_champion_fails_without_retry_naming_the_version_to_pin(settings, lake):
    from datetime import date

    from airloop.registry import ModelRegistry

    registry = ModelRegistry(settings.registry_url)
    mv = registry.reserve_version("flight_delay_xgb", feature_service="flight_delay_v1", feature_columns=["distance"],
                                  window_start=date(2026, 1, 1), window_end=date(2026, 2, 1), fingerprint="fp",
                                  params={}, metrics={}, code_version="t", device="cpu")  # fmt: skip
    registry.finalize_version("flight_delay_xgb", mv.version, artifact_uri="x", sha256="0" * 64, reference_uri=None)
    registry.promote("flight_delay_xgb", mv.version, reason="test", actor="test")  # promoted now, after DAY
    op = BatchPredictOperator(task_id="s", ds=DAY)
    with pytest.raises(AirflowFailException, match=f"NoChampionError: .*was serving.*model_version={mv.version}"):
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
