"""The lineage graph of the lake, read from the partitions' own manifests.

Every partition the stages publish names what it was made from: a feature partition its raw
partitions (``raw_partitions``), a training set the raw and feature partitions it read
(``inputs``), a model version its training set (``metadata.json``), a prediction partition its
feature partitions and model (``inputs``, ``model``), a report its scored day. This module turns
those fields into edges, one function per zone (:func:`partition_inputs`), so the OpenLineage
events of the operators and ``airloop lineage`` say the same thing: there is one source of truth.

Nodes are lake keys: ``raw/flights/ds=2026-06-01``, ``features/origin_weather/ds=2026-06-01``,
``training_sets/<fingerprint>``, ``models/<name>/v<N>``, ``predictions/ds=2026-06-02``,
``reports/ds=2026-06-02/drift``. A node outside the lake (the source database's table) is
``source:<table>``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from airloop.core.storage import Lake

# Lower first: the order a reader expects the chain in.
KINDS = ("source", "raw", "features", "training_set", "model", "predictions", "report")
ZONES = {"raw": "raw", "features": "features", "training_sets": "training_set", "models": "model",
         "predictions": "predictions", "reports": "report"}  # fmt: skip
MODEL_KEY = re.compile(r"^models/(?P<name>[^/]+)/v(?P<version>\d+)$")
# What a monitoring report of each kind reads besides its day's predictions (reports published
# before their manifest named ``inputs``): the performance report joins the realized outcomes.
REPORT_EXTRA_INPUTS = {"drift": (), "performance": ("raw/flights",)}


class LineageError(LookupError):
    """The node is not in the lake (nothing published under that name)."""


def kind_of(node: str) -> str:
    """``raw``, ``features``, ``training_set``, ``model``, ``predictions``, ``report`` or ``source``."""
    if node.startswith("source:"):
        return "source"
    return ZONES.get(node.split("/", 1)[0], "other")


def model_key(name: str, version: int | str) -> str:
    """The node (and lake prefix) of a registered model version: ``models/<name>/v<N>``."""
    return f"models/{name}/v{int(version)}"


def parse_node(text: str, lake_url: str = "") -> str:
    """A node from what a user types: a lake key, a lake URI, ``NAME/vN`` or ``models/NAME/vN``.

    :raises ValueError: the text names nothing the lake can hold.
    """
    value = text.strip().rstrip("/")
    base = lake_url.rstrip("/")
    if base and value.startswith(base + "/"):
        value = value[len(base) + 1 :]
    value = value.removesuffix("/_manifest.json")
    if re.fullmatch(r"[^/]+/v\d+", value):
        value = f"models/{value}"
    if kind_of(value) in ("other", "source") and not value.startswith("source:"):
        raise ValueError(
            f"{text!r} is not a partition or a model version: give a lake key (raw/flights/ds=2026-06-01, "
            "predictions/ds=2026-06-02, ...), its URI, or NAME/vN (flight_delay_xgb/v3)"
        )
    return value


def _report_inputs(node: str, manifest: dict) -> list[str]:
    if manifest.get("inputs"):
        return [str(p) for p in manifest["inputs"]]
    ds, kind = manifest.get("ds"), manifest.get("kind") or node.rsplit("/", 1)[-1]
    return [f"predictions/ds={ds}", *(f"{zone}/ds={ds}" for zone in REPORT_EXTRA_INPUTS.get(kind, ()))]


def partition_inputs(lake: "Lake", node: str, manifest: dict) -> list[str]:
    """The nodes ``node`` was made from, as its manifest (and, for a model, its metadata) says.

    :param manifest: the partition's ``_manifest.json`` (already read by the caller).
    """
    kind = kind_of(node)
    if kind == "raw":
        table = node.split("/")[1]
        return [f"source:{table}"]
    if kind == "features":
        return [str(p["partition"]) for p in manifest.get("raw_partitions", [])]
    if kind == "training_set":
        return [str(p["partition"] if isinstance(p, dict) else p) for p in manifest.get("inputs", [])]
    if kind == "model":
        meta = model_metadata(lake, node, manifest)
        prefix = meta.get("training_set_prefix")
        if not prefix and meta.get("fingerprint"):
            prefix = f"training_sets/{meta['fingerprint'][:24]}"
        return [prefix] if prefix else []
    if kind == "predictions":
        inputs = [str(p["partition"]) for p in (manifest.get("inputs") or {}).get("partitions", [])]
        model = manifest.get("model") or {}
        if model.get("name") and model.get("version") is not None:
            inputs.append(model_key(model["name"], model["version"]))
        return inputs
    if kind == "report":
        return _report_inputs(node, manifest)
    return []


def model_metadata(lake: "Lake", node: str, manifest: dict) -> dict:
    """``metadata.json`` of a model version's artifacts (training set, window, metrics), or {}."""
    entry = next((f for f in manifest.get("files", []) if f.get("logical_name") == "metadata.json"), None)
    if entry is None:
        return {}
    return lake.read_json(f"{node}/{entry['name']}")


@dataclass
class Walk:
    """The nodes reached from ``start`` in one direction, each with its distance and the node it
    was reached through (the first path found, breadth first)."""

    start: str
    direction: str
    reached: dict[str, tuple[int, str]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[str]:
        return sorted(n for n in self.reached if kind_of(n) == kind)

    def as_dict(self) -> dict:
        return {
            "node": self.start,
            "direction": self.direction,
            "nodes": [
                {"node": n, "kind": kind_of(n), "distance": d, "via": via}
                for n, (d, via) in sorted(self.reached.items(), key=lambda kv: (KINDS.index(kind_of(kv[0])) if kind_of(kv[0]) in KINDS else 99, kv[0]))
            ],
        }


def walk(start: str, neighbours: Callable[[str], Iterable[str]], direction: str) -> Walk:
    """Every node reachable from ``start`` through ``neighbours`` (breadth first, each once)."""
    result = Walk(start, direction)
    queue = deque([(start, 0)])
    seen = {start}
    while queue:
        node, depth = queue.popleft()
        for nxt in neighbours(node):
            if nxt in seen:
                continue
            seen.add(nxt)
            result.reached[nxt] = (depth + 1, node)
            queue.append((nxt, depth + 1))
    return result


class ManifestLineage:
    """The lineage graph of one lake, answered from its manifests.

    Upstream walks read manifests on demand; downstream walks read every manifest once (a reverse
    index: no partition names what was made *from* it).
    """

    def __init__(self, lake: "Lake"):
        self.lake = lake
        self._inputs: dict[str, list[str]] = {}
        self._outputs: dict[str, set[str]] | None = None

    def manifest(self, node: str) -> dict | None:
        from airloop.core.storage import read_manifest

        if kind_of(node) == "source":
            return None
        return read_manifest(self.lake, node)

    def require(self, node: str) -> dict:
        manifest = self.manifest(node)
        if manifest is None:
            raise LineageError(f"nothing is published at {self.lake.uri(node)} (no manifest)")
        return manifest

    def inputs_of(self, node: str) -> list[str]:
        if node not in self._inputs:
            manifest = self.manifest(node)
            self._inputs[node] = partition_inputs(self.lake, node, manifest) if manifest is not None else []
        return self._inputs[node]

    def nodes(self) -> list[str]:
        """Every published partition and model version of the lake (candidates and run areas left out)."""
        from airloop.core.storage import MANIFEST_NAME

        suffix = "/" + MANIFEST_NAME
        found = []
        for zone in ZONES:
            for key in self.lake.list_keys(zone + "/"):
                if not key.endswith(suffix):
                    continue
                node = key[: -len(suffix)]
                if zone == "models" and not MODEL_KEY.match(node):
                    continue  # models/<name>/candidates/...: not registered versions
                found.append(node)
        return sorted(found)

    def outputs_of(self, node: str) -> list[str]:
        if self._outputs is None:
            index: dict[str, set[str]] = {}
            for made in self.nodes():
                for source in self.inputs_of(made):
                    index.setdefault(source, set()).add(made)
            self._outputs = index
        return sorted(self._outputs.get(node, ()))

    def upstream(self, node: str) -> Walk:
        self.require(node)
        return walk(node, self.inputs_of, "upstream")

    def downstream(self, node: str) -> Walk:
        if kind_of(node) != "source":
            self.require(node)
        return walk(node, self.outputs_of, "downstream")
