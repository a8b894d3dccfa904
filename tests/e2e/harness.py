"""A real Airflow for end-to-end tests: scheduler, dag-processor, api-server and triggerer.

One :class:`AirflowStack` per pytest session (see ``tests/e2e/conftest.py``): a temporary
``AIRFLOW_HOME`` with a copy of the repository's ``airflow.cfg``, the repository's ``dags/`` and
``plugins/``, a fresh SQLite metadata DB, a temporary Airloop data dir, and free ports. Every
wait is bounded; a timeout raises :class:`StackError` with the tail of the relevant log.

Tests drive it through the same interfaces a user has: the ``airflow`` CLI (:meth:`cli`) and the
REST API (:meth:`api`, with a token from the simple auth manager). Helpers cover what tests
need most: :meth:`unpause`, :meth:`backfill`, :meth:`trigger`, :meth:`wait_for_runs`,
:meth:`task_instances`, :meth:`asset_events`, :meth:`task_log`, :meth:`explain`.

Starting processes is serialized across developers by the caller: run the tests under
``flock /tmp/airloop-e2e.lock ...`` on shared machines.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx

from airloop.lineage.events import events_path, file_transport

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ADMIN_USER, ADMIN_PASSWORD = "admin", "airloop-e2e-" + secrets.token_hex(4)
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL = {"success", "failed"}


#: A script (``python -c``) that ingests the raw days ``first - lookback .. last`` and computes the
#: features of ``first - 3 .. last`` outside Airflow, with the stages' own calls: the history an
#: e2e test's DAG runs read. Format it with ``first`` and ``last`` (``YYYY-MM-DD``).
PREPARE_HISTORY = """
from datetime import date, timedelta
from airloop.core.config import get_settings
from airloop.core.dates import ds_range
from airloop.features import apply_definitions, compute_features, load_feature_use_case
from airloop.ingest import ingest_day
from airloop.core.storage import open_lake, read_manifest
from airloop.usecases.flights import STAT_LOOKBACK_DAYS

settings = get_settings()
lake = open_lake(settings)
first, last = date.fromisoformat({first!r}), date.fromisoformat({last!r})
for day in ds_range(first - timedelta(days=STAT_LOOKBACK_DAYS + 4), last):
    for table in ("flights", "weather"):
        if read_manifest(lake, f"raw/{{table}}/ds={{day}}") is None:
            ingest_day(table, day, settings)
apply_definitions(settings)
for day in ds_range(first - timedelta(days=3), last):
    compute_features(load_feature_use_case(settings).day(day), settings=settings, lake=lake)
print("prepared", first, last)
"""


class StackError(RuntimeError):
    """The Airflow stack did not start or did not do what a test waited for (with log tails)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text[-lines:])


@dataclass
class DagRunInfo:
    """What tests read from a DAG run (the REST API's ``DAGRunResponse``, trimmed)."""

    run_id: str
    state: str
    run_type: str
    partition_key: str | None
    logical_date: str | None
    start_date: str | None
    end_date: str | None
    conf: dict = field(default_factory=dict)

    @classmethod
    def from_api(cls, body: dict) -> "DagRunInfo":
        return cls(
            run_id=body["dag_run_id"],
            state=body["state"],
            run_type=body["run_type"],
            partition_key=body.get("partition_key"),
            logical_date=body.get("logical_date"),
            start_date=body.get("start_date"),
            end_date=body.get("end_date"),
            conf=body.get("conf") or {},
        )


class AirflowStack:
    """A running Airflow (started by :meth:`start`, stopped by :meth:`stop`).

    :param home: an empty folder to become ``AIRFLOW_HOME``.
    :param data_dir: ``AIRLOOP_DATA_DIR`` of the stack (lake, registry, ...).
    :param extra_env: more environment for every process (e.g. ``AIRLOOP_SOURCE_URL``).
    """

    def __init__(self, home: Path, data_dir: Path, *, extra_env: dict[str, str] | None = None):
        self.home = Path(home)
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self._token: str | None = None
        self._client = httpx.Client(base_url=self.base_url, timeout=30)
        self.env = self._environment(extra_env or {})

    # --- set-up ---------------------------------------------------------------------------

    def _environment(self, extra_env: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRLOOP_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                # One secret for every process, so the scheduler's task tokens are accepted.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # Tests wait on the scheduler: loop fast, parse new files promptly.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRLOOP_DATA_DIR": str(self.data_dir),
                # OpenLineage events of every task, as the demo writes them: the file transport
                # under the Airflow home (airloop.lineage.events.file_transport).
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(file_transport(self.home)),
                # Retries stay on (the DAGs' contract) but do not make a failing test wait minutes.
                "AIRLOOP_RETRY_DELAY_S": "2",
                # A stack replays past days: the weekly train_model run of the wall clock's latest
                # Monday (created on unpause) would train on whatever is ingested and race the
                # runs a test triggers. Trainings come from the tests and from drift events.
                "AIRLOOP_TRAIN_SCHEDULE": "none",
                # Manifests record the code version; pin it so a rerun during the session is
                # comparable byte for byte even when someone commits meanwhile.
                "AIRLOOP_CODE_VERSION": _git_head(),
            }
        )
        env.update(extra_env)
        return env

    def start(self, *, wait_for: Iterable[str] = (), timeout: float = 300) -> "AirflowStack":
        """Migrate the DB, run ``airloop setup``, start the services, wait for ``wait_for`` DAGs."""
        started = time.monotonic()
        deadline = started + timeout
        self.home.mkdir(parents=True, exist_ok=True)
        events_path(self.env).parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "airflow.cfg", self.home / "airflow.cfg")
        # airflow_local_settings: the scheduler preloads the stage libraries (airloop.deploy.preload).
        shutil.copytree(ROOT / "config", self.home / "config", dirs_exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        self._run_step(["airflow", "db", "migrate"], "db-migrate", deadline)
        self._run_step([sys.executable, "-m", "airloop", "setup"], "airloop-setup", deadline)
        for service in SERVICES:
            log = open(self.home / f"{service}.log", "wb")
            self.processes[service] = subprocess.Popen(
                ["airflow", service],
                cwd=self.home,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown kills the whole tree
                preexec_fn=_die_with_parent,
            )
            log.close()
        self._wait(self._api_ready, deadline, "the api-server to answer", "api-server")
        for dag_id in wait_for:
            self.wait_for_dag(dag_id, timeout=max(1.0, deadline - time.monotonic()))
        self.started_in_s = time.monotonic() - started
        (self.home / "stack.log").write_text(
            f"stack started in {self.started_in_s:.1f} s at {self.base_url}\nhome {self.home}\n"
        )
        return self

    def _run_step(self, cmd: list[str], name: str, deadline: float) -> None:
        log_path = self.home / f"{name}.log"
        with open(log_path, "wb") as log:
            try:
                result = subprocess.run(
                    cmd, cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise StackError(f"{' '.join(cmd)} timed out; log tail:\n{tail(log_path)}") from None
        if result.returncode != 0:
            raise StackError(f"{' '.join(cmd)} exited {result.returncode}; log tail:\n{tail(log_path)}")

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with {proc.returncode}; log tail:\n{tail(self.home / f'{name}.log')}"
                )

    def _wait(self, ready: Callable[[], Any], deadline: float, what: str, log_name: str, poll: float = 1.0):
        last_error = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                value = ready()
                if value:
                    return value
            except (httpx.HTTPError, StackError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(poll)
        raise StackError(
            f"timed out waiting for {what} ({last_error or 'not ready'}); "
            f"{log_name} log tail:\n{tail(self.home / f'{log_name}.log')}"
        )

    def _api_ready(self) -> bool:
        return self._client.get("/api/v2/monitor/health", timeout=5).status_code == 200

    # --- interfaces -----------------------------------------------------------------------

    def cli(
        self, *args: str, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``airflow <args>`` against this stack; raise with its output when it fails.

        :param env: extra environment for this command only (e.g. another lake for ``dags test``).
        """
        try:
            result = subprocess.run(
                ["airflow", *args], cwd=self.home, env={**self.env, **(env or {})},
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise StackError(f"airflow {' '.join(args)} timed out after {timeout} s") from None
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            raise StackError(f"airflow {' '.join(args)} exited {result.returncode}:\n{output}")
        return result

    def airloop(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``python -m airloop <args>`` with the stack's environment (no check)."""
        return subprocess.run(
            [sys.executable, "-m", "airloop", *args],
            cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def _get_token(self) -> str:
        resp = self._client.post("/auth/token", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        if resp.status_code not in (200, 201):
            raise StackError(f"could not get an API token: {resp.status_code} {resp.text[:500]}")
        return resp.json()["access_token"]

    def api(self, method: str, path: str, *, expect: Iterable[int] = (200, 201), **kwargs) -> Any:
        """Call the REST API (``/api/v2/...``) as the admin; return the JSON body."""
        if self._token is None:
            self._token = self._get_token()
        for _ in range(2):
            resp = self._client.request(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if resp.status_code != 401:
                break
            self._token = self._get_token()
        if resp.status_code not in tuple(expect):
            raise StackError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def import_errors(self) -> dict[str, str]:
        body = self.api("GET", "/api/v2/importErrors", params={"limit": 100})
        return {e["filename"]: e["stack_trace"] for e in body.get("import_errors", [])}

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Wait until the dag-processor has parsed and serialized ``dag_id``."""

        def parsed():
            body = self.api("GET", f"/api/v2/dags/{dag_id}", expect=(200, 404))
            return body if body and body.get("dag_id") == dag_id else None

        try:
            return self._wait(parsed, time.monotonic() + timeout, f"DAG {dag_id!r} to be parsed", "dag-processor")
        except StackError as exc:
            errors = self.import_errors()
            detail = "\n".join(f"{f}:\n{t[-1500:]}" for f, t in errors.items())
            raise StackError(f"{exc}\nimport errors: {detail or 'none'}") from None

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})

    def backfill(
        self, dag_id: str, from_date: str, to_date: str, reprocess: str = "completed", max_active_runs: int = 3
    ) -> dict:
        """Create a backfill (the scheduler runs it); return the backfill's JSON.

        Airflow allows one running backfill per DAG, and marks one completed a scheduler loop or
        more after its last run finished: an earlier test's backfill may still count as running
        (409). Wait for it (bounded), then create.
        """
        self.wait_for_dag(dag_id)
        body = {
            "dag_id": dag_id,
            "from_date": _as_datetime(from_date),
            "to_date": _as_datetime(to_date),
            "reprocess_behavior": reprocess,
            "max_active_runs": max_active_runs,
        }
        deadline = time.monotonic() + 300
        while True:
            try:
                return self.api("POST", "/api/v2/backfills", json=body)
            except StackError as exc:
                if "already a running backfill" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def wait_for_backfills_of(self, dag_id: str, timeout: float = 300) -> None:
        """Wait until no backfill of ``dag_id`` counts as running (each has ``completed_at``)."""
        deadline = time.monotonic() + timeout
        while True:
            running = [b["id"] for b in self.api("GET", "/api/v2/backfills", params={"dag_id": dag_id, "limit": 100})["backfills"]
                       if not b.get("completed_at")]  # fmt: skip
            if not running:
                return
            if time.monotonic() > deadline:
                raise StackError(f"backfills {running} of {dag_id} still running after {timeout:.0f} s")
            time.sleep(2)

    def wait_for_backfill(self, backfill: dict | int, timeout: float = 600) -> dict:
        """Wait until the scheduler marks the backfill complete (all its runs finished)."""
        backfill_id = backfill["id"] if isinstance(backfill, dict) else backfill

        def completed():
            body = self.api("GET", f"/api/v2/backfills/{backfill_id}")
            return body if body.get("completed_at") else None

        return self._wait(completed, time.monotonic() + timeout, f"backfill {backfill_id} to complete", "scheduler", 2)

    def trigger(self, dag_id: str, conf: dict | None = None, *, partition_key: str | None = None) -> DagRunInfo:
        """Trigger a manual run (no logical date), optionally with a partition key."""
        self.wait_for_dag(dag_id)
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if partition_key is not None:
            body["partition_key"] = partition_key
        return DagRunInfo.from_api(self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body))

    def runs(self, dag_id: str) -> list[DagRunInfo]:
        body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1000, "order_by": "run_after"})
        return [DagRunInfo.from_api(r) for r in body["dag_runs"]]

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        timeout: float = 300,
        *,
        where: Callable[[DagRunInfo], bool] | None = None,
    ) -> list[DagRunInfo]:
        """Wait until ``count`` runs of ``dag_id`` (those ``where`` accepts) are finished.

        Returns those runs (success or failed: the test asserts the states), oldest first.
        """

        def finished():
            runs = [r for r in self.runs(dag_id) if where is None or where(r)]
            done = [r for r in runs if r.state in TERMINAL]
            return done if len(done) >= count and len(done) == len(runs) else None

        try:
            return self._wait(finished, time.monotonic() + timeout, f"{count} finished runs of {dag_id}", "scheduler", 2)
        except StackError as exc:
            runs = [r for r in self.runs(dag_id) if where is None or where(r)]
            states = ", ".join(f"{r.run_id}({r.partition_key})={r.state}" for r in runs) or "no runs"
            raise StackError(f"{exc}\nruns: {states}") from None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return body["task_instances"]

    def asset_events(self, **filters: str) -> list[dict]:
        """Asset events, oldest first; filter by ``source_dag_id``, ``source_run_id``, ``source_task_id``.

        Read from this stack's metadata database rather than ``GET /api/v2/assets/events``:
        Airflow 3.3.2 answers that endpoint with 500 while any event's triggered run is still
        queued (its ``start_date`` is null and the response model requires one).
        """
        import sqlite3

        allowed = {"source_dag_id", "source_run_id", "source_task_id"}
        unknown = set(filters) - allowed
        if unknown:
            raise ValueError(f"asset_events filters: {sorted(unknown)} not in {sorted(allowed)}")
        where = "".join(f" AND e.{key} = ?" for key in filters)
        query = (
            "SELECT e.id, a.name, a.uri, e.extra, e.source_dag_id, e.source_run_id, e.source_task_id, "
            "e.partition_key, e.timestamp FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            f"WHERE 1 = 1{where} ORDER BY e.timestamp, e.id"
        )
        with sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as conn:
            rows = conn.execute(query, list(filters.values())).fetchall()
        keys = ("id", "name", "uri", "extra", "source_dag_id", "source_run_id", "source_task_id", "partition_key", "timestamp")
        events = [dict(zip(keys, row)) for row in rows]
        for event in events:
            event["extra"] = json.loads(event["extra"]) if event["extra"] else {}
        return events

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as text (from the log files the tasks wrote under this home)."""
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        path = base / f"attempt={try_number}.log"
        if not path.exists():
            return f"(no log at {path})"
        lines = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                lines.append(line)
                continue
            # Structured fields carry the substance (e.g. a skip's "reason", "error_detail").
            fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in _LOG_NOISE)
            lines.append(f"{event.get('level', '')} {event.get('event', '')} {fields}".rstrip())
        return "\n".join(lines)

    def explain(self, dag_id: str, run: DagRunInfo) -> str:
        """Task states of a run, with the log tail of each task that did not succeed."""
        parts = [f"{dag_id} {run.run_id} (partition {run.partition_key}): {run.state}"]
        for ti in self.task_instances(dag_id, run.run_id):
            parts.append(f"  {ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            if ti["state"] not in ("success", "skipped"):
                log = self.task_log(dag_id, run.run_id, ti["task_id"], max(1, ti["try_number"]))
                parts.append("    " + "\n    ".join(log.splitlines()[-25:]))
        return "\n".join(parts)

    # --- teardown -------------------------------------------------------------------------

    def stop(self, artifacts: Path | None = None) -> None:
        """Stop every service (its whole process group); copy logs into ``artifacts``."""
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # children (executor workers, gunicorn) may outlive the leader
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._client.close()
        if artifacts is not None:
            artifacts.mkdir(parents=True, exist_ok=True)
            for log in self.home.glob("*.log"):
                shutil.copy(log, artifacts / log.name)
            if (self.home / "logs").exists():
                shutil.copytree(self.home / "logs", artifacts / "task-logs", dirs_exist_ok=True)


_LOG_NOISE = {"timestamp", "level", "event", "logger", "run_id", "ti_id", "task_id", "dag_id", "map_index",
              "try_number", "filename", "lineno", "loc", "logger_name"}  # fmt: skip


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies (killed by a timeout, Ctrl-C twice),
    so no scheduler outlives its test session on a shared machine (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _as_datetime(value: str) -> str:
    return value if "T" in value else f"{value}T00:00:00Z"


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return (out.stdout.strip() or "unknown") + "-e2e"
    except (OSError, subprocess.SubprocessError):
        return "unknown-e2e"
