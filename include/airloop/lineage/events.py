"""The OpenLineage events the file transport wrote, read back as a lineage graph.

The embedded default (``scripts/demo.sh``, the e2e harness) sets ``[openlineage] transport`` to
``{"type": "file", "log_file_path": "$AIRFLOW_HOME/logs/openlineage/events"}``: the client writes
one JSON file per event beside that path (``events-<timestamp>.json``), or JSON lines into the
path itself with ``"append": true``. :class:`EventLineage` answers the same questions as
:class:`~airloop.lineage.graph.ManifestLineage` from those files: each ``COMPLETE`` event says its
outputs were made from its inputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from airloop.lineage.graph import LineageError, walk
from airloop.lineage.naming import node_of

TRANSPORT_ENV = "AIRFLOW__OPENLINEAGE__TRANSPORT"
EVENTS_SUBDIR = ("logs", "openlineage")
EVENTS_STEM = "events"


def file_transport(airflow_home: str | Path) -> dict:
    """The embedded default's ``[openlineage] transport``: files under the Airflow home."""
    return {"type": "file", "log_file_path": str(Path(airflow_home, *EVENTS_SUBDIR, EVENTS_STEM))}


def events_path(environ=None) -> Path:
    """Where the file transport writes: the configured ``log_file_path``, else the default."""
    env = os.environ if environ is None else environ
    raw = env.get(TRANSPORT_ENV, "")
    if raw:
        try:
            config = json.loads(raw)
        except ValueError:
            config = {}
        if config.get("type") == "file" and config.get("log_file_path"):
            return Path(config["log_file_path"])
    home = env.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(file_transport(home)["log_file_path"])


def read_events(path: str | Path) -> list[dict]:
    """Every event the file transport wrote at ``path`` (its timestamped files and/or JSON lines)."""
    path = Path(path)
    files = sorted(path.parent.glob(f"{path.name}-*.json")) if path.parent.is_dir() else []
    if path.is_file():
        files.append(path)
    events = []
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
    return events


class EventLineage:
    """The lineage graph that OpenLineage ``COMPLETE`` events describe (nodes as lake keys)."""

    def __init__(self, events: list[dict], lake_url: str):
        self.lake_url = lake_url
        self._inputs: dict[str, set[str]] = {}
        self._outputs: dict[str, set[str]] = {}
        self.jobs: dict[str, set[str]] = {}
        for event in events:
            if event.get("eventType") != "COMPLETE":
                continue
            ins = [self.node(d) for d in event.get("inputs") or []]
            job = (event.get("job") or {}).get("name", "")
            for dataset in event.get("outputs") or []:
                out = self.node(dataset)
                self.jobs.setdefault(out, set()).add(job)
                # Airloop's facet says which of the task's inputs made this output; other
                # producers' events only say the task read all of them.
                made_from = ((dataset.get("facets") or {}).get("airloop_partition") or {}).get("madeFrom")
                for source in [self.node(d) for d in made_from] if made_from else ins:
                    self._inputs.setdefault(out, set()).add(source)
                    self._outputs.setdefault(source, set()).add(out)

    def node(self, dataset: dict) -> str:
        return node_of(dataset.get("namespace", ""), dataset.get("name", ""), self.lake_url)

    def known(self, node: str) -> bool:
        return node in self._inputs or node in self._outputs

    def inputs_of(self, node: str) -> list[str]:
        return sorted(self._inputs.get(node, ()))

    def outputs_of(self, node: str) -> list[str]:
        return sorted(self._outputs.get(node, ()))

    def _require(self, node: str) -> None:
        if not self.known(node):
            raise LineageError(f"no OpenLineage event names {node} (is the file transport configured?)")

    def upstream(self, node: str):
        self._require(node)
        return walk(node, self.inputs_of, "upstream")

    def downstream(self, node: str):
        self._require(node)
        return walk(node, self.outputs_of, "downstream")
