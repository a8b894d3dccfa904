"""The Feast repo of the settings: its ``feature_store*.yaml``, the ``FeatureStore``, its definitions.

Settings (environment): ``AIRLOOP_FEAST_PROFILE`` picks ``feature_repo/feature_store.<profile>.yaml``
(default: the Airloop profile; ``embedded`` uses ``feature_store.yaml``). The ``${VAR}`` values of
that file come from the environment, else from :func:`feast_environment`'s defaults (SQL registry
``<data_dir>/feast/registry.db``, SQLite online store ``<data_dir>/feast/online.db``). Writers of
one SQL registry are serialised by :func:`registry_lock`.
"""

from __future__ import annotations

import contextlib
import os
import re
import runpy
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterator
from urllib.parse import urlsplit

from airloop.core.config import env_str
from airloop.core.storage import sha256_bytes
from airloop.features.errors import FeatureError

if TYPE_CHECKING:
    from airloop.core.config import Settings

DEFINITIONS_FILE = "definitions.py"


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
        from sqlalchemy import text

        from airloop.core.database import create_engine

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
