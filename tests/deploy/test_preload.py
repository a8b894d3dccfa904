"""The scheduler and Celery workers import the stage libraries once (airloop.deploy.preload)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airloop.deploy.preload import (
    DEFAULT_MODULES,
    PreloadError,
    forks_tasks,
    mode_from_env,
    modules_from_env,
    preload,
    preload_for_process,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/bin/airflow", "scheduler"], True),
        (["/venv/bin/airflow", "scheduler", "--num-runs", "3"], True),
        (["/venv/lib/python3.11/site-packages/airflow/__main__.py", "scheduler"], True),
        (["/venv/bin/airflow", "celery", "worker", "--queues", "cpu"], True),
        (["/venv/bin/airflow", "standalone"], False),  # starts the scheduler as a child, which preloads
        (["/venv/bin/airflow", "api-server"], False),
        (["/venv/bin/airflow", "dag-processor"], False),
        (["/venv/bin/airflow", "triggerer"], False),
        (["/venv/bin/airflow", "celery", "flower"], False),
        (["/venv/bin/airflow", "db", "migrate"], False),
        (["/venv/bin/pytest", "tests"], False),
        (["python", "-c", "scheduler"], False),
        ([], False),
    ],
)
def test_only_processes_that_fork_tasks_preload(argv, expected):
    assert forks_tasks(argv) is expected


def test_mode_and_module_settings():
    assert mode_from_env({}) == "auto"
    assert mode_from_env({"AIRLOOP_PRELOAD": " OFF "}) == "off"
    with pytest.raises(PreloadError, match="AIRLOOP_PRELOAD must be one of auto, on, off, got 'yes'"):
        mode_from_env({"AIRLOOP_PRELOAD": "yes"})
    assert modules_from_env({}) == DEFAULT_MODULES
    assert modules_from_env({"AIRLOOP_PRELOAD_MODULES": "json, csv,,"}) == ("json", "csv")
    # OpenLineage's client and the provider's listener only when a transport makes the provider emit.
    with_lineage = modules_from_env({"AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "file", "log_file_path": "/x"}'})
    assert with_lineage[: len(DEFAULT_MODULES)] == DEFAULT_MODULES and "openlineage.client" in with_lineage


def test_a_module_that_fails_is_reported_not_raised():
    report = preload(("json", "airloop_no_such_module", "csv"))
    assert report.imported == ["json", "csv"]
    assert list(report.failed) == ["airloop_no_such_module"]
    assert "ModuleNotFoundError" in report.failed["airloop_no_such_module"]
    assert "failed: airloop_no_such_module" in report.summary()


def test_auto_does_nothing_outside_a_task_forking_process():
    assert preload_for_process(["/venv/bin/airflow", "api-server"], {}) is None
    assert preload_for_process(["/venv/bin/airflow", "scheduler"], {"AIRLOOP_PRELOAD": "off"}) is None


def _fresh_python(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_a_forked_task_process_starts_with_the_libraries_loaded():
    """What the LocalExecutor does: the parent preloads, a bare os.fork() child finds the modules."""
    code = (
        "import os, sys, json\n"
        "from airloop.deploy.preload import preload\n"
        "report = preload(('pandas', 'pyarrow.parquet', 'xgboost', 'airloop.scoring.day'))\n"
        "assert not report.failed, report.failed\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    import time\n"
        "    t = time.perf_counter(); import pandas, xgboost, airloop.scoring.day; spent = time.perf_counter() - t\n"
        "    import pandas as pd; frame = pd.DataFrame({'a': [1, 2]})\n"
        "    os.write(w, json.dumps({'spent': spent, 'sum': int(frame['a'].sum())}).encode()); os._exit(0)\n"
        "os.close(w); os.waitpid(pid, 0); print(os.read(r, 1000).decode())\n"
    )
    import json

    child = json.loads(_fresh_python(code, {}).strip())
    assert child["sum"] == 3
    assert child["spent"] < 0.05  # already in sys.modules: a dictionary lookup, not an import


def test_airflow_local_settings_preloads_the_scheduler_only(tmp_path):
    """Airflow imports $AIRFLOW_HOME/config/airflow_local_settings.py; check it with the real file."""
    probe = (
        "import sys; sys.argv = {argv!r}; sys.path.insert(0, {config!r})\n"
        "import airflow_local_settings\n"
        "print('xgboost' in sys.modules, 'evidently' in sys.modules)\n"
    )
    env = {"AIRLOOP_PRELOAD_MODULES": "xgboost", "AIRLOOP_PRELOAD": "auto"}
    scheduler = _fresh_python(probe.format(argv=["airflow", "scheduler"], config=str(ROOT / "config")), env)
    api_server = _fresh_python(probe.format(argv=["airflow", "api-server"], config=str(ROOT / "config")), env)
    assert scheduler.split() == ["True", "False"]
    assert api_server.split() == ["False", "False"]


def test_a_package_star_is_every_module_of_it():
    from airloop.deploy.preload import expand

    names = expand(("json", "airloop.scoring.*"))
    assert names[:2] == ["json", "airloop.scoring"]
    assert {"airloop.scoring.day", "airloop.scoring.lookup", "airloop.scoring.stream"} <= set(names)
    assert all(n == "json" or n.startswith("airloop.scoring") for n in names)
    report = preload(("airloop_no_such_package.*",))
    assert list(report.failed) == ["airloop_no_such_package"]


def test_every_default_module_imports():
    """A name in the list that no longer exists would silently preload nothing."""
    from airloop.deploy.preload import DEFAULT_MODULES

    out = _fresh_python(
        "from airloop.deploy.preload import preload, DEFAULT_MODULES; r = preload(DEFAULT_MODULES); "
        "print(len(r.imported)); print(r.failed)",
        {},
    )
    count, failed = out.strip().splitlines()[-2:]
    assert failed == "{}"
    assert int(count) > len(DEFAULT_MODULES)
