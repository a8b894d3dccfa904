"""A small but complete history, built once, that every fault test copies and then breaks.

``airloop.loop.seed.seed_history`` (the stages' own calls on the real source) ingests the days,
computes the features, trains and promotes a first champion (v1), scores and monitors the last
two days. Two more candidates of the same model (v2, v3, registered, not promoted) let the
promotion faults race. Each test gets a private copy (lake folder and SQLite registry).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from faultkit import NEWEST


def build_world(base: Path, source_url: str) -> dict:
    """Seed ``base`` (idempotent: what is in place is kept) and return what it holds."""
    from airloop.core.config import Settings, get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRLOOP_DATA_DIR", str(base))
        mp.setenv("AIRLOOP_SOURCE_URL", source_url)
        for name in ("AIRLOOP_LAKE_URL", "AIRLOOP_REGISTRY_URL", "AIRLOOP_S3_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        get_settings.cache_clear()
        settings = Settings.from_env()
        from airloop.core.storage import open_lake
        from airloop.core.usecase import load_use_case
        from airloop.loop.seed import seed_history
        from airloop.registry import ModelRegistry
        from airloop.training import load_candidate, register_candidate

        use_case = load_use_case(settings.use_case)
        report = seed_history(settings, newest=use_case.day(NEWEST), training_days=14, scored_days=2, log=lambda _: None)
        lake = open_lake(settings)
        registry = ModelRegistry(settings.registry_url)
        [candidate] = sorted({k.rsplit("/", 1)[0] for k in lake.list_keys(f"models/{use_case.model.name}/candidates/")})
        stored = load_candidate(lake, candidate)
        others = [register_candidate(stored, use_case.model, registry=registry, lake=lake, run_id=f"fault/candidate-{i}").version
                  for i in (2, 3)]  # fmt: skip (idempotent per run id)
        registry.engine.dispose()
        get_settings.cache_clear()
    return {"champion": report.champion, "candidates": others, "candidate_prefix": candidate, "model": use_case.model.name}


@pytest.fixture(scope="session")
def fault_world(tmp_path_factory, loaded_source):
    """The seeded data folder (read-only for tests: copy it) and what it holds.

    ``AIRLOOP_FAULTS_WORLD=/some/folder`` keeps the seeded history there between sessions
    (seeding takes a minute or two of CPU); by default it is built afresh in the session.
    """
    kept = os.environ.get("AIRLOOP_FAULTS_WORLD")
    base = Path(kept) if kept else tmp_path_factory.mktemp("fault-world")
    base.mkdir(parents=True, exist_ok=True)
    return base, build_world(base, loaded_source)


@pytest.fixture
def world(fault_world, tmp_path, loaded_source, monkeypatch):
    """A private copy of the seeded history; the environment points at it. Yields (settings, facts)."""
    from airloop.core.config import Settings, get_settings

    base, facts = fault_world
    data = tmp_path / "data"
    shutil.copytree(base, data)
    # The registry records artifacts by their URI in the lake: point them at the copy.
    import sqlite3

    with sqlite3.connect(data / "registry.db") as db:
        for column in ("artifact_uri", "reference_uri"):
            db.execute(f"UPDATE model_versions SET {column} = replace({column}, ?, ?)",
                       ((base / "lake").as_uri(), (data / "lake").as_uri()))  # fmt: skip
    db.close()
    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(data))
    monkeypatch.setenv("AIRLOOP_SOURCE_URL", loaded_source)
    for name in ("AIRLOOP_LAKE_URL", "AIRLOOP_REGISTRY_URL", "AIRLOOP_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield Settings.from_env(), facts
    get_settings.cache_clear()
