"""The services profile as an end-to-end test stack: brought up by ``scripts/services-up.sh``.

:class:`ServicesStack` is the shared :class:`harness.AirflowStack` (same REST helpers) whose
start and stop are the user's commands, on throw-away state: its own PostgreSQL databases per
run (``airloop_e2e_<token>_*``), its own Redis database numbers, a moto S3 server and every
Airflow port free, and a temp DAGs folder holding the repository's DAGs plus the test's probe.
The upstream source is loaded once into ``airloop_source_e2e`` and kept between runs (it is
read-only upstream data; loading it costs ~30 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from harness import ADMIN_PASSWORD, ADMIN_USER, ROOT, AirflowStack, StackError, free_port, tail

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
PG_LIBPQ = "postgresql://postgres@127.0.0.1:5432"
SOURCE_DB = "airloop_source_e2e"
SERVICE_NAMES = ("s3", "api-server", "scheduler", "dag-processor", "triggerer", "worker-cpu", "worker-gpu")
PROBE_DAG = Path(__file__).with_name("services_probe_dag.py")


class ServicesStack(AirflowStack):
    """Airflow on PostgreSQL + Celery (cpu and gpu workers) + Redis + moto S3, on temp state."""

    def __init__(self, home: Path, data_dir: Path):
        super().__init__(home, data_dir)
        self.token = uuid.uuid4().hex[:8]
        self.airflow_db = f"airloop_e2e_{self.token}_airflow"
        self.airloop_db = f"airloop_e2e_{self.token}"
        self.redis_db = 10 + 2 * (os.getpid() % 3)  # 10, 12 or 14 (broker), +1 for Feast
        self.dags_dir = self.home / "dags"
        self.bucket = f"airloop-e2e-{self.token}"
        s3 = f"http://127.0.0.1:{free_port()}"
        self.env.update(
            {
                "AIRLOOP_PROFILE": "services",
                "AIRLOOP_SERVICES_DIR": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_dir),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{self.airflow_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{PG}/{self.airflow_db}",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{self.redis_db}",
                "AIRLOOP_REGISTRY_URL": f"{PG}/{self.airloop_db}",
                "AIRLOOP_SOURCE_URL": f"{PG}/{SOURCE_DB}",
                "AIRLOOP_FEAST_REGISTRY_PATH": f"{PG}/{self.airloop_db}",
                "AIRLOOP_FEAST_PG_DATABASE": self.airloop_db,
                "AIRLOOP_FEAST_REDIS": f"127.0.0.1:6379,db={self.redis_db + 1}",
                "AIRLOOP_LAKE_URL": f"s3://{self.bucket}/lake",
                "AIRLOOP_S3_ENDPOINT_URL": s3,
                "AIRFLOW_CONN_AIRLOOP_LAKE": json.dumps(
                    {"conn_type": "aws", "extra": {"endpoint_url": s3, "region_name": "us-east-1"}}
                ),
                "AIRFLOW_CONN_AIRLOOP_REGISTRY": f"{PG_LIBPQ.replace('postgresql', 'postgres')}/{self.airloop_db}",
                "AIRFLOW_CONN_AIRLOOP_SOURCE": f"{PG_LIBPQ.replace('postgresql', 'postgres')}/{SOURCE_DB}",
                "AIRLOOP_GPU_WORKER_LOG_PORT": str(free_port()),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        self.env.pop("AWS_PROFILE", None)

    # --- start / stop with the user's scripts ----------------------------------------------

    def start(self, *, wait_for=(), timeout: float = 420) -> "ServicesStack":
        deadline = time.monotonic() + timeout
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.dags_dir.mkdir(exist_ok=True)
        for dag_file in sorted((ROOT / "dags").glob("*.py")):
            shutil.copy(dag_file, self.dags_dir / dag_file.name)
        shutil.copy(PROBE_DAG, self.dags_dir / "services_probe.py")
        shutil.copy(ROOT / "airflow.cfg", self.home / "airflow.cfg")
        # airflow_local_settings: the scheduler and the Celery workers preload the stage libraries.
        shutil.copytree(ROOT / "config", self.home / "config", dirs_exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        self.flush_redis()
        log = self.home / "services-up.out"
        with open(log, "wb") as out:
            try:
                result = subprocess.run(
                    ["bash", str(ROOT / "scripts" / "services-up.sh")],
                    env=self.env, stdout=out, stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise StackError(f"services-up.sh timed out; output tail:\n{tail(log)}") from None
        if result.returncode != 0:
            raise StackError(f"services-up.sh exited {result.returncode}; output tail:\n{tail(log)}")
        for dag_id in wait_for:
            self.wait_for_dag(dag_id, timeout=max(1.0, deadline - time.monotonic()))
        return self

    def _check_alive(self) -> None:
        for name in SERVICE_NAMES:
            if name in getattr(self, "stopped", set()):
                continue
            pid_file = self.home / f"{name}.pid"
            if not pid_file.exists():
                continue
            try:
                os.kill(int(pid_file.read_text()), 0)
            except ProcessLookupError:
                raise StackError(f"{name} exited; log tail:\n{tail(self.home / f'{name}.log')}") from None

    def supervise(self, names=("scheduler", "dag-processor", "triggerer")) -> list[str]:
        """Restart any of ``names`` that exited, as a process supervisor would (compose's
        ``restart:``, systemd, Kubernetes): Airflow's scheduler exits on a lost database
        connection by design and relies on one. Returns the services restarted."""
        commands = {
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }
        restarted = []
        for name in names:
            pid_file = self.home / f"{name}.pid"
            try:
                os.kill(int(pid_file.read_text()), 0)
                continue
            except (ProcessLookupError, FileNotFoundError, ValueError):
                pass
            log = open(self.home / f"{name}.log", "ab")
            proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "airflow"), *commands[name]],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True,
            )  # fmt: skip
            pid_file.write_text(str(proc.pid))
            restarted.append(name)
        return restarted

    def stop_service(self, name: str) -> None:
        """Stop one service the way services-down does (SIGTERM to its group, bounded)."""
        script = f'ROOT={ROOT}; source {ROOT}/scripts/services-env.sh && stop_service {name} 60'
        subprocess.run(["bash", "-c", script], env=self.env, timeout=120, check=True, capture_output=True)
        self.stopped = getattr(self, "stopped", set()) | {name}

    def stop(self, artifacts: Path | None = None) -> None:
        try:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "services-down.sh")],
                env=self.env, timeout=300, capture_output=True,
            )  # fmt: skip
        finally:
            super().stop(artifacts)  # no processes of its own left: copies the logs
            self.drop_databases()
            self.flush_redis()

    # --- direct looks at the servers -------------------------------------------------------

    def sql(self, query: str, params: tuple = (), *, database: str | None = None) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(f"{PG_LIBPQ}/{database or self.airflow_db}", connect_timeout=5)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def task_rows(self, dag_id: str) -> list[dict]:
        """Task instances of ``dag_id`` from the metadata DB, with the Celery task id."""
        rows = self.sql(
            "SELECT task_id, run_id, state, queue, hostname, external_executor_id, try_number, pool "
            "FROM task_instance WHERE dag_id = %s ORDER BY run_id, task_id",
            (dag_id,),
        )
        keys = ("task_id", "run_id", "state", "queue", "hostname", "external_executor_id", "try_number", "pool")
        return [dict(zip(keys, row)) for row in rows]

    def worker_log(self, queue: str) -> str:
        return (self.home / f"worker-{queue}.log").read_text(errors="replace")

    def terminate_connections(self, databases: list[str]) -> int:
        """Drop every client connection to ``databases`` (what clients see of a server restart)."""
        rows = self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (databases,),
            database="postgres",
        )
        return len(rows)

    def drop_databases(self) -> None:
        for name in (self.airflow_db, self.airloop_db):
            try:
                self.terminate_connections([name])
                import psycopg2

                conn = psycopg2.connect(f"{PG_LIBPQ}/postgres", connect_timeout=5)
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.close()
            except Exception as exc:  # teardown: report, never mask the test's own failure
                print(f"could not drop database {name}: {exc}")

    def flush_redis(self) -> None:
        import redis

        for db in (self.redis_db, self.redis_db + 1):
            client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_connect_timeout=3, socket_timeout=3)
            try:
                client.flushdb()
            finally:
                client.close()

    def redis_keys(self, db: int) -> int:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_connect_timeout=3, socket_timeout=3)
        try:
            return int(client.dbsize())
        finally:
            client.close()

    def lake(self):
        from airloop.core.storage import S3Lake

        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.env["AIRLOOP_S3_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return S3Lake(self.env["AIRLOOP_LAKE_URL"], client=client)
