"""The services profile: what it selects, and how it fails when a server is missing.

Real servers only: PostgreSQL and Redis on localhost (skipped with the reason when absent) and
moto's S3 server (the ``moto_server`` fixture).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit import ROOT, port_open

pytestmark = pytest.mark.services

PROFILE = ROOT / "profiles" / "services.env"
VENV_BIN = Path(sys.executable).parent


def _clean_env(**extra) -> dict:
    """The process environment without any Airloop/Airflow/AWS setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOOP_", "AIRFLOW_", "AWS_"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is: nothing listens there


def _profile_as_seen_by_python(env: dict) -> dict:
    code = (
        "import json, os\n"
        "from airloop.core.config import get_settings\n"
        "s = get_settings()\n"
        "print(json.dumps({'settings': {k: str(v) for k, v in vars(s).items()}, 'environ': dict(os.environ)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def _profile_as_seen_by_bash(env: dict) -> dict:
    script = f'ROOT={ROOT}; source {ROOT}/scripts/services-env.sh && env -0'
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=60, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


def test_profile_selects_postgres_redis_and_s3_everywhere(tmp_path):
    seen = _profile_as_seen_by_python(_clean_env(AIRLOOP_PROFILE="services", AIRLOOP_DATA_DIR=str(tmp_path)))
    settings, environ = seen["settings"], seen["environ"]

    assert settings["profile"] == "services"
    assert settings["registry_url"].startswith("postgresql")
    assert settings["source_url"].startswith("postgresql")
    assert settings["lake_url"].startswith("s3://")
    assert settings["s3_endpoint_url"].startswith("http")
    assert environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert environ["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert environ["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert environ["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    assert environ["AIRLOOP_FEAST_REGISTRY_PATH"].startswith("postgresql")
    assert environ["AIRLOOP_FEAST_OFFLINE_STORE"] == "postgres"
    assert environ["AIRLOOP_FEAST_REDIS"].startswith("127.0.0.1:6379")
    # CPU work and Airflow's default queue go to the cpu workers; training's profile to gpu.
    assert environ["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "cpu"
    assert environ["AIRLOOP_DEFAULT_QUEUE"] == "cpu"
    sqlite = {k: v for k, v in {**environ, **settings}.items() if "sqlite" in str(v).lower()}
    assert sqlite == {}, f"the services profile still points at SQLite: {sqlite}"


def test_profile_connections_are_airflow_connections():
    env = _profile_as_seen_by_python(_clean_env(AIRLOOP_PROFILE="services"))["environ"]
    lake = json.loads(env["AIRFLOW_CONN_AIRLOOP_LAKE"])
    assert lake["conn_type"] == "aws"
    assert lake["extra"]["endpoint_url"] == env["AIRLOOP_S3_ENDPOINT_URL"]
    assert env["AIRFLOW_CONN_AIRLOOP_REGISTRY"].startswith("postgres://")
    assert env["AIRFLOW_CONN_AIRLOOP_SOURCE"].startswith("postgres://")


def test_bash_and_python_read_the_profile_alike(tmp_path):
    """services-up.sh exports the same values Airloop code loads, and the environment wins in both."""
    env = _clean_env(
        AIRLOOP_PROFILE="services",
        AIRLOOP_SERVICES_DIR=str(tmp_path / "services"),
        AIRLOOP_REGISTRY_URL="postgresql+psycopg2://postgres@127.0.0.1:5432/overridden",
    )
    py = _profile_as_seen_by_python(env)["environ"]
    sh = _profile_as_seen_by_bash(env)
    profile_keys = [
        line.split("=", 1)[0].strip()
        for line in PROFILE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]
    assert len(profile_keys) > 20
    differ = {k: (py.get(k), sh.get(k)) for k in profile_keys if k != "AIRLOOP_SERVICES_DIR" and py.get(k) != sh.get(k)}
    assert differ == {}
    assert sh["AIRLOOP_REGISTRY_URL"].endswith("/overridden")
    # Secrets are generated outside the repository, private to the user.
    secrets = tmp_path / "services" / "secrets.env"
    assert oct(secrets.stat().st_mode & 0o777) == "0o600"
    assert sh["AIRFLOW__API_AUTH__JWT_SECRET"] and "AIRFLOW__API_AUTH__JWT_SECRET" not in PROFILE.read_text()


def test_redis_unavailable_is_a_clear_bounded_error():
    from airloop.deploy.services import ServiceUnavailable, check_redis

    url = f"redis://127.0.0.1:{_closed_port()}/0"
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"Redis unavailable at redis://127\.0\.0\.1:\d+/0 \(AIRFLOW__CELERY__BROKER_URL\)"):
        check_redis(url, variable="AIRFLOW__CELERY__BROKER_URL", timeout_s=2)
    assert time.monotonic() - started < 10


def test_postgres_unavailable_names_server_and_variable():
    from airloop.deploy.services import ServiceUnavailable, check_postgres

    url = f"postgresql://postgres:s3cret@127.0.0.1:{_closed_port()}/airflow"
    with pytest.raises(ServiceUnavailable) as info:
        check_postgres(url, variable="AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", timeout_s=2)
    message = str(info.value)
    assert "PostgreSQL unavailable" in message and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in message
    assert "s3cret" not in message


def test_services_up_refuses_to_start_without_redis(tmp_path):
    """services-up.sh with the broker on a closed port: one clear line, exit 1, nothing started."""
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    services_dir = tmp_path / "services"
    env = _clean_env(
        AIRLOOP_PROFILE="services",
        AIRLOOP_SERVICES_DIR=str(services_dir),
        AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{_closed_port()}/0",
        AIRLOOP_SERVICES_TIMEOUT_S="2",
    )
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services-up.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Redis unavailable at redis://127.0.0.1:" in result.stderr
    assert "AIRFLOW__CELERY__BROKER_URL" in result.stderr
    assert "Nothing was started" in result.stderr
    assert list(services_dir.glob("*.pid")) == []
    assert time.monotonic() - started < 60


@pytest.fixture
def postgres():
    from airloop.deploy.services import ServiceUnavailable, check_postgres

    try:
        check_postgres("postgresql://postgres@127.0.0.1:5432/postgres", timeout_s=2)
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    return "postgresql://postgres@127.0.0.1:5432"


def test_ensure_database_creates_once(postgres):
    import psycopg2

    from airloop.deploy.services import ensure_database

    name = f"airloop_test_create_{os.getpid()}_{int(time.time())}"
    try:
        assert ensure_database(f"{postgres}/{name}") is True
        assert ensure_database(f"{postgres}/{name}") is False
    finally:
        conn = psycopg2.connect(f"{postgres}/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()


def test_missing_bucket_error_names_it_and_setup_creates_it(s3_env, tmp_path, monkeypatch):
    from airloop.core.config import Settings
    from airloop.deploy.setup import ensure_bucket
    from airloop.core.storage import StorageError, open_lake

    bucket = f"airloop-missing-{os.getpid()}"
    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIRLOOP_LAKE_URL", f"s3://{bucket}/lake")
    settings = Settings.from_env()
    lake = open_lake(settings)

    with pytest.raises(StorageError, match=rf"s3://{bucket}/lake/raw/x\.json.*NoSuchBucket"):
        lake.write_bytes("raw/x.json", b"{}")

    assert ensure_bucket(settings) == f"bucket {bucket} created"
    assert ensure_bucket(settings) == f"bucket {bucket} exists"
    lake.write_bytes("raw/x.json", b"{}")
    assert lake.read_bytes("raw/x.json") == b"{}"
