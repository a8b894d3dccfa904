"""Manual rollback of the champion model to an earlier version (see doc_md)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airloop.deploy.dagconfig import TIMEZONE, default_args
from airloop.deploy.routing import resource_kwargs
from airloop_plugins.assets import MODEL
from airloop_plugins.operators.training import ModelRollbackOperator

DOC = """
### Roll back model

Manual only. Makes an earlier version the champion again, in one step:

- `version`: `previous` (the champion before the current one; repeated rollbacks walk further
  back) or a version number that served or passed registration.
- `reason`: why; recorded in the promotion history with who triggered the run.

The target's artifact is read and its sha256 checked before the switch, so serving never
moves to a model that cannot be loaded. A version that does not exist, a rejected or failed
version, or the current champion fail the run with the reason and change nothing. On success
the **model** asset is updated (scoring picks the new champion up). The CLI does the same:
`airloop rollback previous --reason "..."`.
"""

with DAG(
    dag_id="rollback_model",
    schedule=None,
    start_date=pendulum.datetime(2025, 12, 30, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "version": Param("previous", type="string", pattern=r"^(previous|[1-9][0-9]*)$", title="Version",
                         description="'previous' or the version number to make champion again."),
        "reason": Param("", type="string", minLength=3, title="Reason", description="Why roll back (recorded)."),
    },  # fmt: skip
    tags=["airloop", "training", "rollback"],
    doc_md=DOC,
) as dag:
    ModelRollbackOperator(
        task_id="rollback",
        to="{{ params.version }}",
        reason="{{ params.reason }}",
        outlets=[MODEL],
        **resource_kwargs("default"),
    )
