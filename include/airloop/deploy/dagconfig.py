"""DAG-level conventions shared by every Airloop DAG (light: imported at parse time).

Resource routing lives here too: each task class gets a *resource profile* (pool, queue,
executor_config) from one place, so moving training onto GPU workers is a configuration change.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airloop.core.config import env_int

OWNER = os.environ.get("AIRLOOP_OWNER", "airloop")
TIMEZONE = os.environ.get("AIRLOOP_TIMEZONE", "America/New_York")

DS_PATTERN = r"^\d{4}-\d{2}-\d{2}$"

# Pools created by `make setup` (airloop setup). Sizes come from the environment.
POOLS = {
    "cpu": {
        "slots": env_int("AIRLOOP_CPU_POOL_SLOTS", 4, minimum=1),
        "description": "Airloop: ingestion, features, scoring, monitoring (CPU work)",
    },
    "gpu": {
        "slots": env_int("AIRLOOP_GPU_POOL_SLOTS", 1, minimum=1),
        "description": "Airloop: model training (one GPU per slot; CPU fallback by policy)",
    },
}


def default_args(**overrides) -> dict:
    """Default task arguments: owner, retries with exponential back-off, the CPU pool."""
    args = {
        "owner": OWNER,
        "retries": env_int("AIRLOOP_TASK_RETRIES", 2, minimum=0),
        "retry_delay": timedelta(seconds=env_int("AIRLOOP_RETRY_DELAY_S", 30, minimum=0)),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "pool": os.environ.get("AIRLOOP_CPU_POOL", "cpu"),
    }
    args.update(overrides)
    return args


def ds_param(description: str = "Partition date to process (YYYY-MM-DD). Leave empty for scheduled runs."):
    """The optional ``ds`` Param every partitioned DAG accepts for manual runs."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], pattern=DS_PATTERN, description=description, title="Partition date")
