"""One-off set-up of a machine: folders, the source database, pools, buckets, stores.

``python -m airloop setup`` runs every step in :data:`SETUP_STEPS`, each idempotent; later
stages append their own (Feast apply, registry tables). Each step logs what it created or found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Callable

from airloop.core.config import Settings


def ensure_folders(settings: Settings) -> str:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"data folder {settings.data_dir}"


def ensure_source(settings: Settings) -> str:
    from airloop.ingest.source import SourceDatabase
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    if all(source.has_table(name) for name in use_case.tables):
        return f"source already loaded at {source.safe_url}"
    counts = source.load(use_case)
    return f"source loaded at {source.safe_url}: {counts}"


def ensure_bucket(settings: Settings) -> str:
    from airloop.core.storage import S3Lake, open_lake

    lake = open_lake(settings)
    if isinstance(lake, S3Lake):
        return f"bucket {lake.bucket} {'created' if lake.ensure_bucket() else 'exists'}"
    return f"lake at {lake.url}"


def pool_definitions() -> dict[str, dict]:
    """Airflow pools Airloop's tasks use, sized from the environment."""
    from airloop.deploy.dagconfig import POOLS

    return POOLS


def ensure_pools(settings: Settings) -> str:
    pools = {
        name: {"slots": spec["slots"], "description": spec["description"], "include_deferred": False}
        for name, spec in pool_definitions().items()
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(pools, handle)
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    result = subprocess.run([airflow, "pools", "import", handle.name], capture_output=True, text=True)
    os.unlink(handle.name)
    if result.returncode != 0:
        raise RuntimeError(f"airflow pools import failed: {result.stderr.strip()[-500:]}")
    return "pools " + ", ".join(f"{n}={p['slots']}" for n, p in pools.items())


def ensure_scoring_runs(settings: Settings) -> str:
    from airloop.scoring import ensure_scoring_runs as ensure

    return ensure(settings)


SETUP_STEPS: list[Callable[[Settings], str]] = [ensure_folders, ensure_source, ensure_bucket, ensure_pools]
SETUP_STEPS.append(ensure_scoring_runs)


def ensure_registry(settings: Settings) -> str:
    from airloop.registry import ensure_registry as ensure

    return ensure(settings)


SETUP_STEPS.append(ensure_registry)


def ensure_monitoring(settings: Settings) -> str:
    from airloop.monitoring import ensure_monitoring_tables

    return ensure_monitoring_tables(settings)


SETUP_STEPS.append(ensure_monitoring)


def ensure_feature_repo(settings: Settings) -> str:
    """Apply the Feast repo (registry tables, online store tables) when its definitions changed."""
    from airloop.features import apply_definitions

    return str(apply_definitions(settings))


SETUP_STEPS.append(ensure_feature_repo)

def run_setup(settings: Settings, *, skip_pools: bool = False) -> None:
    for step in SETUP_STEPS:
        if skip_pools and step is ensure_pools:
            continue
        print(f"[setup] {step.__name__}: {step(settings)}", flush=True)
