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
from harness import StackError

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-services"
# The first replayed days of the source (2013-01-01 .. 01-04 = 2025-12-30 .. 2026-01-02): features
# of a day read up to 31 days of history, and none exists before the first day, so the whole loop
# runs on four ingested days. Train on the first three (two days were too few: the aircraft
# features are null for most rows of a two-day window and training refuses it, as it should),
# score and monitor the fourth.
LOOP_DAYS = ["2025-12-30", "2025-12-31", "2026-01-01", "2026-01-02"]
TRAIN_WINDOW = (LOOP_DAYS[0], LOOP_DAYS[2])
SCORED_DAY = LOOP_DAYS[3]
LIFECYCLE_DAGS = ["ingest_flights", "materialize_features", "train_model", "batch_predict", "monitor_model"]
# Only ingestion runs here (the lifecycle DAGs are paused again by then): days no other test uses.
FAULT_FROM, FAULT_TO = "2026-04-06", "2026-04-07"
FAULT_KEYS = {"2026-04-06", "2026-04-07"}


def _require_servers() -> None:
    from airloop.deploy.services import ServiceUnavailable, check_postgres, check_redis

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


def _assert_success(stack, dag_id, runs):
    for run in runs:
        assert run.state == "success", stack.explain(dag_id, run)


def _assert_ran_on(stack, rows, queue):
    """Each task ran on the worker of ``queue``: its Celery task id is in that worker's log only."""
    other = "gpu" if queue == "cpu" else "cpu"
    mine, theirs = stack.worker_log(queue), stack.worker_log(other)
    for row in rows:
        assert row["queue"] == queue, row
        assert row["external_executor_id"] in mine and row["external_executor_id"] not in theirs, row


def _drop_wall_clock_runs(stack, dag_ids, settle_s: float = 8) -> None:
    """Fail the runs unpausing schedules for *today* (2026-11-24 ingestion, this week's training,
    tonight's scoring): they are about the wall clock, not the replayed days under test, and would
    only compete for the two cores."""
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        for dag_id in dag_ids:
            for run in stack.runs(dag_id):
                if run.run_type == "scheduled":
                    path = f"/api/v2/dags/{dag_id}/dagRuns/{run.run_id}"
                    # Mark them failed, never delete them: a run deleted while the scheduler
                    # holds it makes the scheduler's next flush fail (StaleDataError) and exit.
                    if run.state not in ("success", "failed"):
                        stack.api("PATCH", path, json={"state": "failed"}, expect=(200, 404))
        time.sleep(1)


def test_whole_loop_on_celery_workers_with_postgres_redis_and_s3(services_stack):
    """ingest a few days -> features -> train (gpu worker) -> nightly predict -> monitor."""
    from airloop.core.storage import list_partitions, read_manifest

    stack = services_stack
    # services-up.sh keeps the simple auth manager's passwords file private to the user.
    assert oct((stack.home / "passwords.json").stat().st_mode & 0o777) == "0o600"
    lake = stack.lake()
    keys = set(LOOP_DAYS)
    for dag_id in LIFECYCLE_DAGS:
        stack.unpause(dag_id)
    _drop_wall_clock_runs(stack, LIFECYCLE_DAGS)

    # 1. Ingest four days (a backfill: runs carry partition keys, features follow per day).
    stack.backfill("ingest_flights", LOOP_DAYS[0], LOOP_DAYS[-1], reprocess="completed")
    in_loop = lambda r: r.partition_key in keys  # noqa: E731
    ingest = stack.wait_for_runs("ingest_flights", len(keys), timeout=300, where=in_loop)
    assert {r.partition_key for r in ingest} == keys
    _assert_success(stack, "ingest_flights", ingest)
    for table in ("flights", "weather"):
        published = {p.rsplit("ds=", 1)[1] for p in list_partitions(lake, f"raw/{table}")}
        assert keys <= published, (table, published)
    ingest_ids = {r.run_id for r in ingest}
    _assert_ran_on(stack, [r for r in stack.task_rows("ingest_flights") if r["run_id"] in ingest_ids], "cpu")

    # 2. Features: one run per ingested day, triggered by the raw-zone assets' partitions.
    features = stack.wait_for_runs("materialize_features", len(keys), timeout=360, where=in_loop)
    _assert_success(stack, "materialize_features", features)
    assert {p.rsplit("ds=", 1)[1] for p in list_partitions(lake, "features")} >= keys
    # Feast's registry is in PostgreSQL and its online store in Redis.
    assert stack.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'feast_metadata'",
                     database=stack.airloop_db)[0][0] == 1  # fmt: skip
    assert stack.redis_keys(stack.redis_db + 1) > 0

    # 3. Train on the first three days: the train task goes to the gpu worker.
    start, end = TRAIN_WINDOW
    train = stack.trigger("train_model", {"window_start": start, "window_end": end, "reason": "services e2e"})
    (trained,) = stack.wait_for_runs("train_model", 1, timeout=300, where=lambda r: r.run_id == train.run_id)
    _assert_success(stack, "train_model", [trained])
    rows = {r["task_id"]: r for r in stack.task_rows("train_model") if r["run_id"] == train.run_id}
    assert rows["train"]["pool"] == "gpu"
    _assert_ran_on(stack, [rows["train"]], "gpu")
    _assert_ran_on(stack, [rows["build_training_set"], rows["evaluate"]], "cpu")
    ((version, device),) = stack.sql("SELECT version, device FROM model_versions", database=stack.airloop_db)
    assert version == 1 and device in ("cpu", "cuda")  # no GPU here: the fallback, recorded

    # 4. Nightly scoring of the fourth day with that version (pinned: it was never serving then).
    predict = stack.trigger("batch_predict", {"ds": SCORED_DAY, "model_version": version}, partition_key=SCORED_DAY)
    (scored,) = stack.wait_for_runs("batch_predict", 1, timeout=240, where=lambda r: r.run_id == predict.run_id)
    _assert_success(stack, "batch_predict", [scored])
    manifest = read_manifest(lake, f"predictions/ds={SCORED_DAY}")
    assert manifest is not None and manifest.get("rows", 1) > 0

    # 5. Monitoring follows the predictions asset's partition.
    (monitored,) = stack.wait_for_runs("monitor_model", 1, timeout=240, where=lambda r: r.partition_key == SCORED_DAY)
    _assert_success(stack, "monitor_model", [monitored])
    assert any(k.startswith(f"reports/ds={SCORED_DAY}/") for k in lake.list_keys("reports/"))
    assert stack.sql("SELECT count(*) FROM monitoring_metrics", database=stack.airloop_db)[0][0] > 0

    # Nothing touched SQLite: no SQLite file appeared in the stack's home or data folder (the
    # metadata, registry, Feast registry and online store answered from PostgreSQL and Redis).
    assert _sqlite_files(stack.home, stack.data_dir) == set()

    # Quiet from here on: the fault tests below run ingestion only.
    for dag_id in LIFECYCLE_DAGS[1:]:
        stack.pause(dag_id)


def test_training_profile_routes_to_the_gpu_worker(services_stack):
    """The probe DAG: a task on training's resource profile runs inside the gpu worker."""
    stack = services_stack
    stack.unpause("services_probe")
    probe = stack.trigger("services_probe")
    (done,) = stack.wait_for_runs("services_probe", 1, timeout=180, where=lambda r: r.run_id == probe.run_id)
    _assert_success(stack, "services_probe", [done])
    assert _xcom(stack, "services_probe", probe.run_id, "on_train_profile")["worker_queue"] == "gpu"
    assert _xcom(stack, "services_probe", probe.run_id, "on_cpu_profile")["worker_queue"] == "cpu"
    rows = {r["task_id"]: r for r in stack.task_rows("services_probe") if r["run_id"] == probe.run_id}
    assert rows["on_train_profile"]["pool"] == "gpu"
    _assert_ran_on(stack, [rows["on_train_profile"]], "gpu")
    _assert_ran_on(stack, [rows["on_cpu_profile"]], "cpu")


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

    # Airflow's scheduler exits when its database connection drops and relies on a supervisor
    # to start it again (docker/docker-compose.yml: restart: unless-stopped); play that part.
    restarted: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        restarted |= set(stack.supervise())
        try:
            runs = stack.runs("ingest_flights")
        except StackError:  # the api-server may be reconnecting too
            runs = []
        done = [r for r in runs if r.partition_key in FAULT_KEYS and r.state in ("success", "failed")]
        if len(done) >= len(FAULT_KEYS):
            break
        time.sleep(3)
    runs = stack.wait_for_runs("ingest_flights", len(FAULT_KEYS), timeout=60, where=lambda r: r.partition_key in FAULT_KEYS)
    for run in runs:
        assert run.state == "success", (sorted(restarted), stack.explain("ingest_flights", run))
    # One run per day, and one published file set per partition.
    keys = [r.partition_key for r in stack.runs("ingest_flights") if r.partition_key in FAULT_KEYS]
    assert sorted(keys) == sorted(FAULT_KEYS)
    lake = stack.lake()
    from airloop.core.storage import MANIFEST_NAME, partition_prefix, require_manifest

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
