"""The *Airloop > Backfills* page: each backfill of the loop's DAGs and how far it got, per stage.

Read from Airflow's own tables (``backfill``, ``dag_run``) in the api-server process that serves
the page: runs by state per backfill, days done of the total, the rate since the backfill was
created, an estimate of the time left, whether it is paused, and the failed days. Pausing and
resuming are Airflow's (the UI's backfill banner, or ``airloop backfill pause|resume ID``).
Included in the Airloop app, whose dependency authenticates every route.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from html import escape

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

router = APIRouter()

LOOP_DAGS = ("ingest_flights", "materialize_features", "train_model", "batch_predict", "monitor_model", "rollback_model")


def backfill_rows(limit: int = 50, now: datetime | None = None) -> list[dict]:
    """The newest backfills of the loop's DAGs, each with its runs counted by state."""
    from sqlalchemy import func, select

    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    now = now or datetime.now(timezone.utc)  # the page's boundary: "time left" is about the real time
    with create_session() as session:
        backfills = session.scalars(
            select(Backfill).where(Backfill.dag_id.in_(LOOP_DAGS)).order_by(Backfill.id.desc()).limit(limit)
        ).all()
        ids = [b.id for b in backfills]
        counts: dict[int, Counter] = {i: Counter() for i in ids}
        failed: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            for backfill_id, state, n in session.execute(
                select(DagRun.backfill_id, DagRun.state, func.count()).where(DagRun.backfill_id.in_(ids))
                .group_by(DagRun.backfill_id, DagRun.state)
            ):  # fmt: skip
                counts[backfill_id][str(state)] += n
            for backfill_id, key, logical in session.execute(
                select(DagRun.backfill_id, DagRun.partition_key, DagRun.logical_date)
                .where(DagRun.backfill_id.in_(ids), DagRun.state == "failed").order_by(DagRun.run_after)
            ):  # fmt: skip
                failed[backfill_id].append(str(key or (logical.date() if logical else "?")))
        return [_row(b, counts[b.id], failed[b.id], now) for b in backfills]


def _row(backfill, counts: Counter, failed: list[str], now: datetime) -> dict:
    total = sum(counts.values())
    done = counts["success"] + counts["failed"]
    created = backfill.created_at
    minutes = max((((backfill.completed_at or now) - created).total_seconds()) / 60, 1e-9) if created else None
    rate = done / minutes if minutes and done else None
    left = (total - done) / rate if rate and total > done and not backfill.completed_at else None
    return {
        "id": backfill.id,
        "dag_id": backfill.dag_id,
        "range": f"{backfill.from_date:%Y-%m-%d} .. {backfill.to_date:%Y-%m-%d}",
        "paused": bool(backfill.is_paused),
        "completed": backfill.completed_at is not None,
        "total": total,
        "done": done,
        "counts": dict(counts),
        "failed": failed,
        "rate_per_min": rate,
        "minutes_left": left,
    }


def backfills_page_body(rows: list[dict]) -> str:
    if not rows:
        return ("<p class='empty'>No backfill of the loop's DAGs yet. Start one with "
                "<code>make backfill DAG=ingest_flights FROM=2026-03-01 TO=2026-03-31</code> (it shows its progress "
                "in the terminal too) or from a DAG's Trigger menu.</p>")  # fmt: skip
    head = ("<tr><th>id</th><th>DAG (stage)</th><th>range</th><th>state</th><th>days done</th><th>running</th>"
            "<th>queued</th><th>failed</th><th>days/min</th><th>time left</th><th>failed days</th></tr>")  # fmt: skip
    body = []
    for r in rows:
        state = "completed" if r["completed"] else "paused" if r["paused"] else "running"
        pct = f"{r['done'] / r['total']:.0%}" if r["total"] else "–"
        rate = f"{r['rate_per_min']:.1f}" if r["rate_per_min"] else "–"
        left = f"about {max(1, round(r['minutes_left']))} min" if r["minutes_left"] else "–"
        failed = ", ".join(r["failed"][:8]) + (" ..." if len(r["failed"]) > 8 else "")
        body.append(
            f"<tr><td>{r['id']}</td><td>{escape(r['dag_id'])}</td><td>{escape(r['range'])}</td><td>{state}</td>"
            f"<td class='num'>{r['done']}/{r['total']} ({pct})</td><td class='num'>{r['counts'].get('running', 0)}</td>"
            f"<td class='num'>{r['counts'].get('queued', 0)}</td><td class='num'>{len(r['failed'])}</td>"
            f"<td class='num'>{rate}</td><td>{left}</td><td>{escape(failed)}</td></tr>"
        )  # fmt: skip
    return (f"<table>{head}{''.join(body)}</table><p>Pause or resume a backfill from the DAG's page in the Airflow "
            "UI, or with <code>airloop backfill pause ID</code> / <code>resume ID</code>; a resumed or repeated "
            "backfill never redoes a finished day.</p>")  # fmt: skip


@router.get("/backfills", response_class=HTMLResponse)
def backfills_index(limit: int = Query(50, ge=1, le=500)):
    from airloop_plugins.ui import pages
    from airloop_plugins.ui.app import URL_PREFIX

    return HTMLResponse(pages.page("Backfills", backfills_page_body(backfill_rows(limit)), base=URL_PREFIX))


@router.get("/api/backfills")
def backfills_json(limit: int = Query(50, ge=1, le=500)):
    return backfill_rows(limit)
