"""Pre-flight checks and database creation for the services profile (PostgreSQL, Redis, S3).

``scripts/services-up.sh`` calls these (through ``airloop services ...``) before it starts any
Airflow process, so a missing server is one clear line naming the server, the URL (password
redacted) and the variable that holds it, within a bounded time, instead of a worker that
retries its broker forever.

Which URLs are checked comes from the environment the profile file set:

- PostgreSQL: ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, ``AIRFLOW__CELERY__RESULT_BACKEND``,
  ``AIRLOOP_REGISTRY_URL``, ``AIRLOOP_SOURCE_URL``, ``AIRLOOP_FEAST_REGISTRY_PATH``;
- Redis: ``AIRFLOW__CELERY__BROKER_URL``, ``AIRLOOP_FEAST_REDIS`` (Feast's ``host:port,db=N``);
- S3: ``AIRLOOP_S3_ENDPOINT_URL`` (checked by :func:`check_s3` once the server runs).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

from airloop.core.redaction import redact_text, redact_url, url_secrets

POSTGRES_VARS = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRLOOP_REGISTRY_URL",
    "AIRLOOP_SOURCE_URL",
    "AIRLOOP_FEAST_REGISTRY_PATH",
)
REDIS_VARS = ("AIRFLOW__CELERY__BROKER_URL", "AIRLOOP_FEAST_REDIS")


class ServiceUnavailable(ConnectionError):
    """A server the profile needs cannot be reached; the message names it and its variable."""


@dataclass(frozen=True)
class Endpoint:
    """One server URL the profile uses, and the variable it came from."""

    kind: str  # "postgresql" | "redis"
    variable: str
    url: str

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)


def _sqlalchemy_to_libpq(url: str) -> str:
    """``db+postgresql+psycopg2://u@h/db`` -> ``postgresql://u@h/db`` (what psycopg2 accepts)."""
    parts = urlsplit(url.removeprefix("db+"))
    return urlunsplit(parts._replace(scheme="postgresql"))


def _feast_redis_to_url(value: str) -> str:
    """Feast's ``host:port,db=1,password=x`` connection string as a ``redis://`` URL."""
    hostport, *params = value.split(",")
    options = dict(p.split("=", 1) for p in params if "=" in p)
    password = f":{options['password']}@" if options.get("password") else ""
    return f"redis://{password}{hostport}/{options.get('db', '0')}"


def profile_endpoints(environ: Mapping[str, str] | None = None) -> list[Endpoint]:
    """The PostgreSQL and Redis servers named by the environment (unset variables are skipped)."""
    env = os.environ if environ is None else environ
    found = []
    for var in POSTGRES_VARS:
        value = env.get(var, "")
        if value.removeprefix("db+").startswith("postgres"):
            found.append(Endpoint("postgresql", var, _sqlalchemy_to_libpq(value)))
    for var in REDIS_VARS:
        value = env.get(var, "")
        if not value:
            continue
        url = value if value.startswith(("redis://", "rediss://")) else _feast_redis_to_url(value)
        found.append(Endpoint("redis", var, url))
    return found


def sqlite_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables of the profile that still point at SQLite (the services profile must have none)."""
    env = os.environ if environ is None else environ
    return {var: env[var] for var in POSTGRES_VARS if "sqlite" in env.get(var, "").lower()}


def check_postgres(url: str, *, variable: str = "", timeout_s: float = 5) -> str:
    """Connect to the server of ``url`` (its maintenance database ``postgres``) or raise.

    The database itself may not exist yet (:func:`ensure_database` creates it).
    """
    import psycopg2

    parts = urlsplit(url)
    try:
        conn = _connect_maintenance_db(url, timeout_s)
    except psycopg2.OperationalError as exc:
        where = f" ({variable})" if variable else ""
        reason = redact_text(str(exc).strip().splitlines()[0], url_secrets(url))
        raise ServiceUnavailable(
            f"PostgreSQL unavailable at {redact_url(url)}{where}: {reason}. "
            "Start PostgreSQL or point the variable at a running server."
        ) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
    finally:
        conn.close()
    return f"PostgreSQL {version} at {parts.hostname}:{parts.port or 5432}"


def check_redis(url: str, *, variable: str = "", timeout_s: float = 5) -> str:
    """PING the Redis server of ``url`` with bounded connect and read timeouts, or raise."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except (redis.ConnectionError, redis.TimeoutError, socket.error) as exc:
        where = f" ({variable})" if variable else ""
        reason = redact_text(str(exc).rstrip("."), url_secrets(url))
        raise ServiceUnavailable(
            f"Redis unavailable at {redact_url(url)}{where}: {reason}. "
            "Start Redis or point the variable at a running server."
        ) from None
    finally:
        client.close()
    return f"Redis {version} at {redact_url(url)}"


def check_endpoints(endpoints: list[Endpoint], *, timeout_s: float = 5) -> list[str]:
    """Check every endpoint once per distinct server; raise one error listing all that failed."""
    lines, problems, seen = [], [], set()
    for ep in endpoints:
        parts = urlsplit(ep.url)
        key = (ep.kind, parts.hostname, parts.port, parts.path if ep.kind == "redis" else "")
        if key in seen:
            continue
        seen.add(key)
        check = check_postgres if ep.kind == "postgresql" else check_redis
        try:
            lines.append(check(ep.url, variable=ep.variable, timeout_s=timeout_s))
        except ServiceUnavailable as exc:
            problems.append(str(exc))
    if problems:
        raise ServiceUnavailable("\n".join(problems))
    return lines


def ensure_database(url: str, *, timeout_s: float = 5) -> bool:
    """Create the PostgreSQL database named in ``url`` if it is missing; True when created."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError(f"{redact_url(url)} names no database")
    conn = _connect_maintenance_db(url, timeout_s)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            try:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg2.errors.DuplicateDatabase:  # another process won the race
                return False
            return True
    finally:
        conn.close()


def ensure_databases(environ: Mapping[str, str] | None = None) -> list[str]:
    """Create every PostgreSQL database the profile names; one line per database."""
    lines, done = [], set()
    for ep in profile_endpoints(environ):
        if ep.kind != "postgresql" or ep.url in done:
            continue
        done.add(ep.url)
        created = ensure_database(ep.url)
        lines.append(f"database {urlsplit(ep.url).path.lstrip('/')} {'created' if created else 'exists'}")
    return lines


def check_s3(endpoint_url: str, *, timeout_s: float = 5) -> str:
    """Reach the S3-compatible server at ``endpoint_url`` (a TCP connect, bounded), or raise."""
    parts = urlsplit(endpoint_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ServiceUnavailable(
            f"S3 server unavailable at {endpoint_url} (AIRLOOP_S3_ENDPOINT_URL): {exc}"
        ) from None
    return f"S3 server at {endpoint_url}"


def _connect_maintenance_db(url: str, timeout_s: float):
    """Connect to the ``postgres`` maintenance database of the server named by ``url``."""
    import psycopg2

    parts = urlsplit(url)
    return psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
        connect_timeout=max(1, int(timeout_s)),
    )
