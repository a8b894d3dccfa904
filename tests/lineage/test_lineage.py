"""Lineage from manifests and from OpenLineage events: dataset names, facets, graph walks, the CLI.

A small lake is filled the way the stages fill it (each zone's manifest fields as the stage
writes them): two raw days of two tables, the feature partitions that read them, a training set,
a registered model version, two prediction partitions and their reports.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from airloop.core.storage import LocalLake, frame_to_parquet, publish_partition

RAW = ["raw/flights/ds=2026-06-01", "raw/weather/ds=2026-06-01", "raw/flights/ds=2026-06-02", "raw/weather/ds=2026-06-02"]
FEATURES = {
    "features/origin_weather/ds=2026-06-01": ["raw/weather/ds=2026-06-01"],
    "features/carrier_delay_stats/v2/ds=2026-06-01": ["raw/flights/ds=2026-06-01"],
    "features/origin_weather/ds=2026-06-02": ["raw/weather/ds=2026-06-02"],
    "features/carrier_delay_stats/v2/ds=2026-06-02": ["raw/flights/ds=2026-06-01", "raw/flights/ds=2026-06-02"],
}
TRAINING_SET = "training_sets/0123456789abcdef01234567"
MODEL = "models/flight_delay_xgb/v1"


def frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"carrier": ["AA"] * n, "flight": range(n), "dep_delay": [1.5] * n})


@pytest.fixture
def lake(tmp_path) -> LocalLake:
    lake = LocalLake(tmp_path / "lake")
    for prefix in RAW:
        table, ds = prefix.split("/")[1], prefix.rsplit("=", 1)[1]
        publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(frame(4))},
                          {"table": table, "ds": ds, "rows": 4, "code_version": "abc123"})  # fmt: skip
    for prefix, raw in FEATURES.items():
        publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(frame(2))},
                          {"ds": prefix.rsplit("=", 1)[1], "rows": 2, "code_version": "abc123",
                           "raw_partitions": [{"partition": p, "files": []} for p in raw]})  # fmt: skip
    publish_partition(lake, TRAINING_SET, {"part.parquet": frame_to_parquet(frame(5))},
                      {"fingerprint": "0123456789abcdef01234567" + "f" * 40, "rows": 5, "window_start": "2026-06-01",
                       "window_end": "2026-06-01", "inputs": [{"partition": "raw/flights/ds=2026-06-01"},
                       {"partition": "features/origin_weather/ds=2026-06-01"}]})  # fmt: skip
    metadata = {"training_set_prefix": TRAINING_SET, "fingerprint": "0123456789abcdef01234567" + "f" * 40,
                "model_sha256": "d" * 64, "feature_columns": ["distance", "origin_precip_1d"],
                "metrics": {"roc_auc": 0.71, "log_loss": 0.5, "per_slice": {"AA": 0.7}}, "baseline_metrics": {"roc_auc": 0.66},
                "split": {"train_rows": 5}, "window_start": "2026-06-01", "window_end": "2026-06-01",
                "feature_service": "flight_delay_v1"}  # fmt: skip
    publish_partition(lake, MODEL, {"model.ubj": b"model", "metadata.json": json.dumps(metadata).encode()},
                      {"model_name": "flight_delay_xgb", "version": 1})  # fmt: skip
    for ds, day_before in (("2026-06-02", "2026-06-01"), ("2026-06-03", "2026-06-02")):
        inputs = [f"features/origin_weather/ds={day_before}", f"features/carrier_delay_stats/v2/ds={day_before}"]
        publish_partition(lake, f"predictions/ds={ds}", {"part.parquet": frame_to_parquet(frame(3))},
                          {"ds": ds, "rows": 3, "model": {"name": "flight_delay_xgb", "version": 1, "sha256": "d" * 64},
                           "inputs": {"schedule": {}, "partitions": [{"partition": p} for p in inputs]}})  # fmt: skip
    # One report as published now (inputs named), one as published before they were.
    publish_partition(lake, "reports/ds=2026-06-02/drift", {"report.json": b"{}"},
                      {"ds": "2026-06-02", "kind": "drift", "model_version": 1, "rows_current": 3,
                       "metrics": {"drift_share": 0.1}, "inputs": ["predictions/ds=2026-06-02"]})  # fmt: skip
    publish_partition(lake, "reports/ds=2026-06-02/performance", {"report.json": b"{}"},
                      {"ds": "2026-06-02", "kind": "performance", "model_version": 1, "rows_current": 3, "metrics": {"auc": 0.7}})  # fmt: skip
    # Not registered versions: a candidate's artifacts are not a node.
    publish_partition(lake, "models/flight_delay_xgb/candidates/x", {"model.ubj": b"c"}, {"model_name": "flight_delay_xgb"})
    return lake


def test_a_prediction_partition_leads_back_to_every_raw_partition_it_used(lake):
    from airloop.lineage import ManifestLineage

    up = ManifestLineage(lake).upstream("predictions/ds=2026-06-03")
    assert up.of_kind("raw") == sorted(RAW)  # 06-01 through carrier stats' lookback and the model's training set
    # the day before's features, and the one feature partition the training set read
    assert up.of_kind("features") == sorted([*(f for f in FEATURES if f.endswith("06-02")), "features/origin_weather/ds=2026-06-01"])
    assert up.of_kind("training_set") == [TRAINING_SET] and up.of_kind("model") == [MODEL]
    assert up.of_kind("source") == ["source:flights", "source:weather"]
    assert up.reached[MODEL] == (1, "predictions/ds=2026-06-03")
    assert up.reached["raw/weather/ds=2026-06-02"] == (2, "features/origin_weather/ds=2026-06-02")


def test_a_raw_partition_leads_forward_to_every_prediction_and_report_that_used_it(lake):
    from airloop.lineage import ManifestLineage

    graph = ManifestLineage(lake)
    down = graph.downstream("raw/weather/ds=2026-06-02")
    assert down.of_kind("predictions") == ["predictions/ds=2026-06-03"] and down.of_kind("model") == []
    # 06-01's flights reached the training set, so the model, so every prediction it made.
    down = graph.downstream("raw/flights/ds=2026-06-01")
    assert down.of_kind("predictions") == ["predictions/ds=2026-06-02", "predictions/ds=2026-06-03"]
    assert down.of_kind("model") == [MODEL] and down.of_kind("training_set") == [TRAINING_SET]
    assert down.of_kind("report") == ["reports/ds=2026-06-02/drift", "reports/ds=2026-06-02/performance"]
    assert "models/flight_delay_xgb/candidates/x" not in graph.nodes()


def test_a_performance_report_without_named_inputs_reads_its_days_outcomes(lake):
    from airloop.lineage import ManifestLineage

    graph = ManifestLineage(lake)
    assert graph.inputs_of("reports/ds=2026-06-02/performance") == ["predictions/ds=2026-06-02", "raw/flights/ds=2026-06-02"]
    assert graph.inputs_of("reports/ds=2026-06-02/drift") == ["predictions/ds=2026-06-02"]


def test_a_node_that_was_never_published_is_refused_by_name(lake):
    from airloop.lineage import LineageError, ManifestLineage

    with pytest.raises(LineageError, match="predictions/ds=2030-01-01"):
        ManifestLineage(lake).upstream("predictions/ds=2030-01-01")


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("predictions/ds=2026-06-02/", "predictions/ds=2026-06-02"),
        ("flight_delay_xgb/v3", "models/flight_delay_xgb/v3"),
        ("models/flight_delay_xgb/v3", "models/flight_delay_xgb/v3"),
        ("{lake}/raw/flights/ds=2026-06-01/_manifest.json", "raw/flights/ds=2026-06-01"),
    ],
)
def test_what_a_user_types_becomes_a_node(lake, text, node):
    from airloop.lineage import parse_node

    assert parse_node(text.format(lake=lake.url), lake.url) == node


def test_a_name_that_is_no_partition_is_refused():
    from airloop.lineage import parse_node

    with pytest.raises(ValueError, match="not a partition or a model version"):
        parse_node("2026-06-01", "file:///lake")


@pytest.mark.parametrize(
    ("lake_url", "node", "expected"),
    [
        ("file:///srv/lake", "raw/flights/ds=2026-06-01", ("file", "/srv/lake/raw/flights/ds=2026-06-01")),
        ("s3://airloop-lake/lake", "models/m/v3", ("s3://airloop-lake", "lake/models/m/v3")),
        ("s3://bucket", "predictions/ds=2026-06-02", ("s3://bucket", "predictions/ds=2026-06-02")),
    ],
)
def test_datasets_are_named_by_their_lake_uri_and_read_back(lake_url, node, expected):
    from airloop.lineage import dataset_id, node_of

    assert dataset_id(lake_url, node) == expected
    assert node_of(*expected, lake_url) == node


def test_a_source_table_is_named_by_its_database_without_credentials():
    from airloop.lineage import dataset_id, node_of

    namespace, name = dataset_id("s3://b/l", "source:flights", source_url="postgresql://user:hunter2@db:5432/src")
    assert name == "flights" and "hunter2" not in namespace and namespace.startswith("postgresql://")
    assert node_of(namespace, name, "s3://b/l") == "source:flights"


def test_stage_lineage_describes_outputs_with_schema_rows_fingerprint_and_code_version(lake):
    from airloop.lineage import stage_lineage
    from airloop.lineage.facets import files_fingerprint
    from airloop.core.storage import read_manifest

    stage = stage_lineage(lake, ["features/carrier_delay_stats/v2/ds=2026-06-02", "features/nothing/ds=2026-06-02"])
    (out,) = stage.outputs  # a partition that was not published is left out
    assert (out.namespace, out.name) == ("file", f"{lake.root}/features/carrier_delay_stats/v2/ds=2026-06-02")
    assert out.rows == 2 and out.code_version == "abc123" and out.kind == "features"
    assert out.schema == [("carrier", "string"), ("flight", "int64"), ("dep_delay", "double")]
    assert out.fingerprint == files_fingerprint(read_manifest(lake, out.node)) and len(out.fingerprint) == 64
    assert [i.node for i in stage.inputs] == ["raw/flights/ds=2026-06-01", "raw/flights/ds=2026-06-02"]
    assert stage.inputs[0].name == f"{lake.root}/raw/flights/ds=2026-06-01"


def test_a_model_version_output_carries_its_registry_version_metrics_and_training_set(lake):
    from airloop.lineage import stage_lineage

    stage = stage_lineage(lake, [MODEL])
    (out,) = stage.outputs
    assert out.kind == "model" and out.rows == 5 and out.fingerprint == "d" * 64
    assert out.model["name"] == "flight_delay_xgb" and out.model["version"] == 1
    assert out.model["metrics"]["roc_auc"] == 0.71 and out.model["training_set"] == TRAINING_SET
    assert [i.node for i in stage.inputs] == [TRAINING_SET]


def test_the_operators_openlineage_datasets_carry_the_facets(lake):
    pytest.importorskip("airflow.providers.openlineage")
    from openlineage.client.serde import Serde

    from airloop_plugins.lineage_facets import operator_lineage

    lineage = operator_lineage(lake, [MODEL, "predictions/ds=2026-06-02"], source_url="sqlite:///x.db")
    assert [d.name for d in lineage.inputs] == [f"{lake.root}/{TRAINING_SET}", f"{lake.root}/features/origin_weather/ds=2026-06-01",
                                                f"{lake.root}/features/carrier_delay_stats/v2/ds=2026-06-01", f"{lake.root}/{MODEL}"]  # fmt: skip
    model, predictions = (json.loads(Serde.to_json(d)) for d in lineage.outputs)
    assert model["facets"]["version"]["datasetVersion"] == "1"
    assert model["facets"]["airloop_model"]["metrics"] == {"roc_auc": 0.71, "log_loss": 0.5}  # numbers only
    assert model["facets"]["airloop_model"]["trainingSet"] == TRAINING_SET
    assert predictions["facets"]["airloop_partition"]["rows"] == 3
    assert predictions["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert [f["name"] for f in predictions["facets"]["schema"]["fields"]] == ["carrier", "flight", "dep_delay"]
    assert len(predictions["facets"]["version"]["datasetVersion"]) == 64
    assert lineage.run_facets["airloop"].codeVersion
    # Which inputs made which output (the event lists the task's inputs once, for all outputs).
    assert model["facets"]["airloop_partition"]["madeFrom"] == [{"namespace": "file", "name": f"{lake.root}/{TRAINING_SET}"}]
    assert len(predictions["facets"]["airloop_partition"]["madeFrom"]) == 3


def test_an_event_with_several_outputs_keeps_each_outputs_own_inputs(lake):
    from airloop.lineage import EventLineage, dataset_id

    def ds(node, made_from=None):
        namespace, name = dataset_id(lake.url, node, source_url="sqlite:///s.db")
        out = {"namespace": namespace, "name": name}
        if made_from is not None:
            out["facets"] = {"airloop_partition": {"madeFrom": [ds(n) for n in made_from]}}
        return out

    raw = ["raw/flights/ds=2026-06-01", "raw/weather/ds=2026-06-01"]
    publish = {"eventType": "COMPLETE", "job": {"name": "ingest_flights.publish_day"},
               "inputs": [ds("source:flights"), ds("source:weather")],
               "outputs": [ds(raw[0], ["source:flights"]), ds(raw[1], ["source:weather"])]}  # fmt: skip
    foreign = {**publish, "outputs": [ds(raw[0]), ds(raw[1])]}  # a producer without Airloop's facet
    assert EventLineage([publish], lake.url).inputs_of(raw[1]) == ["source:weather"]
    assert EventLineage([foreign], lake.url).inputs_of(raw[1]) == ["source:flights", "source:weather"]


def test_event_lineage_answers_like_the_manifests(lake, tmp_path):
    from airloop.lineage import EventLineage, ManifestLineage, dataset_id, read_events

    def ds(node):
        namespace, name = dataset_id(lake.url, node)
        return {"namespace": namespace, "name": name}

    graph = ManifestLineage(lake)
    path = tmp_path / "events"
    for i, node in enumerate(graph.nodes()):
        event = {"eventType": "COMPLETE", "job": {"name": f"dag.task{i}"}, "inputs": [ds(n) for n in graph.inputs_of(node)],
                 "outputs": [ds(node)]}  # fmt: skip
        (tmp_path / f"events-20260602-0000{i:02d}.json").write_text(json.dumps(event) + "\n")
    (tmp_path / "events-20260602-999999.json").write_text(json.dumps({"eventType": "START", "outputs": [ds("x/y")]}) + "\n")
    events = EventLineage(read_events(path), lake.url)
    for node in ("predictions/ds=2026-06-03", MODEL):
        assert events.upstream(node).reached.keys() == graph.upstream(node).reached.keys(), node
    assert events.downstream("raw/flights/ds=2026-06-01").of_kind("predictions") == ["predictions/ds=2026-06-02", "predictions/ds=2026-06-03"]


def test_cli_lineage_prints_each_kind_and_answers_json(lake, monkeypatch, capsys):
    from airloop.cli import main
    from airloop.core.config import get_settings

    monkeypatch.setenv("AIRLOOP_LAKE_URL", lake.url)
    get_settings.cache_clear()
    try:
        assert main(["lineage", "predictions/ds=2026-06-02", "--upstream"]) == 0
        out = capsys.readouterr().out
        assert "raw partitions (2)" in out and "    raw/flights/ds=2026-06-01" in out and "used by" not in out
        assert main(["lineage", "raw/flights/ds=2026-06-02", "--downstream", "--json"]) == 0
        body = json.loads(capsys.readouterr().out)
        assert [n["node"] for n in body["downstream"] if n["kind"] == "predictions"] == ["predictions/ds=2026-06-03"]
        assert main(["lineage", "predictions/ds=2030-01-01"]) == 1
        assert "nothing is published at" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
