"""The replayed clock: every instant the registry, the monitoring store and scoring write or read
comes from the clock passed in, so a promotion replayed for a past day is visible "as of" that
day and not before, on ordinary days, mid-year and on a DST switch alike."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from airloop.backtest.steps import TRAIN_DELAY
from airloop.core.clock import SYSTEM_CLOCK, ReplayClock
from airloop.core.usecase import load_use_case
from airloop.monitoring import MonitoringStore, ReportResult
from airloop.registry import ModelRegistry
from airloop.scoring import choose_model

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
MODEL = "clock_model"


def _version(registry: ModelRegistry, window_end: date) -> int:
    mv = registry.reserve_version(
        MODEL, feature_service="svc_v1", feature_columns=["a"], window_start=window_end - timedelta(days=6),
        window_end=window_end, fingerprint=f"fp-{window_end}", params={}, metrics={"roc_auc": 0.7},
        code_version="test", device="cpu",
    )  # fmt: skip
    registry.finalize_version(MODEL, mv.version, artifact_uri=f"file:///x/v{mv.version}", sha256="0" * 64, reference_uri=None)
    return mv.version


def test_replay_clock_refuses_naive_instants_and_never_moves_by_itself():
    clock = ReplayClock(datetime(2026, 6, 10, 6, tzinfo=timezone.utc))
    assert clock.now() == clock.now() == datetime(2026, 6, 10, 6, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 6, 10, 6))
    with pytest.raises(ValueError, match="naive"):
        ReplayClock(datetime(2026, 6, 10))
    local = USE_CASE.day("2026-06-10").cutoff.astimezone(USE_CASE.day("2026-06-10").start.tzinfo)
    assert clock.set(local).tzinfo == timezone.utc  # stored as UTC whatever zone it was given in


@pytest.mark.parametrize("ds", ["2026-06-10", "2026-03-08", "2026-11-01", "2025-12-31"])
def test_a_promotion_replayed_for_a_past_day_is_visible_as_of_that_day_and_not_before(tmp_path, ds):
    """Day D's training (an hour after D's 02:00 cutoff, as the backtest stamps it) promotes v2:
    D's own scoring still sees v1, D+1's sees v2, and the history says that instant of D (not
    today), also on DST days (2026-03-08, 2026-11-01) and across the year's edge."""
    day = USE_CASE.day(ds)
    trained = day.cutoff + TRAIN_DELAY
    clock = ReplayClock(day.shift(-7).at(3))
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", clock=clock)
    first = _version(registry, day.shift(-8).date)
    registry.promote(MODEL, first, reason="initial", actor="test")
    clock.set(trained)
    second = _version(registry, day.shift(-1).date)
    registry.promote(MODEL, second, reason="retrained", actor="test", expected_champion=first)

    history = registry.history(MODEL)
    assert [h.at for h in history] == [day.shift(-7).at(3), trained]
    assert registry.get(MODEL, second).created_at == trained
    assert registry.champion_at(MODEL, day.cutoff).version == first  # 02:00 of D: not yet
    assert registry.champion_at(MODEL, trained - timedelta(seconds=1)).version == first
    assert registry.champion_at(MODEL, trained).version == second
    assert registry.champion_at(MODEL, day.shift(1).cutoff).version == second
    assert registry.champion_at(MODEL, day.shift(-7).at(3) - timedelta(seconds=1)) is None

    # Scoring with the replayed clock picks the same models (and not today's champion).
    clock.set(day.cutoff)
    assert choose_model(registry, MODEL, day.cutoff, clock=clock).version.version == first
    clock.set(day.shift(1).cutoff)
    assert choose_model(registry, MODEL, day.shift(1).cutoff, clock=clock).version.version == second


def test_on_the_spring_forward_day_03_00_is_the_scoring_instant():
    """Why the backtest trains an hour after the cutoff and not at 03:00 local: on 2026-03-08
    02:00 New York does not exist and resolves to 03:00, so both name 07:00 UTC."""
    day = USE_CASE.day("2026-03-08")
    assert day.at(3) == day.cutoff == datetime(2026, 3, 8, 7, tzinfo=timezone.utc)
    assert day.cutoff + TRAIN_DELAY > day.cutoff


def test_refusals_and_rollbacks_are_stamped_by_the_clock_too(tmp_path):
    day = USE_CASE.day("2026-06-15")
    clock = ReplayClock(day.at(1))
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}", clock=clock)
    v1, v2 = _version(registry, day.shift(-2).date), _version(registry, day.shift(-1).date)
    registry.promote(MODEL, v1, reason="first", actor="t")
    clock.set(day.at(3))
    registry.promote(MODEL, v2, reason="second", actor="t")
    clock.set(day.at(9))
    registry.rollback(MODEL, reason="bad", actor="t")
    v3 = _version(registry, day.date)
    clock.set(day.at(10))
    registry.refuse(MODEL, v3, reason="gate", actor="t")
    assert [(h.action, h.at) for h in registry.history(MODEL)] == [
        ("promote", day.at(1)), ("promote", day.at(3)), ("rollback", day.at(9)), ("refuse", day.at(10))]
    assert registry.champion_at(MODEL, day.at(8)).version == v2
    assert registry.champion_at(MODEL, day.at(9)).version == v1


def test_the_default_clock_is_the_real_time(tmp_path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    assert registry.clock is SYSTEM_CLOCK
    before = datetime.now(timezone.utc)
    version = _version(registry, date(2026, 6, 1))
    registry.promote(MODEL, version, reason="now", actor="t")
    after = datetime.now(timezone.utc)
    stamped = registry.history(MODEL)[0].at
    assert before - timedelta(seconds=1) <= stamped <= after + timedelta(seconds=1)


def test_monitoring_rows_and_drift_events_are_stamped_by_the_clock(tmp_path):
    day = USE_CASE.day("2026-06-10")
    clock = ReplayClock(day.cutoff + timedelta(minutes=30))
    store = MonitoringStore(f"sqlite:///{tmp_path / 'registry.db'}", clock=clock)
    store.upsert(ReportResult(ds=day.key, kind="drift", status="ok", metrics={"drift_share": 0.1}), measured_on=day.key)
    store.record_event(day.key, model_version=1, window_start="2026-05-13", window_end="2026-06-09", evidence={}, run_id="r")
    (row,) = store.rows()
    (event,) = store.drift_events()
    for value in (row["updated_at"], event["created_at"]):
        stamped = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        assert stamped == day.cutoff + timedelta(minutes=30)
