"""The rolling performance window and the calibration against a real lake and SQL store: days
read back from ``monitoring/labelled/``, other model versions left out, older tables migrated,
``airloop monitor calibrate`` end to end."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

import airloop.monitoring as monitor
from airloop.core.dates import LogicalDay
from airloop.core.storage import frame_to_parquet, partition_prefix, publish_partition
from airloop.monitoring import OK, MonitorConfig, MonitoringStore

CONFIG = MonitorConfig(min_rows=50, auc_window_days=7, auc_window_min_days=3)
KEY = ["carrier", "flight", "origin", "dest", "sched_dep_ts"]


def day_of(d: date) -> LogicalDay:
    return LogicalDay(d, "America/New_York")


@pytest.fixture
def env(tmp_path, monkeypatch):
    from airloop.core.config import Settings
    from airloop.core.storage import open_lake

    monkeypatch.delenv("AIRLOOP_DRIFT_CALIBRATION", raising=False)
    settings = Settings(data_dir=tmp_path, lake_url=(tmp_path / "lake").as_uri(),
                        registry_url=f"sqlite:///{tmp_path / 'registry.db'}", source_url="sqlite://")  # fmt: skip
    return settings, open_lake(settings), MonitoringStore(settings.registry_url)


def publish_day(lake, d: date, *, version: int = 1, n: int = 400, seed: int = 0, signal: float = 1.0):
    """A scored day (predictions + features) and its ingested outcomes."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1, n)
    frame = pd.DataFrame({"carrier": rng.choice(["AA", "DL", "UA"], n), "flight": np.arange(n), "origin": "JFK",
                          "dest": rng.choice(["LAX", "ORD"], n),
                          "sched_dep_ts": pd.Timestamp(d.isoformat(), tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"),
                          "distance": rng.normal(1000, 300, n), "score": 1 / (1 + np.exp(-(risk - 1.5)))})  # fmt: skip
    late = rng.uniform(size=n) < 1 / (1 + np.exp(-(signal * risk - 1.5)))
    ds = d.isoformat()
    publish_partition(lake, f"predictions/ds={ds}", {
        "part.parquet": frame_to_parquet(frame[KEY + ["score"]].assign(model_version=version)),
        "features.parquet": frame_to_parquet(frame[KEY + ["distance"]])}, {"ds": ds})  # fmt: skip
    raw = frame[KEY].assign(arr_delay=np.where(late, 45.0, -5.0))
    publish_partition(lake, partition_prefix("raw", "flights", ds), {"part.parquet": frame_to_parquet(raw)}, {"ds": ds})
    return frame.assign(is_delayed=late.astype(int))


def reference(n=2000):
    rng = np.random.default_rng(99)
    return pd.DataFrame({"carrier": rng.choice(["AA", "DL", "UA"], n), "distance": rng.normal(1000, 300, n),
                         "score": rng.uniform(0, 1, n), "is_delayed": rng.integers(0, 2, n)})  # fmt: skip


def test_the_window_pools_the_labelled_days_of_the_same_version(env):
    settings, lake, store = env
    start = date(2026, 6, 8)
    frames = {}
    for i in range(5):
        d = start + timedelta(days=i)
        frames[d] = publish_day(lake, d, version=2 if i == 3 else 1, seed=i)
    results = [monitor.monitor_performance(day_of(start + timedelta(days=i)), settings=settings, lake=lake, store=store,
                                           reference=reference(), config=CONFIG, render=False) for i in range(5)]  # fmt: skip
    assert [r.status for r in results] == [OK] * 5
    assert [r.metrics["window_days"] for r in results] == [1, 2, 3, 1, 4]  # day 4 scored by v2: its own window
    assert results[0].metrics["auc_drop_bound"] is None and results[1].metrics["window_auc"] is None  # < 3 days
    pooled = pd.concat([frames[start + timedelta(days=i)] for i in (0, 1, 2, 4)])
    expected = monitor.window.auc_bound(pooled["is_delayed"], pooled["score"], 0.95)
    last = results[4].metrics
    assert last["window_rows"] == len(pooled) and last["window_auc"] == pytest.approx(expected["auc"])
    assert last["auc_drop_bound"] == pytest.approx(last["reference_auc"] - expected["upper"])
    rows = {r["ds"]: r for r in store.rows(kind="performance")}
    assert rows["2026-06-12"]["window_auc"] == pytest.approx(expected["auc"]) and rows["2026-06-12"]["window_days"] == 4
    evidence = monitor.evidence_from_rows(store.rows())
    assert evidence[-1].auc_drop_bound == pytest.approx(last["auc_drop_bound"])


def test_a_rerun_of_a_day_replaces_its_labelled_scores(env):
    settings, lake, store = env
    d = date(2026, 11, 1)  # the DST day: one key, one partition
    publish_day(lake, d, seed=1)
    for _ in range(2):
        monitor.monitor_performance(day_of(d), settings=settings, lake=lake, store=store, reference=reference(), config=CONFIG, render=False)
    assert lake.list_keys("monitoring/labelled/ds=2026-11-01/")
    (row,) = store.rows(kind="performance")
    assert row["window_days"] == 1


def test_an_older_table_gets_the_new_columns(env):
    import sqlalchemy as sa

    settings, _, _ = env
    engine = sa.create_engine(settings.registry_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE monitoring_metrics (ds VARCHAR(10), kind VARCHAR(16), status VARCHAR(24) NOT NULL, "
                             "message TEXT NOT NULL, model_version INTEGER, rows_current INTEGER, rows_reference INTEGER, "
                             "drift_share FLOAT, drifted_column_names TEXT, null_columns TEXT, report_prefix VARCHAR(200), "
                             "measured_on VARCHAR(10), updated_at DATETIME NOT NULL, PRIMARY KEY (ds, kind))"))  # fmt: skip
        conn.execute(sa.text("INSERT INTO monitoring_metrics VALUES ('2026-01-05', 'drift', 'ok', '', 1, 900, 5000, 0.4, "
                             "'[]', '[]', NULL, NULL, '2026-01-05 07:00:00')"))  # fmt: skip
    store = MonitoringStore(settings.registry_url)
    note = store.ensure_tables()
    assert "added columns" in note and "drift_signal" in note and "window_auc" in note
    result = monitor.ReportResult(ds="2026-01-06", kind="drift", status=OK, metrics={"drift_signal": 0.25, "drift_signal_columns": ["distance"]})
    store.upsert(result)
    old, new = store.rows(kind="drift")
    assert old["drift_share"] == 0.4 and old["drift_signal"] is None  # kept, nothing invented
    assert new["drift_signal"] == 0.25 and new["drift_signal_columns"] == ["distance"]


def test_calibrate_command_writes_the_same_calibration_twice(env, monkeypatch, capsys, tmp_path):
    from types import SimpleNamespace

    from airloop.cli.monitor import cmd_monitor
    from airloop.core.config import get_settings

    settings, lake, _ = env
    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIRLOOP_LAKE_URL", settings.lake_url)
    monkeypatch.setenv("AIRLOOP_REGISTRY_URL", settings.registry_url)
    get_settings.cache_clear()
    for i in range(10):
        publish_day(lake, date(2026, 3, 2) + timedelta(days=i), seed=10 + i)
    args = SimpleNamespace(start="calibrate", end="2026-03-02", until="2026-03-11", out=None, inputs=None)
    try:
        assert cmd_monitor(args) == 0
        first = lake.read_bytes("monitoring/calibration.json")
        printed = json.loads(capsys.readouterr().out)
        assert printed["source"]["days"] == 10 and printed["auc"]["windows"] == 8
        assert cmd_monitor(SimpleNamespace(**{**vars(args), "out": str(tmp_path / "again.json")})) == 0
        assert (tmp_path / "again.json").read_bytes() == first
        calibration = monitor.load_calibration(lake)
        assert calibration.role("distance") == "policy" and calibration.auc_tolerance >= 0.01
        # an empty range says so, and writes nothing
        assert cmd_monitor(SimpleNamespace(**{**vars(args), "end": "2027-01-01", "until": "2027-01-10"})) == 1
        assert "no scored day between 2027-01-01 and 2027-01-10" in capsys.readouterr().err
        assert cmd_monitor(SimpleNamespace(**{**vars(args), "until": None})) == 2
    finally:
        get_settings.cache_clear()


def test_the_calibration_file_named_by_the_environment_wins(env, monkeypatch, tmp_path):
    _, lake, _ = env
    monitor.save_calibration(lake, monitor.DriftCalibration(columns={}, auc_tolerance=0.02))
    path = tmp_path / "cal.json"
    path.write_bytes(monitor.DriftCalibration(columns={}, auc_tolerance=0.07).to_json())
    monkeypatch.setenv("AIRLOOP_DRIFT_CALIBRATION", str(path))
    assert monitor.load_calibration(lake).auc_tolerance == 0.07
    monkeypatch.setenv("AIRLOOP_DRIFT_CALIBRATION", str(tmp_path / "missing.json"))
    with pytest.raises(monitor.MonitorInputError, match="AIRLOOP_DRIFT_CALIBRATION=.*missing.json"):
        monitor.load_calibration(lake)
