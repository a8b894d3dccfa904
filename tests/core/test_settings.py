"""Settings refuse what cannot be right, each with a message naming the variable (and no secret)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airloop.core.config import Settings, SettingsError, check_range, env_float, env_int, get_settings
from testkit import ROOT


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean Airloop environment under tmp_path; set variables on the returned monkeypatch."""
    for name in [n for n in os.environ if n.startswith("AIRLOOP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_the_defaults_are_valid(env, tmp_path):
    settings = Settings.from_env()
    assert settings.replay_offset_days == 4746 and settings.replay_offset_days % 7 == 0
    assert settings.lake_url == (tmp_path / "lake").as_uri()


@pytest.mark.parametrize("offset", ["0", "7", "4746", "-14"])
def test_replay_offsets_in_whole_weeks_are_accepted(env, offset):
    env.setenv("AIRLOOP_REPLAY_OFFSET_DAYS", offset)
    assert Settings.from_env().replay_offset_days == int(offset)


@pytest.mark.parametrize("offset, nearest", [("4745", "4739 or 4746"), ("1", "0 or 7"), ("-3", "-7 or 0")])
def test_a_replay_offset_off_whole_weeks_is_refused(env, offset, nearest):
    env.setenv("AIRLOOP_REPLAY_OFFSET_DAYS", offset)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert str(err.value).startswith("AIRLOOP_REPLAY_OFFSET_DAYS must be a multiple of 7 so replayed days keep")
    assert str(err.value).endswith(f"weekdays, got {offset} (nearest: {nearest})")


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AIRLOOP_REPLAY_OFFSET_DAYS", "4746.0", "AIRLOOP_REPLAY_OFFSET_DAYS must be an integer, got '4746.0'"),
        ("AIRLOOP_MAX_QUARANTINE_SHARE", "-0.01", "AIRLOOP_MAX_QUARANTINE_SHARE must be between 0 and 1, got -0.01"),
        ("AIRLOOP_MAX_QUARANTINE_SHARE", "1.5", "AIRLOOP_MAX_QUARANTINE_SHARE must be between 0 and 1, got 1.5"),
        ("AIRLOOP_MAX_QUARANTINE_SHARE", "nan", "AIRLOOP_MAX_QUARANTINE_SHARE must be a finite number, got 'nan'"),
        ("AIRLOOP_MAX_QUARANTINE_SHARE", "inf", "AIRLOOP_MAX_QUARANTINE_SHARE must be a finite number, got 'inf'"),
        ("AIRLOOP_MAX_QUARANTINE_SHARE", "1%", "AIRLOOP_MAX_QUARANTINE_SHARE must be a number, got '1%'"),
        ("AIRLOOP_QUARANTINE_GATE_MIN_ROWS", "-1", "AIRLOOP_QUARANTINE_GATE_MIN_ROWS must be 0 or more, got -1"),
        ("AIRLOOP_USE_CASE", "airloop.usecases.flights", "AIRLOOP_USE_CASE must be 'package.module:NAME'"),
        ("AIRLOOP_LAKE_URL", "/no/scheme/lake", "AIRLOOP_LAKE_URL must start with file:// or s3://"),
        ("AIRLOOP_LAKE_URL", "file://data/lake", "names the host 'data': a local lake is file:///absolute/path"),
        ("AIRLOOP_LAKE_URL", "s3:///lake", "names no bucket"),
        ("AIRLOOP_LAKE_URL", "s3://bucket/lake?versionId=3", "must name only a place"),
        ("AIRLOOP_S3_ENDPOINT_URL", "127.0.0.1:9000", "AIRLOOP_S3_ENDPOINT_URL must be http(s)://host[:port]"),
        ("AIRLOOP_SOURCE_URL", "data/source.db", "AIRLOOP_SOURCE_URL=data/source.db is not a SQLAlchemy URL"),
        ("AIRLOOP_REGISTRY_URL", "postgres://airloop@db/registry", "names this database postgresql://, not postgres://"),
    ],
)  # fmt: skip
def test_values_that_would_silently_change_results_are_refused(env, name, value, message):
    env.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert message in str(err.value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("AIRLOOP_LAKE_URL", "s3://AKIAEXAMPLE:s3cr3t@bucket/lake"),
        ("AIRLOOP_LAKE_URL", "s3://bucket/lake?secret_key=s3cr3t"),
        ("AIRLOOP_S3_ENDPOINT_URL", "http://minio:s3cr3t@127.0.0.1:9000"),
        ("AIRLOOP_SOURCE_URL", "sqlite3:/data/s3cr3t@source"),
        ("AIRLOOP_REGISTRY_URL", "postgres://airloop:s3cr3t@db/registry"),
    ],
)
def test_a_refused_url_is_named_without_its_credentials(env, name, value):
    env.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert name in str(err.value) and "s3cr3t" not in str(err.value)


@pytest.mark.parametrize(
    "url, install",
    [("mysql://airloop:s3cr3t@db/source", "pip install mysqlclient"),
     ("mysql+mysqlconnector://airloop:s3cr3t@db/source", "pip install mysql-connector-python"),
     ("mssql+pymssql://airloop:s3cr3t@db/source", "pip install pymssql")],
)  # fmt: skip
def test_a_database_without_its_driver_names_the_package_to_install(env, url, install):
    env.setenv("AIRLOOP_SOURCE_URL", url)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert str(err.value).startswith("AIRLOOP_SOURCE_URL=") and install in str(err.value)
    assert "airloop:***@db" in str(err.value) and "s3cr3t" not in str(err.value)


def test_with_overrides_validates_too(env):
    settings = Settings.from_env()
    with pytest.raises(SettingsError, match="multiple of 7"):
        settings.with_overrides(replay_offset_days=30)
    with pytest.raises(SettingsError, match="between 0 and 1"):
        settings.with_overrides(max_quarantine_share=-0.5)
    assert settings.with_overrides(replay_offset_days=28).replay_offset_days == 28


def test_bounded_readers_name_the_variable_and_the_bound(env):
    env.setenv("AIRLOOP_X", "0")
    with pytest.raises(SettingsError, match="AIRLOOP_X must be 1 or more, got 0"):
        env_int("AIRLOOP_X", 4, minimum=1)
    env.setenv("AIRLOOP_X", "2.5")
    with pytest.raises(SettingsError, match="AIRLOOP_X must be 1 or less, got 2.5"):
        env_float("AIRLOOP_X", 0.5, maximum=1)
    env.delenv("AIRLOOP_X")
    assert env_int("AIRLOOP_X", 4, minimum=1) == 4 and env_float("AIRLOOP_X", 0.5, minimum=0, maximum=1) == 0.5
    check_range("AIRLOOP_X", 0, 0, 1)


def import_with(module: str, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **variables, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}"}
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "module, name, value, message",
    [
        ("airloop.deploy.dagconfig", "AIRLOOP_CPU_POOL_SLOTS", "0", "AIRLOOP_CPU_POOL_SLOTS must be 1 or more, got 0"),
        ("airloop.deploy.dagconfig", "AIRLOOP_GPU_POOL_SLOTS", "-1", "AIRLOOP_GPU_POOL_SLOTS must be 1 or more, got -1"),
        ("airloop.deploy.dagconfig", "AIRLOOP_CPU_POOL_SLOTS", "four", "AIRLOOP_CPU_POOL_SLOTS must be an integer"),
    ],
)  # fmt: skip
def test_a_pool_without_slots_is_refused_when_the_dags_load(module, name, value, message):
    out = import_with(module, **{name: value})
    assert out.returncode != 0 and f"SettingsError: {message}" in out.stderr


def test_task_retries_and_monitoring_knobs_refuse_negative_values(env):
    from airloop.deploy.dagconfig import default_args
    from airloop.monitoring import DriftPolicy, MonitorConfig

    for name, make in (("AIRLOOP_TASK_RETRIES", default_args), ("AIRLOOP_RETRY_DELAY_S", default_args),
                       ("AIRLOOP_MONITOR_OUTCOME_LAG_DAYS", MonitorConfig.from_env),
                       ("AIRLOOP_MONITOR_OUTCOME_LAG_DAYS", DriftPolicy.from_env),
                       ("AIRLOOP_LATE_MINUTES", MonitorConfig.from_env),
                       ("AIRLOOP_MONITOR_MIN_ROWS", MonitorConfig.from_env)):  # fmt: skip
        env.setenv(name, "-1")
        with pytest.raises(SettingsError, match=f"{name} must be"):
            make()
        env.delenv(name)
