"""Retraining policies on synthetic monitoring series (no data, no model): a quiet series never
fires, a step change fires once per episode, schedules count from the first replayed day."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from airloop.backtest import (
    DriftTriggeredPolicy,
    FrozenPolicy,
    PolicyError,
    PolicyState,
    RetrainingPolicy,
    ScheduledDriftPolicy,
    ScheduledPolicy,
    TrainDecision,
    make_policy,
)
from airloop.core.usecase import load_use_case
from airloop.monitoring import DayEvidence, DriftPolicy

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
FIRST = date(2026, 5, 4)  # mid-range (source 2013-05-06); the series spans the summer
HISTORY = date(2025, 12, 30)
THRESHOLDS = DriftPolicy(drift_share_threshold=0.5, auc_drop_threshold=0.02, consecutive_days=3, cooldown_days=14,
                         training_window_days=28, outcome_lag_days=1)  # fmt: skip


def quiet(n: int, seed: int = 0) -> list[dict]:
    """Healthy days: drift share well under its threshold, AUC bound under its tolerance."""
    rng = np.random.default_rng(seed)
    return [{"drift_share": float(rng.uniform(0.0, 0.35)), "auc_drop_bound": float(rng.uniform(-0.03, 0.012))} for _ in range(n)]


def replay(policy, series: list[dict]) -> list[date]:
    """Drive ``policy`` day by day as the backtest does; a training promotes a new version, so the
    evidence after it is the new model's (a new champion starts a fresh count)."""
    evidence, fired, trainings = [], [], []
    version = 1
    for i, values in enumerate(series):
        day = USE_CASE.day(FIRST + timedelta(days=i))
        evidence.append(DayEvidence(ds=day.date, model_version=version, **values))
        state = PolicyState(first_day=FIRST, history_start=HISTORY, window_days=90, evidence=tuple(evidence),
                            fired_on=tuple(fired), champion_version=version)  # fmt: skip
        decision = policy.decide(day, state)
        if decision is not None:
            assert decision.window_end < day.date, "a window must end before the day it is decided on"
            assert decision.window_start >= HISTORY
            if decision.drift is not None:
                fired.append(day.date)
            trainings.append(day.date)
            version += 1
    return trainings


@pytest.mark.parametrize("seed", range(5))
def test_a_quiet_series_never_fires(seed):
    assert replay(DriftTriggeredPolicy(THRESHOLDS), quiet(200, seed)) == []


def test_a_step_change_fires_once_per_episode():
    """Two lasting changes of regime (from day 40 and from day 120): each fires once. The model
    trained after a change has its reference in the new regime, so its days are quiet again;
    the days before the firing are the old model's and breach."""
    steps = (40, 120)
    base = quiet(200, seed=7)
    policy = DriftTriggeredPolicy(THRESHOLDS)
    evidence, fired = [], []
    version, trained_on = 1, -1
    for i in range(200):
        day = USE_CASE.day(FIRST + timedelta(days=i))
        stale = any(trained_on < step <= i for step in steps)  # a change since the model's training
        values = {"drift_share": 0.8, "auc_drop_bound": 0.04} if stale else base[i]
        evidence.append(DayEvidence(ds=day.date, model_version=version, **values))
        decision = policy.decide(day, PolicyState(FIRST, HISTORY, 90, evidence=tuple(evidence), fired_on=tuple(fired)))
        if decision is not None:
            fired.append(day.date)
            version, trained_on = version + 1, i
    assert len(fired) == 2
    assert FIRST + timedelta(days=41) < fired[0] <= FIRST + timedelta(days=43)  # after three breaching days
    assert FIRST + timedelta(days=121) < fired[1] <= FIRST + timedelta(days=123)


def test_an_episode_that_outlives_the_new_model_fires_again_only_after_the_cooldown():
    """Without a promotion (the gate kept the champion) a persisting breach waits out the cooldown."""
    series = quiet(60, seed=3)
    for i in range(10, 60):
        series[i] = {"drift_share": 0.9, "auc_drop_bound": None}
    policy = DriftTriggeredPolicy(THRESHOLDS)
    evidence, fired = [], []
    for i, values in enumerate(series):
        day = USE_CASE.day(FIRST + timedelta(days=i))
        evidence.append(DayEvidence(ds=day.date, model_version=1, **values))
        decision = policy.decide(day, PolicyState(FIRST, HISTORY, 90, evidence=tuple(evidence), fired_on=tuple(fired)))
        if decision is not None:
            fired.append(day.date)
    assert len(fired) >= 2
    assert all((b - a).days > THRESHOLDS.cooldown_days for a, b in zip(fired, fired[1:]))


def test_scheduled_counts_from_the_first_day_and_trains_on_the_window_before():
    policy = ScheduledPolicy(7)
    trained = replay(policy, quiet(30))
    assert trained == [FIRST + timedelta(days=d) for d in (7, 14, 21, 28)]
    state = PolicyState(FIRST, HISTORY, 90)
    decision = policy.decide(USE_CASE.day(FIRST + timedelta(days=7)), state)
    assert decision.window_end == FIRST + timedelta(days=6)
    assert decision.window_start == FIRST + timedelta(days=6) - timedelta(days=89)
    # Near the history's start the window is clipped to the data there is.
    early = PolicyState(date(2026, 1, 5), HISTORY, 90)
    assert policy.decide(USE_CASE.day("2026-01-12"), early).window_start == HISTORY


def test_frozen_never_trains_and_scheduled_drift_does_both_once_a_day():
    series = quiet(30, seed=1)
    for i in range(5, 12):
        series[i] = {"drift_share": 0.9, "auc_drop_bound": 0.05}
    assert replay(FrozenPolicy(), series) == []
    both = replay(ScheduledDriftPolicy(drift_policy=THRESHOLDS, every_days=7), series)
    drift_only = replay(DriftTriggeredPolicy(THRESHOLDS), series)
    assert set(drift_only) <= set(both)
    assert {FIRST + timedelta(days=d) for d in (14, 21, 28)} <= set(both)
    assert len(both) == len(set(both))  # one training per day at most


def test_make_policy_names_and_bad_names():
    assert isinstance(make_policy("frozen"), FrozenPolicy)
    assert make_policy("scheduled").every_days == 7
    assert make_policy("scheduled:14").every_days == 14 and make_policy("scheduled:14").name == "scheduled:14"
    assert make_policy("scheduled+drift:3").every_days == 3
    with pytest.raises(PolicyError, match="unknown policy 'weekly'"):
        make_policy("weekly")
    with pytest.raises(PolicyError, match="integer"):
        make_policy("scheduled:x")
    with pytest.raises(PolicyError, match="takes no parameter"):
        make_policy("frozen:3")
    with pytest.raises(PolicyError, match=">= 1"):
        make_policy("scheduled:0")


def test_a_new_policy_is_one_small_class():
    class EveryMonday(RetrainingPolicy):
        name = "mondays"

        def decide(self, day, state):
            if day.date.weekday() == 0 and day.date > state.first_day:
                return TrainDecision(*state.window_ending(day.date - timedelta(days=1)), "monday")
            return None

    trained = replay(EveryMonday(), quiet(21))
    assert trained and all(d.weekday() == 0 for d in trained)
