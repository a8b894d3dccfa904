"""End to end through a real scheduler: backfill ``batch_predict`` over 7 replayed days, then rerun it.

Replayed 2026-06-01 .. 06-07 (source 2013-06-03 .. 06-09). Raw and feature partitions (and a small
promoted model) are prepared with the library; the scoring runs are an ``airflow backfill`` via the
REST API, pinned to that model with the run conf (the days are in the past, and the model was
promoted now: unpinned, the policy would refuse them, see ``test_predict.py``).

Checked: one run and one partition per day, row counts equal to an independent SQL count of the
flights scheduled that day in the source, scores in [0, 1], the model version in the rows, the
manifest and the asset events; a rerun of the range leaves every file byte-identical.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = "batch_predict"
DAYS = [date(2026, 6, 1) + timedelta(days=i) for i in range(7)]
KEYS = {d.isoformat() for d in DAYS}

PREPARE = """
from datetime import date, timedelta
import xgboost as xgb
from airloop.core.config import get_settings
from airloop.core.dates import ds_range
from airloop.features import apply_definitions, compute_features, load_feature_use_case
from airloop.ingest import ingest_day
from airloop.registry import ModelRegistry
from airloop.core.storage import open_lake, read_manifest, sha256_bytes
from airloop.features.training_set import build_training_set
from airloop.usecases.flights import MODEL, STAT_LOOKBACK_DAYS

settings = get_settings()
lake = open_lake(settings)
first, last = date.fromisoformat({first!r}), date.fromisoformat({last!r})
train_start, train_end = first - timedelta(days=8), first - timedelta(days=2)
for day in ds_range(train_start - timedelta(days=STAT_LOOKBACK_DAYS + 4), last):
    for table in ("flights", "weather"):
        if read_manifest(lake, f"raw/{{table}}/ds={{day}}") is None:
            ingest_day(table, day, settings)
apply_definitions(settings)
for day in ds_range(train_start - timedelta(days=3), last):
    compute_features(load_feature_use_case(settings).day(day), settings=settings, lake=lake)
training = build_training_set(train_start, train_end, settings=settings)
dtrain = xgb.DMatrix(training.frame[training.feature_columns], label=training.frame[training.label_column],
                     feature_names=training.feature_columns)
booster = xgb.train({{"objective": "binary:logistic", "max_depth": 4, "nthread": 1, "seed": 1}}, dtrain, 30)
data = bytes(booster.save_raw("ubj"))
registry = ModelRegistry(settings.registry_url)
mv = registry.reserve_version(MODEL.name, feature_service=training.feature_service,
    feature_columns=training.feature_columns, window_start=train_start, window_end=train_end,
    fingerprint=training.fingerprint, params={{}}, metrics={{}}, code_version="e2e", device="cpu")
key = f"models/{{MODEL.name}}/v{{mv.version}}/model.ubj"
lake.write_bytes(key, data)
registry.finalize_version(MODEL.name, mv.version, artifact_uri=lake.uri(key), sha256=sha256_bytes(data), reference_uri=None)
registry.promote(MODEL.name, mv.version, reason="e2e scoring", actor="e2e")
print("VERSION", mv.version)
"""


@pytest.fixture(scope="module")
def stack(airflow_stack):
    result = subprocess.run(
        [sys.executable, "-c", PREPARE.format(first=DAYS[0].isoformat(), last=DAYS[-1].isoformat())],
        env=airflow_stack.env, capture_output=True, text=True, timeout=900,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    airflow_stack.model_version = int(result.stdout.split("VERSION")[-1].split()[0])
    airflow_stack.unpause(DAG_ID)
    yield airflow_stack
    airflow_stack.pause(DAG_ID)


def backfill(stack, version: int) -> dict:
    """``airflow backfill create`` over DAYS, pinned to ``version`` (REST, as the UI does).

    The range is of partition instants (02:00 New York): the day after the last one closes it.
    """
    stack.wait_for_dag(DAG_ID)
    return stack.api(
        "POST",
        "/api/v2/backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": f"{DAYS[0].isoformat()}T00:00:00Z",
            "to_date": f"{(DAYS[-1] + timedelta(days=1)).isoformat()}T00:00:00Z",
            "reprocess_behavior": "completed",
            "max_active_runs": 3,
            "dag_run_conf": {"model_version": version},
        },
    )


def source_count(source_url: str, day: date) -> int:
    """Flights scheduled on replayed local day ``day``, counted straight from the source."""
    from sqlalchemy import create_engine, text

    src = day - timedelta(days=4746)
    engine = create_engine(source_url)
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT COUNT(*) FROM flights WHERE year = :y AND month = :m AND day = :d"),
            {"y": src.year, "m": src.month, "d": src.day},
        ).scalar_one()
    engine.dispose()
    return count


def snapshot(lake) -> dict[str, bytes]:
    return {k: lake.read_bytes(k) for d in DAYS for k in lake.list_keys(f"predictions/ds={d.isoformat()}/")}


def test_backfill_scores_each_day_once_and_a_rerun_changes_nothing(stack, loaded_source):
    from airloop.scoring import ScoringRuns
    from airloop.core.storage import LocalLake, read_manifest, read_partition_frame

    version = stack.model_version
    first = backfill(stack, version)
    runs = stack.wait_for_runs(DAG_ID, len(DAYS), timeout=900, where=lambda r: r.partition_key in KEYS)
    assert sorted(r.partition_key for r in runs) == sorted(KEYS)
    assert all(r.run_type == "backfill" for r in runs)
    for run in runs:
        assert run.state == "success", stack.explain(DAG_ID, run)

    lake = LocalLake(stack.data_dir / "lake")
    for day in DAYS:
        prefix = f"predictions/ds={day.isoformat()}"
        manifest = read_manifest(lake, prefix)
        part = read_partition_frame(lake, prefix)
        expected = source_count(loaded_source, day)
        assert manifest["rows"] == len(part) == expected > 500, (day, manifest["rows"], expected)
        assert part["score"].between(0, 1).all() and part["score"].nunique() > 10
        assert (part["model_version"] == version).all() and manifest["model"]["version"] == version
        local = part["sched_dep_ts"].dt.tz_convert("America/New_York").dt.date
        assert (local == day).all()
        assert all(p["partition"].endswith(f"ds={day - timedelta(days=1)}") for p in manifest["inputs"]["partitions"])

    events = stack.asset_events(source_dag_id=DAG_ID)
    extras = sorted((e["extra"]["ds"], e["extra"]["model_version"]) for e in events if e["extra"].get("ds") in KEYS)
    assert extras == sorted((k, version) for k in KEYS)

    before = snapshot(lake)
    assert len(before) == 3 * len(DAYS)
    first_ids = {r.run_id for r in runs}
    stack.wait_for_backfill(first, timeout=120)
    second = backfill(stack, version)
    stack.wait_for_backfill(second, timeout=900)
    rerun = stack.wait_for_runs(DAG_ID, len(DAYS), timeout=60, where=lambda r: r.partition_key in KEYS and r.run_id not in first_ids)
    for run in rerun:
        assert run.state == "success", stack.explain(DAG_ID, run)
    after = snapshot(lake)
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] != before[k]] == []

    logged = [r for r in ScoringRuns(f"sqlite:///{stack.data_dir / 'registry.db'}").list(limit=500) if r["ds"] in KEYS]
    assert len(logged) == 2 * len(DAYS) and {r["status"] for r in logged} == {"success"}
    assert {r["airflow_run_id"] for r in logged} == first_ids | {r.run_id for r in rerun}
