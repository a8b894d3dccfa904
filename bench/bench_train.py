"""Benchmark: training on a real replayed window (default 90 days), CPU, XGBoost vs the baseline.

Builds everything the ``train_model`` DAG reads, from the real 2013 data: the source database,
raw partitions (ingestion), feature partitions (the feature views of the use case) and the
training set (point-in-time features as of each day's prediction time). Then times
:func:`airloop.training.train_candidate` (XGBoost + logistic-regression baseline, time split) on
the CPU and prints both models' holdout metrics and the gate's first-model decision.

With a GPU worker (``--device cuda``) it also times the same training on the GPU and prints the
speedup. Usage::

    python bench/bench_train.py [--start 2026-03-31] [--days 90] [--data-dir DIR] [--device cpu|cuda]

``--data-dir`` keeps the prepared lake between runs (preparation takes minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]


def prepare(settings, first: date, last: date) -> dict:
    """Source, raw and feature partitions for the window (existing partitions are kept)."""
    from airloop.core.storage import open_lake, read_manifest
    from airloop.core.usecase import load_use_case
    from airloop.deploy.setup import ensure_source
    from airloop.features import apply_definitions, compute_features
    from airloop.ingest import ingest_day
    from airloop.usecases.flights import STAT_LOOKBACK_DAYS

    use_case = load_use_case(settings.use_case)
    last_day = use_case.day(last)
    timings = {}
    started = time.perf_counter()
    ensure_source(settings)
    timings["source_s"] = time.perf_counter() - started
    lake = open_lake(settings)
    started = time.perf_counter()
    # Features of day D read STAT_LOOKBACK_DAYS of raw; the training set reads features of the
    # days before the window too (each view's TTL), hence the margins.
    for day in use_case.day(first - timedelta(days=STAT_LOOKBACK_DAYS + 4)).range_to(last_day):
        for table in ("flights", "weather"):
            if read_manifest(lake, f"raw/{table}/ds={day.key}") is None:
                ingest_day(table, day, settings)
    timings["ingest_s"] = time.perf_counter() - started
    started = time.perf_counter()
    apply_definitions(settings)
    for day in use_case.day(first - timedelta(days=3)).range_to(last_day):
        if not lake.list_keys(f"features/origin_weather/ds={day.key}/"):
            compute_features(day, settings=settings, lake=lake)
    timings["features_s"] = time.perf_counter() - started
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2026-03-01", help="first day of the window (replayed calendar)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--data-dir", help="keep the prepared lake here (default: a temp dir)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="also time this device")
    args = parser.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="airloop-bench-train-")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["AIRLOOP_DATA_DIR"] = str(data_dir)
    for var in ("AIRLOOP_LAKE_URL", "AIRLOOP_REGISTRY_URL", "AIRLOOP_SOURCE_URL"):
        os.environ.pop(var, None)
    from airloop.core.config import get_settings
    from airloop.core.devices import choose_device
    from airloop.training import decide, train_candidate
    from airloop.features import build_training_set
    from airloop.core.usecase import load_use_case

    settings = get_settings()
    use_case = load_use_case(settings.use_case)
    spec = use_case.model
    first = use_case.day(args.start).date
    last = first + timedelta(days=args.days - 1)
    print(f"window {first} .. {last} ({args.days} days), data dir {data_dir}")
    for name, seconds in prepare(settings, first, last).items():
        print(f"  prepare {name:12} {seconds:8.1f} s")

    started = time.perf_counter()
    training_set = build_training_set(first, last, settings=settings)
    build_s = time.perf_counter() - started
    frame = training_set.frame
    print(f"training set: {len(frame)} labelled rows, {len(training_set.feature_columns)} features, "
          f"positive rate {frame[spec.label].mean():.3f}, built in {build_s:.1f} s")  # fmt: skip

    results = {}
    for device in dict.fromkeys(["cpu", args.device]):
        choice = choose_device(device)
        started = time.perf_counter()
        candidate = train_candidate(training_set, spec, device=choice)
        total = time.perf_counter() - started
        results[choice.device] = (candidate, total)
        print(f"train on {choice.device} ({choice.reason}): {total:.1f} s total, "
              f"XGBoost fit {candidate.timings['xgboost_fit_s']:.1f} s, baseline fit {candidate.timings['baseline_fit_s']:.1f} s")  # fmt: skip
    candidate, _ = results["cpu"]
    split = candidate.split
    print(f"split: train {split['train_start']} .. {split['train_end']} ({split['train_rows']} rows), "
          f"holdout {split['valid_start']} .. {split['valid_end']} ({split['valid_rows']} rows)")  # fmt: skip
    print(f"{'metric':22} {'xgboost':>9} {'baseline':>9}")
    for key in ("roc_auc", "log_loss", "brier", "ece", "precision", "recall", "flagged_rate", "worst_slice_roc_auc"):
        print(f"{key:22} {candidate.metrics[key]:9.4f} {candidate.baseline_metrics[key]:9.4f}")
    for origin, s in candidate.metrics["slices"].items():
        b = candidate.baseline_metrics["slices"][origin]
        print(f"  slice {origin:14} roc_auc {s['roc_auc']:.4f} vs {b['roc_auc']:.4f} ({s['rows']} rows)")
    decision = decide(candidate.metrics, candidate.baseline_metrics, spec=spec)
    print(f"gate (first model vs baseline): {'PROMOTE' if decision.promote else 'KEEP'}: {decision.reason}")
    if "cuda" in results and "cpu" in results and results["cuda"][0] is not candidate:
        cpu_fit = results["cpu"][0].timings["xgboost_fit_s"]
        gpu_fit = results["cuda"][0].timings["xgboost_fit_s"]
        print(f"GPU speedup (XGBoost fit): {cpu_fit / gpu_fit:.2f}x ({cpu_fit:.2f} s CPU / {gpu_fit:.2f} s GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
