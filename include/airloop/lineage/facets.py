"""What a task run's OpenLineage event says about each dataset, as plain values.

:func:`stage_lineage` describes the partitions a task published (its outputs) and what each was
made from (its inputs, :func:`airloop.lineage.graph.partition_inputs`): names, schema, row count,
data fingerprint, code version, and for a model version its registry version and metrics. The
Airflow operators turn these values into OpenLineage objects (``airloop_plugins.operators.lineage``);
nothing here imports OpenLineage, so the values are tested without it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airloop.lineage.graph import kind_of, model_metadata, partition_inputs
from airloop.lineage.naming import dataset_id

if TYPE_CHECKING:
    from airloop.core.storage import Lake

# The file whose Parquet schema is a partition's schema.
SCHEMA_FILE = "part.parquet"


@dataclass
class DatasetInfo:
    """One dataset of an event: its name and, for an output, what the facets carry."""

    node: str
    namespace: str
    name: str
    kind: str
    rows: int | None = None
    size_bytes: int | None = None
    fingerprint: str | None = None
    schema: list[tuple[str, str]] = field(default_factory=list)
    code_version: str | None = None
    ds: str | None = None
    model: dict[str, Any] | None = None
    # An output's own inputs (namespace, name): an event with several outputs (a day's tables, a
    # day's views) lists every input of the task; this says which made which.
    made_from: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}
        out["schema"] = [list(f) for f in self.schema]
        out["made_from"] = [list(f) for f in self.made_from]
        return out


@dataclass
class StageLineage:
    inputs: list[DatasetInfo]
    outputs: list[DatasetInfo]
    code_version: str | None = None


def files_fingerprint(manifest: dict) -> str:
    """sha256 over a partition's files (name and sha256 each): the same bytes, the same value."""
    digest = hashlib.sha256()
    for entry in sorted(manifest.get("files", []), key=lambda f: f["logical_name"]):
        digest.update(f"{entry['logical_name']}:{entry['sha256']}\n".encode())
    return digest.hexdigest()


def parquet_schema(lake: "Lake", node: str, manifest: dict) -> list[tuple[str, str]]:
    """``(column, Arrow type)`` of the partition's ``part.parquet`` (its footer only when local)."""
    entry = next((f for f in manifest.get("files", []) if f.get("logical_name") == SCHEMA_FILE), None)
    if entry is None:
        return []
    import pyarrow.parquet as pq

    key = f"{node}/{entry['name']}"
    local = getattr(lake, "local_path", None)
    source = str(local(key)) if local is not None else io.BytesIO(lake.read_bytes(key))
    return [(f.name, str(f.type)) for f in pq.read_schema(source)]


def describe_output(lake: "Lake", node: str, manifest: dict, *, source_url: str = "") -> DatasetInfo:
    """A published partition or model version with everything its facets say."""
    namespace, name = dataset_id(lake.url, node, source_url=source_url)
    kind = kind_of(node)
    info = DatasetInfo(
        node=node, namespace=namespace, name=name, kind=kind,
        size_bytes=sum(int(f.get("bytes", 0)) for f in manifest.get("files", [])) or None,
        fingerprint=manifest.get("fingerprint") or files_fingerprint(manifest),
        code_version=manifest.get("code_version"), ds=manifest.get("ds"),
    )  # fmt: skip
    if kind == "model":
        meta = model_metadata(lake, node, manifest)
        split = meta.get("split") or {}
        info.rows = split.get("train_rows")
        info.fingerprint = meta.get("model_sha256") or info.fingerprint
        info.schema = [(c, "feature") for c in meta.get("feature_columns", [])]
        info.model = {
            "name": manifest.get("model_name") or meta.get("model_name"),
            "version": manifest.get("version"),
            "sha256": meta.get("model_sha256"),
            "metrics": meta.get("metrics") or {},
            "baseline_metrics": meta.get("baseline_metrics") or {},
            "training_set": meta.get("training_set_prefix"),
            "training_fingerprint": meta.get("fingerprint"),
            "training_window": {"start": meta.get("window_start"), "end": meta.get("window_end")},
            "feature_service": meta.get("feature_service"),
        }
        return info
    if kind == "report":
        info.rows = manifest.get("rows_current")
        info.model = {"version": manifest.get("model_version"), "metrics": manifest.get("metrics") or {}}
        return info
    info.rows = manifest.get("rows")
    info.schema = parquet_schema(lake, node, manifest)
    return info


def describe_input(lake: "Lake", node: str, *, source_url: str = "") -> DatasetInfo:
    """An input by name only: its own facets were emitted by the task that published it."""
    namespace, name = dataset_id(lake.url, node, source_url=source_url)
    return DatasetInfo(node=node, namespace=namespace, name=name, kind=kind_of(node))


def stage_lineage(lake: "Lake", outputs: list[str], *, source_url: str = "", code_version: str | None = None) -> StageLineage:
    """Inputs and outputs of a task that published the partitions ``outputs`` (lake keys).

    An output without a manifest (the task published nothing there) is left out.
    """
    from airloop.core.storage import read_manifest

    described, inputs = [], {}
    for node in outputs:
        manifest = read_manifest(lake, node)
        if manifest is None:
            continue
        output = describe_output(lake, node, manifest, source_url=source_url)
        for source in partition_inputs(lake, node, manifest):
            made = inputs.setdefault(source, describe_input(lake, source, source_url=source_url))
            output.made_from.append((made.namespace, made.name))
        described.append(output)
    return StageLineage(inputs=list(inputs.values()), outputs=described, code_version=code_version)
