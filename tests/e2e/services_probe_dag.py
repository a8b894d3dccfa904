"""A probe DAG for the services end-to-end test (copied into the stack's temp DAGs folder only).

Each task returns the queue its Celery worker serves (``AIRLOOP_WORKER_QUEUE``, set per worker by
services-up.sh), so the test sees from inside the task which worker ran it. ``on_train_profile``
takes its routing from training's resource profile, exactly as the training task does.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airloop.deploy.routing import resource_kwargs

with DAG(
    dag_id="services_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["airloop", "test"],
    doc_md="Test-only: reports which worker queue ran each task.",
) as dag:

    @task(**resource_kwargs("cpu"))
    def on_cpu_profile() -> dict:
        import os
        import socket

        return {"worker_queue": os.environ.get("AIRLOOP_WORKER_QUEUE"), "host": socket.gethostname()}

    @task(**resource_kwargs("train"))
    def on_train_profile() -> dict:
        import os
        import socket

        return {"worker_queue": os.environ.get("AIRLOOP_WORKER_QUEUE"), "host": socket.gethostname()}

    on_cpu_profile()
    on_train_profile()
