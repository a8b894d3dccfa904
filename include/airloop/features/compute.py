"""Features: computed from the raw zone, defined in Feast, served identically offline and online.

The stage in one page:

* :func:`compute_features` computes day D's rows of every feature view of the use case from raw
  partitions (``raw/<table>/ds=...``) and publishes them as ``features/<view>/ds=D/``. Every
  raw partition it needs must exist (checked before anything is written); the manifest lists
  the raw partitions (and dimension tables) it used. A rerun writes the same bytes.
* The Feast repo (``feature_repo/``) declares entities, feature views and versioned feature
  services. :func:`apply_definitions` applies it only when its definitions differ from the
  registry's, refuses incompatible changes before writing anything, and serialises concurrent
  applies with a lock.
* :func:`historical_features` is the point-in-time join: for each entity row, the latest
  feature row at or before its ``event_timestamp`` and within the view's TTL. It runs in DuckDB
  (ASOF JOIN) from Feast's own definitions (the feature service's views, join keys, timestamp
  fields, TTLs, read from the registry); ``tests/features/test_features_feast.py`` proves it equal
  to Feast's ``get_historical_features``. It is about 20 times faster and never drops a row.
* :func:`features_as_of` is the scoring fast path: one instant for every row, so a latest-value
  lookup per entity; equal to :func:`historical_features` at that instant.
* :func:`materialize` writes the latest row per entity of an interval of partitions to the
  online store, never replacing a newer value with an older one (out-of-order backfills are
  safe); :func:`skew_check` compares online values with :func:`features_as_of`.

Entities with no history get null features, never an exception; so does an entity whose latest
row is older than the view's TTL.

Settings (environment): ``AIRLOOP_FEAST_PROFILE`` picks ``feature_repo/feature_store.<profile>.yaml``
(default: the Airloop profile; ``embedded`` uses ``feature_store.yaml``). The ``${VAR}`` values of
that file come from the environment, else from :func:`feast_environment`'s defaults (SQL registry
``<data_dir>/feast/registry.db``, SQLite online store ``<data_dir>/feast/online.db``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import runpy
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from airloop.core.config import env_str
from airloop.core.dates import day_window, ds_range, parse_ds
from airloop.core.storage import (
    MANIFEST_NAME,
    LocalLake,
    PartitionCorrupt,
    PartitionNotFound,
    frame_to_parquet,
    partition_prefix,
    publish_partition,
    read_manifest,
    read_partition_files,
    sha256_bytes,
)
from airloop.core.version import code_version

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from airloop.core.config import Settings
    from airloop.core.storage import Lake
    from airloop.core.usecase import FeatureSpec, UseCase

log = logging.getLogger(__name__)

FEATURES_ZONE = "features"
DEFINITIONS_FILE = "definitions.py"
EVENT_TIMESTAMP = "event_timestamp"


class FeatureError(RuntimeError):
    """Base class of the features stage's errors; messages name what to fix."""


class MissingRawPartition(FeatureError):
    """A raw partition a feature view needs was never published."""

    def __init__(self, table: str, ds: date, uri: str, view: str):
        self.table, self.ds, self.uri, self.view = table, ds, uri, view
        super().__init__(
            f"raw partition {table} for {ds} is missing ({uri} has no manifest); feature view {view!r} "
            f"needs it. Ingest that day first; nothing was written"
        )


class MissingFeaturePartition(FeatureError):
    """A feature partition needed for a lookup or a materialization was never computed."""


class FeatureSchemaMismatch(FeatureError):
    """Computed rows do not match the feature view's Feast definition."""


class IncompatibleDefinitionChange(FeatureError):
    """The repo's definitions change something already registered in a way that breaks consumers."""


# --- Feast configuration and definitions -----------------------------------------------------


def feast_profile(settings: "Settings") -> str:
    """``AIRLOOP_FEAST_PROFILE``, else the Airloop profile (``embedded``, ``services``)."""
    return env_str("AIRLOOP_FEAST_PROFILE", settings.profile)


def feast_environment(settings: "Settings") -> dict[str, str]:
    """The values of ``${VAR}`` in ``feature_store*.yaml`` and the repo: environment first, then defaults."""
    feast_dir = settings.data_dir / "feast"
    lake_url = urlsplit(settings.lake_url)
    services = feast_profile(settings) != "embedded"
    defaults = {
        "AIRLOOP_FEAST_REGISTRY_PATH": f"sqlite:///{feast_dir / 'registry.db'}",
        "AIRLOOP_FEAST_ONLINE_PATH": str(feast_dir / "online.db"),
        "AIRLOOP_FEAST_OFFLINE_ROOT": lake_url.path if lake_url.scheme == "file" else "",
        "AIRLOOP_FEAST_OFFLINE_STORE": "postgres" if services else "duckdb",
        "AIRLOOP_FEAST_REDIS": "127.0.0.1:6379,db=1",
        "AIRLOOP_FEAST_PG_HOST": "127.0.0.1",
        "AIRLOOP_FEAST_PG_PORT": "5432",
        "AIRLOOP_FEAST_PG_DATABASE": "airloop",
        "AIRLOOP_FEAST_PG_SCHEMA": "feast",
        "AIRLOOP_FEAST_PG_USER": "postgres",
        "AIRLOOP_FEAST_PG_PASSWORD": "",
        "AIRLOOP_FEAST_PG_SSLMODE": "disable",
    }
    return {name: os.environ.get(name) or default for name, default in defaults.items()}


def _yaml_file(settings: "Settings") -> Path:
    profile = feast_profile(settings)
    repo = Path(settings.feature_repo)
    path = repo / ("feature_store.yaml" if profile == "embedded" else f"feature_store.{profile}.yaml")
    if not path.is_file():
        raise FeatureError(f"Feast profile {profile!r} needs {path}, which does not exist")
    return path


def repo_yaml(settings: "Settings") -> dict:
    """The profile's ``feature_store*.yaml`` as plain data, with its ``${VAR}`` filled in (no Feast import)."""
    import yaml

    values = feast_environment(settings)
    text = _yaml_file(settings).read_text()
    missing = sorted({m for m in re.findall(r"\$\{(\w+)\}", text) if m not in values and m not in os.environ})
    if missing:
        raise FeatureError(f"{_yaml_file(settings)} uses {missing}, which are not set")
    text = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), os.environ.get(m.group(1), "")), text)
    return yaml.safe_load(text)


def repo_config(settings: "Settings"):
    """The Feast ``RepoConfig`` of the profile's yaml, with its ``${VAR}`` filled in."""
    from feast.repo_config import RepoConfig

    values = feast_environment(settings)
    raw = repo_yaml(settings)
    config = RepoConfig(**raw)
    config.repo_path = Path(settings.feature_repo)
    registry_url = values["AIRLOOP_FEAST_REGISTRY_PATH"]
    if registry_url.startswith("sqlite:///"):
        Path(registry_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if config.online_store.type == "sqlite":
        Path(config.online_store.path).parent.mkdir(parents=True, exist_ok=True)
    return config


def _standard_sqlite_adapters() -> None:
    """Put back Python's own sqlite3 adapters and converters for dates and datetimes."""
    import sqlite3

    sqlite3.register_adapter(date, lambda value: value.isoformat())
    sqlite3.register_adapter(datetime, lambda value: value.isoformat(" "))
    sqlite3.register_converter("date", lambda raw: date.fromisoformat(raw.decode()))
    sqlite3.register_converter("timestamp", lambda raw: datetime.fromisoformat(raw.decode()))
    sqlite3.converters.pop("DATETIME", None)


@contextlib.contextmanager
def feast_sqlite_adapters() -> Iterator[None]:
    """Feast's process-wide sqlite3 datetime adapters, only for the duration of a Feast call.

    Importing ``feast.infra.online_stores.sqlite`` registers, for *every* sqlite3 connection of
    the process, an adapter that binds datetimes as epoch seconds (and a matching converter).
    Left in place, a later query such as ``time_hour >= :start`` on another SQLite database
    (the source, a registry) silently compares against an integer and selects nothing. Airloop
    restores Python's adapters as soon as Feast is loaded and sets Feast's only around calls
    that read or write its SQLite online store. Not for concurrent threads using sqlite3.
    """
    import sqlite3

    from feast.infra.online_stores import sqlite as feast_sqlite

    sqlite3.register_adapter(date, feast_sqlite.adapt_date_iso)
    sqlite3.register_adapter(datetime, feast_sqlite.adapt_datetime_epoch)
    sqlite3.register_converter("date", feast_sqlite.convert_date)
    sqlite3.register_converter("datetime", feast_sqlite.convert_datetime)
    sqlite3.register_converter("timestamp", feast_sqlite.convert_timestamp)
    try:
        yield
    finally:
        _standard_sqlite_adapters()


def feature_store(settings: "Settings"):
    """A Feast ``FeatureStore`` for the settings (embedded or services profile)."""
    from feast import FeatureStore
    from feast.infra.online_stores import sqlite as _feast_sqlite  # noqa: F401  (registers its adapters)

    _standard_sqlite_adapters()  # see feast_sqlite_adapters
    store = FeatureStore(repo_path=str(settings.feature_repo), config=repo_config(settings))
    # Opening a SQL registry creates its tables when missing; two fresh workers doing it at
    # once collide ("table projects already exists"), so open it under the registry lock.
    with registry_lock(feast_environment(settings)["AIRLOOP_FEAST_REGISTRY_PATH"]):
        store.registry  # noqa: B018  (opens the registry)
    return store


@contextlib.contextmanager
def _repo_environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class Definitions:
    """The Feast objects of the repo, freshly loaded for one set of settings."""

    entities: list
    feature_views: list
    feature_services: list

    @property
    def objects(self) -> list:
        return [*self.entities, *self.feature_views, *self.feature_services]

    def feature_view(self, name: str):
        for view in self.feature_views:
            if view.name == name:
                return view
        raise FeatureError(f"the feature repo defines no feature view {name!r}")

    def feature_service(self, name: str):
        for service in self.feature_services:
            if service.name == name:
                return service
        known = sorted(s.name for s in self.feature_services)
        raise FeatureError(f"the feature repo defines no feature service {name!r}; it has {known}")


def load_definitions(settings: "Settings") -> Definitions:
    """Execute ``feature_repo/definitions.py`` with the settings' paths and collect its objects."""
    from feast import Entity, FeatureService, FeatureView

    path = Path(settings.feature_repo) / DEFINITIONS_FILE
    if not path.is_file():
        raise FeatureError(f"no Feast definitions at {path}")
    values = feast_environment(settings)
    with _repo_environment({k: values[k] for k in ("AIRLOOP_FEAST_OFFLINE_ROOT", "AIRLOOP_FEAST_OFFLINE_STORE", "AIRLOOP_FEAST_PG_SCHEMA")}):
        namespace = runpy.run_path(str(path), run_name="airloop_feature_repo")
    objects = list(namespace.values())
    return Definitions(
        entities=[o for o in objects if isinstance(o, Entity)],
        feature_views=[o for o in objects if isinstance(o, FeatureView)],
        feature_services=[o for o in objects if isinstance(o, FeatureService)],
    )


# --- what a feature service consumes, as plain data ------------------------------------------


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
        """A hash of everything that determines the service's values (its version)."""
        body = [
            [v.name, list(v.join_keys), v.timestamp_field, v.ttl.total_seconds() if v.ttl else None, list(v.features), list(v.dtypes)]
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


def _use_case(settings: "Settings") -> "UseCase":
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    if use_case.features is None:
        raise FeatureError(f"use case {use_case.name!r} defines no features")
    return use_case


def default_feature_service(settings: "Settings | None" = None) -> str:
    from airloop.core.config import get_settings

    return _use_case(settings or get_settings()).features.feature_service


_COLUMNS_CACHE: dict[tuple[str, str, str], tuple[str, ...]] = {}


def _cached_columns(settings: "Settings", service: str) -> tuple[str, ...]:
    key = (str(settings.feature_repo), settings.use_case, service)
    if key not in _COLUMNS_CACHE:
        spec = _use_case(settings).features
        layout = service_layout_from_definitions(load_definitions(settings), service)
        _COLUMNS_CACHE[key] = (*spec.request_columns, *layout.feature_names)
    return _COLUMNS_CACHE[key]


def feature_columns(feature_service: str | None = None, *, settings: "Settings | None" = None) -> list[str]:
    """The model's input columns: request-time columns of the row, then the service's features."""
    from airloop.core.config import get_settings

    settings = settings or get_settings()
    return list(_cached_columns(settings, feature_service or default_feature_service(settings)))


# --- applying the repo -----------------------------------------------------------------------


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


@contextlib.contextmanager
def registry_lock(registry_url: str, timeout_s: float = 120.0) -> Iterator[None]:
    """Serialise writers of one SQL registry: a file lock (SQLite) or an advisory lock (PostgreSQL).

    Feast's SQL registry upserts each object with a read then a write; two workers applying at
    once can both read "absent" and collide on insert. One lock per registry avoids it.
    """
    if registry_url.startswith("sqlite:///"):
        import fcntl
        import time as _time

        lock_path = Path(registry_url.removeprefix("sqlite:///") + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as handle:
            deadline = _time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if _time.monotonic() > deadline:
                        raise FeatureError(f"timed out after {timeout_s:.0f}s waiting for the registry lock {lock_path}") from None
                    _time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif registry_url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(registry_url.replace("postgresql+psycopg://", "postgresql+psycopg2://"), pool_pre_ping=True)
        key = int(sha256_bytes(b"airloop-feast-registry")[:15], 16)
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'"))
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        engine.dispose()
    else:
        yield


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
        from airloop.features.registered_layout import record_registered_layouts

        record_registered_layouts(settings, store)
        return result


# --- computing feature partitions ------------------------------------------------------------


@dataclass(frozen=True)
class FeatureContext:
    """What a view's compute function knows about the day it computes (see FeatureViewSpec)."""

    ds: date
    timezone: str
    day_start: datetime
    day_end: datetime
    replay_offset_days: int
    dimensions: dict = field(default_factory=dict)

    def window_start(self, days: int) -> datetime:
        """The instant ``days`` local days before :attr:`day_end` (start of day D - days + 1)."""
        return day_window(self.ds - timedelta(days=days - 1), self.timezone)[0]

    def source_date(self, ds: date) -> date:
        """The source-time date a replayed day corresponds to."""
        return ds - timedelta(days=self.replay_offset_days)

    @staticmethod
    def timestamp(instant: datetime):
        import pandas as pd

        return pd.Timestamp(instant).tz_convert("UTC").as_unit("ns")


def history_start(settings: "Settings", spec: "FeatureSpec") -> date:
    """The first replayed day of the source: earlier raw partitions are absent by nature."""
    return date.fromisoformat(spec.history_start) + timedelta(days=settings.replay_offset_days)


def raw_partitions_needed(ds: date, inputs: dict[str, int], first_day: date) -> dict[str, list[date]]:
    """Raw days each input table needs for day ``ds`` (those before ``first_day`` left out)."""
    return {
        table: [d for d in ds_range(ds - timedelta(days=lookback), ds) if d >= first_day]
        for table, lookback in sorted(inputs.items())
    }


def _read_raw(lake: "Lake", table: str, days: list[date]):
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    frames, used = [], []
    for day in days:
        prefix = partition_prefix("raw", table, day.isoformat())
        manifest, files = read_partition_files(lake, prefix)
        frames.append(pq.read_table(io.BytesIO(files["part.parquet"])).to_pandas())
        used.append({"partition": prefix, "files": [f["sha256"] for f in manifest["files"]]})
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, used


def _read_dimension(settings: "Settings", table: str):
    from airloop.ingest.source import SourceDatabase

    import pandas as pd

    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    with source.engine.connect() as conn:
        frame = pd.read_sql_table(table, conn)
    return frame.sort_values(list(frame.columns[:1])).reset_index(drop=True)


_INT_TYPES = ("Int32", "Int64")
_FLOAT_TYPES = ("Float32", "Float64")


def validate_feature_frame(frame: "pd.DataFrame", view: ViewLayout, where: str) -> None:
    """Raise :class:`FeatureSchemaMismatch` unless ``frame`` has exactly the view's columns and types."""
    import pandas as pd

    expected = [*view.join_keys, view.timestamp_field, *view.features]
    if list(frame.columns) != expected:
        raise FeatureSchemaMismatch(
            f"{where}: computed columns {list(frame.columns)} do not match the Feast definition of "
            f"{view.name!r}, which expects {expected}; change the computation or the definition (nothing was written)"
        )
    ts = frame[view.timestamp_field]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise FeatureSchemaMismatch(f"{where}: {view.timestamp_field} must be a UTC timestamp, got {ts.dtype}")
    for name, dtype in zip(view.features, view.dtypes):
        column = frame[name]
        ok = (
            pd.api.types.is_integer_dtype(column.dtype) if dtype in _INT_TYPES
            else pd.api.types.is_float_dtype(column.dtype) if dtype in _FLOAT_TYPES
            else True
        )
        if not ok:
            raise FeatureSchemaMismatch(f"{where}: feature {view.name}:{name} is defined as {dtype} but computed as {column.dtype}")
    keys = [*view.join_keys, view.timestamp_field]
    duplicated = frame.duplicated(keys)
    if duplicated.any():
        raise FeatureSchemaMismatch(f"{where}: {int(duplicated.sum())} rows repeat a ({', '.join(keys)}) pair")


def compute_features(
    ds: date | str, *, settings: "Settings", views: list[str] | None = None, lake: "Lake | None" = None
) -> dict[str, dict]:
    """Compute and publish day ``ds``'s partition of each feature view; return their manifests.

    Every needed raw partition is checked before any computation or write
    (:class:`MissingRawPartition` names the first missing one); every computed frame is checked
    against the view's Feast definition before the first publish (:class:`FeatureSchemaMismatch`).

    :param views: restrict to these feature views (default: all the use case computes).
    """
    from airloop.core.storage import open_lake

    day = parse_ds(ds)
    lake = lake or open_lake(settings)
    use_case = _use_case(settings)
    spec = use_case.features
    specs = [spec.view(v) for v in views] if views else list(spec.views)
    first_day = history_start(settings, spec)

    # 1. Every raw partition needed, before anything else.
    plan = {s.name: raw_partitions_needed(day, s.inputs, first_day) for s in specs}
    for view_name, tables in plan.items():
        for table, days in tables.items():
            for needed in days:
                prefix = partition_prefix("raw", table, needed.isoformat())
                if read_manifest(lake, prefix) is None:
                    raise MissingRawPartition(table, needed, lake.uri(prefix), view_name)

    definitions = load_definitions(settings)
    join_keys_of = {e.name: e.join_key for e in definitions.entities}
    start, end = day_window(day, use_case.timezone)

    # 2. Compute every view in memory and check it against its definition.
    raw_cache: dict[tuple[str, date, date], tuple] = {}
    dimension_cache: dict[str, Any] = {}
    results = []
    for view_spec in specs:
        layout = _view_layout(definitions.feature_view(view_spec.name), join_keys_of)
        frames, used = {}, []
        for table, days in plan[view_spec.name].items():
            key = (table, days[0] if days else day, days[-1] if days else day)
            if key not in raw_cache:
                raw_cache[key] = _read_raw(lake, table, days)
            frames[table], table_used = raw_cache[key]
            used += table_used
        dimensions = {}
        for table in view_spec.dimensions:
            if table not in dimension_cache:
                dimension_cache[table] = _read_dimension(settings, table)
            dimensions[table] = dimension_cache[table]
        context = FeatureContext(day, use_case.timezone, start, end, settings.replay_offset_days, dimensions)
        frame = view_spec.compute(day, frames, context)
        validate_feature_frame(frame, layout, f"{view_spec.name} for {day}")
        if layout.daily_snapshot and len(frame) and (frame[layout.timestamp_field] != context.timestamp(end)).any():
            raise FeatureSchemaMismatch(
                f"{view_spec.name} for {day}: a daily snapshot view (tag cadence=daily) must stamp every row "
                f"with the instant {day} closes ({end.isoformat()}); nothing was written"
            )
        expected_before = sorted(
            d.isoformat() for table, lookback in view_spec.inputs.items()
            for d in ds_range(day - timedelta(days=lookback), day) if d < first_day
        )
        manifest = {
            "view": view_spec.name,
            "ds": day.isoformat(),
            "rows": len(frame),
            "columns": list(frame.columns),
            "event_timestamp_min": frame[layout.timestamp_field].min().isoformat() if len(frame) else None,
            "event_timestamp_max": frame[layout.timestamp_field].max().isoformat() if len(frame) else None,
            "raw_partitions": used,
            "days_before_history_start": expected_before,
            "dimensions": {
                t: {"rows": len(dimension_cache[t]), "sha256": sha256_bytes(frame_to_parquet(dimension_cache[t]))}
                for t in view_spec.dimensions
            },
            "code_version": code_version(),
        }
        results.append((view_spec.name, layout, frame, manifest))

    # 3. Publish (each partition's manifest last), then copy to a PostgreSQL offline store.
    out = {}
    for name, layout, frame, manifest in results:
        prefix = partition_prefix(FEATURES_ZONE, name, day.isoformat())
        published = publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(frame)}, manifest)
        log.info("published %d rows of %s for %s at %s", len(frame), name, day, lake.uri(prefix))
        out[name] = published.manifest
    for name, layout, frame, manifest in results:
        synced = sync_offline_table(settings, layout, day, frame)
        if synced is not None:
            log.info("replaced %s for %s in the PostgreSQL offline store (%d rows)", name, day, synced)
    return out


_PG_TYPES = {"Int64": "BIGINT", "Int32": "INTEGER", "Float64": "DOUBLE PRECISION", "Float32": "REAL", "String": "TEXT"}


def _offline_engine(values: dict[str, str]):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import URL

    url = URL.create(
        "postgresql+psycopg2",
        username=values["AIRLOOP_FEAST_PG_USER"],
        password=values["AIRLOOP_FEAST_PG_PASSWORD"] or None,
        host=values["AIRLOOP_FEAST_PG_HOST"],
        port=int(values["AIRLOOP_FEAST_PG_PORT"]),
        database=values["AIRLOOP_FEAST_PG_DATABASE"],
    )
    return create_engine(url, pool_pre_ping=True, connect_args={"sslmode": values["AIRLOOP_FEAST_PG_SSLMODE"]})


def sync_offline_table(settings: "Settings", view: ViewLayout, day: date, frame: "pd.DataFrame") -> int | None:
    """Replace day ``day``'s rows of ``view`` in the PostgreSQL offline store (services profile).

    The lake stays the record; this copy lets Feast's own PostgreSQL offline store (the batch
    sources of ``feature_repo/definitions.py`` in that profile) serve the same rows. Idempotent:
    one transaction deletes the day's rows and inserts them again. Returns the rows written, or
    None when the offline store is not PostgreSQL.
    """
    from sqlalchemy import text

    values = feast_environment(settings)
    if values["AIRLOOP_FEAST_OFFLINE_STORE"] != "postgres":
        return None
    schema, table = values["AIRLOOP_FEAST_PG_SCHEMA"], view.name
    qualified = f"{_quote(schema)}.{_quote(table)}"
    columns = [f"{_quote(k)} TEXT" for k in view.join_keys]
    columns.append(f"{_quote(view.timestamp_field)} TIMESTAMPTZ NOT NULL")
    columns += [f"{_quote(f)} {_PG_TYPES.get(t, 'DOUBLE PRECISION')}" for f, t in zip(view.features, view.dtypes)]
    names = [*view.join_keys, view.timestamp_field, *view.features]
    rows = [
        {**{f"c{i}": (None if _is_null(v) else (v.to_pydatetime() if hasattr(v, "to_pydatetime") else v.item() if hasattr(v, "item") else v))
            for i, v in enumerate(record)}, "ds": day}
        for record in frame[names].itertuples(index=False, name=None)
    ]
    engine = _offline_engine(values)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}"))
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS {qualified} (ds DATE NOT NULL, {', '.join(columns)})"))
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"{qualified}/{day}"})
            conn.execute(text(f"DELETE FROM {qualified} WHERE ds = :ds"), {"ds": day})
            if rows:
                placeholders = ", ".join(f":c{i}" for i in range(len(names)))
                conn.execute(
                    text(f"INSERT INTO {qualified} (ds, {', '.join(_quote(n) for n in names)}) VALUES (:ds, {placeholders})"), rows
                )
    finally:
        engine.dispose()
    return len(rows)


def _is_null(value) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


# --- reading feature partitions --------------------------------------------------------------


def _partition_days_for(view: ViewLayout, first: datetime, last: datetime, tz: str) -> list[date]:
    """Partitions that can hold rows of ``view`` with timestamps in ``[first - ttl, last]``."""
    zone = ZoneInfo(tz)
    low = (first - (view.ttl or timedelta(0))).astimezone(zone)
    high = last.astimezone(zone)
    # A partition D holds instants of local day D and the instant D closes (= start of D + 1),
    # so a row at a local midnight may sit in the partition of the day before.
    first_day = low.date() - timedelta(days=1 if low.time() == time(0) else 0)
    # A daily snapshot's rows are all at the close of D: none of D's is at or before an instant
    # inside D (a lookup at D 02:00 needs D-1 at the latest, the data that exists by then).
    last_day = high.date() - timedelta(days=1) if view.daily_snapshot else high.date()
    return ds_range(first_day, last_day) if last_day >= first_day else []


def read_feature_rows(
    lake: "Lake", view: ViewLayout, days: list[date], *, first_day: date | None = None, strict: bool = True, con=None
) -> "pa.Table":
    """The rows of ``view`` in the partitions of ``days`` (sha256 checked), one Arrow table.

    :param first_day: partitions before it are not expected to exist (before the source's history).
    :param strict: raise :class:`MissingFeaturePartition` for a missing partition (else skip it).
    :param con: a DuckDB connection to decode local files with (opening one costs ~15 ms).
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from concurrent.futures import ThreadPoolExecutor

    columns = [*view.join_keys, view.timestamp_field, *view.features]

    def read(day: date):
        prefix = f"{view.lake_prefix}/ds={day.isoformat()}"
        try:
            _, files = read_partition_files(lake, prefix)
        except PartitionNotFound:
            if not strict or (first_day is not None and day < first_day):
                return None
            raise MissingFeaturePartition(
                f"feature partition {lake.uri(prefix)} is missing: compute features for {day} first "
                f"(`airloop features compute {day}` or the materialize_features DAG)"
            ) from None
        return pq.ParquetFile(pa.BufferReader(files["part.parquet"])).read(columns=columns)

    if isinstance(lake, LocalLake):
        return _read_local_feature_rows(lake, view, days, first_day=first_day, strict=strict, con=con)
    else:
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(days)))) as pool:  # wait on the network in parallel
            tables = [t for t in pool.map(read, days) if t is not None]
    if not tables:
        return None
    return _utc_micros(pa.concat_tables(tables, promote_options="permissive"), view.timestamp_field)


def _read_local_feature_rows(lake: "LocalLake", view: ViewLayout, days: list[date], *, first_day, strict, con=None) -> "pa.Table | None":
    """:func:`read_feature_rows` on a local lake: each file checked against its manifest's sha256,
    then all decoded by one parallel DuckDB ``read_parquet`` (about twice as fast as one
    pyarrow read per small file)."""
    files = []
    for day in days:
        prefix = f"{view.lake_prefix}/ds={day.isoformat()}"
        base = lake.local_path(prefix)
        if not (base / MANIFEST_NAME).is_file():
            if not strict or (first_day is not None and day < first_day):
                continue
            raise MissingFeaturePartition(
                f"feature partition {lake.uri(prefix)} is missing: compute features for {day} first "
                f"(`airloop features compute {day}` or the materialize_features DAG)"
            )
        manifest = json.loads((base / MANIFEST_NAME).read_bytes())
        for entry in manifest["files"]:
            if entry["logical_name"] != "part.parquet":
                continue
            path = base / entry["name"]
            if not path.is_file() or sha256_bytes(path.read_bytes()) != entry["sha256"]:
                raise PartitionCorrupt(f"{lake.uri(prefix)}/{entry['name']} is missing or does not match its manifest's sha256")
            files.append(str(path))
    if not files:
        return None
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    columns = ", ".join(_quote(c) for c in [*view.join_keys, view.timestamp_field, *view.features])
    table = (con or _duckdb()).sql(f"SELECT {columns} FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false)").to_arrow_table()
    return _utc_micros(table, view.timestamp_field)


def _duckdb():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ttl_sql(ttl: timedelta) -> str:
    return f"INTERVAL {int(ttl.total_seconds() * 1_000_000)} MICROSECONDS"


def _empty_view_table(view: ViewLayout, sample: "pa.Table"):
    import pyarrow as pa

    types = {"Int64": pa.int64(), "Int32": pa.int32(), "Float64": pa.float64(), "Float32": pa.float32(), "String": pa.string()}
    fields = [pa.field(k, sample.schema.field(k).type if k in sample.schema.names else pa.string()) for k in view.join_keys]
    fields.append(pa.field(view.timestamp_field, pa.timestamp("us", tz="UTC")))
    fields += [pa.field(f, types.get(t, pa.float64())) for f, t in zip(view.features, view.dtypes)]
    return pa.schema(fields).empty_table()


def point_in_time_join(entities: "pa.Table", layout: ServiceLayout, tables: dict[str, "pa.Table | None"], *, con=None) -> list["pa.Table"]:
    """ASOF-join ``entities`` (join keys, ``event_timestamp``, ``__row``) to each view's rows.

    For each entity row and view: the row with the same join keys and the latest timestamp at
    or before the entity's ``event_timestamp``; its features when that timestamp is within the
    view's TTL, nulls otherwise (and for keys with no rows). Returns one table per view with
    ``__row`` and its features, one row per entity row, in no particular order. (One query per
    view: a single query chaining five ASOF joins carries every column through each join and
    measured 3x slower at 1M rows.)
    """
    con = con or _duckdb()
    con.register("entity_rows", entities)
    out = []
    for i, view in enumerate(layout.views):
        table = tables.get(view.name)
        con.register(f"view_{i}", table if table is not None else _empty_view_table(view, entities))
        on = " AND ".join(f"e.{_quote(k)} = v.{_quote(k)}" for k in view.join_keys)
        ts = f"v.{_quote(view.timestamp_field)}"
        fresh = f"{ts} >= e.{EVENT_TIMESTAMP} - {_ttl_sql(view.ttl)}" if view.ttl else "TRUE"
        selects = ", ".join(f"CASE WHEN {fresh} THEN v.{_quote(f)} END AS {_quote(f)}" for f in view.features)
        sql = f"SELECT e.__row, {selects} FROM entity_rows e ASOF LEFT JOIN view_{i} v ON {on} AND e.{EVENT_TIMESTAMP} >= {ts}"
        out.append(con.sql(sql).to_arrow_table())
    return out


def _utc_micros(table: "pa.Table", column: str) -> "pa.Table":
    """``column`` as microsecond UTC timestamps (DuckDB's TIMESTAMPTZ), so joins compare like types."""
    import pyarrow as pa

    index = table.schema.get_field_index(column)
    return table.set_column(index, column, table.column(column).cast(pa.timestamp("us", tz="UTC")))


def _entity_table(entity_df: "pd.DataFrame", keys: list[str]) -> "pa.Table":
    """The join keys, ``event_timestamp`` and a row number of ``entity_df`` (nothing else travels)."""
    import pandas as pd
    import pyarrow as pa

    missing = [k for k in [*keys, EVENT_TIMESTAMP] if k not in entity_df.columns]
    if missing:
        raise FeatureError(f"the entity rows miss the columns {missing} (they have {list(entity_df.columns)})")
    stamps = pd.to_datetime(entity_df[EVENT_TIMESTAMP], utc=True)
    if stamps.isna().any():
        raise FeatureError(f"{int(stamps.isna().sum())} entity rows have no {EVENT_TIMESTAMP}")
    columns = {k: pa.array(entity_df[k].to_numpy(dtype=object), pa.string(), from_pandas=True) for k in keys}  # NaN/None -> null
    columns[EVENT_TIMESTAMP] = pa.array(stamps.dt.as_unit("us"), pa.timestamp("us", tz="UTC"))
    columns["__row"] = pa.array(range(len(entity_df)), pa.int64())
    return pa.table(columns)


def _with_features(joined: "list[pa.Table]", entity_df: "pd.DataFrame", layout: ServiceLayout) -> "pd.DataFrame":
    """``entity_df`` (unchanged, same index) with the joined features appended as float64.

    Every feature comes back as float64 with NaN for null, whatever its Feast type, so a
    column's dtype never depends on whether a batch happened to contain a null.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    values = {}
    for table in joined:
        if table.num_rows != len(entity_df):
            raise FeatureError(f"the point-in-time join returned {table.num_rows} rows for {len(entity_df)} entity rows")
        position = table.column("__row").to_numpy()  # a permutation of 0..n-1: scatter back in order
        for feature in table.column_names[1:]:
            column = np.empty(len(entity_df), dtype="float64")
            column[position] = table.column(feature).cast(pa.float64()).to_numpy(zero_copy_only=False)
            values[feature] = column
    features = pd.DataFrame({f: values[f] for f in layout.feature_names}, index=entity_df.index)
    return pd.concat([entity_df.drop(columns=[c for c in layout.feature_names if c in entity_df.columns]), features], axis=1)


def historical_features(
    entity_df: "pd.DataFrame", *, settings: "Settings", feature_service: str | None = None, store=None, lake=None
) -> "pd.DataFrame":
    """Point-in-time correct features for each row of ``entity_df`` (Feast semantics, in DuckDB).

    :param entity_df: the service's join keys and ``event_timestamp`` (tz-aware), any other columns.
    :returns: ``entity_df``'s columns followed by the service's features, same rows and order.
    """
    import pandas as pd

    from airloop.core.storage import open_lake

    store = store or feature_store(settings)
    lake = lake or open_lake(settings)
    layout = service_layout(store, feature_service or default_feature_service(settings))
    entities = _entity_table(entity_df, layout.join_keys)
    if len(entity_df) == 0:
        return _with_features(point_in_time_join(entities, layout, {}), entity_df, layout)
    use_case = _use_case(settings)
    stamps = pd.to_datetime(entity_df[EVENT_TIMESTAMP], utc=True)
    first, last = stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
    first_day = history_start(settings, use_case.features)
    con = _duckdb()
    tables = {
        view.name: read_feature_rows(lake, view, _partition_days_for(view, first, last, use_case.timezone), first_day=first_day, con=con)
        for view in layout.views
    }
    return _with_features(point_in_time_join(entities, layout, tables, con=con), entity_df, layout)


def features_as_of(
    entity_df: "pd.DataFrame",
    as_of: datetime,
    *,
    settings: "Settings",
    feature_service: str | None = None,
    store=None,
    lake=None,
    through: date | None = None,
    layout: ServiceLayout | None = None,
) -> "pd.DataFrame":
    """Features of every row of ``entity_df`` as of one instant (scoring): latest value per entity.

    ``entity_df`` holds the service's join keys (other columns are kept); keys with no row within
    a view's TTL before ``as_of`` get nulls. Equal to :func:`historical_features` with every
    ``event_timestamp`` set to ``as_of``, but reads only the partitions around that instant.

    :param through: read no partition after this day (the skew check compares with an online
        store materialized through it).
    :param layout: the service's registered layout when the caller has it (then neither
        ``store`` nor Feast is needed; see :mod:`airloop.features.registered_layout`).
    :returns: ``entity_df``'s columns, ``event_timestamp`` (= ``as_of``) and the features.
    """
    import pandas as pd

    from airloop.core.storage import open_lake

    if as_of.tzinfo is None:
        raise FeatureError(f"as_of must be timezone-aware, got {as_of!r}")
    lake = lake or open_lake(settings)
    use_case = _use_case(settings)
    if layout is None:
        layout = service_layout(store or feature_store(settings), feature_service or default_feature_service(settings))
    frame = entity_df.drop(columns=[EVENT_TIMESTAMP], errors="ignore").assign(
        **{EVENT_TIMESTAMP: pd.Timestamp(as_of).tz_convert("UTC")}
    )
    entities = _entity_table(frame, layout.join_keys)
    first_day = history_start(settings, use_case.features)
    con = _duckdb()
    con.register("entity_rows", entities)
    con.execute("SET VARIABLE as_of = CAST($as_of AS TIMESTAMPTZ)", {"as_of": as_of})
    selects, joins = ["e.__row"], []
    for i, view in enumerate(layout.views):
        days = [d for d in _partition_days_for(view, as_of, as_of, use_case.timezone) if through is None or d <= through]
        table = read_feature_rows(lake, view, days, first_day=first_day, con=con)
        con.register(f"view_{i}", table if table is not None else _empty_view_table(view, entities))
        ts = _quote(view.timestamp_field)
        keys = ", ".join(_quote(k) for k in view.join_keys)
        low = f"AND CAST({ts} AS TIMESTAMPTZ) >= getvariable('as_of') - {_ttl_sql(view.ttl)}" if view.ttl else ""
        latest = (
            f"SELECT * FROM view_{i} WHERE CAST({ts} AS TIMESTAMPTZ) <= getvariable('as_of') {low} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC) = 1"
        )
        on = " AND ".join(f"e.{_quote(k)} = v{i}.{_quote(k)}" for k in view.join_keys)
        joins.append(f"LEFT JOIN ({latest}) v{i} ON {on}")
        selects += [f"v{i}.{_quote(f)}" for f in view.features]
    sql = f"SELECT {', '.join(selects)} FROM entity_rows e {' '.join(joins)}"
    return _with_features([con.sql(sql).to_arrow_table()], frame, layout)


def entity_rows(raw_events: "pd.DataFrame", *, settings: "Settings") -> "pd.DataFrame":
    """The use case's join keys and request-time columns added to raw event rows (schedule only)."""
    use_case = _use_case(settings)
    return use_case.features.entity_rows(raw_events, use_case.timezone)


def prediction_time(ds: date | str, *, settings: "Settings") -> datetime:
    """The instant day ``ds``'s rows are scored (and looked up, in training too), UTC-aware."""
    use_case = _use_case(settings)
    hour, minute = (int(x) for x in use_case.features.prediction_time.split(":"))
    local = datetime.combine(parse_ds(ds), time(hour, minute), tzinfo=ZoneInfo(use_case.timezone))
    return local.astimezone(timezone.utc)


# --- online store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    rows_read: int
    entities: int
    written: int
    kept_newer: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _entity_key_protos(frame: "pd.DataFrame", view: ViewLayout, config):
    from feast.infra.key_encoding_utils import serialize_entity_key  # noqa: F401  (import check)
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    keys = []
    for values in frame[list(view.join_keys)].itertuples(index=False, name=None):
        keys.append(EntityKey(join_keys=list(view.join_keys), entity_values=[Value(string_val=str(v)) for v in values]))
    return keys


def online_timestamps(store, view: ViewLayout, frame: "pd.DataFrame") -> list:
    """The event timestamps the online store holds for the entities of ``frame`` (None: absent)."""
    fv = store.get_feature_view(view.name, allow_registry_cache=True)
    if store.config.online_store.type == "sqlite":
        return _sqlite_online_timestamps(store, fv, view, frame)
    provider = store._get_provider()  # the provider is Feast's documented online-store interface
    rows = provider.online_read(store.config, fv, _entity_key_protos(frame, view, store.config), None)
    return [ts for ts, _ in rows]


def _sqlite_online_timestamps(store, fv, view: ViewLayout, frame: "pd.DataFrame") -> list:
    """Event timestamps straight from Feast's SQLite table: one row per entity, no feature decoding.

    Feast's ``online_read`` decodes every feature of every entity to return one timestamp; this
    reads the rows of one feature only (an entity's features share their timestamp). The value is
    what Feast stores: epoch seconds of the naive UTC instant, read back as Feast does.
    """
    import sqlite3

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.sqlite import _table_id

    config = store.config
    table = _table_id(config.project, fv, config.registry.enable_online_feature_view_versioning)
    keys = [serialize_entity_key(k, entity_key_serialization_version=config.entity_key_serialization_version)
            for k in _entity_key_protos(frame, view, config)]
    found: dict[bytes, datetime] = {}
    with contextlib.closing(sqlite3.connect(config.online_store.path, timeout=30)) as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for key, event_ts in conn.execute(
                f'SELECT entity_key, event_ts FROM "{table}" WHERE feature_name = ? AND entity_key IN ({marks})',
                [view.features[0], *chunk],
            ):
                found[bytes(key)] = datetime.fromtimestamp(int(event_ts))
    return [found.get(k) for k in keys]


def materialize(
    start: date | str,
    end: date | str,
    *,
    settings: "Settings",
    views: list[str] | None = None,
    feature_service: str | None = None,
    store=None,
    lake=None,
) -> list[MaterializeResult]:
    """Load the latest row per entity of partitions ``[start, end]`` into the online store.

    All partitions are read (and checked) before anything is written. A missing ``end``
    partition raises :class:`MissingFeaturePartition`; missing earlier ones (the overlap, e.g.
    during an out-of-order backfill) are skipped with a warning. An entity whose online value is newer than the interval's
    latest row keeps it, so backfilling an older interval after a newer one changes nothing;
    rerunning an interval writes the same values again.

    :param views: feature views to load (default: every view of the feature service).
    """
    import pandas as pd
    import pyarrow as pa

    from airloop.core.storage import open_lake

    store = store or feature_store(settings)
    lake = lake or open_lake(settings)
    use_case = _use_case(settings)
    layout = service_layout(store, feature_service or default_feature_service(settings))
    chosen = [v for v in layout.views if not views or v.name in views]
    days = ds_range(start, end)
    first_day = history_start(settings, use_case.features)
    frames = {}
    for view in chosen:
        for day in days[:-1]:
            if read_manifest(lake, f"{view.lake_prefix}/ds={day.isoformat()}") is None and day >= first_day:
                log.warning("materialize %s: partition %s is missing; loading the other days", view.name, day)
        table = read_feature_rows(lake, view, days[:-1], first_day=first_day, strict=False)
        last = read_feature_rows(lake, view, days[-1:], first_day=first_day)
        table = last if table is None else table if last is None else pa.concat_tables([table, last])
        frame = table.to_pandas() if table is not None else pd.DataFrame(columns=[*view.join_keys, view.timestamp_field, *view.features])
        frames[view.name] = frame
    results = []
    for view in chosen:
        frame = frames[view.name]
        rows_read = len(frame)
        latest = (
            frame.sort_values([*view.join_keys, view.timestamp_field])
            .drop_duplicates(list(view.join_keys), keep="last")
            .reset_index(drop=True)
        )
        kept_newer = 0
        if len(latest):
            current = online_timestamps(store, view, latest)
            stamps = pd.to_datetime(latest[view.timestamp_field], utc=True)
            # Online stores return naive UTC (SQLite) or aware instants; None for an absent key.
            online = pd.to_datetime(pd.Series(current, dtype=object, index=stamps.index), utc=True)
            newer_online = online.notna() & (online > stamps)
            kept_newer = int(newer_online.sum())
            latest = latest[~newer_online.to_numpy()]
        if len(latest):
            with feast_sqlite_adapters():
                store.write_to_online_store(view.name, latest, allow_registry_cache=True)
        log.info("materialized %s %s..%s: %d rows read, %d entities, %d written, %d kept newer online values",
                 view.name, days[0], days[-1], rows_read, len(latest) + kept_newer, len(latest), kept_newer)
        results.append(MaterializeResult(view.name, rows_read, len(latest) + kept_newer, len(latest), kept_newer))
    return results


def online_features(entity_df: "pd.DataFrame", *, settings: "Settings", feature_service: str | None = None, store=None) -> "pd.DataFrame":
    """The online store's current values for each row of ``entity_df`` (Feast's ``get_online_features``)."""
    store = store or feature_store(settings)
    name = feature_service or default_feature_service(settings)
    layout = service_layout(store, name)
    rows = entity_df[layout.join_keys].astype(object).where(entity_df[layout.join_keys].notna(), "").to_dict("records")
    service = store.get_feature_service(name)
    with feast_sqlite_adapters():
        frame = store.get_online_features(features=service, entity_rows=rows).to_df()
    out = entity_df.reset_index(drop=True).copy()
    for feature in layout.feature_names:
        out[feature] = frame[feature].to_numpy()
    out.index = entity_df.index
    return out


@dataclass(frozen=True)
class SkewReport:
    as_of: datetime
    rows: int
    features: int
    mismatches: list
    expired_online: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "rows": self.rows, "features": self.features,
                "mismatches": len(self.mismatches), "examples": self.mismatches[:10], "ok": self.ok,
                "expired_online_values": self.expired_online}


def skew_check(
    entity_df: "pd.DataFrame", ds: date | str, *, settings: "Settings", feature_service: str | None = None,
    store=None, lake=None, tolerance: float = 1e-9,
) -> SkewReport:
    """Compare online values with offline ones for the rows of ``entity_df``, after day ``ds``.

    The online store must have been materialized through ``ds`` (and not beyond). Offline
    values are :func:`features_as_of` the instant ``ds`` closes, from partitions up to ``ds``:
    the same data, so any difference is skew (serialisation, types, a stale or partial load).
    A mismatch is a (row, feature) whose values differ by more than ``tolerance`` or where
    exactly one side is null.
    """
    import math

    day = parse_ds(ds)
    as_of = day_window(day, _use_case(settings).timezone)[1]
    store = store or feature_store(settings)
    name = feature_service or default_feature_service(settings)
    layout = service_layout(store, name)
    offline = features_as_of(entity_df, as_of, settings=settings, feature_service=name, store=store, lake=lake, through=day)
    online = online_features(entity_df, settings=settings, feature_service=name, store=store)
    # The online store serves its latest value however old; offline, a value past the view's TTL
    # is null. Apply the same TTL to the online values (counted, not reported as skew).
    import pandas as pd

    expired = 0
    for view in layout.views:
        if view.ttl is None:
            continue
        keys = entity_df[list(view.join_keys)].astype(object).where(entity_df[list(view.join_keys)].notna(), "")
        stamps = pd.to_datetime(pd.Series(online_timestamps(store, view, keys), dtype=object), utc=True)
        too_old = (stamps < pd.Timestamp(as_of) - view.ttl).to_numpy()
        expired += int(too_old.sum())
        online.loc[too_old, list(view.features)] = None
    mismatches = []
    for feature in layout.feature_names:
        for i, (a, b) in enumerate(zip(offline[feature].tolist(), online[feature].tolist())):
            a_null = a is None or (isinstance(a, float) and math.isnan(a))
            b_null = b is None or (isinstance(b, float) and math.isnan(b))
            if a_null and b_null:
                continue
            if a_null != b_null or abs(float(a) - float(b)) > tolerance:
                keys = {k: offline[k].iloc[i] for k in layout.join_keys}
                mismatches.append({"row": i, "feature": feature, "offline": a, "online": b, **keys})
    return SkewReport(as_of, len(entity_df), len(layout.feature_names), mismatches, expired)
