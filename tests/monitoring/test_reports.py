"""Monitoring library: Evidently drift and performance reports on frames shaped like the lake's,
report JSON parsing, bad inputs (tiny, empty, all-null, unlabelled), the lake and the SQL table."""

from __future__ import annotations

import json

from datetime import date

import numpy as np
import pandas as pd
import pytest

import airloop.monitoring as monitor
from airloop.core.dates import LogicalDay
from airloop.monitoring import (
    AWAITING,
    DRIFT,
    OK,
    PERFORMANCE,
    SKIPPED,
    MonitorConfig,
    MonitoringStore,
    drift_report,
    parse_classification_json,
    parse_drift_json,
    performance_report,
)
from airloop.monitoring.drift import day_seed, rows_to_test
from airloop.monitoring.metrics import is_context_column

CARRIERS = ["AA", "B6", "DL", "EV", "UA", "US"]


def inputs(n: int, *, seed: int, shift: bool = False) -> pd.DataFrame:
    """Model inputs + score in the shape of ``predictions/ds=D/`` (features joined to scores)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "carrier": rng.choice(CARRIERS, n, p=[0.05, 0.05, 0.1, 0.1, 0.35, 0.35] if shift else None),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "flight": rng.integers(1, 5000, n),
            "sched_dep_ts": pd.Timestamp("2026-03-02T12:00Z") + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            "distance": rng.normal(2500 if shift else 1000, 300, n).clip(50),
            "sched_hour": rng.integers(5 if not shift else 15, 23, n),
            "day_of_week": rng.integers(0, 7, n),
            "origin_delay_rate_7d": rng.beta(2, 8, n) + (0.3 if shift else 0.0),
            "model_version": 3,
        }
    )
    frame["score"] = (0.15 + 0.5 * frame["origin_delay_rate_7d"] + rng.normal(0, 0.05, n)).clip(0.001, 0.999)
    return frame


def reference(n: int = 2000, seed: int = 1) -> pd.DataFrame:
    frame = inputs(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    frame["is_delayed"] = (rng.uniform(size=n) < frame["score"]).astype(int)
    return frame


CONFIG = MonitorConfig(min_rows=50, html_sample_rows=5000)


def day_of(key: str) -> LogicalDay:
    """A day of the flights use case (New York, scored at 02:00), as the boundary parses it."""
    return LogicalDay.parse(key, "America/New_York", "02:00")


@pytest.fixture(scope="module")
def ref():
    return reference()


@pytest.fixture(scope="module")
def calm(ref):
    return drift_report(day_of("2026-03-02"), ref, inputs(900, seed=2), config=CONFIG, model_version=3)


@pytest.fixture(scope="module")
def drifted(ref):
    return drift_report(day_of("2026-03-03"), ref, inputs(900, seed=3, shift=True), config=CONFIG, model_version=3)


def test_an_undrifted_day_shows_little_drift(calm):
    assert calm.status == OK
    assert calm.metrics["drift_share"] < 0.5
    assert calm.metrics["n_columns"] == 6  # carrier, origin, distance, sched_hour, rate, score
    assert "day_of_week" not in calm.body["airloop"]["columns"]  # constant within a day by construction
    assert "flight" not in calm.body["airloop"]["columns"]  # identifiers are never tested
    assert "sched_dep_ts" not in calm.body["airloop"]["columns"]


def test_a_drifted_day_names_the_drifted_columns(drifted):
    assert drifted.status == OK
    assert drifted.metrics["drift_share"] >= 0.5
    assert {"distance", "sched_hour", "origin_delay_rate_7d", "score", "carrier"} <= set(
        drifted.metrics["drifted_column_names"]
    )
    assert "origin" not in drifted.metrics["drifted_column_names"]
    assert drifted.metrics["drifted_columns"] == len(drifted.metrics["drifted_column_names"])


def test_reports_render_html_and_complete_json(drifted):
    html = drifted.html.decode()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "distance" in html and len(drifted.html) < 10_000_000
    assert drifted.body["airloop"]["rows_current"] == 900
    assert parse_drift_json(json.loads(json.dumps(drifted.body, default=str)))["drift_share"] == drifted.metrics["drift_share"]


def test_an_oversized_html_is_rendered_from_a_bounded_sample_but_numbers_use_every_row(ref):
    config = MonitorConfig(min_rows=50, html_sample_rows=300, html_max_bytes=1000)  # any real report is bigger
    result = drift_report(day_of("2026-03-04"), ref, inputs(1200, seed=4, shift=True), config=config)
    assert result.rows_current == 1200 and result.body["airloop"]["rows_current"] == 1200
    assert b"rendered from a sample of 300 of 1200 current" in result.html
    assert result.metrics["drift_share"] >= 0.5


def test_parse_drift_json_reads_distances_and_p_values():
    body = {
        "metrics": [
            {"config": {"type": "evidently:metric_v2:DriftedColumnsCount", "drift_share": 0.5},
             "value": {"count": 2.0, "share": 2 / 3}},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "a",
                        "method": "Wasserstein distance (normed)", "threshold": 0.1}, "value": 0.4},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "b",
                        "method": "K-S p_value", "threshold": 0.05}, "value": 0.001},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "c",
                        "method": "chi-square p_value", "threshold": 0.05}, "value": 0.7},
        ]
    }  # fmt: skip
    parsed = parse_drift_json(body)
    assert parsed["drift_share"] == pytest.approx(2 / 3)
    assert parsed["drifted_columns"] == 2 and parsed["n_columns"] == 3
    assert parsed["drifted_column_names"] == ["a", "b"]
    with pytest.raises(monitor.MonitorInputError, match="DriftedColumnsCount"):
        parse_drift_json({"metrics": []})


def test_parse_classification_json_leaves_missing_metrics_empty():
    body = {"metrics": [{"config": {"type": "evidently:metric_v2:RocAuc"}, "value": 0.71},
                        {"config": {"type": "evidently:metric_v2:LogLoss"}, "value": float("nan")}]}  # fmt: skip
    parsed = parse_classification_json(body)
    assert parsed["auc"] == 0.71
    assert parsed["log_loss"] is None and parsed["precision"] is None


@pytest.mark.parametrize(
    "n_current, n_reference, side",
    [(0, 2000, "current sample has 0 rows"), (10, 2000, "current sample has 10 rows"), (900, 0, "reference sample has 0")],
)
def test_empty_or_tiny_samples_are_skipped_without_a_drift_share(ref, n_current, n_reference, side):
    result = drift_report(day_of("2026-03-02"), ref.head(n_reference), inputs(900, seed=5).head(n_current), config=CONFIG)
    assert result.status == SKIPPED
    assert side in result.message and "drift not assessed" in result.message
    assert "drift_share" not in result.metrics and result.html is None


def test_a_column_entirely_null_is_reported_not_tested_and_no_false_alarm(ref):
    current = inputs(900, seed=6)
    current["origin_delay_rate_7d"] = np.nan  # a broken feature pipeline
    result = drift_report(day_of("2026-03-02"), ref, current, config=CONFIG)
    assert result.status == OK
    assert result.metrics["null_columns"] == ["origin_delay_rate_7d"]
    assert "origin_delay_rate_7d" not in result.body["airloop"]["columns"]
    assert result.metrics["drift_share"] < 0.5
    assert "entirely null" in result.message


def test_a_long_day_is_tested_on_a_seeded_sample_that_a_rerun_repeats(ref):
    config = MonitorConfig(min_rows=50, test_max_rows=3000)
    current = inputs(12_000, seed=9)
    first = drift_report(day_of("2026-03-02"), ref, current, config=config, render_html=False)
    again = drift_report(day_of("2026-03-02"), ref, current, config=config, render_html=False)
    assert first.metrics["rows_tested_current"] == 3000 and first.rows_current == 12_000
    assert first.body["airloop"]["rows_current"] == 12_000 and first.body["airloop"]["current_sample_seed"] is not None
    assert "3,000 of 12,000 current rows" in first.message
    assert again.body["airloop"]["columns"] == first.body["airloop"]["columns"]  # same rows on a rerun
    other_day = drift_report(day_of("2026-03-03"), ref, current, config=config, render_html=False)
    assert other_day.body["airloop"]["columns"] != first.body["airloop"]["columns"]  # another day, other rows
    # Every row (test_max_rows=0) gives the same verdicts, with scores within a few hundredths.
    whole = drift_report(day_of("2026-03-02"), ref, current, config=MonitorConfig(min_rows=50, test_max_rows=0), render_html=False)
    assert whole.metrics["rows_tested_current"] == 12_000 and "sample" not in whole.message
    assert whole.body["airloop"]["current_sample_seed"] is None
    for column, tested in whole.body["airloop"]["columns"].items():
        sampled = first.body["airloop"]["columns"][column]
        assert sampled["drifted"] == tested["drifted"], column
        assert abs(sampled["score"] - tested["score"]) < 0.05, column


def test_a_sampled_report_says_so_in_its_html(ref):
    result = drift_report(day_of("2026-03-02"), ref, inputs(6000, seed=10), config=MonitorConfig(min_rows=50, test_max_rows=2500))
    assert b"seeded sample of 2,500 of 6,000 current rows" in result.html


def test_a_day_within_the_cap_is_tested_whole(ref):
    result = drift_report(day_of("2026-03-02"), ref, inputs(900, seed=11), config=CONFIG, render_html=False)
    assert result.metrics["rows_tested_current"] == 900 and result.body["airloop"]["current_sample_seed"] is None


def test_no_testable_column_is_skipped(ref):
    current = pd.DataFrame({"flight": range(100), "unrelated": 1.0})
    result = drift_report(day_of("2026-03-02"), ref, current, config=CONFIG)
    assert result.status == SKIPPED and "no column" in result.message


def scored_day(n: int, seed: int, *, signal: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.uniform(size=n) < 0.2).astype(int)
    score = (0.2 + signal * (label - 0.2) + rng.normal(0, 0.15, n)).clip(0.001, 0.999)
    return pd.DataFrame({"score": score, "is_delayed": label})


def test_performance_report_matches_sklearn_and_measures_the_drop():
    from sklearn.metrics import roc_auc_score

    day = scored_day(800, 7, signal=0.2)
    result = performance_report(day_of("2026-03-01"), day, reference_auc=0.95, config=CONFIG, threshold=0.3)
    assert result.status == OK
    expected = roc_auc_score(day["is_delayed"], day["score"])
    assert result.metrics["auc"] == pytest.approx(expected, abs=1e-9)
    assert result.metrics["auc_drop"] == pytest.approx(0.95 - expected)
    assert result.metrics["positive_rate"] == pytest.approx(day["is_delayed"].mean())
    assert 0 <= result.metrics["calibration_error"] <= 1
    assert sum(row["rows"] for row in result.body["airloop"]["calibration"]) == 800
    assert b"<html" in result.html[:500].lower()


def test_performance_numbers_without_rendering_equal_evidentlys():
    day = scored_day(800, 7, signal=0.2)
    rendered = performance_report(day_of("2026-06-11"), day, reference_auc=0.8, config=CONFIG, threshold=0.3)
    quick = performance_report(day_of("2026-06-11"), day, reference_auc=0.8, config=CONFIG, threshold=0.3, render_html=False)
    assert quick.status == OK and quick.html is None
    for name in ("auc", "accuracy", "precision", "recall", "f1", "log_loss", "auc_drop", "calibration_error"):
        assert quick.metrics[name] == pytest.approx(rendered.metrics[name], abs=1e-6), name


def test_performance_with_one_class_or_few_labels_is_skipped_not_zero():
    one_class = pd.DataFrame({"score": np.linspace(0.1, 0.9, 200), "is_delayed": 0})
    result = performance_report(day_of("2026-03-01"), one_class, config=CONFIG)
    assert result.status == SKIPPED and "undefined" in result.message and "auc" not in result.metrics
    few = performance_report(day_of("2026-03-01"), scored_day(20, 8, signal=0.5), config=CONFIG)
    assert few.status == SKIPPED and "20 labelled" in few.message


def test_realized_labels_drop_unlabelled_flights_and_use_strictly_later():
    raw = pd.DataFrame({"arr_delay": [15.0, 16.0, None, -5.0, 120.0]})
    labels = monitor.realized_labels(raw, late_minutes=15)
    assert labels["is_delayed"].tolist() == [0, 1, 0, 1]  # the cancelled flight is not a zero


def test_join_outcomes_uses_the_prediction_key():
    ts = pd.Timestamp("2026-03-02T12:00Z")
    preds = pd.DataFrame({"carrier": ["AA", "AA"], "flight": [1, 1], "origin": ["JFK", "JFK"], "dest": ["LAX", "SFO"],
                          "sched_dep_ts": [ts, ts], "score": [0.9, 0.1]})  # fmt: skip
    outcomes = preds[["carrier", "flight", "origin", "dest", "sched_dep_ts"]].assign(is_delayed=[1, 0])
    joined = monitor.join_outcomes(preds, outcomes, ("carrier", "flight", "origin", "dest", "sched_dep_ts"))
    assert joined.sort_values("dest")["is_delayed"].tolist() == [1, 0]
    with pytest.raises(monitor.MonitorInputError, match="share no flight key"):
        monitor.join_outcomes(preds[["score"]], outcomes)


# --- lake and SQL ---------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path):
    from airloop.core.config import Settings
    from airloop.core.storage import open_lake

    settings = Settings(data_dir=tmp_path, lake_url=(tmp_path / "lake").as_uri(),
                        registry_url=f"sqlite:///{tmp_path / 'registry.db'}", source_url="sqlite://")  # fmt: skip
    return settings, open_lake(settings), MonitoringStore(settings.registry_url)


def test_store_upserts_one_row_per_day_and_kind(env, calm, drifted):
    _, _, store = env
    store.upsert(calm, report_prefix="reports/ds=2026-03-02/drift", measured_on="2026-03-02")
    store.upsert(calm, report_prefix="reports/ds=2026-03-02/drift", measured_on="2026-03-02")
    store.upsert(drifted)
    rows = store.rows(kind=DRIFT)
    assert [r["ds"] for r in rows] == ["2026-03-02", "2026-03-03"]
    assert rows[1]["drifted_column_names"] == drifted.metrics["drifted_column_names"]
    assert rows[0]["drift_share"] == pytest.approx(calm.metrics["drift_share"])
    assert store.rows(kind=PERFORMANCE) == [] and len(store.rows(start=date(2026, 3, 3))) == 1


def test_drift_events_are_recorded_once(env):
    _, _, store = env
    assert store.record_event("2026-03-05", model_version=3, window_start="2026-02-05", window_end="2026-03-04",
                              evidence={"drift_share": 0.8}, run_id="r1")  # fmt: skip
    # a retry of the same run must still emit; another run must not start a second retraining
    assert store.record_event("2026-03-05", model_version=3, window_start="x", window_end="y", evidence={}, run_id="r1")
    assert not store.record_event("2026-03-05", model_version=3, window_start="x", window_end="y", evidence={}, run_id="r2")
    events = store.drift_events()
    assert len(events) == 1 and events[0]["evidence"] == {"drift_share": 0.8}
    assert store.fired_days() == [date(2026, 3, 5)]  # the stored key read back as a date


def test_publish_and_read_reports(env, drifted):
    _, lake, _ = env
    prefix = monitor.publish_report(lake, drifted)
    assert prefix == "reports/ds=2026-03-03/drift"
    assert monitor.read_report(lake, day_of("2026-03-03"), DRIFT) == drifted.html
    body = json.loads(monitor.read_report(lake, day_of("2026-03-03"), DRIFT, "report.json"))
    assert body["airloop"]["rows_current"] == 900
    assert monitor.read_report(lake, day_of("2026-03-04"), DRIFT) is None  # never published
    skipped = monitor.ReportResult(ds="2026-03-04", kind=DRIFT, status=SKIPPED, message="tiny")
    assert monitor.publish_report(lake, skipped) is None


def publish_scored_day(lake, ds, frame):
    from airloop.core.storage import frame_to_parquet, publish_partition

    preds = frame[["carrier", "flight", "origin", "sched_dep_ts", "score", "model_version"]].assign(dest="LAX")
    features = frame.drop(columns=["score", "model_version"])
    publish_partition(lake, f"predictions/ds={ds}",
                      {"part.parquet": frame_to_parquet(preds), "features.parquet": frame_to_parquet(features)},
                      {"ds": ds, "rows": len(frame)})  # fmt: skip
    return preds


def test_monitor_drift_reads_the_scored_day_and_stores_everything(env, ref):
    settings, lake, store = env
    publish_scored_day(lake, "2026-03-03", inputs(900, seed=9, shift=True))
    result = monitor.monitor_drift(day_of("2026-03-03"), settings=settings, lake=lake, store=store, reference=ref, config=CONFIG)
    assert result.status == OK and result.model_version == 3
    assert "score" in result.body["airloop"]["columns"]  # the scores were joined to their inputs
    (row,) = store.rows(kind=DRIFT)
    assert row["report_prefix"] == "reports/ds=2026-03-03/drift" and row["drift_share"] >= 0.5
    assert monitor.read_report(lake, day_of("2026-03-03"), DRIFT) is not None


def test_monitor_without_rendering_stores_the_numbers_and_publishes_no_report(env, ref):
    settings, lake, store = env
    publish_scored_day(lake, "2026-11-03", inputs(900, seed=9, shift=True))
    result = monitor.monitor_drift(day_of("2026-11-03"), settings=settings, lake=lake, store=store, reference=ref,
                                   config=CONFIG, render=False)  # fmt: skip
    assert result.status == OK and result.html is None
    (row,) = store.rows(kind=DRIFT)
    assert row["report_prefix"] is None and row["drift_share"] >= 0.5
    assert monitor.read_report(lake, day_of("2026-11-03"), DRIFT, "report.json") is None


def test_monitor_drift_of_an_unscored_day_raises(env, ref):
    from airloop.core.storage import PartitionNotFound

    settings, lake, store = env
    with pytest.raises(PartitionNotFound):
        monitor.monitor_drift(day_of("2026-03-09"), settings=settings, lake=lake, store=store, reference=ref)


def test_monitor_performance_awaits_outcomes_then_measures_them(env, ref):
    from airloop.core.storage import frame_to_parquet, partition_prefix, publish_partition

    settings, lake, store = env
    preds = publish_scored_day(lake, "2026-03-02", inputs(900, seed=10))
    result = monitor.monitor_performance(day_of("2026-03-02"), settings=settings, lake=lake, store=store, reference=ref,
                                         config=CONFIG, measured_on=day_of("2026-03-03"))  # fmt: skip
    assert result.status == AWAITING and "not ingested yet" in result.message
    (row,) = store.rows(kind=PERFORMANCE)
    assert row["status"] == AWAITING and row["auc"] is None  # awaiting, not zero

    rng = np.random.default_rng(11)
    raw = preds.drop(columns=["score", "model_version"]).assign(
        arr_delay=np.where(rng.uniform(size=len(preds)) < preds["score"], 60.0, -3.0)
    )
    raw.loc[:49, "arr_delay"] = np.nan  # 50 cancelled or diverted flights: unlabelled
    publish_partition(lake, partition_prefix("raw", "flights", "2026-03-02"), {"part.parquet": frame_to_parquet(raw)}, {})
    result = monitor.monitor_performance(day_of("2026-03-02"), settings=settings, lake=lake, store=store, reference=ref,
                                         config=CONFIG, measured_on=day_of("2026-03-03"))  # fmt: skip
    assert result.status == OK and result.rows_current == 850
    assert result.metrics["reference_auc"] == pytest.approx(monitor.roc_auc(ref["is_delayed"], ref["score"]))
    assert result.metrics["auc"] > 0.5
    (row,) = store.rows(kind=PERFORMANCE)
    assert row["status"] == OK and row["auc"] == pytest.approx(result.metrics["auc"]) and row["measured_on"] == "2026-03-03"
    assert monitor.read_report(lake, day_of("2026-03-02"), PERFORMANCE) is not None


def test_monitor_performance_of_an_unscored_day_is_skipped(env):
    settings, lake, store = env
    result = monitor.monitor_performance(day_of("2026-03-01"), settings=settings, lake=lake, store=store, config=CONFIG)
    assert result.status == SKIPPED and "not scored" in result.message


def test_report_prefix_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="unknown report kind"):
        monitor.report_prefix(day_of("2026-03-01"), "quality")


def test_a_day_is_taken_as_given_its_key_names_the_partitions_and_its_zone_carries_over():
    day = day_of("2026-03-08")  # New York springs forward: the key is still the calendar day
    assert monitor.report_prefix(day, DRIFT) == "reports/ds=2026-03-08/drift"
    assert monitor.predictions_prefix(day) == "predictions/ds=2026-03-08"
    evaluated = monitor.outcome_day(day, MonitorConfig(outcome_lag_days=2))
    assert evaluated == day_of("2026-03-06")  # a LogicalDay, same zone and cutoff
    assert monitor.outcome_day(day).key == "2026-03-07"


def test_the_sample_seed_is_the_day_key_alone():
    import hashlib

    # The seed of the key string, as before days were typed: a rerun samples the same rows.
    expected = int(hashlib.sha256(b"2026-03-02").hexdigest()[:8], 16)
    assert day_seed(day_of("2026-03-02")) == day_seed(LogicalDay.parse("2026-03-02")) == expected
    frame = pd.DataFrame({"x": range(1000)})
    sample = rows_to_test(frame, day_of("2026-03-02"), 100)
    assert len(sample) == 100 and sample.index.is_monotonic_increasing
    assert sample.equals(rows_to_test(frame, LogicalDay.parse("2026-03-02"), 100))
    assert not sample.equals(rows_to_test(frame, day_of("2026-03-03"), 100))
    assert rows_to_test(frame, day_of("2026-03-02"), 0) is frame


def test_context_columns_are_reported_but_left_out_of_the_policy_share(ref):
    current = inputs(900, seed=12)
    current["origin_delay_rate_7d"] = current["origin_delay_rate_7d"] + 0.4  # only this one (and the score?) moves
    config = MonitorConfig(min_rows=50, context_columns=("origin_delay_rate_7d", "score"))
    result = drift_report(day_of("2026-03-05"), ref, current, config=config)
    assert "origin_delay_rate_7d" in result.metrics["drifted_column_names"]
    assert result.metrics["context_columns"] == ["origin_delay_rate_7d", "score"]
    drifted_other = [c for c in result.metrics["drifted_column_names"] if c not in ("origin_delay_rate_7d", "score")]
    assert result.metrics["policy_drift_share"] == pytest.approx(len(drifted_other) / 4)  # carrier, origin, distance, hour
    assert result.metrics["policy_drift_share"] < result.metrics["drift_share"]


def test_context_columns_match_feature_view_names_and_come_from_the_use_case(monkeypatch):
    from airloop.core.usecase import load_use_case

    assert is_context_column("origin_weather__temp", ("temp",))
    assert not is_context_column("temperature_delta", ("temp",))
    config = MonitorConfig.from_env(load_use_case("airloop.usecases.flights:USE_CASE"))
    assert {"temp", "precip", "score"} <= set(config.context_columns) and "distance" not in config.context_columns
    monkeypatch.setenv("AIRLOOP_MONITOR_CONTEXT_COLUMNS", "-")
    assert MonitorConfig.from_env(load_use_case("airloop.usecases.flights:USE_CASE")).context_columns == ()
