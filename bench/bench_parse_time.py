"""Parse time of each DAG file, as ``airflow dags report`` measures it, with Airflow already loaded.

For every file in ``dags/``, a fresh interpreter imports Airflow (``airflow.sdk`` and the
DagBag, as a dag-processor has them before it parses), then parses that one file with a
``DagBag`` and prints the duration Airflow records for it (``dagbag_stats``, the figure
``airflow dags report`` shows). One process per file, so no file rides on modules another file
imported first. Each file is parsed ``--repeat`` times (fresh process each) and the median kept.
The goal is under 0.1 s per file; the ratio column is duration / goal.

Usage: python bench/bench_parse_time.py [--repeat 3] [--report]
  --report also migrates a temporary metadata DB and runs ``airflow dags report -o json`` once (all
  files in one process; the first file pays for the shared imports) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 0.1

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk  # noqa: F401  (what a dag-processor has loaded before it parses a file)
from airflow.dag_processing.dagbag import DagBag
loaded = time.perf_counter() - t0
bag = DagBag(dag_folder=sys.argv[1])
stats = [{"file": s.file, "duration": s.duration.total_seconds(), "dags": s.dag_num, "tasks": s.task_num}
         for s in bag.dagbag_stats]
print(json.dumps({"airflow_load_s": loaded, "stats": stats, "errors": {k: v[-300:] for k, v in bag.import_errors.items()}}))
"""


def environment(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def parse_once(path: Path, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"parsing {path.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="also run `airflow dags report -o json`")
    args = parser.parse_args()

    files = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    with tempfile.TemporaryDirectory() as home:
        env = environment(home)
        print(f"DAG file parse time (median of {args.repeat} fresh processes, Airflow already loaded); goal {GOAL_S} s")
        print(f"{'file':28} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>7} {'dags':>5} {'tasks':>6}  status")
        worst = 0.0
        loads = []
        for path in files:
            runs = [parse_once(path, env) for _ in range(args.repeat)]
            if runs[0]["errors"]:
                print(f"{path.name:28} import error: {list(runs[0]['errors'].values())[0]}")
                continue
            durations = [r["stats"][0]["duration"] for r in runs]
            loads.extend(r["airflow_load_s"] for r in runs)
            median = statistics.median(durations)
            worst = max(worst, median)
            stat = runs[0]["stats"][0]
            status = "ok" if median < GOAL_S else "OVER GOAL"
            print(
                f"{path.name:28} {median:9.3f} {min(durations):7.3f} {max(durations):7.3f} "
                f"{median / GOAL_S:7.2f} {stat['dags']:5d} {stat['tasks']:6d}  {status}"
            )
        print(f"worst file: {worst:.3f} s = {worst / GOAL_S:.2f} x the goal; "
              f"loading Airflow itself (not counted): median {statistics.median(loads):.2f} s")  # fmt: skip

        if args.report:
            migrate = subprocess.run(["airflow", "db", "migrate"], capture_output=True, text=True, env=env, timeout=300)
            if migrate.returncode != 0:
                raise SystemExit(f"airflow db migrate failed:\n{migrate.stderr[-2000:]}")
            t0 = time.perf_counter()
            out = subprocess.run(
                ["airflow", "dags", "report", "-o", "json"], capture_output=True, text=True, env=env, timeout=300
            )
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                raise SystemExit(f"airflow dags report failed:\n{out.stderr[-2000:]}")
            rows = json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("[{")))
            print(f"\n`airflow dags report` (all files in one process, {wall:.1f} s wall):")
            for row in sorted(rows, key=lambda r: r["file"]):
                print(f"  {row['file']:28} {row['duration']}")


if __name__ == "__main__":
    main()
