"""A long backfill from the user's side: ``airloop backfill`` (``make backfill``).

Airflow 3 runs a backfill as DAG runs, one per partition, ``max_active_runs`` at a time; the
user's questions are how far it got, how fast, when it ends and what failed. :func:`start`
creates the backfill through the REST API after a dry run (which says how many partitions it
will run: the total), :func:`watch` prints one progress line whenever something changed::

    [backfill 7 ingest_flights] 120/365 days done (1 failed), 4.1 days/min, about 60 min left

and, at the end, one summary (:class:`Progress.summary`). Interrupting the watch leaves the
backfill running (the scheduler owns it); :func:`pause` and :func:`resume` are Airflow's own
pause and unpause, so a resumed backfill never redoes a finished day. A new backfill of the same
range skips the days already done unless asked to rerun them (``reprocess_behavior``).

Time comes from the ``clock`` passed in (the CLI passes ``time.monotonic``): no wall clock here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Protocol

TERMINAL = ("success", "failed")
# Airflow's reprocess behaviours: "none" runs only days never run, "failed" also reruns failed
# ones, "completed" reruns every day.
REPROCESS = ("none", "failed", "completed")


class BackfillError(RuntimeError):
    """The backfill could not be created or followed (a bad range, an unknown DAG, no Airflow)."""


class Api(Protocol):
    def api(self, method: str, path: str, **kwargs): ...


@dataclass
class Progress:
    """Where a backfill stands: partition keys it runs and the latest state of each."""

    backfill_id: int
    dag_id: str
    keys: list[str]
    states: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    now: float = 0.0
    done_at_start: int = 0

    @property
    def total(self) -> int:
        return len(self.keys)

    def counts(self) -> Counter:
        return Counter(self.states.get(k, "not started") for k in self.keys)

    @property
    def done(self) -> int:
        counts = self.counts()
        return counts["success"] + counts["failed"]

    @property
    def failed(self) -> list[str]:
        return [k for k in self.keys if self.states.get(k) == "failed"]

    def rate_per_min(self) -> float | None:
        """Days finished per minute since the watch began (days finished before it do not count)."""
        elapsed = self.now - self.started
        fresh = self.done - self.done_at_start
        if elapsed <= 0 or fresh <= 0:
            return None
        return fresh / elapsed * 60

    def line(self) -> str:
        rate = self.rate_per_min()
        left = self.total - self.done
        text = f"[backfill {self.backfill_id} {self.dag_id}] {self.done}/{self.total} days done"
        if self.failed:
            text += f" ({len(self.failed)} failed)"
        running = self.counts()["running"]
        if running:
            text += f", {running} running"
        if rate is not None:
            text += f", {rate:.1f} days/min"
            if left:
                text += f", about {max(1, round(left / rate))} min left"
        elif left:
            text += ", rate not known yet"
        return text

    def summary(self) -> str:
        counts = self.counts()
        minutes = (self.now - self.started) / 60
        head = (
            f"backfill {self.backfill_id} of {self.dag_id}: {counts['success']} succeeded, {counts['failed']} failed, "
            f"{self.total - self.done} not finished, of {self.total} days; watched {minutes:.1f} min"
        )
        if self.failed:
            shown = ", ".join(self.failed[:10]) + (" ..." if len(self.failed) > 10 else "")
            head += (f"\n  failed days: {shown}\n  see each run in the Airflow UI (Grid); after fixing the cause, "
                     f"rerun only those: airloop backfill {self.dag_id} FROM TO --reprocess failed")  # fmt: skip
        return head


def plan(client: Api, dag_id: str, start: str, end: str, *, reprocess: str = "none", conf: dict | None = None) -> list[str]:
    """The partition keys (or logical dates) a backfill of ``[start, end]`` would run (a dry run)."""
    if reprocess not in REPROCESS:
        raise BackfillError(f"reprocess must be one of {', '.join(REPROCESS)}, got {reprocess!r}")
    body = request_body(dag_id, start, end, reprocess, conf)
    answer = client.api("POST", "/api/v2/backfills/dry_run", json=body)
    return [_key(item) for item in (answer or {}).get("backfills", [])]


def start(client: Api, dag_id: str, start: str, end: str, *, reprocess: str = "none", conf: dict | None = None,
          max_active_runs: int = 4) -> dict:  # fmt: skip
    """Create the backfill; returns Airflow's backfill record (``id``, ``is_paused``, ...)."""
    if max_active_runs < 1:
        raise BackfillError(f"max_active_runs must be at least 1, got {max_active_runs}")
    body = {**request_body(dag_id, start, end, reprocess, conf), "max_active_runs": max_active_runs}
    try:
        return client.api("POST", "/api/v2/backfills", json=body)
    except Exception as exc:
        if "already a running backfill" not in str(exc):
            raise
        running = [b["id"] for b in client.api("GET", "/api/v2/backfills", params={"dag_id": dag_id, "limit": 100})
                   .get("backfills", []) if not b.get("completed_at")]  # fmt: skip
        raise BackfillError(
            f"{dag_id} already has a running backfill ({', '.join(map(str, running)) or '?'}): Airflow runs one per DAG. "
            f"Watch it (airloop backfill watch ID) and start this one after, or pause it first"
        ) from None


def pause(client: Api, backfill_id: int) -> dict:
    return client.api("PUT", f"/api/v2/backfills/{int(backfill_id)}/pause")


def resume(client: Api, backfill_id: int) -> dict:
    return client.api("PUT", f"/api/v2/backfills/{int(backfill_id)}/unpause")


def states(client: Api, dag_id: str, keys: list[str]) -> dict[str, str]:
    """The latest backfill run's state of each key (runs of other types are not counted)."""
    wanted = set(keys)
    latest: dict[str, str] = {}
    offset = 0
    while True:
        page = client.api("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                          params={"limit": 100, "offset": offset, "order_by": "run_after", "run_type": "backfill"})  # fmt: skip
        runs = (page or {}).get("dag_runs", [])
        for run in runs:
            key = _key(run)
            if key in wanted:
                latest[key] = run.get("state") or "queued"
        offset += len(runs)
        if not runs or offset >= (page or {}).get("total_entries", 0):
            return latest


def watch(
    client: Api,
    progress: Progress,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    log: Callable[[str], None] = print,
    poll_s: float = 10.0,
    timeout_s: float | None = None,
) -> Progress:
    """Poll until every key is finished (or ``timeout_s``), logging a line whenever it changed."""
    progress.started = progress.now = clock()
    progress.states = states(client, progress.dag_id, progress.keys)
    progress.done_at_start = progress.done
    last = None
    while True:
        progress.now = clock()
        line = progress.line()
        if line != last:
            log(line)
            last = line
        if progress.done >= progress.total:
            return progress
        if timeout_s is not None and progress.now - progress.started > timeout_s:
            raise BackfillError(f"{progress.line()}: still running after {timeout_s:.0f} s (the backfill goes on)")
        sleep(poll_s)
        progress.states = states(client, progress.dag_id, progress.keys)


def check_range(start: str, end: str):
    """``(first, last)`` as dates; :class:`BackfillError` for a bad date or a reversed range."""
    from datetime import date

    try:
        first, last = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError as exc:
        raise BackfillError(f"dates are YYYY-MM-DD: {exc}") from None
    if last < first:
        raise BackfillError(f"the range ends ({last}) before it starts ({first})")
    return first, last


def request_body(dag_id: str, start: str, end: str, reprocess: str, conf: dict | None) -> dict:
    """The body of Airflow's ``POST /api/v2/backfills`` (and its dry run) for days ``start``..``end``."""
    first, last = check_range(start, end)
    return {
        "dag_id": dag_id, "from_date": f"{first.isoformat()}T00:00:00Z", "to_date": f"{last.isoformat()}T00:00:00Z",
        "reprocess_behavior": reprocess, "dag_run_conf": conf or {},
    }  # fmt: skip


def _key(item: dict) -> str:
    """A run's partition key, or its logical date's day for DAGs without partitions."""
    key = item.get("partition_key")
    if key:
        return str(key)
    logical = item.get("logical_date") or ""
    return str(logical)[:10]
