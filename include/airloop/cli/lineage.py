"""``airloop lineage``: what a partition or model version was made from, and what used it.

    airloop lineage predictions/ds=2026-06-02 --upstream    # back to the raw partitions
    airloop lineage raw/flights/ds=2026-06-01 --downstream  # every prediction that used it
    airloop lineage flight_delay_xgb/v3                     # both ways

Answered from the lake's manifests (what every stage records as it publishes), or with
``--events`` from the OpenLineage events the Airflow provider wrote to its file transport.
"""

from __future__ import annotations

from airloop.cli.output import print_json

ORDER = ("source", "raw", "features", "training_set", "model", "predictions", "report")
LABELS = {"source": "source tables", "raw": "raw partitions", "features": "feature partitions",
          "training_set": "training sets", "model": "model versions", "predictions": "prediction partitions",
          "report": "monitoring reports"}  # fmt: skip


def _graph(args, lake):
    from airloop.lineage import EventLineage, ManifestLineage, events_path, read_events

    if args.events is None:
        return ManifestLineage(lake), f"the manifests of {lake.uri('')}"
    path = events_path() if args.events == "" else args.events
    events = read_events(path)
    if not events:
        raise FileNotFoundError(f"no OpenLineage events at {path}-*.json (is [openlineage] transport a file transport there?)")
    return EventLineage(events, lake.url), f"{len(events)} OpenLineage events at {path}"


def print_walk(walk, label: str) -> None:
    """One block per kind, nearest first: ``raw partitions (3)`` then the keys, indented."""
    from airloop.lineage import kind_of

    print(f"{label}:")
    if not walk.reached:
        print("  (nothing)")
        return
    by_kind: dict[str, list[str]] = {}
    for node in walk.reached:
        by_kind.setdefault(kind_of(node), []).append(node)
    kinds = sorted(by_kind, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))
    if walk.direction == "upstream":
        kinds.reverse()
    for kind in kinds:
        nodes = sorted(by_kind[kind])
        print(f"  {LABELS.get(kind, kind)} ({len(nodes)})")
        for node in nodes:
            print(f"    {node}")


def cmd_lineage(args) -> int:
    from airloop.core.config import get_settings
    from airloop.core.storage import open_lake
    from airloop.lineage import parse_node

    lake = open_lake(get_settings())
    node = parse_node(args.node, lake.url)
    graph, where = _graph(args, lake)
    directions = [d for d in ("upstream", "downstream") if getattr(args, d)] or ["upstream", "downstream"]
    walks = {d: getattr(graph, d)(node) for d in directions}
    if args.json:
        print_json({"node": node, "from": where, **{d: w.as_dict()["nodes"] for d, w in walks.items()}})
        return 0
    print(f"{node}  (from {where})")
    for direction, walk in walks.items():
        print_walk(walk, "made from" if direction == "upstream" else "used by")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("lineage", help="what a partition or model version was made from, and what used it")
    p.add_argument("node", metavar="PARTITION_OR_VERSION",
                   help="a lake key (raw/flights/ds=2026-06-01, predictions/ds=2026-06-02), its URI, or NAME/vN")  # fmt: skip
    way = p.add_mutually_exclusive_group()
    way.add_argument("--upstream", action="store_true", help="only what it was made from (back to the raw partitions)")
    way.add_argument("--downstream", action="store_true", help="only what was made from it (to predictions and reports)")
    p.add_argument("--events", nargs="?", const="", default=None, metavar="PATH",
                   help="answer from the OpenLineage file transport's events (default path: [openlineage] transport)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable: every node with its kind and distance")
    p.set_defaults(func=cmd_lineage)
