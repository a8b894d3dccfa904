"""Applying the Feast repo: only when it changed, never an incompatible change, safe when concurrent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from airloop import features as F
from airloop.features.apply import _registry_summary
from testkit import port_open, repo_copy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


def registered(settings) -> str:
    return F.definitions_hash(_registry_summary(F.feature_store(settings)))


def test_apply_only_when_definitions_changed(settings):
    first = F.apply_definitions(settings)
    second = F.apply_definitions(settings)
    assert first.applied and not second.applied
    assert first.definitions_hash == second.definitions_hash == registered(settings)


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda t: t.replace(
            "features=[origin_weather, carrier_delay_stats, origin_delay_stats, route_delay_stats, aircraft_attributes],",
            "features=[origin_weather, carrier_delay_stats, origin_delay_stats, route_delay_stats],"),
         "feature service 'flight_delay_v1' is released"),
        (lambda t: t.replace('Field(name="aircraft_seats", dtype=Int64', 'Field(name="aircraft_seats", dtype=Float64'),
         "aircraft_attributes:aircraft_seats changes type from Int64 to Float64"),
        (lambda t: t.replace('join_keys=["route"]', 'join_keys=["route_id"]'), "entity 'route' changes"),
        (lambda t: t.replace('        Field(name="visib", dtype=Float64, description="miles"),\n', ""), "origin_weather:visib is removed"),
    ],
    ids=["service-features", "feature-type", "join-key", "removed-feature"],
)
def test_incompatible_change_fails_before_any_write(settings, tmp_path, edit, reason):
    F.apply_definitions(settings)
    before = registered(settings)
    changed = settings.with_overrides(feature_repo=repo_copy(tmp_path, edit))
    with pytest.raises(F.IncompatibleDefinitionChange, match=reason.replace("(", r"\(").replace(")", r"\)")) as err:
        F.apply_definitions(changed)
    assert "nothing was applied" in str(err.value)
    assert registered(settings) == before


def test_compatible_change_is_applied(settings, tmp_path):
    F.apply_definitions(settings)
    v2 = '''
flight_delay_v2 = FeatureService(
    name="flight_delay_v2",
    features=[origin_weather[["temp", "visib"]], carrier_delay_stats],
    tags={"model": "flight_delay_xgb", "version": "2"},
)
'''
    changed = settings.with_overrides(feature_repo=repo_copy(tmp_path, lambda t: t.replace("WEATHER_TTL = DAILY_SNAPSHOT_TTL", "WEATHER_TTL = timedelta(hours=7)") + v2))
    result = F.apply_definitions(changed)
    assert result.applied
    store = F.feature_store(changed)
    assert F.service_layout(store, "flight_delay_v2").feature_names[:2] == ["temp", "visib"]
    assert F.service_layout(store, "flight_delay_v1").views[0].ttl.total_seconds() == 7 * 3600
    assert F.feature_columns("flight_delay_v2", settings=changed)[4:6] == ["temp", "visib"]


APPLY = """
import json, os, sys, time
from pathlib import Path
from airloop.core.config import Settings
from airloop import features as F
settings = Settings.from_env()
store = F.feature_store(settings)
definitions = F.load_definitions(settings)
go = Path(sys.argv[1])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
result = F.apply_definitions(settings, store=store, definitions=definitions)
print(json.dumps({"applied": result.applied}))
"""


def concurrent_applies(tmp_path: Path, registry_url: str, workers: int = 2) -> list[dict]:
    """Start ``workers`` processes that apply the repo at the same instant; return their results."""
    env = {
        **os.environ,
        "AIRLOOP_DATA_DIR": str(tmp_path / "data"),
        "AIRLOOP_FEAST_REGISTRY_PATH": registry_url,
        "AIRLOOP_FEAST_ONLINE_PATH": str(tmp_path / "online.db"),
        "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}",
    }
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", APPLY, str(go)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    # Release them together once each has loaded Feast and the definitions.
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < workers and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def check_registry(tmp_path: Path, registry_url: str) -> None:
    from airloop.core.config import Settings

    settings = Settings().with_overrides(data_dir=tmp_path / "data", lake_url=(tmp_path / "data" / "lake").as_uri())
    os.environ["AIRLOOP_FEAST_REGISTRY_PATH"] = registry_url
    try:
        store = F.feature_store(settings)
        registry = store.registry
        views = [v.name for v in registry.list_feature_views(store.project, allow_cache=False)]
        assert sorted(views) == sorted(set(views)) and len(views) == 5
        assert [s.name for s in registry.list_feature_services(store.project, allow_cache=False)] == ["flight_delay_v1"]
    finally:
        os.environ.pop("AIRLOOP_FEAST_REGISTRY_PATH", None)


@pytest.mark.slow
def test_two_concurrent_applies_on_the_sqlite_registry(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    results = concurrent_applies(tmp_path, url)
    assert sorted(r["applied"] for r in results) == [False, True]
    check_registry(tmp_path, url)


@pytest.mark.slow
@pytest.mark.services
def test_two_concurrent_applies_on_the_postgres_registry(tmp_path):
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    name = f"airloop_feast_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        results = concurrent_applies(tmp_path, url)
        assert sorted(r["applied"] for r in results) == [False, True]
        check_registry(tmp_path, url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
