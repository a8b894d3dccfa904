"""The shared real-scheduler stack for end-to-end tests (one Airflow per pytest session).

Use the ``airflow_stack`` fixture in any ``tests/e2e/test_*.py`` module; it starts on first use
and stops at the end of the session, with every service's log (and the task logs) copied to
``test-artifacts/e2e/``. Tests share the stack and its lake, so each test works on its own dates.
On a shared machine, run them under ``flock /tmp/airloop-e2e.lock``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import AirflowStack

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Override for slow machines; the stack start (migrate, load source, parse DAGs) takes ~1-2 min.
STACK_START_TIMEOUT_S = float(os.environ.get("AIRLOOP_E2E_START_TIMEOUT_S", "420"))


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory, loaded_source):
    """A running Airflow (scheduler, dag-processor, api-server, triggerer) on temp state.

    The source database is the session's loaded copy (``loaded_source``), so tests can count
    rows in it independently of what the pipeline read.
    """
    root = tmp_path_factory.mktemp("airflow-stack")
    stack = AirflowStack(root / "home", root / "data", extra_env={"AIRLOOP_SOURCE_URL": loaded_source})
    try:
        stack.start(wait_for=["ingest_flights"], timeout=STACK_START_TIMEOUT_S)
        yield stack
    finally:
        stack.stop(artifacts=ARTIFACTS / "e2e")
