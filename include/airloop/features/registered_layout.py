"""Registered feature services as plain data, for the processes that should not import Feast.

Importing Feast costs 8-10 s of CPU on a 2-core machine, and scoring needs of Feast only the
*layout* of its feature service: the views, their join keys, TTLs, timestamp fields and
features (:class:`airloop.features.layout.ServiceLayout`). Every Airflow task is a fresh process, so a
30-day scoring backfill would pay that import 30 times for a few hundred bytes of answer.

So the layout Feast reports is recorded in the lake, next to the feature partitions
(``features/_registered/<project>/<service>.json``), with a **stamp**: a hash of the registered
specs it was derived from (the feature service, each of its feature views, the project's
entities), read as raw rows of Feast's SQL registry. A reader recomputes the stamp from those
rows (SQLAlchemy only, milliseconds) and trusts the record only when it matches; otherwise it
asks Feast and records the new answer. So the record can never describe specs that are no
longer registered, whoever changed them (``airloop features apply``, a plain ``feast apply``).
Materialization rewrites a view's ``meta`` (intervals, state) and, of its ``spec``, only drops
the ``project`` field: the stamp hashes specs without it (:func:`spec_digest`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from airloop.core.storage import sha256_bytes
from airloop.features.feast_repo import feature_store, repo_yaml
from airloop.features.layout import ServiceLayout, ViewLayout, service_layout

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.storage import Lake

log = logging.getLogger(__name__)

RECORD_ZONE = "features/_registered"
SPEC_FIELD = 1  # FeatureServiceProto, FeatureViewProto and EntityProto: spec = 1, meta = 2
# ``project`` in FeatureServiceSpec, FeatureViewSpec and EntitySpecV2 (checked against Feast's
# own descriptors in tests/features/test_registered_layout.py).
PROJECT_FIELD = {"service": 2, "view": 2, "entity": 9}


def spec_of(proto: bytes) -> bytes:
    """The serialized ``spec`` (field 1) of a serialized Feast object, without Feast's classes."""
    specs = [data for number, _, data in _fields(proto) if number == SPEC_FIELD]
    if len(specs) != 1:
        raise ValueError(f"a registered Feast object has {len(specs)} spec fields, expected 1")
    return specs[0]


def spec_digest(kind: str, proto: bytes) -> str:
    """Hash of the spec of a registered ``kind`` object, its ``project`` field left out.

    Feast drops a view's ``spec.project`` when it records a materialization interval (it
    rewrites the view from its Python object); the row is found by project anyway.
    """
    drop = PROJECT_FIELD[kind]
    kept = [(number, wire, data) for number, wire, data in _fields(spec_of(proto)) if number != drop]
    return sha256_bytes(repr(kept).encode())


def _fields(message: bytes) -> list[tuple[int, int, object]]:
    """``(number, wire type, data)`` of each top-level field of a serialized message, in order."""
    from google.protobuf import empty_pb2
    from google.protobuf.unknown_fields import UnknownFieldSet

    empty = empty_pb2.Empty()
    empty.ParseFromString(message)  # every field is unknown to Empty and kept as such
    return [(f.field_number, f.wire_type, f.data) for f in UnknownFieldSet(empty)]


def registry_stamp(registry_url: str, project: str, service: str, views: list[str]) -> str | None:
    """Hash of the registered specs of ``service``, of ``views`` and of the project's entities.

    Reads Feast's SQL registry tables directly. None when the registry cannot answer (no file,
    no tables yet, the service or a view not registered): the caller then asks Feast.
    """
    from sqlalchemy import bindparam, text
    from sqlalchemy.exc import SQLAlchemyError

    from airloop.core.database import create_engine

    if registry_url.startswith("sqlite:///") and not _sqlite_file_exists(registry_url):
        return None  # connecting would create an empty file where Feast expects its own
    engine = create_engine(registry_url)
    try:
        with engine.connect() as conn:
            service_rows = conn.execute(
                text("SELECT feature_service_proto FROM feature_services WHERE project_id = :p AND feature_service_name = :s"),
                {"p": project, "s": service},
            ).all()
            view_rows = conn.execute(
                text(
                    "SELECT feature_view_name, feature_view_proto FROM feature_views "
                    "WHERE project_id = :p AND feature_view_name IN :names"
                ).bindparams(bindparam("names", expanding=True)),
                {"p": project, "names": list(views)},
            ).all()
            entity_rows = conn.execute(
                text("SELECT entity_name, entity_proto FROM entities WHERE project_id = :p"), {"p": project}
            ).all()
    except SQLAlchemyError as exc:
        log.info("Feast registry tables not readable (%s); asking Feast", type(exc).__name__)
        return None
    finally:
        engine.dispose()
    if len(service_rows) != 1 or len(view_rows) != len(set(views)):
        return None
    parts = [("service", service, bytes(service_rows[0][0]))]
    parts += [("view", name, bytes(proto)) for name, proto in view_rows]
    parts += [("entity", name, bytes(proto)) for name, proto in entity_rows]
    digest = [f"{kind}:{name}:{spec_digest(kind, proto)}" for kind, name, proto in sorted(parts)]
    return sha256_bytes("\n".join(digest).encode())


def _sqlite_file_exists(url: str) -> bool:
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).is_file()


def record_key(project: str, service: str) -> str:
    return f"{RECORD_ZONE}/{project}/{service}.json"


def layout_to_dict(layout: "ServiceLayout") -> dict:
    return {
        "name": layout.name,
        "views": [
            {
                "name": v.name,
                "join_keys": list(v.join_keys),
                "timestamp_field": v.timestamp_field,
                "ttl_s": v.ttl.total_seconds() if v.ttl else None,
                "features": list(v.features),
                "dtypes": list(v.dtypes),
                "lake_prefix": v.lake_prefix,
                "daily_snapshot": v.daily_snapshot,
            }
            for v in layout.views
        ],
    }


def layout_from_dict(body: dict) -> "ServiceLayout":
    from datetime import timedelta

    views = tuple(
        ViewLayout(
            name=v["name"],
            join_keys=tuple(v["join_keys"]),
            timestamp_field=v["timestamp_field"],
            ttl=timedelta(seconds=v["ttl_s"]) if v["ttl_s"] is not None else None,
            features=tuple(v["features"]),
            dtypes=tuple(v["dtypes"]),
            lake_prefix=v["lake_prefix"],
            daily_snapshot=bool(v["daily_snapshot"]),
        )
        for v in body["views"]
    )
    return ServiceLayout(body["name"], views)


def record_layout(lake: "Lake", project: str, layout: "ServiceLayout", stamp: str) -> bool:
    """Record ``layout`` (as Feast reported it) with the stamp of the specs it came from.

    :returns: True when the record was written, False when the same record was there already.
    """
    key = record_key(project, layout.name)
    body = json.dumps({"stamp": stamp, "layout": layout_to_dict(layout)}, indent=1, sort_keys=True).encode()
    if lake.exists(key) and lake.read_bytes(key) == body:
        return False
    lake.write_bytes(key, body)
    log.info("recorded the registered layout of feature service %s (stamp %s) at %s", layout.name, stamp[:12], lake.uri(key))
    return True


def read_record(lake: "Lake", project: str, service: str) -> tuple[str, "ServiceLayout"] | None:
    """The recorded ``(stamp, layout)`` of ``service``, or None when there is none (or it is unreadable)."""
    from airloop.core.storage import StorageError

    key = record_key(project, service)
    try:
        if not lake.exists(key):
            return None
        body = json.loads(lake.read_bytes(key))
        return body["stamp"], layout_from_dict(body["layout"])
    except (StorageError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the unreadable layout record %s: %s", lake.uri(key), exc)
        return None


def _registry_location(settings: "Settings") -> tuple[str, str | None]:
    """``(project, SQL registry URL)`` from the profile's ``feature_store*.yaml`` (URL None: not a SQL registry)."""
    raw = repo_yaml(settings)
    registry = raw.get("registry")
    if isinstance(registry, dict) and registry.get("registry_type") == "sql":
        return raw["project"], registry["path"]
    return raw["project"], None


def registered_layout(settings: "Settings", service: str, *, lake: "Lake | None" = None, store=None) -> "ServiceLayout":
    """The layout of feature service ``service`` as registered, importing Feast only when needed.

    From the lake's record when its stamp matches the registry's specs; otherwise from Feast
    (:func:`airloop.features.layout.service_layout`), and recorded for the next caller.

    :param store: a Feast ``FeatureStore`` already open (otherwise one is opened if needed).
    """
    from airloop.core.storage import open_lake

    lake = lake or open_lake(settings)
    layout = recorded_layout(settings, service, lake=lake)
    if layout is not None:
        return layout
    project, registry_url = _registry_location(settings)
    store = store or feature_store(settings)
    return _layout_from_feast(store, lake, project, registry_url, service)


def recorded_layout(settings: "Settings", service: str, *, lake: "Lake | None" = None) -> "ServiceLayout | None":
    """The recorded layout of ``service`` when its stamp matches the registry; ``None`` otherwise.

    Never imports Feast (SQLAlchemy and the lake only): ``None`` means "ask Feast" (no SQL
    registry, no record yet, or specs changed since it was recorded).
    """
    from airloop.core.storage import open_lake

    lake = lake or open_lake(settings)
    project, registry_url = _registry_location(settings)
    if registry_url is None:
        return None
    record = read_record(lake, project, service)
    if record is None:
        log.info("feature service %s: no layout recorded yet; asking Feast", service)
        return None
    stamp, layout = record
    if registry_stamp(registry_url, project, service, [v.name for v in layout.views]) != stamp:
        log.info("feature service %s: the registered specs changed since the layout was recorded; asking Feast", service)
        return None
    log.info("feature service %s: registered layout from %s (stamp %s matches the registry)",
             service, lake.uri(record_key(project, service)), stamp[:12])  # fmt: skip
    return layout


def _layout_from_feast(store, lake: "Lake", project: str, registry_url: str | None, service: str) -> "ServiceLayout":
    layout = service_layout(store, service, allow_cache=False)
    if registry_url is not None:
        views = [v.name for v in layout.views]
        stamp = registry_stamp(registry_url, project, service, views)
        # Record only a layout read twice around one stamp: an apply by another process in
        # between would otherwise pair the old layout with the new specs.
        if stamp is not None and service_layout(store, service, allow_cache=False) == layout:
            if registry_stamp(registry_url, project, service, views) == stamp:
                record_layout(lake, project, layout, stamp)
    return layout


def record_registered_layouts(settings: "Settings", store, *, lake: "Lake | None" = None) -> list[str]:
    """Record the layout of every registered feature service (after an apply); returns their names."""
    from airloop.core.storage import open_lake

    lake = lake or open_lake(settings)
    project, registry_url = _registry_location(settings)
    if registry_url is None:
        return []
    names = sorted(s.name for s in store.registry.list_feature_services(store.project, allow_cache=False))
    for name in names:
        _layout_from_feast(store, lake, project, registry_url, name)
    return names
