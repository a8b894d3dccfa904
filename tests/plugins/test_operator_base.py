"""Every Airloop operator logs its start-up and its work (read by bench/bench_year.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from airloop_plugins.operators.base import PartitionedOperator


class Sleepy(PartitionedOperator):
    def execute(self, context):
        return sum(range(10_000))


def test_start_up_and_work_lines_are_logged_and_parsed(capfd):
    import bench_year

    op = Sleepy(task_id="t", ds="2026-06-15")
    op.pre_execute({})
    op.execute({})
    op.post_execute({}, None)
    out, err = capfd.readouterr()
    text = out + err
    startup = bench_year.STARTUP.search(text)
    work = bench_year.WORK.search(text)
    assert startup and work, text
    assert 0 <= float(startup.group(1)) < 24 * 3600  # since this (pytest) process started
    assert float(work.group(1)) < 60
    assert 10 < float(work.group(2)) < 100_000  # MB: a real peak RSS, not KiB or bytes


def test_task_figures_read_the_lines_from_task_logs(tmp_path):
    import bench_year

    folder = tmp_path / "dag_id=batch_predict" / "run_id=r" / "task_id=score"
    folder.mkdir(parents=True)
    (folder / "attempt=1.log").write_text(
        '{"event": "airloop task: started up in 1.25 s (process start to the stage\'s work)"}\n'
        '{"event": "airloop task: work 0.50 s, peak RSS 812 MB"}\n'
    )
    figures = bench_year.task_figures(tmp_path)
    assert figures["batch_predict"] == {"startup": [1.25], "work": [0.5], "rss": [812.0]}
    assert bench_year.percentile([1, 2, 3, 4, 100], 0.95) == 100
    assert re.match(r"nan", str(bench_year.percentile([], 0.5)))


def test_credentials_are_registered_with_airflows_secrets_masker(monkeypatch):
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    from airloop.core.config import get_settings

    monkeypatch.setenv("AIRLOOP_SOURCE_URL", "postgresql+psycopg2://reader:p%40ss-W0rd!@db.example:5432/flights?sslmode=require")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-key-value-123")
    get_settings.cache_clear()
    try:
        op = Sleepy(task_id="t", ds="2026-06-15")
        message = "could not connect to postgresql+psycopg2://reader:p%40ss-W0rd!@db.example:5432/flights with aws-secret-key-value-123"
        assert "p%40ss-W0rd!" in redact(message)  # nothing registered yet
        op.pre_execute({})
        shown = redact(message)
        assert "p%40ss-W0rd!" not in shown and "aws-secret-key-value-123" not in shown
        assert "reader" in shown and "db.example" in shown  # only the secrets go
        assert "p@ss-W0rd!" not in redact("decoded: p@ss-W0rd!")  # the percent-decoded password too
    finally:
        get_settings.cache_clear()


class XComTI:
    def __init__(self):
        self.pushed = []

    def xcom_push(self, key, value):
        self.pushed.append((key, value))


def test_a_skip_says_why_in_the_task_log_and_in_an_xcom(capfd):
    import pytest
    from airflow.sdk.exceptions import AirflowSkipException

    ti = XComTI()
    reason = "inputs not there yet: raw/flights ds=2026-06-14 is not ingested"
    with pytest.raises(AirflowSkipException) as skipped:
        Sleepy(task_id="t").skip({"ti": ti}, reason)
    assert skipped.value.args == (reason,)
    assert ti.pushed == [("skip_reason", reason)]
    out, err = capfd.readouterr()
    assert f"Skipping: {reason}" in out + err
    with pytest.raises(AirflowSkipException, match="no task instance"):  # outside a task run (tests, CLI)
        Sleepy(task_id="t").skip({}, "no task instance")
