"""What a feature service consumes, as plain data, and the use case's feature spec around it.

:class:`ViewLayout` and :class:`ServiceLayout` are a feature service's views (join keys,
timestamp field, TTL, features, lake prefix) read from Feast's definitions or registry; the
point-in-time reads, the online store and the registered-layout records all work from them.
Also here: the settings' use case (checked to define features), its default feature service,
the model's input columns and the first day of the source's history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airloop.core.storage import sha256_bytes
from airloop.features.errors import FeatureError
from airloop.features.feast_repo import load_definitions

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.usecase import FeatureSpec, UseCase
    from airloop.features.feast_repo import Definitions

FEATURES_ZONE = "features"
EVENT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class ViewLayout:
    """One feature view as the point-in-time join needs it."""

    name: str
    join_keys: tuple[str, ...]
    timestamp_field: str
    ttl: timedelta | None
    features: tuple[str, ...]
    dtypes: tuple[str, ...]
    lake_prefix: str
    daily_snapshot: bool = False  # tag cadence=daily: partition D's rows are all stamped when D closes


@dataclass(frozen=True)
class ServiceLayout:
    """A feature service: its views (with the features it takes from each)."""

    name: str
    views: tuple[ViewLayout, ...]

    @property
    def feature_names(self) -> list[str]:
        return [f for v in self.views for f in v.features]

    @property
    def join_keys(self) -> list[str]:
        keys: list[str] = []
        for view in self.views:
            keys += [k for k in view.join_keys if k not in keys]
        return keys

    def digest(self) -> str:
        """A hash of everything that determines the service's values (its version).

        The lake prefix is part of it: a view whose rows change meaning moves to a versioned
        prefix (see feature_repo/definitions.py, ``ROWS_VERSION``), and so changes the version.
        """
        body = [
            [v.name, list(v.join_keys), v.timestamp_field, v.ttl.total_seconds() if v.ttl else None, list(v.features), list(v.dtypes)]
            + ([v.lake_prefix] if v.lake_prefix != f"{FEATURES_ZONE}/{v.name}" else [])
            for v in self.views
        ]
        return sha256_bytes(json.dumps([self.name, body]).encode())


def _view_layout(view, join_keys_of: dict[str, str], features: list[str] | None = None) -> ViewLayout:
    wanted = features or [f.name for f in view.features]
    dtypes = {f.name: str(f.dtype) for f in view.features}
    ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
    return ViewLayout(
        name=view.name,
        join_keys=tuple(join_keys_of[e] for e in view.entities),
        timestamp_field=view.batch_source.timestamp_field,
        ttl=ttl,
        features=tuple(wanted),
        dtypes=tuple(dtypes[f] for f in wanted),
        lake_prefix=(view.tags or {}).get("lake_prefix", f"{FEATURES_ZONE}/{view.name}"),
        daily_snapshot=(view.tags or {}).get("cadence") == "daily",
    )


def _service_layout(service, views: dict[str, Any], entities: dict[str, Any]) -> ServiceLayout:
    join_keys_of = {name: e.join_key for name, e in entities.items()}
    layouts = []
    for projection in service.feature_view_projections:
        view = views.get(projection.name)
        if view is None:
            raise FeatureError(f"feature service {service.name!r} uses feature view {projection.name!r}, which is not defined")
        layouts.append(_view_layout(view, join_keys_of, [f.name for f in projection.features]))
    names = [f for v in layouts for f in v.features]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise FeatureError(f"feature service {service.name!r} has features with the same name in several views: {clashes}")
    return ServiceLayout(service.name, tuple(layouts))


def service_layout_from_definitions(definitions: Definitions, name: str) -> ServiceLayout:
    service = definitions.feature_service(name)
    return _service_layout(
        service, {v.name: v for v in definitions.feature_views}, {e.name: e for e in definitions.entities}
    )


def service_layout(store, name: str, *, allow_cache: bool = True) -> ServiceLayout:
    """The feature service ``name`` as registered (what is served), read from Feast's registry.

    Processes that should not import Feast read it with
    :func:`airloop.features.registered_layout.registered_layout` instead.

    :param allow_cache: may answer from Feast's registry cache (``cache_ttl_seconds``).
    """
    from feast.errors import FeatureServiceNotFoundException

    try:
        service = store.get_feature_service(name, allow_cache=allow_cache)
    except FeatureServiceNotFoundException:
        raise FeatureError(
            f"feature service {name!r} is not in the Feast registry; run `airloop setup` "
            "(or `airloop features apply`) first"
        ) from None
    views = {v.name: v for v in store.registry.list_feature_views(store.project, allow_cache=allow_cache)}
    entities = {e.name: e for e in store.registry.list_entities(store.project, allow_cache=allow_cache)}
    return _service_layout(service, views, entities)


def load_feature_use_case(settings: "Settings") -> "UseCase":
    """The settings' use case; :class:`FeatureError` when it defines no features."""
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    if use_case.features is None:
        raise FeatureError(f"use case {use_case.name!r} defines no features")
    return use_case


def default_feature_service(settings: "Settings | None" = None) -> str:
    from airloop.core.config import get_settings

    return load_feature_use_case(settings or get_settings()).features.feature_service


_COLUMNS_CACHE: dict[tuple[str, str, str], tuple[str, ...]] = {}


def _cached_columns(settings: "Settings", service: str) -> tuple[str, ...]:
    key = (str(settings.feature_repo), settings.use_case, service)
    if key not in _COLUMNS_CACHE:
        spec = load_feature_use_case(settings).features
        layout = service_layout_from_definitions(load_definitions(settings), service)
        _COLUMNS_CACHE[key] = (*spec.request_columns, *layout.feature_names)
    return _COLUMNS_CACHE[key]


def feature_columns(feature_service: str | None = None, *, settings: "Settings | None" = None) -> list[str]:
    """The model's input columns: request-time columns of the row, then the service's features."""
    from airloop.core.config import get_settings

    settings = settings or get_settings()
    return list(_cached_columns(settings, feature_service or default_feature_service(settings)))


def history_start(settings: "Settings", spec: "FeatureSpec") -> date:
    """The first replayed day of the source: earlier raw partitions are absent by nature.

    ``spec.history_start`` is the use case's stored ``YYYY-MM-DD`` text, read here only.
    """
    return date.fromisoformat(spec.history_start) + timedelta(days=settings.replay_offset_days)
