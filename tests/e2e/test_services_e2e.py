"""End to end on the services profile: PostgreSQL, Redis, Celery workers per queue, S3.

The stack is brought up with ``scripts/services-up.sh`` and stopped with ``services-down.sh``
(the user's commands) on throw-away databases, Redis numbers and ports (tests/e2e/services_stack.py).
The lifecycle DAGs run through the real scheduler and Celery workers; the checks read the
metadata database, the workers' own logs and the S3 bucket directly.

Skipped, with the reason, when PostgreSQL or Redis is not reachable on 127.0.0.1.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-services"
# Replayed 2026-04-01 .. 04-03 (source 2013-04-03 .. 04-05): days no other e2e test uses.
INGEST_FROM, INGEST_TO = "2026-04-01", "2026-04-03"
INGEST_KEYS = {"2026-04-01", "2026-04-02", "2026-04-03"}
FAULT_FROM, FAULT_TO = "2026-04-06", "2026-04-07"
FAULT_KEYS = {"2026-04-06", "2026-04-07"}


def _require_servers() -> None:
    from airloop.services import ServiceUnavailable, check_postgres, check_redis

    try:
        check_postgres("postgresql://postgres@127.0.0.1:5432/postgres", timeout_s=2)
        check_redis("redis://127.0.0.1:6379/0", timeout_s=2)
    except ServiceUnavailable as exc:
        pytest.skip(f"services profile needs PostgreSQL and Redis on 127.0.0.1: {exc}")


@pytest.fixture(scope="module")
def services_stack(tmp_path_factory):
    _require_servers()
    from services_stack import ServicesStack

    root = tmp_path_factory.mktemp("services-stack")
    stack = ServicesStack(root / "home", root / "data")
    try:
        stack.start(wait_for=["ingest_flights", "services_probe"], timeout=480)
        yield stack
    finally:
        stack.stop(artifacts=ARTIFACTS)


def _sqlite_files(*folders: Path) -> set[Path]:
    found = set()
    for folder in folders:
        for pattern in ("*.db", "*.sqlite", "*.sqlite3", "*.db-wal"):
            found |= set(folder.rglob(pattern))
    return found


def _xcom(stack, dag_id: str, run_id: str, task_id: str):
    body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
    return body["value"]


def test_lifecycle_runs_on_celery_workers_with_postgres_and_s3(services_stack):
    stack = services_stack
    lake = stack.lake()

    # Ingest a few days through the scheduler (a backfill: runs carry partition keys).
    stack.unpause("ingest_flights")
    stack.backfill("ingest_flights", INGEST_FROM, INGEST_TO, reprocess="completed")
    runs = stack.wait_for_runs("ingest_flights", len(INGEST_KEYS), timeout=300, where=lambda r: r.partition_key in INGEST_KEYS)
    assert {r.partition_key for r in runs} == INGEST_KEYS
    for run in runs:
        assert run.state == "success", stack.explain("ingest_flights", run)

    # The work landed in the S3 bucket, one published partition per day and table.
    from airloop.storage import list_partitions

    for table in ("flights", "weather"):
        published = {p.rsplit("ds=", 1)[1] for p in list_partitions(lake, f"raw/{table}")}
        assert INGEST_KEYS <= published, (table, published)

    # Every task ran on the cpu queue's worker: its Celery task id is in that worker's log only.
    rows = [r for r in stack.task_rows("ingest_flights") if r["run_id"] in {run.run_id for run in runs}]
    assert rows and all(r["state"] == "success" and r["queue"] == "cpu" for r in rows), rows
    cpu_log, gpu_log = stack.worker_log("cpu"), stack.worker_log("gpu")
    for row in rows:
        assert row["external_executor_id"] in cpu_log and row["external_executor_id"] not in gpu_log, row

    # Training's resource profile routes to the gpu worker; CPU work to the cpu worker.
    stack.unpause("services_probe")
    probe = stack.trigger("services_probe")
    (done,) = stack.wait_for_runs("services_probe", 1, timeout=180, where=lambda r: r.run_id == probe.run_id)
    assert done.state == "success", stack.explain("services_probe", done)
    assert _xcom(stack, "services_probe", probe.run_id, "on_train_profile")["worker_queue"] == "gpu"
    assert _xcom(stack, "services_probe", probe.run_id, "on_cpu_profile")["worker_queue"] == "cpu"
    probe_rows = {r["task_id"]: r for r in stack.task_rows("services_probe") if r["run_id"] == probe.run_id}
    train = probe_rows["on_train_profile"]
    assert (train["queue"], train["pool"]) == ("gpu", "gpu")
    gpu_log = stack.worker_log("gpu")
    assert train["external_executor_id"] in gpu_log
    assert train["external_executor_id"] not in stack.worker_log("cpu")

    # Any other task that asked for the gpu queue (training, once its DAG ran) ran there too.
    for dag_id in ("train_model", "train"):
        for row in stack.task_rows(dag_id):
            if row["queue"] == "gpu" and row["state"] == "success":
                assert row["external_executor_id"] in gpu_log, row

    # Nothing touched SQLite: the metadata DB answered the queries above from PostgreSQL, and no
    # SQLite file appeared in the stack's home or data folder.
    assert _sqlite_files(stack.home, stack.data_dir) == set()


def test_database_connections_dropped_mid_run_retry_and_complete_once(services_stack):
    """Every connection to the stack's databases is killed while runs execute (what clients see
    of a PostgreSQL restart): tasks retry, the runs complete, and nothing is duplicated."""
    stack = services_stack
    stack.backfill("ingest_flights", FAULT_FROM, FAULT_TO, reprocess="completed")
    deadline = time.monotonic() + 90
    killed = 0
    while time.monotonic() < deadline:
        running = stack.sql("SELECT count(*) FROM task_instance WHERE dag_id = 'ingest_flights' AND state = 'running'")
        if running[0][0]:
            killed += stack.terminate_connections([stack.airflow_db, "airloop_source_e2e"])
            break
        time.sleep(0.5)
    assert killed, "no task was running to interrupt"
    time.sleep(3)
    killed += stack.terminate_connections([stack.airflow_db, "airloop_source_e2e"])

    runs = stack.wait_for_runs("ingest_flights", len(FAULT_KEYS), timeout=300, where=lambda r: r.partition_key in FAULT_KEYS)
    for run in runs:
        assert run.state == "success", stack.explain("ingest_flights", run)
    # One run per day, and one published file set per partition.
    keys = [r.partition_key for r in stack.runs("ingest_flights") if r.partition_key in FAULT_KEYS]
    assert sorted(keys) == sorted(FAULT_KEYS)
    lake = stack.lake()
    from airloop.storage import MANIFEST_NAME, partition_prefix, require_manifest

    for day in FAULT_KEYS:
        for table in ("flights", "weather"):
            prefix = partition_prefix("raw", table, day)
            manifest = require_manifest(lake, prefix)
            listed = {f"{prefix}/{f['name']}" for f in manifest["files"]} | {f"{prefix}/{MANIFEST_NAME}"}
            assert set(lake.list_keys(prefix + "/")) == listed
    # The scheduler and workers survived it.
    stack._check_alive()


def test_gpu_task_waits_when_no_gpu_worker_runs(services_stack):
    """With the gpu worker stopped, a gpu-queue task stays queued; it never runs on the cpu worker."""
    stack = services_stack
    stack.stop_service("worker-gpu")
    probe = stack.trigger("services_probe")

    def cpu_task_done():
        rows = {r["task_id"]: r for r in stack.task_rows("services_probe") if r["run_id"] == probe.run_id}
        return rows if rows.get("on_cpu_profile", {}).get("state") == "success" else None

    rows = stack._wait(cpu_task_done, time.monotonic() + 120, "the cpu probe task", "worker-cpu")
    time.sleep(15)  # ample time for a wrong worker to pick the gpu task up
    rows = {r["task_id"]: r for r in stack.task_rows("services_probe") if r["run_id"] == probe.run_id}
    train = rows["on_train_profile"]
    assert (train["state"], train["queue"]) == ("queued", "gpu"), train
    assert train["external_executor_id"] is None or train["external_executor_id"] not in stack.worker_log("cpu")
    # The UI (REST API) shows the task queued on its queue: what a user sees to know why it waits.
    ti = stack.api("GET", f"/api/v2/dags/services_probe/dagRuns/{probe.run_id}/taskInstances/on_train_profile")
    assert (ti["state"], ti["queue"]) == ("queued", "gpu")
