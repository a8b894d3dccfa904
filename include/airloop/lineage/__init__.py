"""Lineage: what every partition and model version was made from, and what was made from it.

raw partitions -> feature partitions -> training set -> model version -> prediction partitions ->
monitoring reports, read from the partitions' own manifests (:class:`ManifestLineage`) or from
the OpenLineage events the Airflow provider wrote (:class:`EventLineage`). The operators' events
are built from the same manifests (:func:`stage_lineage`), so both answers agree.

Submodules: ``graph`` (edges per zone, walks), ``naming`` (OpenLineage dataset names of lake
keys), ``facets`` (the values an event carries), ``events`` (the file transport's events).
Standard library only at import; OpenLineage itself is imported by the Airflow plugin alone.
"""

from airloop.lineage.events import EventLineage, events_path, file_transport, read_events
from airloop.lineage.facets import DatasetInfo, StageLineage, stage_lineage
from airloop.lineage.graph import LineageError, ManifestLineage, Walk, kind_of, model_key, parse_node, partition_inputs
from airloop.lineage.naming import dataset_id, node_of

__all__ = [
    "DatasetInfo",
    "EventLineage",
    "LineageError",
    "ManifestLineage",
    "StageLineage",
    "Walk",
    "dataset_id",
    "events_path",
    "file_transport",
    "kind_of",
    "model_key",
    "node_of",
    "parse_node",
    "partition_inputs",
    "read_events",
    "stage_lineage",
]
