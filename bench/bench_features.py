"""Features: training-set build vs a direct DuckDB ASOF JOIN vs Feast, and online materialization.

On 90 replayed days of real flights (2026-02-06 .. 2026-05-06 by default, with the 31 days of
history the delay statistics need) it measures, in one run on the same lake:

1. ``build_training_set`` for the 90 days (read raw flights, label, entity rows, point-in-time
   join from the Feast definitions): labelled rows/s.
2. ``historical_features`` alone on the same entity rows (the join path).
3. The same point-in-time join written directly in DuckDB (one query chaining an ASOF JOIN per
   view with the TTLs, over the same feature Parquet files, no Feast definitions): rows/s and
   the ratio; again with the entity rows repeated ``--scale`` times (about 1M rows).
4. Feast's own ``get_historical_features`` (duckdb offline store) on the same entity rows,
   with its row count (dropped rows) and whether its values equal ours.
5. Materialization into the SQLite online store: one call per day for 14 days: rows/s written.
6. Recomputing the last ``--recompute`` days of features (default 7), the delay statistics
   alone and all views: seconds per day (``--recompute-only`` stops after it).

Raw and feature partitions are prepared once under ``--dir`` (default ``data/bench-features``)
and reused; the preparation is timed separately. Usage: python bench/bench_features.py [--days 90]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]
warnings.filterwarnings("ignore")


def prepare(settings, first: date, last: date) -> None:
    """Raw partitions from 32 days before ``first`` (the statistics' lookback), features from the day before."""
    from airloop import features as F
    from airloop.core.dates import ds_range
    from airloop.ingest import ingest_day
    from airloop.ingest.source import SourceDatabase
    from airloop.core.storage import open_lake, read_manifest
    from airloop.core.usecase import load_use_case

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    use_case = load_use_case(settings.use_case)
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    if not source.has_table("flights"):
        t = time.perf_counter()
        source.load(use_case)
        print(f"prepare: source loaded in {time.perf_counter() - t:.1f} s")
    lake = open_lake(settings)
    t, ingested, computed = time.perf_counter(), 0, 0
    for day in ds_range(max(first - timedelta(days=33), date(2025, 12, 30)), last):
        for table in ("flights", "weather"):
            if read_manifest(lake, f"raw/{table}/ds={day}") is None:
                ingest_day(table, day, settings)
                ingested += 1
    t_ingest = time.perf_counter() - t
    t = time.perf_counter()
    for day in ds_range(first - timedelta(days=1), last):
        if read_manifest(lake, f"features/aircraft_attributes/ds={day}") is None:
            F.compute_features(use_case.day(day), settings=settings, lake=lake)
            computed += 1
    t_compute = time.perf_counter() - t
    print(f"prepare: {ingested} raw partitions ingested in {t_ingest:.1f} s, "
          f"{computed} days of features computed in {t_compute:.1f} s"
          + (f" ({t_compute / computed:.2f} s/day)" if computed else " (all reused)"))


def time_recompute(settings, lake, days: list[date]) -> None:
    """Recompute ``days`` view by view and print seconds per day (the delay statistics read 32
    days of raw flights and the airports table; the gate arrivals are computed once per day)."""
    from airloop import features as F
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    groups = {"delay statistics (3 views)": ["carrier_delay_stats", "origin_delay_stats", "route_delay_stats"],
              "all views": None}
    for label, views in groups.items():
        seconds, cpu = [], []
        for day in days:
            t, c = time.perf_counter(), time.process_time()
            F.compute_features(use_case.day(day), settings=settings, lake=lake, views=views)
            seconds.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        seconds.sort()
        cpu.sort()
        # CPU time too: on shared cores the wall time mostly measures the neighbours.
        print(f"recompute {label}: {len(days)} days, median {seconds[len(seconds) // 2]:.2f} s/day wall "
              f"(min {seconds[0]:.2f}), {cpu[len(cpu) // 2]:.2f} s/day CPU (min {cpu[0]:.2f}, max {cpu[-1]:.2f})")


def direct_duckdb_join(entity, lake, layout, days) -> "object":
    """The point-in-time join written by hand in DuckDB over the feature Parquet files."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("entity_rows", entity)
    selects, joins = ["e.*"], []
    for i, view in enumerate(layout.views):
        files = [str(lake.local_path(k)) for d in days for k in lake.list_keys(f"{view.lake_prefix}/ds={d}/") if k.endswith(".parquet")]
        keys = " AND ".join(f"e.{k} = v{i}.{k}" for k in view.join_keys)
        joins.append(f"ASOF LEFT JOIN read_parquet({files!r}) v{i} ON {keys} AND e.event_timestamp >= v{i}.event_timestamp")
        ttl_us = int(view.ttl.total_seconds() * 1e6)
        selects += [
            f"CASE WHEN v{i}.event_timestamp >= e.event_timestamp - INTERVAL {ttl_us} MICROSECONDS THEN v{i}.{f} END AS {f}"
            for f in view.features
        ]
    return con.sql(f"SELECT {', '.join(selects)} FROM entity_rows e {' '.join(joins)}").to_arrow_table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2026-02-06", help="first training day (default 2026-02-06)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--dir", default=str(ROOT / "data" / "bench-features"))
    parser.add_argument("--feast-rows", type=int, default=0, help="entity rows for Feast's join (default: all)")
    parser.add_argument("--scale", type=int, default=12, help="repeat the entity rows this often for the join at scale (0: skip)")
    parser.add_argument("--recompute", type=int, default=7, help="time recomputing the window's last N days (0: skip)")
    parser.add_argument("--recompute-only", action="store_true", help="prepare, time the recompute, stop")
    args = parser.parse_args()
    os.environ["AIRLOOP_DATA_DIR"] = args.dir
    for name in [n for n in os.environ if n.startswith("AIRLOOP_FEAST_") or n in ("AIRLOOP_LAKE_URL", "AIRLOOP_SOURCE_URL")]:
        os.environ.pop(name)

    from airloop import features as F
    from airloop.core.config import get_settings
    from airloop.core.dates import ds_range
    from airloop.core.storage import open_lake
    from airloop.features import build_training_set

    import numpy as np
    import pandas as pd

    settings = get_settings()
    first = date.fromisoformat(args.start)
    last = first + timedelta(days=args.days - 1)
    history = first - timedelta(days=1)
    prepare(settings, first, last)
    lake = open_lake(settings)
    if args.recompute:
        time_recompute(settings, lake, ds_range(last - timedelta(days=args.recompute - 1), last))
    if args.recompute_only:
        return
    store = F.feature_store(settings)
    print(f"apply: {F.apply_definitions(settings, store=store)}")

    t = time.perf_counter()
    ts = build_training_set(first, last, settings=settings, store=store, lake=lake)
    t_build = time.perf_counter() - t
    rows = len(ts.frame)
    print(f"\ntraining set {first}..{last}: {rows:,} labelled rows, {len(ts.feature_columns)} feature columns")
    print(f"  build_training_set        {t_build:6.2f} s  {rows / t_build:10,.0f} rows/s  (raw read + labels + join)")

    layout = F.service_layout(store, ts.feature_service)
    entity = ts.frame[[*layout.join_keys, "event_timestamp"]].copy()
    t = time.perf_counter()
    ours = F.historical_features(entity, settings=settings, store=store, lake=lake)
    t_join = time.perf_counter() - t
    print(f"  historical_features       {t_join:6.2f} s  {rows / t_join:10,.0f} rows/s  (join from Feast definitions)")

    import pyarrow as pa

    zone_days = ds_range(history, last)
    entity_arrow = pa.Table.from_pandas(entity, preserve_index=False)
    t = time.perf_counter()
    direct = direct_duckdb_join(entity_arrow, lake, layout, zone_days)
    t_direct = time.perf_counter() - t
    print(f"  direct DuckDB ASOF JOIN   {t_direct:6.2f} s  {rows / t_direct:10,.0f} rows/s  (hand-written SQL, same files)")
    print(f"  ratio build/direct {t_build / t_direct:.2f}x, historical_features/direct {t_join / t_direct:.2f}x (goal: within 3x)")
    direct_frame = direct.to_pandas()
    keys = [*layout.join_keys, "event_timestamp"]
    a = ours.sort_values(keys, kind="stable").reset_index(drop=True)
    b = direct_frame.assign(event_timestamp=pd.to_datetime(direct_frame["event_timestamp"], utc=True)).sort_values(keys, kind="stable").reset_index(drop=True)
    same = all(np.allclose(a[c].to_numpy("float64"), b[c].to_numpy("float64"), equal_nan=True) for c in layout.feature_names)
    print(f"  direct join rows {len(direct):,}, values equal to ours: {same}")

    feast_entity = entity if not args.feast_rows else entity.sample(args.feast_rows, random_state=0)
    feast_entity = feast_entity.assign(tailnum=feast_entity["tailnum"].fillna(""))
    feast_entity["event_timestamp"] = feast_entity["event_timestamp"].astype("datetime64[ns, UTC]")
    t = time.perf_counter()
    theirs = store.get_historical_features(entity_df=feast_entity, features=store.get_feature_service(ts.feature_service)).to_df()
    t_feast = time.perf_counter() - t
    print(f"  Feast get_historical_features (duckdb store) {t_feast:6.2f} s  {len(feast_entity) / t_feast:10,.0f} rows/s  "
          f"({len(theirs):,} of {len(feast_entity):,} rows returned; {t_feast / t_join:.1f}x our join)")

    if args.scale:
        big = pd.concat([entity] * args.scale, ignore_index=True)
        t = time.perf_counter()
        F.historical_features(big, settings=settings, store=store, lake=lake)
        t_big = time.perf_counter() - t
        t = time.perf_counter()
        direct_duckdb_join(pa.Table.from_pandas(big, preserve_index=False), lake, layout, zone_days)
        t_big_direct = time.perf_counter() - t
        print(f"\nat scale ({len(big):,} entity rows, the same rows {args.scale} times):")
        print(f"  historical_features       {t_big:6.2f} s  {len(big) / t_big:10,.0f} rows/s")
        print(f"  direct DuckDB ASOF JOIN   {t_big_direct:6.2f} s  {len(big) / t_big_direct:10,.0f} rows/s  "
              f"(ratio {t_big / t_big_direct:.2f}x)")

    # Materialization: a clean online store, then one call per day as the DAG does.
    online_path = F.feast_environment(settings)["AIRLOOP_FEAST_ONLINE_PATH"]
    with sqlite3.connect(online_path) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            conn.execute(f'DELETE FROM "{table}"')
    use_case = F.load_feature_use_case(settings)
    mat_days = use_case.day(last - timedelta(days=13)).range_to(use_case.day(last))
    t = time.perf_counter()
    written = read = 0
    for day in mat_days:
        for r in F.materialize(day, day, settings=settings, store=store, lake=lake):
            written += r.written
            read += r.rows_read
    t_mat = time.perf_counter() - t
    print(f"\nmaterialize {len(mat_days)} days one by one: {read:,} rows read, {written:,} entity rows written in {t_mat:.2f} s: "
          f"{written / t_mat:,.0f} rows/s into the SQLite online store")
    t = time.perf_counter()
    again = sum(r.written for r in F.materialize(mat_days[0], mat_days[0], settings=settings, store=store, lake=lake))
    t_old = time.perf_counter() - t
    print(f"  backfill of the oldest day afterwards: {again} rows written (newer values kept) in {t_old:.2f} s")


if __name__ == "__main__":
    main()
