"""The season summary (what ``make season`` prints) and the monitoring CLI, on a lake and
registry filled the way the stages fill them."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from airloop.core.dates import LogicalDay
from airloop.core.storage import frame_to_parquet, partition_prefix, publish_partition

KEY = ["carrier", "flight", "origin", "dest", "sched_dep_ts"]


@pytest.fixture
def filled(tmp_path, monkeypatch):
    """Ten days (Mon 2026-03-02 .. Wed 03-11): ingested, scored, labelled; one drift event and the
    retraining it caused."""
    from airloop.core.config import Settings, get_settings
    from airloop.monitoring import MonitoringStore, drift_report
    from airloop.registry import ModelRegistry
    from airloop.core.storage import open_lake

    monkeypatch.setenv("AIRLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AIRLOOP_LAKE_URL", raising=False)
    monkeypatch.delenv("AIRLOOP_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    settings = Settings.from_env()
    lake = open_lake(settings)
    rng = np.random.default_rng(0)
    expected = {"rows": 0, "quarantined": 0, "week1": []}
    for i in range(10):
        ds = (date(2026, 3, 2) + timedelta(days=i)).isoformat()
        n = 300 + i
        frame = pd.DataFrame({"carrier": "AA", "flight": np.arange(n), "origin": "JFK", "dest": "LAX",
                              "sched_dep_ts": pd.Timestamp(ds, tz="UTC") + pd.to_timedelta(np.arange(n), unit="min")})  # fmt: skip
        frame["score"] = rng.uniform(size=n)
        late = rng.uniform(size=n) < frame["score"]
        raw = frame.drop(columns="score").assign(arr_delay=np.where(late, 45.0, 2.0))
        raw.loc[:9, "arr_delay"] = np.nan  # cancelled: unlabelled
        publish_partition(lake, partition_prefix("raw", "flights", ds), {"part.parquet": frame_to_parquet(raw)},
                          {"rows": n, "quarantined_rows": i % 3})  # fmt: skip
        expected["rows"] += n
        expected["quarantined"] += i % 3
        publish_partition(lake, f"predictions/ds={ds}",
                          {"part.parquet": frame_to_parquet(frame.assign(model_version=1 if i < 7 else 2))},
                          {"rows": n})  # fmt: skip
        if i < 7:
            expected["week1"].append((late[10:].astype(int), frame["score"][10:]))
    registry = ModelRegistry(settings.registry_url)
    for v, window in ((1, (date(2026, 1, 1), date(2026, 2, 28))), (2, (date(2026, 2, 5), date(2026, 3, 4)))):
        registry.reserve_version("flight_delay_xgb", feature_service="flight_delay_v1", feature_columns=["distance"],
                                 window_start=window[0], window_end=window[1], fingerprint=f"fp{v}", params={},
                                 metrics={"roc_auc": 0.70 + v / 100}, code_version="t", device="cpu")  # fmt: skip
        registry.finalize_version("flight_delay_xgb", v, artifact_uri="x", sha256="0" * 64, reference_uri=None)
        registry.promote("flight_delay_xgb", v, reason=f"promotion {v}", actor="gate")
    store = MonitoringStore(settings.registry_url)
    ref = pd.DataFrame({"distance": rng.normal(size=500)})
    store.upsert(drift_report(LogicalDay.parse("2026-03-05"), ref, pd.DataFrame({"distance": rng.normal(3, size=500)})))
    store.record_event("2026-03-05", model_version=1, window_start="2026-02-05", window_end="2026-03-04",
                       evidence={"drift_share": 1.0, "reason": "3 consecutive breaching days"})  # fmt: skip
    yield settings, expected
    get_settings.cache_clear()


def test_summary_counts_ingestion_versions_weekly_auc_and_drift_events(filled):
    from sklearn.metrics import roc_auc_score

    from airloop.loop import format_summary, summarize

    settings, expected = filled
    summary = summarize("2026-03-02", "2026-03-11", settings=settings)
    flights = summary.ingested["flights"]
    assert (flights["days"], flights["rows"], flights["quarantined"]) == (10, expected["rows"], expected["quarantined"])
    assert summary.ingested["weather"]["days"] == 0
    assert summary.scored_days == 10
    assert [w["week"] for w in summary.weekly] == ["2026-03-02", "2026-03-09"]
    week1 = summary.weekly[0]
    labels = np.concatenate([y for y, _ in expected["week1"]])
    scores = np.concatenate([s for _, s in expected["week1"]])
    assert week1["flights"] == len(labels) and week1["days"] == 7  # unlabelled flights left out
    assert week1["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert summary.weekly[1]["model_versions"] == [2]
    assert [v["version"] for v in summary.versions] == [1, 2]
    assert [p["to"] for p in summary.promotions] == [1, 2]
    (event,) = summary.drift_events
    assert event["ds"] == "2026-03-05" and event["retrainings"] == ["v2 (champion)"]
    text = format_summary(summary)
    assert f"{expected['rows']:,d} rows ingested" in text
    assert "week of 2026-03-02  7 days" in text
    assert "2026-03-05: 3 consecutive breaching days -> retrain on 2026-02-05..2026-03-04 -> v2 (champion)" in text


def test_summary_of_an_empty_range_says_nothing_happened(filled):
    from airloop.loop import format_summary, summarize

    settings, _ = filled
    text = format_summary(summarize("2027-01-01", "2027-01-03", settings=settings))
    assert "no scored day has its outcomes ingested yet" in text and "0 drift events" in text


def test_cli_monitoring_table_and_season_summary(filled, capsys):
    from airloop.cli import main

    assert main(["monitoring"]) == 0
    out = capsys.readouterr().out
    assert "2026-03-05" in out and "DRIFT EVENT (retraining)" in out and "drifted: distance" in out
    assert main(["season-summary", "2026-03-02", "2026-03-04"]) == 0
    assert "Airloop season 2026-03-02 .. 2026-03-04" in capsys.readouterr().out


class RecordingAirflow:
    """The season's REST calls, recorded; every run it waits for has already succeeded."""

    def __init__(self):
        self.calls = []

    def unpause(self, dag_id):
        self.calls.append(("unpause", dag_id))

    def runs(self, dag_id):
        return []

    def backfill(self, dag_id, start, end, conf=None):
        self.calls.append(("backfill", dag_id, start, end, conf))

    def trigger(self, dag_id, conf):
        self.calls.append(("trigger", dag_id, conf))

    def wait_for_partitions(self, dag_id, keys, timeout, log):
        self.calls.append(("wait", dag_id, sorted(keys)))
        return []

    def wait_idle(self, dag_id, timeout, since_ids=None):
        return []


def test_run_season_parses_the_range_once_and_sends_dates_and_partition_keys(filled):
    from airloop.loop import run_season

    settings, _ = filled
    client, lines = RecordingAirflow(), []
    summary = run_season("2026-03-09", "2026-03-11", settings=settings, client=client, warmup_days=7, log=lines.append)
    backfills = [c[1:] for c in client.calls if c[0] == "backfill"]
    assert backfills == [
        ("ingest_flights", date(2026, 3, 2), date(2026, 3, 8), None),  # the warm-up week before the range
        ("ingest_flights", date(2026, 3, 9), date(2026, 3, 11), None),
        ("batch_predict", date(2026, 3, 9), date(2026, 3, 12), {"model_version": 2}),  # pinned to the champion
    ]
    assert all(type(start) is date and type(end) is date for _, start, end, _ in backfills)
    waits = {(c[1], tuple(c[2])) for c in client.calls if c[0] == "wait"}
    assert ("monitor_model", ("2026-03-09", "2026-03-10", "2026-03-11")) in waits
    (trigger,) = [c[2] for c in client.calls if c[0] == "trigger"]  # a champion exists: only the weekly retraining
    assert trigger == {"window_start": "2026-03-02", "window_end": "2026-03-11", "reason": "season: weekly retraining"}
    assert "[season] ingest 2026-03-02 .. 2026-03-08 (+ features)" in lines
    assert (summary.start, summary.end) == ("2026-03-02", "2026-03-11") and summary.scored_days == 10
