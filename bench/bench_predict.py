"""Benchmark: batch scoring throughput and memory at 1M and 5M rows, next to raw XGBoost predict.

One run prints figures and ratios (no pass/fail of its own beyond the goals it reports):

* **end to end**: :func:`airloop.scoring.score_stream` over a synthetic day of N rows (the real
  schedule of one replayed day, replicated with new flight numbers, generated chunk by chunk) with
  the real feature lookup (:class:`airloop.scoring.FeatureLookup`: entity rows + features as of
  the prediction time from the lake's feature partitions), ``Booster.inplace_predict``, Parquet
  row groups, then :func:`airloop.scoring.publish_files` into the lake (sha256 + copy + manifest).
* **raw**: ``Booster.inplace_predict`` alone on the same feature rows already in memory
  (a float32 matrix), the limit.

Each measurement runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own, ``--repeat``
times, end to end and raw alternating; the figures are the medians.
Goals (issue 5): end to end >= 50% of raw at 1M and 5M rows; peak RSS at 5M <= 1.5x at 1M.

Set-up (about a minute): the real source in a temp dir, the first replayed days ingested and their
features computed, a 200-tree depth-6 model trained on the real training set.

    python bench/bench_predict.py [--sizes 1000000 5000000] [--chunk-rows 200000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

DAYS = [date(2025, 12, 30) + timedelta(days=i) for i in range(9)]
SCORED = DAYS[-1]
TREES, DEPTH = 200, 6


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settings_for(workdir: Path):
    from airloop.core.config import Settings, get_settings

    os.environ["AIRLOOP_DATA_DIR"] = str(workdir)
    os.environ["AIRLOOP_SOURCE_URL"] = f"sqlite:///{workdir / 'source.db'}"
    for key in ("AIRLOOP_LAKE_URL", "AIRLOOP_REGISTRY_URL"):
        os.environ.pop(key, None)
    get_settings.cache_clear()
    return Settings.from_env()


def prepare(
    workdir: Path | None,
    days: list[date] = DAYS,
    train: tuple[date, date] = (DAYS[1], DAYS[-2]),
    load_source: bool = True,
    feature_days: list[date] | None = None,
) -> dict:
    """Source, raw and feature partitions of ``days``, Feast applied, a promoted 200-tree model."""
    import xgboost as xgb

    from airloop import features
    from airloop.core.config import get_settings
    from airloop.ingest import ingest_day
    from airloop.registry import ModelRegistry
    from airloop.ingest.source import SourceDatabase
    from airloop.core.storage import open_lake, sha256_bytes
    from airloop.features.training_set import build_training_set
    from airloop.core.usecase import load_use_case

    settings = settings_for(workdir) if load_source else get_settings()
    use_case = load_use_case(settings.use_case)
    if load_source:
        SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days).load(use_case)
    for day in days:
        for table in use_case.tables:
            ingest_day(table, day, settings)
    features.apply_definitions(settings)
    for day in feature_days or days:
        features.compute_features(use_case.day(day), settings=settings)
    training = build_training_set(*train, settings=settings)
    dtrain = xgb.DMatrix(
        training.frame[training.feature_columns], label=training.frame[training.label_column],
        feature_names=training.feature_columns,
    )  # fmt: skip
    params = {"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.1, "nthread": 2, "seed": 1}
    booster = xgb.train(params, dtrain, TREES)
    data = bytes(booster.save_raw("ubj"))
    lake = open_lake(settings)
    registry = ModelRegistry(settings.registry_url)
    name = use_case.model.name
    mv = registry.reserve_version(
        name, feature_service=training.feature_service, feature_columns=training.feature_columns,
        window_start=train[0], window_end=train[1], fingerprint=training.fingerprint, params=params, metrics={},
        code_version="bench", device="cpu",
    )  # fmt: skip
    key = f"models/{name}/v{mv.version}/model.ubj"
    lake.write_bytes(key, data)
    registry.finalize_version(name, mv.version, artifact_uri=lake.uri(key), sha256=sha256_bytes(data), reference_uri=None)
    registry.promote(name, mv.version, reason="bench", actor="bench")
    return {"training_rows": len(training.frame), "features": len(training.feature_columns), "version": mv.version}


# --- workers (one subprocess each) --------------------------------------------------------------


def _model(settings):
    from airloop.registry import ModelRegistry
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    registry = ModelRegistry(settings.registry_url)
    mv = registry.champion(use_case.model.name)
    lake = open_lake(settings)
    booster = registry.load_booster(mv, lake)
    booster.set_param({"nthread": 2})
    return use_case, mv, lake, booster


def _template(settings, use_case):
    """The real schedule of the scored day (typed, replayed), as read by nightly scoring."""
    import pandas as pd

    from airloop.scoring import read_schedule
    from airloop.ingest.source import SourceDatabase

    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    _, chunks = read_schedule(source, use_case, use_case.day(SCORED), chunk_rows=100_000)
    return pd.concat(list(chunks), ignore_index=True)


def synthetic_chunks(template, rows: int, chunk_rows: int):
    """``rows`` schedule rows in chunks: the real day repeated, each copy with new flight numbers."""
    import numpy as np

    n_template = len(template)
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        index = np.arange(start, stop)
        chunk = template.iloc[index % n_template].reset_index(drop=True)
        chunk["flight"] = chunk["flight"].astype("int64") + 10_000 * (index // n_template)
        yield chunk


def worker_end_to_end(workdir: Path, rows: int, chunk_rows: int) -> dict:
    from airloop.scoring import FeatureLookup, publish_files, score_stream

    settings = settings_for(workdir)
    use_case, mv, lake, booster = _model(settings)
    template = _template(settings, use_case)
    as_of = use_case.day(SCORED).cutoff
    lookup = FeatureLookup(settings, mv.feature_service, lake=lake, use_case=use_case)
    # One-off start-up outside the clock (reported apart): the service layout (from the lake's
    # record, or Feast), DuckDB's import. The feature retrieval itself (partitions read, latest row per entity)
    # happens inside the clock, on the first chunk.
    t = time.perf_counter()
    lookup.columns(), lookup.layout
    import duckdb  # noqa: F401  (the lookup's engine: a one-off import per process, like Feast's was)

    warmup_s = time.perf_counter() - t
    timings = {"generate": 0.0, "features": 0.0, "predict": 0.0}

    def timed_chunks():
        source = synthetic_chunks(template, rows, chunk_rows)
        while True:
            t = time.perf_counter()
            chunk = next(source, None)
            timings["generate"] += time.perf_counter() - t
            if chunk is None:
                return
            yield chunk

    def timed_lookup(chunk):
        t = time.perf_counter()
        out = lookup.lookup(chunk, as_of)
        timings["features"] += time.perf_counter() - t
        return out

    class TimedBooster:
        feature_names = booster.feature_names

        def inplace_predict(self, data):
            t = time.perf_counter()
            out = booster.inplace_predict(data)
            timings["predict"] += time.perf_counter() - t
            return out

    scratch = Path(tempfile.mkdtemp(dir=workdir))
    start = time.perf_counter()
    stats = score_stream(
        timed_chunks(), booster=TimedBooster(), feature_columns=list(mv.feature_columns),
        key=list(use_case.prediction.key), lookup=timed_lookup, model_version=mv.version,
        part_path=scratch / "part.parquet", features_path=scratch / "features.parquet",
    )  # fmt: skip
    stream_s = time.perf_counter() - start
    t = time.perf_counter()
    body = publish_files(
        lake, f"bench/predictions/rows={rows}",
        {"part.parquet": scratch / "part.parquet", "features.parquet": scratch / "features.parquet"}, {"rows": stats.rows},
    )  # fmt: skip
    publish_s = time.perf_counter() - t
    total = time.perf_counter() - start
    shutil.rmtree(scratch)
    assert stats.rows == rows, (stats.rows, rows)
    return {
        "rows": rows,
        "seconds": total,
        "rows_per_s": rows / total,
        "stream_s": stream_s,
        "publish_s": publish_s,
        "write_s": stream_s - sum(timings.values()),
        **{f"{k}_s": v for k, v in timings.items()},
        "rows_missing_features": stats.rows_missing_features,
        "output_mb": sum(f["bytes"] for f in body["files"]) / 1e6,
        "warmup_s": warmup_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker_raw(workdir: Path, rows: int, chunk_rows: int) -> dict:
    """``inplace_predict`` on the same feature rows, already in memory as one float32 matrix."""
    import numpy as np

    from airloop.scoring import FeatureLookup

    settings = settings_for(workdir)
    use_case, mv, lake, booster = _model(settings)
    template = _template(settings, use_case)
    lookup = FeatureLookup(settings, mv.feature_service, lake=lake, use_case=use_case)
    columns = list(mv.feature_columns)
    # The features of one copy of the day, repeated like the end-to-end rows (same values).
    day = lookup.lookup(template, use_case.day(SCORED).cutoff)[columns].to_numpy(dtype="float32", na_value=np.nan)
    in_memory = min(rows, 1_000_000)
    matrix = np.ascontiguousarray(day[np.arange(in_memory) % len(day)])
    booster.inplace_predict(matrix[:1000])  # warm-up
    start = time.perf_counter()
    done = 0
    while done < rows:
        n = min(in_memory, rows - done)
        booster.inplace_predict(matrix[:n])
        done += n
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "in_memory_rows": in_memory}


def backfill_through_the_scheduler(days: int, preload: str = "auto") -> None:
    """Backfill ``days`` days of ``batch_predict`` on a real Airflow (tests/e2e/harness.py).

    Prints the wall time of the backfill (created -> completed) and splits each task's time into
    the work (the scoring library's own ``duration_s`` from ``scoring_runs``) and Airflow's
    overhead (task start-up, imports, state updates, scheduling gaps).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
    from harness import AirflowStack

    from airloop.scoring import ScoringRuns
    from airloop.usecases.flights import STAT_LOOKBACK_DAYS

    first = date(2026, 7, 1)
    scored = [first + timedelta(days=i) for i in range(days)]
    root = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        source = root / "source-data"
        settings = settings_for(source)
        from airloop.ingest.source import SourceDatabase
        from airloop.core.usecase import load_use_case

        SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days).load(load_use_case(settings.use_case))
        stack = AirflowStack(root / "home", root / "data", extra_env={"AIRLOOP_SOURCE_URL": settings.source_url, "AIRLOOP_PRELOAD": preload})
        stack.start(wait_for=["batch_predict"], timeout=600)
        try:
            t = time.perf_counter()
            env = {**stack.env}
            code = (
                "import sys; sys.path.insert(0, {bench!r}); import bench_predict as b; from datetime import date, timedelta; "
                "first = date.fromisoformat({first!r}); last = date.fromisoformat({last!r}); "
                "days = [first - timedelta(days=i) for i in range({back}, 0, -1)] + [first + timedelta(days=i) for i in range((last - first).days + 1)]; "
                "import json; print(json.dumps(b.prepare(None, days, (first - timedelta(days=8), first - timedelta(days=2)), load_source=False, "
                "feature_days=[d for d in days if d >= first - timedelta(days=11)])))"
            ).format(bench=str(Path(__file__).parent), first=scored[0].isoformat(), last=scored[-1].isoformat(), back=STAT_LOOKBACK_DAYS + 12)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-3000:])
            version = json.loads(out.stdout.strip().splitlines()[-1])["version"]
            log(f"upstream for {days} days prepared in {time.perf_counter() - t:.0f} s")
            stack.unpause("batch_predict")
            began = time.perf_counter()
            created = stack.api("POST", "/api/v2/backfills", json={
                "dag_id": "batch_predict", "from_date": f"{scored[0]}T00:00:00Z",
                "to_date": f"{scored[-1] + timedelta(days=1)}T00:00:00Z", "reprocess_behavior": "completed",
                "max_active_runs": 4, "dag_run_conf": {"model_version": version},
            })  # fmt: skip
            stack.wait_for_backfill(created, timeout=1800)
            wall = time.perf_counter() - began
            keys = {d.isoformat() for d in scored}
            runs = [r for r in stack.runs("batch_predict") if r.partition_key in keys]
            work = {r["airflow_run_id"]: r["duration_s"] for r in ScoringRuns(f"sqlite:///{stack.data_dir / 'registry.db'}").list(limit=1000)}
            tis = [ti for r in runs for ti in stack.task_instances("batch_predict", r.run_id)]
            ok = sum(r.state == "success" for r in runs)
            score = [ti for ti in tis if ti["task_id"] == "score"]
            sensor = [ti for ti in tis if ti["task_id"] == "wait_for_features"]
            score_s = sum(ti["duration"] or 0 for ti in score)
            sensor_s = sum(ti["duration"] or 0 for ti in sensor)
            work_s = sum(work.get(ti["dag_run_id"], 0) or 0 for ti in score)
            rows = sum(1 for _ in score)
            print(f"\nbackfill of {days} days through the scheduler (LocalExecutor, SQLite, 2 shared cores, AIRLOOP_PRELOAD={preload}):")
            print(f"  runs: {len(runs)}, succeeded: {ok}; wall {wall:.0f} s (goal < 180 s: {'met' if wall < 180 and ok == days else 'NOT met'})")
            print(f"  score tasks: {score_s:.0f} s in all, of which scoring work {work_s:.0f} s ({work_s / max(score_s, 1e-9):.0%});"
                  f" Airflow + start-up overhead {(score_s - work_s) / max(rows, 1):.1f} s per task")
            print(f"  sensor tasks: {sensor_s:.0f} s in all ({sensor_s / max(len(sensor), 1):.1f} s per task, all overhead: one poke)")
        finally:
            stack.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_worker(kind: str, workdir: Path, rows: int, chunk_rows: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--workdir", str(workdir), "--rows", str(rows), "--chunk-rows", str(chunk_rows)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} worker for {rows} rows failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the median is reported)")
    parser.add_argument("--keep", help="reuse/keep this work dir (skips set-up when it is ready)")
    parser.add_argument("--preload", choices=("auto", "on", "off"), default="auto", help="AIRLOOP_PRELOAD for the stack (airloop.deploy.preload)")
    parser.add_argument("--backfill-days", type=int, default=0, help="also backfill N days through a real scheduler (slow; run under flock)")
    parser.add_argument("--worker", choices=["e2e", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1 (got {args.repeat}): the figures are medians of its runs")

    if args.worker:
        fn = worker_end_to_end if args.worker == "e2e" else worker_raw
        print(json.dumps(fn(Path(args.workdir), args.rows, args.chunk_rows)))
        return 0

    began = time.perf_counter()
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-predict-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.sizes:
            throughput(args, workdir)
        if args.backfill_days:
            backfill_through_the_scheduler(args.backfill_days, args.preload)
        print(f"\nbench wall time {time.perf_counter() - began:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _median_run(runs: list[dict]) -> dict:
    """The run of median throughput, with the peak RSS of all (memory is not noise)."""
    run = dict(sorted(runs, key=lambda r: r["rows_per_s"])[len(runs) // 2])
    if "peak_rss_mb" in run:
        run["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return run


def throughput(args, workdir: Path) -> None:
    """End to end vs raw at each size, each in its own subprocess; figures, ratios, goals."""
    ready = workdir / ".ready"
    if ready.exists():
        info = json.loads(ready.read_text())
        log(f"reusing the set-up in {workdir}")
    else:
        log(f"set-up in {workdir}: source, {len(DAYS)} days ingested and featurized, {TREES}-tree model ...")
        t = time.perf_counter()
        info = prepare(workdir)
        info["setup_s"] = time.perf_counter() - t
        ready.write_text(json.dumps(info))
    print(f"model: {TREES} trees, depth {DEPTH}, {info['features']} features; trained on {info['training_rows']} rows")
    print(f"scored day {SCORED} replicated; chunk {args.chunk_rows:,} rows; 2 threads; set-up {info.get('setup_s', 0):.0f} s\n")
    results, spread = {}, {}
    for rows in args.sizes:
        # End to end and raw alternate, `--repeat` times each: this shared machine's speed drifts
        # by +-20% from one minute to the next, and the ratio compares the two medians.
        runs = {"e2e": [], "raw": []}
        for r in range(args.repeat):
            for kind in ("e2e", "raw"):
                log(f"{rows:,} rows: {'end to end' if kind == 'e2e' else 'raw inplace_predict'} ({r + 1}/{args.repeat}) ...")
                runs[kind].append(run_worker(kind, workdir, rows, args.chunk_rows))
        results[rows] = tuple(_median_run(runs[kind]) for kind in ("e2e", "raw"))
        spread[rows] = {kind: sorted(run["rows_per_s"] for run in runs[kind]) for kind in runs}

    print(f"{'rows':>10} {'e2e rows/s':>11} {'raw rows/s':>11} {'e2e/raw':>8} {'e2e s':>7} {'features':>9} {'predict':>8} {'write':>7} {'publish':>8} {'generate':>9} {'peak RSS':>9}")
    for rows, (e2e, raw) in results.items():
        print(
            f"{rows:>10,} {e2e['rows_per_s']:>11,.0f} {raw['rows_per_s']:>11,.0f} {e2e['rows_per_s'] / raw['rows_per_s']:>8.2f} "
            f"{e2e['seconds']:>7.1f} {e2e['features_s']:>8.1f}s {e2e['predict_s']:>7.1f}s {e2e['write_s']:>6.1f}s "
            f"{e2e['publish_s']:>7.1f}s {e2e['generate_s']:>8.1f}s {e2e['peak_rss_mb']:>7.0f}MB"
        )
    print(f"(medians of {args.repeat} alternating runs each; rows/s of every run:)")
    for rows, kinds in spread.items():
        print(f"  {rows:,}: " + "; ".join(f"{kind} " + ", ".join(f"{v:,.0f}" for v in values) for kind, values in kinds.items()))
    print()
    for rows, (e2e, raw) in results.items():
        ratio = e2e["rows_per_s"] / raw["rows_per_s"]
        print(f"goal e2e >= 50% of raw at {rows:,}: {ratio:.0%} -> {'met' if ratio >= 0.5 else 'NOT met'}"
              f"  (output {e2e['output_mb']:.0f} MB; {e2e['rows_missing_features']:,} rows lack some feature;"
              f" one-off start-up (layout, imports) {e2e['warmup_s']:.1f} s not in e2e)")
    if len(results) >= 2:
        small, large = min(results), max(results)
        growth = results[large][0]["peak_rss_mb"] / results[small][0]["peak_rss_mb"]
        print(f"goal peak RSS at {large:,} <= 1.5x at {small:,}: {growth:.2f}x -> {'met' if growth <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
