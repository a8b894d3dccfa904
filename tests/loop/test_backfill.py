"""airloop backfill: progress, rate, time left, failures, resume (airloop.loop.backfill).

The REST API is the edge here (a recorded fake); tests/e2e/test_ingest_e2e.py runs the command
against a real scheduler.
"""

from __future__ import annotations

import pytest

from airloop.loop import backfill as bf


class FakeAirflow:
    """Answers the backfill endpoints; each poll advances the runs by one step of ``script``."""

    def __init__(self, keys, script):
        self.keys, self.script, self.step, self.calls = keys, script, 0, []

    def api(self, method, path, **kwargs):
        self.calls.append((method, path, kwargs.get("json") or kwargs.get("params")))
        if path == "/api/v2/backfills/dry_run":
            return {"backfills": [{"partition_key": k, "logical_date": None} for k in self.keys], "total_entries": len(self.keys)}
        if method == "POST" and path == "/api/v2/backfills":
            return {"id": 7, "dag_id": kwargs["json"]["dag_id"], "is_paused": False}
        if path.endswith("/dagRuns"):
            states = self.script[min(self.step, len(self.script) - 1)]
            self.step += 1
            runs = [{"partition_key": k, "state": s} for k, s in zip(self.keys, states) if s]
            offset, limit = kwargs["params"]["offset"], kwargs["params"]["limit"]
            return {"dag_runs": runs[offset : offset + limit], "total_entries": len(runs)}
        if path.endswith(("/pause", "/unpause")):
            return {"id": int(path.split("/")[4]), "is_paused": path.endswith("/pause")}
        raise AssertionError(f"unexpected call {method} {path}")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


def test_watch_prints_days_done_rate_time_left_and_failures_then_a_summary():
    keys = [f"2026-03-{d:02d}" for d in range(1, 7)]
    script = [
        ["queued"] * 6,
        ["success", "running", "queued", "queued", "queued", "queued"],
        ["success", "success", "failed", "running", "queued", "queued"],
        ["success", "success", "failed", "success", "success", "running"],
        ["success", "success", "failed", "success", "success", "success"],
    ]
    airflow, clock, lines = FakeAirflow(keys, script), Clock(), []
    progress = bf.watch(airflow, bf.Progress(7, "ingest_flights", keys), clock=clock, sleep=clock.sleep, log=lines.append, poll_s=60)
    assert lines[0] == "[backfill 7 ingest_flights] 0/6 days done, rate not known yet"
    assert lines[1] == "[backfill 7 ingest_flights] 1/6 days done, 1 running, 1.0 days/min, about 5 min left"
    assert lines[2] == "[backfill 7 ingest_flights] 3/6 days done (1 failed), 1 running, 1.5 days/min, about 2 min left"
    assert lines[-1] == "[backfill 7 ingest_flights] 6/6 days done (1 failed), 1.5 days/min"
    assert progress.failed == ["2026-03-03"]
    summary = progress.summary()
    assert "5 succeeded, 1 failed, 0 not finished, of 6 days; watched 4.0 min" in summary
    assert "failed days: 2026-03-03" in summary and "--reprocess failed" in summary


def test_a_resumed_watch_counts_its_rate_from_the_days_it_saw_finish():
    keys = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    script = [["success", "success", "queued", "queued"], ["success", "success", "success", "queued"],
              ["success"] * 4]  # fmt: skip
    airflow, clock, lines = FakeAirflow(keys, script), Clock(), []
    bf.watch(airflow, bf.Progress(3, "batch_predict", keys), clock=clock, sleep=clock.sleep, log=lines.append, poll_s=30)
    # Two days were done before the watch began: 1 fresh day in 30 s is 2 days/min, not 6.
    assert lines[1] == "[backfill 3 batch_predict] 3/4 days done, 2.0 days/min, about 1 min left"


def test_the_watch_gives_up_after_its_timeout_naming_where_it_stands():
    keys = ["2026-03-01", "2026-03-02"]
    airflow, clock = FakeAirflow(keys, [["running", "queued"]]), Clock()
    with pytest.raises(bf.BackfillError, match=r"0/2 days done, 1 running.*still running after 100 s \(the backfill goes on\)"):
        bf.watch(airflow, bf.Progress(1, "d", keys), clock=clock, sleep=clock.sleep, log=lambda _: None, poll_s=60, timeout_s=100)


def test_states_read_every_page_and_ignore_keys_of_other_ranges():
    keys = [f"2026-01-{d:02d}" for d in range(1, 31)] * 1
    other = [f"2025-12-{d:02d}" for d in range(1, 31)]
    airflow = FakeAirflow(other + keys, [["success"] * 30 + ["failed"] * 30])
    states = bf.states(airflow, "d", keys)
    assert len(states) == 30 and set(states.values()) == {"failed"}


def test_plan_start_pause_resume_send_what_airflow_expects():
    keys = ["2026-03-01", "2026-03-02"]
    airflow = FakeAirflow(keys, [[None, None]])
    assert bf.plan(airflow, "ingest_flights", "2026-03-01", "2026-03-02", reprocess="failed") == keys
    assert bf.start(airflow, "ingest_flights", "2026-03-01", "2026-03-02", max_active_runs=2)["id"] == 7
    bf.pause(airflow, 7)
    bf.resume(airflow, 7)
    dry, create, pause, resume = airflow.calls
    assert dry[2] == {"dag_id": "ingest_flights", "from_date": "2026-03-01T00:00:00Z", "to_date": "2026-03-02T00:00:00Z",
                      "reprocess_behavior": "failed", "dag_run_conf": {}}  # fmt: skip
    assert create[2]["max_active_runs"] == 2 and create[2]["reprocess_behavior"] == "none"
    assert pause[:2] == ("PUT", "/api/v2/backfills/7/pause") and resume[:2] == ("PUT", "/api/v2/backfills/7/unpause")


@pytest.mark.parametrize(
    "start, end, kwargs, message",
    [
        ("2026-03-02", "2026-03-01", {}, "ends (2026-03-01) before it starts (2026-03-02)"),
        ("2026-02-30", "2026-03-01", {}, "dates are YYYY-MM-DD"),
        ("2026-03-01", "2026-03-02", {"reprocess": "all"}, "reprocess must be one of none, failed, completed, got 'all'"),
    ],
)
def test_bad_ranges_and_settings_are_refused_before_anything_is_created(start, end, kwargs, message):
    airflow = FakeAirflow([], [[]])
    with pytest.raises(bf.BackfillError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bf.plan(airflow, "d", start, end, **kwargs)
    with pytest.raises(bf.BackfillError, match="max_active_runs must be at least 1"):
        bf.start(airflow, "d", "2026-03-01", "2026-03-02", max_active_runs=0)
    assert [c for c in airflow.calls if c[0] == "POST" and c[1] == "/api/v2/backfills"] == []


def test_the_cli_refuses_a_reversed_range_before_asking_airflow(capsys):
    from airloop.cli import main

    assert main(["backfill", "ingest_flights", "2026-03-02", "2026-03-01", "--airflow-url", "http://127.0.0.1:9"]) == 1
    assert "BackfillError: the range ends (2026-03-01) before it starts (2026-03-02)" in capsys.readouterr().err
    assert main(["backfill", "pause", "seven"]) == 1
    assert "a backfill id is a number" in capsys.readouterr().err


def test_a_second_backfill_of_a_dag_is_refused_naming_the_running_one():
    class Busy(FakeAirflow):
        def api(self, method, path, **kwargs):
            if method == "POST" and path == "/api/v2/backfills":
                raise RuntimeError('POST /api/v2/backfills -> 409: {"detail":"There is already a running backfill for dag d"}')
            if method == "GET" and path == "/api/v2/backfills":
                return {"backfills": [{"id": 4, "completed_at": "2026-03-01T00:00:00Z"}, {"id": 9, "completed_at": None}]}
            return super().api(method, path, **kwargs)

    with pytest.raises(bf.BackfillError, match=r"d already has a running backfill \(9\).*airloop backfill watch ID"):
        bf.start(Busy([], [[]]), "d", "2026-03-01", "2026-03-02")
