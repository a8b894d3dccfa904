"""DAG integrity: every DAG file imports cleanly, fast, and without heavy imports or DB access."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = ("pandas", "xgboost", "feast", "evidently", "sklearn", "duckdb", "pyarrow", "pandera", "boto3")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) >= len(DAG_FILES)


def test_every_dag_is_documented_owned_tagged_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} needs a doc_md for the UI"
        assert "airloop" in dag.tags, f"{dag_id} must carry the 'airloop' tag"
        for task in dag.tasks:
            assert task.owner == "airloop", f"{dag_id}.{task.task_id} owner"
            assert task.retries >= 1 or getattr(task, "_no_retry_reason", None), f"{dag_id}.{task.task_id} retries"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_heavy_modules_or_db(path):
    """Import the file in a fresh process with the metadata DB unreachable; no heavy imports."""
    code = f"""
import json, sys, runpy
runpy.run_path({str(path)!r})
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "AIRFLOW_HOME": str(ROOT),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A DB that cannot be opened: any query at parse time fails the import.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent/dir/airflow.db",
        "PYTHONPATH": f"{ROOT / 'include'}:{ROOT / 'plugins'}",
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert heavy == [], f"{path.name} imports {heavy} at module level"


@pytest.mark.parametrize("mode", ["auto", "approve"])
def test_train_model_wiring_for_each_approval_setting(mode, monkeypatch):
    """``auto`` keeps today's five tasks; ``approve`` puts the approval between register and promote."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("AIRLOOP_PROMOTION_APPROVAL", mode)
    monkeypatch.setenv("AIRLOOP_APPROVAL_TIMEOUT_HOURS", "6")
    monkeypatch.setenv("AIRLOOP_APPROVERS", "alice, bob")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py"))
    assert bag.import_errors == {}
    dag = bag.dags["train_model"]
    order = ["build_training_set", "train", "evaluate", "register", "promote_or_keep"]
    if mode == "approve":
        order.insert(4, "approve_promotion")
    assert [t.task_id for t in dag.topological_sort()] == order
    for upstream, downstream in zip(order, order[1:]):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    promote = dag.get_task("promote_or_keep")
    if mode == "auto":
        assert promote.approval is None
    else:
        from datetime import timedelta

        from airflow.providers.standard.operators.hitl import ApprovalOperator

        approve = dag.get_task("approve_promotion")
        assert isinstance(approve, ApprovalOperator)
        assert approve.defaults == ["Reject"] and approve.response_timeout == timedelta(hours=6)
        assert approve.assigned_users == [{"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]
        assert [type(n).__name__ for n in approve.notifiers] == ["PromotionApprovalNotifier"]
        assert list(approve.params) == ["comment"]  # the form shows the reason field, not the DAG's params
        assert "approve_promotion" in promote.approval
    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert sorted(serialized.task_ids) == sorted(order)
    assert serialized.get_task("register").downstream_task_ids == {order[4]}


def test_an_unknown_approval_setting_is_an_import_error_naming_it(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRLOOP_PROMOTION_APPROVAL", "manual")
    errors = DagBag(dag_folder=str(ROOT / "dags" / "train_model.py")).import_errors
    (message,) = errors.values()
    assert "AIRLOOP_PROMOTION_APPROVAL must be one of auto, approve" in message and "got 'manual'" in message
