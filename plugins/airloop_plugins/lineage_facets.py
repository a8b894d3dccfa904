"""Airloop's lineage values as OpenLineage objects (imported only when an event is built).

Standard facets where OpenLineage has one (``schema``, ``outputStatistics``, ``version``) and two
of Airloop's own: ``airloop_partition`` (zone, partition key, rows, data fingerprint, code
version) and ``airloop_model`` (registry name and version, sha256, holdout metrics, training
window, training set). A run facet ``airloop`` carries the code version of the task.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_version_dataset,
    output_statistics_output_dataset,
    schema_dataset,
)

from airflow.providers.openlineage.extractors import OperatorLineage

SCHEMA_BASE = "https://github.com/airloop/airloop/blob/main/docs/lineage.md"


@attr.define
class AirloopPartitionDatasetFacet(DatasetFacet):
    """What Airloop's manifest says about a published partition."""

    kind: str
    partition: str
    rows: int | None = None
    fingerprint: str | None = None
    ds: str | None = None
    codeVersion: str | None = None  # noqa: N815 - OpenLineage's camelCase
    # This output's own inputs ({"namespace", "name"}), when the task has several outputs.
    madeFrom: list[dict[str, str]] = attr.field(factory=list)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}#airloop_partition"


@attr.define
class AirloopModelDatasetFacet(DatasetFacet):
    """A registered model version: registry name and version, sha256, metrics, what it learned from."""

    name: str | None = None
    version: int | None = None
    sha256: str | None = None
    metrics: dict[str, Any] = attr.field(factory=dict)
    baselineMetrics: dict[str, Any] = attr.field(factory=dict)  # noqa: N815
    trainingSet: str | None = None  # noqa: N815
    trainingFingerprint: str | None = None  # noqa: N815
    trainingWindow: dict[str, Any] = attr.field(factory=dict)  # noqa: N815
    featureService: str | None = None  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}#airloop_model"


@attr.define
class AirloopRunFacet(RunFacet):
    """The code version the task ran."""

    codeVersion: str | None = None  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}#airloop_run"


def _numbers(values: dict) -> dict:
    """Only the numeric headline metrics (nested per-slice tables stay in the registry)."""
    return {k: v for k, v in (values or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def output_dataset(info) -> OutputDataset:
    facets: dict[str, Any] = {
        "airloop_partition": AirloopPartitionDatasetFacet(
            kind=info.kind, partition=info.node, rows=info.rows, fingerprint=info.fingerprint, ds=info.ds,
            codeVersion=info.code_version, madeFrom=[{"namespace": ns, "name": name} for ns, name in info.made_from],
        ),  # fmt: skip
    }
    if info.schema:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=name, type=kind) for name, kind in info.schema]
        )
    if info.model is not None and info.kind == "model":
        model = info.model
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(model.get("version")))
        facets["airloop_model"] = AirloopModelDatasetFacet(
            name=model.get("name"), version=model.get("version"), sha256=model.get("sha256"),
            metrics=_numbers(model.get("metrics")), baselineMetrics=_numbers(model.get("baseline_metrics")),
            trainingSet=model.get("training_set"), trainingFingerprint=model.get("training_fingerprint"),
            trainingWindow=dict(model.get("training_window") or {}), featureService=model.get("feature_service"),
        )  # fmt: skip
    elif info.fingerprint:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=info.fingerprint)
    if info.model is not None and info.kind == "report":
        facets["airloop_model"] = AirloopModelDatasetFacet(version=info.model.get("version"), metrics=_numbers(info.model.get("metrics")))
    stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=info.rows, size=info.size_bytes)
    return OutputDataset(namespace=info.namespace, name=info.name, facets=facets, outputFacets={"outputStatistics": stats})


def input_dataset(info) -> InputDataset:
    return InputDataset(namespace=info.namespace, name=info.name)


def operator_lineage(lake, outputs: list[str], *, source_url: str = "") -> OperatorLineage:
    """The OpenLineage inputs, outputs and run facet of a task that published ``outputs``."""
    from airloop.core.version import code_version
    from airloop.lineage import stage_lineage

    stage = stage_lineage(lake, outputs, source_url=source_url, code_version=code_version())
    return OperatorLineage(
        inputs=[input_dataset(i) for i in stage.inputs],
        outputs=[output_dataset(o) for o in stage.outputs],
        run_facets={"airloop": AirloopRunFacet(codeVersion=stage.code_version)},
    )
