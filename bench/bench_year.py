"""The whole loop over a range of replayed days through a real scheduler, and where the time goes.

    python bench/bench_year.py --from 2026-04-01 --to 2026-04-14     # two weeks (plus the warm-up)
    python bench/bench_year.py --from 2026-01-31 --to 2026-12-28     # the year (hours today: see the README)

Starts a real Airflow (tests/e2e/harness.py: scheduler with the LocalExecutor, dag-processor,
api-server, triggerer, on SQLite, in a temporary AIRFLOW_HOME), loads the source, and runs
``airloop.loop.run_season`` over the range: warm-up (raw lookback, features, first champion),
then week by week ingestion, features, scoring, monitoring and the weekly training, in the order
the assets impose. Then it prints:

- wall time of the warm-up and of the range, days per minute, and the projection to 365 days;
- per DAG: runs, task instances, and failed or retried attempts (a run lost to load shows here);
- task start-up (process start to the stage's own work, from each task's ``airloop task: started
  up in`` log line) against the work itself (``airloop task: work``), median and p95, and the
  start-up share of the two; the scheduling gap (queued to started) median and p95;
- peak RSS of any task (``peak RSS`` in the same lines) and of the Airflow processes.

Run it on a quiet machine (nothing else running), under ``flock /tmp/airloop-e2e.lock`` where
others run end-to-end tests. ``--preload off`` measures without ``airloop.deploy.preload``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

STARTUP = re.compile(r"airloop task: started up in ([0-9.]+) s")
WORK = re.compile(r"airloop task: work ([0-9.]+) s, peak RSS ([0-9.]+) MB")
DAGS = ("ingest_flights", "materialize_features", "train_model", "batch_predict", "monitor_model")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def task_figures(logs: Path) -> dict[str, dict[str, list[float]]]:
    """Per DAG: start-up seconds, work seconds and peak RSS (MB) of every task attempt's log."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in logs.rglob("attempt=*.log"):
        dag = next((p.split("=", 1)[1] for p in path.parts if p.startswith("dag_id=")), "?")
        text = path.read_text(errors="replace")
        for match in STARTUP.finditer(text):
            out[dag]["startup"].append(float(match.group(1)))
        for match in WORK.finditer(text):
            out[dag]["work"].append(float(match.group(1)))
            out[dag]["rss"].append(float(match.group(2)))
    return out


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_figures(stack) -> dict[str, dict]:
    """Per DAG: runs by state, task instances by state, attempts beyond the first, queue gaps."""
    figures = {}
    for dag_id in DAGS:
        runs = stack.runs(dag_id)
        states: Counter = Counter(r.state for r in runs)
        tis: Counter = Counter()
        retried, gaps = 0, []
        for run in runs:
            for ti in stack.task_instances(dag_id, run.run_id):
                tis[ti.get("state")] += 1
                retried += max(0, int(ti.get("try_number") or 1) - 1)
                gap = _seconds(ti.get("queued_when"), ti.get("start_date"))
                if gap is not None and gap >= 0:
                    gaps.append(gap)
        figures[dag_id] = {"runs": dict(states), "tasks": dict(tis), "extra_attempts": retried, "queue_gaps": gaps}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2026-04-01", help="first replayed day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="end", default="2026-04-14", help="last replayed day")
    parser.add_argument("--warmup-days", type=int, default=28, help="days the first model trains on")
    parser.add_argument("--preload", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME (logs, DB) for inspection")
    args = parser.parse_args()
    first, last = date.fromisoformat(args.start), date.fromisoformat(args.end)
    if last < first:
        parser.error(f"--to {last} is before --from {first}")
    days = (last - first).days + 1

    from harness import ADMIN_PASSWORD, AirflowStack

    root = Path(tempfile.mkdtemp(prefix="bench-year-"))
    data = root / "data"
    source_url = f"sqlite:///{root / 'source.db'}"
    os.environ.update({"AIRLOOP_DATA_DIR": str(data), "AIRLOOP_SOURCE_URL": source_url})
    for key in ("AIRLOOP_LAKE_URL", "AIRLOOP_REGISTRY_URL"):
        os.environ.pop(key, None)
    from airloop.core.config import Settings, get_settings
    from airloop.core.usecase import load_use_case
    from airloop.ingest.source import SourceDatabase
    from airloop.loop import run_season
    from airloop.loop.season import AirflowClient

    get_settings.cache_clear()
    settings = Settings.from_env()
    stack = AirflowStack(root / "home", data, extra_env={"AIRLOOP_SOURCE_URL": source_url, "AIRLOOP_PRELOAD": args.preload})
    began = time.perf_counter()
    try:
        SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days).load(load_use_case(settings.use_case))
        stack.start(wait_for=DAGS, timeout=900)
        log(f"stack up in {time.perf_counter() - began:.0f} s (AIRLOOP_PRELOAD={args.preload})")
        client = AirflowClient(base_url=stack.base_url, password=ADMIN_PASSWORD)
        marks: dict[str, float] = {}

        def progress(line: str) -> None:
            if line.startswith(f"[season] ingest {first.isoformat()}") and "season_start" not in marks:
                marks["season_start"] = time.perf_counter()
            log(line)

        season_began = time.perf_counter()
        run_season(first, last, settings=settings, client=client, warmup_days=args.warmup_days, log=progress,
                   timeout_s=6 * 3600)  # fmt: skip
        ended = time.perf_counter()
        warmup_s = marks.get("season_start", season_began) - season_began
        range_s = ended - marks.get("season_start", season_began)
        runs = run_figures(stack)
        tasks = task_figures(stack.home / "logs")
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")

    print(f"\nthe loop over {first}..{last} ({days} days) through the scheduler (LocalExecutor, SQLite, "
          f"{os.cpu_count()} cores, AIRLOOP_PRELOAD={args.preload}):")  # fmt: skip
    print(f"  warm-up {warmup_s:.0f} s; the range {range_s:.0f} s = {range_s / days:.1f} s per day "
          f"-> 365 days projected {365 * range_s / days / 60:.0f} min (goal < 60 min)")  # fmt: skip
    all_startup, all_work, all_rss = [], [], []
    print(f"  {'DAG':22} {'runs':>14} {'tasks':>28} {'retries':>7} {'start-up med/p95':>17} {'work med/p95':>14} {'RSS max':>8}")
    for dag_id in DAGS:
        r, t = runs[dag_id], tasks.get(dag_id, {})
        startup, work, rss = t.get("startup", []), t.get("work", []), t.get("rss", [])
        all_startup += startup
        all_work += work
        all_rss += rss
        print(f"  {dag_id:22} {str(r['runs']):>14} {str(r['tasks']):>28} {r['extra_attempts']:>7} "
              f"{statistics.median(startup) if startup else float('nan'):>7.2f}/{percentile(startup, 0.95):<7.2f}s "
              f"{statistics.median(work) if work else float('nan'):>6.2f}/{percentile(work, 0.95):<6.2f}s "
              f"{max(rss) if rss else float('nan'):>6.0f}MB")  # fmt: skip
    total = sum(all_startup) + sum(all_work)
    gaps = [g for dag in runs.values() for g in dag["queue_gaps"]]
    print(f"  task start-up {sum(all_startup):.0f} s vs work {sum(all_work):.0f} s: start-up share "
          f"{sum(all_startup) / total if total else float('nan'):.0%} (goal < 50%)")  # fmt: skip
    print(f"  queued -> started: median {statistics.median(gaps) if gaps else float('nan'):.1f} s, p95 {percentile(gaps, 0.95):.1f} s")
    print(f"  peak RSS of any task {max(all_rss) if all_rss else float('nan'):.0f} MB (goal < 1500 MB)")
    print(f"  bench wall time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
