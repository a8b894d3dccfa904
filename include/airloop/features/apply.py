"""Applying the Feast repo: only when its definitions differ, never an incompatible change.

:func:`apply_definitions` compares a summary of the repo's definitions with the registry's,
refuses incompatible changes (:func:`check_compatible`) before writing anything, applies under
the registry lock, then records the registered layouts for the processes that skip Feast.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airloop.core.storage import sha256_bytes
from airloop.features.errors import IncompatibleDefinitionChange
from airloop.features.feast_repo import (
    Definitions,
    feast_environment,
    feast_sqlite_adapters,
    feature_store,
    load_definitions,
    registry_lock,
)
from airloop.features.registered_layout import record_registered_layouts

if TYPE_CHECKING:
    from airloop.core.config import Settings

log = logging.getLogger(__name__)


def _summary(entities, views, services) -> dict:
    """Everything of the definitions that matters to consumers, as plain sorted data."""
    from feast.feature_view import DUMMY_ENTITY_NAME

    entities = [e for e in entities if e.name != DUMMY_ENTITY_NAME]  # Feast adds it on apply
    join_keys_of = {e.name: e.join_key for e in entities}
    return {
        "entities": {e.name: {"join_key": e.join_key, "value_type": str(e.value_type)} for e in entities},
        "feature_views": {
            v.name: {
                "entities": {e: join_keys_of.get(e) for e in v.entities},
                "features": {f.name: str(f.dtype) for f in v.features},
                "ttl_s": v.ttl.total_seconds() if v.ttl else None,
                "timestamp_field": v.batch_source.timestamp_field,
                "source": v.batch_source.name,
                "source_location": _source_location(v.batch_source),
                "online": v.online,
                "tags": dict(sorted((v.tags or {}).items())),
                "description": v.description,
            }
            for v in views
        },
        "feature_services": {
            s.name: {"features": {p.name: [f.name for f in p.features] for p in s.feature_view_projections}, "tags": dict(sorted((s.tags or {}).items()))}
            for s in services
        },
    }


def _source_location(source) -> str | None:
    try:
        return source.get_table_query_string()
    except Exception:  # a source type without a table string
        return getattr(source, "path", None)


def definitions_hash(summary: dict) -> str:
    return sha256_bytes(json.dumps(summary, sort_keys=True, default=str).encode())


def _registry_summary(store) -> dict:
    registry, project = store.registry, store.project
    return _summary(
        registry.list_entities(project, allow_cache=False),
        registry.list_feature_views(project, allow_cache=False),
        registry.list_feature_services(project, allow_cache=False),
    )


def check_compatible(registered: dict, proposed: dict) -> list[str]:
    """Why ``proposed`` cannot replace ``registered`` (empty when it can).

    Incompatible: a registered entity's join key or type changes; a registered feature view's
    entities change, or one of its features changes type or disappears; a registered feature
    service's feature list changes (a released version is immutable: add a new version).
    Adding entities, views, features and services, or changing TTLs and descriptions, is fine.
    """
    problems = []
    for name, old in registered["entities"].items():
        new = proposed["entities"].get(name)
        if new is not None and new != old:
            problems.append(f"entity {name!r} changes from {old} to {new}")
    for name, old in registered["feature_views"].items():
        new = proposed["feature_views"].get(name)
        if new is None:
            continue
        if new["entities"] != old["entities"]:
            problems.append(f"feature view {name!r} changes its entities from {old['entities']} to {new['entities']}")
        for feat, dtype in old["features"].items():
            if feat not in new["features"]:
                problems.append(f"feature {name}:{feat} is removed")
            elif new["features"][feat] != dtype:
                problems.append(f"feature {name}:{feat} changes type from {dtype} to {new['features'][feat]}")
    for name, old in registered["feature_services"].items():
        new = proposed["feature_services"].get(name)
        if new is not None and new["features"] != old["features"]:
            problems.append(
                f"feature service {name!r} is released and cannot change its features "
                f"(from {old['features']} to {new['features']}); define a new version instead"
            )
    return problems


@dataclass(frozen=True)
class ApplyResult:
    applied: bool
    definitions_hash: str
    registry_hash_before: str | None
    objects: int

    def __str__(self) -> str:
        state = "applied" if self.applied else "unchanged"
        return f"feature repo {state} (definitions {self.definitions_hash[:12]}, {self.objects} objects)"


def apply_definitions(settings: "Settings", *, store=None, definitions: Definitions | None = None) -> ApplyResult:
    """Apply the Feast repo when its definitions differ from the registry's; return what happened.

    Checks compatibility with what is registered first and raises
    :class:`IncompatibleDefinitionChange` before writing anything. Concurrent callers are
    serialised by :func:`registry_lock`; the second one finds the registry up to date.
    """
    definitions = definitions or load_definitions(settings)
    proposed = _summary(definitions.entities, definitions.feature_views, definitions.feature_services)
    wanted = definitions_hash(proposed)
    store = store or feature_store(settings)
    with registry_lock(feast_environment(settings)["AIRLOOP_FEAST_REGISTRY_PATH"]):
        registered = _registry_summary(store)
        current = definitions_hash(registered) if any(registered.values()) else None
        if current == wanted:
            log.info("Feast registry already holds definitions %s; nothing to apply", wanted[:12])
            result = ApplyResult(False, wanted, current, len(definitions.objects))
        else:
            problems = check_compatible(registered, proposed)
            if problems:
                raise IncompatibleDefinitionChange(
                    "the feature repo changes registered definitions incompatibly; nothing was applied:\n  - "
                    + "\n  - ".join(problems)
                )
            with feast_sqlite_adapters():
                store.apply(definitions.objects)
            log.info("applied Feast definitions %s (registry had %s)", wanted[:12], (current or "nothing")[:12])
            result = ApplyResult(True, wanted, current, len(definitions.objects))
        # Scoring reads the services' layouts from these records instead of importing Feast.
        record_registered_layouts(settings, store)
        return result
