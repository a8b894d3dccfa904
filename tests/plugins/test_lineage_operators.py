"""The operators' OpenLineage hook: what ``execute`` published becomes the event's datasets, and no
task pays for importing OpenLineage unless the provider's listener asks."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from airloop.core.storage import LocalLake, frame_to_parquet, publish_partition


def test_operators_import_without_openlineage():
    code = ("import sys; import airloop_plugins.operators.scoring, airloop_plugins.operators.training, "
            "airloop_plugins.operators.monitoring, airloop_plugins.operators.ingest, airloop_plugins.operators.features; "
            "print(sorted(m for m in sys.modules if m.startswith(('openlineage', 'airflow.providers.openlineage.'))))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Airflow's provider discovery reads the provider's package info (every provider's, at import
    # of airflow.sdk); the client and the listener are not imported.
    assert out.strip() == "['airflow.providers.openlineage.get_provider_info']"


def test_a_task_that_published_nothing_leaves_the_event_without_datasets():
    pytest.importorskip("airflow.providers.openlineage")
    from airloop_plugins.operators.scoring import BatchPredictOperator

    lineage = BatchPredictOperator(task_id="score").get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])


def test_batch_predict_names_its_prediction_partition_and_what_it_read(tmp_path):
    pytest.importorskip("airflow.providers.openlineage")
    from airloop_plugins.operators.scoring import BatchPredictOperator

    lake = LocalLake(tmp_path / "lake")
    frame = pd.DataFrame({"carrier": ["AA", "B6"], "score": [0.1, 0.9]})
    publish_partition(lake, "predictions/ds=2026-06-02", {"part.parquet": frame_to_parquet(frame)},
                      {"ds": "2026-06-02", "rows": 2, "code_version": "abc", "model": {"name": "m", "version": 4},
                       "inputs": {"partitions": [{"partition": "features/origin_weather/ds=2026-06-01"}]}})  # fmt: skip
    op = BatchPredictOperator(task_id="score")
    op.__dict__["lake_hook"] = SimpleNamespace(lake=lake)  # the hook's lake, without a connection
    op.__dict__["settings"] = SimpleNamespace(source_url="sqlite:///source.db")
    op.record_lineage(["predictions/ds=2026-06-02"])
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", f"{lake.root}/predictions/ds=2026-06-02")]
    assert [d.name for d in lineage.inputs] == [f"{lake.root}/features/origin_weather/ds=2026-06-01", f"{lake.root}/models/m/v4"]
    (out,) = lineage.outputs
    assert out.facets["airloop_partition"].rows == 2 and out.facets["airloop_partition"].codeVersion == "abc"
    assert [f.name for f in out.facets["schema"].fields] == ["carrier", "score"]
