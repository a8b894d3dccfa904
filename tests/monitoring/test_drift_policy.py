"""The drift policy on synthetic daily series: threshold, consecutive days, cooldown, versions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from airloop.core.config import SettingsError
from airloop.core.dates import LogicalDay
from airloop.monitoring import DayEvidence, DriftPolicy, evidence_from_rows

START = date(2026, 3, 1)


def on(day: date) -> LogicalDay:
    """The logical day the operator hands the policy (New York, scored at 02:00)."""
    return LogicalDay(day, "America/New_York")


def series(shares, *, version=1, auc_drops=None, start=START):
    auc_drops = auc_drops or [None] * len(shares)
    return [
        DayEvidence(ds=start + timedelta(days=i), model_version=version, drift_share=s, auc_drop_bound=a)
        for i, (s, a) in enumerate(zip(shares, auc_drops))
    ]


def fire_days(policy, history):
    """Replay the policy day by day as the DAG does, feeding back its own firings."""
    fired = []
    for day in sorted(d.ds for d in history):
        if policy.decide(on(day), history, fired).fire:
            fired.append(day)
    return fired


POLICY = DriftPolicy(drift_share_threshold=0.5, auc_drop_threshold=0.05, consecutive_days=3, cooldown_days=7)


@pytest.mark.parametrize(
    "share, breaches",
    [(0.49, False), (0.5, True), (0.8, True), (None, False), (0.0, False)],
)
def test_threshold_on_drift_share(share, breaches):
    assert bool(POLICY.breaches(DayEvidence(ds=START, drift_share=share))) is breaches


def test_threshold_on_the_bounded_auc_drop_alone():
    assert POLICY.breaches(DayEvidence(ds=START, drift_share=0.1, auc_drop_bound=0.06))
    assert not POLICY.breaches(DayEvidence(ds=START, drift_share=0.1, auc_drop_bound=0.04))
    assert not POLICY.breaches(DayEvidence(ds=START, drift_share=0.1, auc_drop_bound=-0.2))  # better than reference


def test_one_days_auc_drop_is_shown_but_never_counted():
    # A day's AUC on a few hundred flights is noise: only the rolling window's bound counts.
    assert not POLICY.breaches(DayEvidence(ds=START, drift_share=0.1, auc_drop=0.3))
    history = [DayEvidence(ds=START + timedelta(days=i), model_version=1, drift_share=0.1, auc_drop=0.2) for i in range(10)]
    assert fire_days(POLICY, history) == []


def test_fires_only_after_n_consecutive_breaching_days():
    history = series([0.1, 0.6, 0.7, 0.8, 0.9])
    assert [POLICY.decide(on(d.ds), history).fire for d in history] == [False, False, False, True, True]
    decision = POLICY.decide(on(START + timedelta(days=3)), history)
    assert [e.ds for e in decision.streak] == [START + timedelta(days=i) for i in (1, 2, 3)]


def test_a_calm_day_resets_the_streak():
    history = series([0.6, 0.7, 0.1, 0.8, 0.9, 0.1, 0.9])
    assert fire_days(POLICY, history) == []


def test_a_missing_or_skipped_day_breaks_the_streak_no_false_alarm():
    history = series([0.6, 0.7, None, 0.8, 0.9])  # None: tiny sample, drift not assessed
    assert fire_days(POLICY, history) == []
    gap = [d for d in series([0.6, 0.7, 0.8, 0.9]) if d.ds != START + timedelta(days=1)]
    assert fire_days(POLICY, gap) == []


def test_one_episode_fires_once_then_cooldown():
    history = series([0.9] * 10)  # persistent drift under the same model for 10 days
    fired = fire_days(POLICY, history)
    assert fired == [START + timedelta(days=2)]
    decision = POLICY.decide(on(START + timedelta(days=9)), history, fired)
    assert not decision.fire and "cooldown" in decision.reason
    decision = POLICY.decide(on(START + timedelta(days=3)), history, fired)
    assert not decision.fire and f"same drift episode as the firing on {START + timedelta(days=2)}" in decision.reason


def test_after_cooldown_a_new_streak_after_the_firing_can_fire_again():
    history = series([0.9] * 14)
    fired = fire_days(POLICY, history)
    # fires on day 2; days 3..9 are cooldown (7 days); day 10 has a 8-day streak after the firing
    assert fired == [START + timedelta(days=2), START + timedelta(days=10)]


def test_a_new_champion_starts_a_fresh_count():
    old = series([0.9, 0.9], version=1)
    new = series([0.9, 0.9], version=2, start=START + timedelta(days=2))
    history = old + new
    assert fire_days(POLICY, history) == []
    assert POLICY.decide(on(START + timedelta(days=4)), history + series([0.9], version=2, start=START + timedelta(days=4))).fire


def test_performance_drop_arrives_a_day_late_and_still_counts():
    # AUC of day i is known on day i+1: on the deciding day only yesterday's drop is known.
    history = series([0.1, 0.1, 0.1, 0.1], auc_drops=[0.08, 0.09, 0.1, None])
    decision = POLICY.decide(on(START + timedelta(days=3)), history)
    assert decision.fire, decision.reason
    assert "bounded AUC drop" in decision.reason
    assert decision.streak[-1].ds == START + timedelta(days=2)


def test_rerunning_a_day_that_fired_gives_the_same_answer():
    history = series([0.9] * 4)
    day = START + timedelta(days=2)
    assert POLICY.decide(on(day), history).fire
    # the store records the firing of `day`; re-deciding `day` ignores firings on or after it
    assert POLICY.decide(on(day), history, fired_on=[day]).fire


def test_suggested_window_ends_at_the_last_labelled_day():
    policy = DriftPolicy(consecutive_days=2, training_window_days=28, outcome_lag_days=1)
    history = series([0.9, 0.9])
    decision = policy.decide(on(START + timedelta(days=1)), history)
    extra = decision.extra()
    assert decision.fire
    assert extra["window_end"] == START.isoformat()
    assert extra["window_start"] == (START - timedelta(days=27)).isoformat()
    assert extra["ds"] == (START + timedelta(days=1)).isoformat()
    assert [e["drift_share"] for e in extra["evidence"]] == [0.9, 0.9]


def test_days_after_the_decision_day_are_ignored():
    history = series([0.1, 0.9, 0.9, 0.9])
    assert not POLICY.decide(on(START + timedelta(days=1)), history).fire


@pytest.mark.parametrize(
    "kwargs", [{"drift_share_threshold": 0}, {"drift_share_threshold": 1.5}, {"consecutive_days": 0},
               {"cooldown_days": -1}, {"auc_drop_threshold": 0}],  # fmt: skip
)
def test_invalid_policy_settings_are_refused(kwargs):
    with pytest.raises(SettingsError):
        DriftPolicy(**kwargs)


def test_policy_from_env(monkeypatch):
    monkeypatch.setenv("AIRLOOP_DRIFT_CONSECUTIVE_DAYS", "5")
    monkeypatch.setenv("AIRLOOP_DRIFT_SHARE_THRESHOLD", "0.3")
    policy = DriftPolicy.from_env()
    assert (policy.consecutive_days, policy.drift_share_threshold) == (5, 0.3)
    monkeypatch.setenv("AIRLOOP_DRIFT_COOLDOWN_DAYS", "soon")
    with pytest.raises(SettingsError, match="AIRLOOP_DRIFT_COOLDOWN_DAYS"):
        DriftPolicy.from_env()


def test_evidence_from_metric_rows_merges_kinds_and_ignores_non_ok():
    rows = [
        {"ds": "2026-03-01", "kind": "drift", "status": "ok", "model_version": 3, "drift_share": 0.6,
         "drifted_column_names": ["distance"]},
        {"ds": "2026-03-01", "kind": "performance", "status": "ok", "model_version": 3, "auc_drop": 0.02,
         "auc_drop_bound": -0.01, "window_auc": 0.71},
        {"ds": "2026-03-02", "kind": "drift", "status": "skipped", "model_version": 3, "drift_share": None},
        {"ds": "2026-03-02", "kind": "performance", "status": "awaiting_outcomes", "model_version": 3},
    ]  # fmt: skip
    evidence = evidence_from_rows(rows)
    assert len(evidence) == 1
    day = evidence[0]
    assert (day.ds, day.model_version, day.drift_share, day.auc_drop) == (date(2026, 3, 1), 3, 0.6, 0.02)
    assert day.drifted_columns == ("distance",)
    assert (day.auc_drop_bound, day.window_auc) == (-0.01, 0.71)


def test_evidence_prefers_the_policy_drift_share():
    rows = [{"ds": "2026-03-01", "kind": "drift", "status": "ok", "model_version": 1, "drift_share": 0.6,
             "policy_drift_share": 0.1, "drifted_column_names": ["temp"]}]  # fmt: skip
    (day,) = evidence_from_rows(rows)
    assert day.drift_share == 0.1 and not POLICY.breaches(day)


def test_evidence_prefers_the_drift_signal():
    rows = [{"ds": "2026-06-14", "kind": "drift", "status": "ok", "model_version": 1, "drift_share": 0.6,
             "policy_drift_share": 0.4, "drifted_column_names": ["temp", "distance"], "drift_signal": 0.0,
             "drift_signal_columns": []}]  # fmt: skip
    (day,) = evidence_from_rows(rows)
    assert day.drift_share == 0.0 and day.drifted_columns == () and not POLICY.breaches(day)


def test_the_auc_tolerance_comes_from_the_calibration_unless_set(monkeypatch):
    from airloop.monitoring.calibration import DriftCalibration

    calibration = DriftCalibration(columns={}, auc_tolerance=0.034)
    monkeypatch.delenv("AIRLOOP_DRIFT_AUC_DROP", raising=False)
    assert DriftPolicy.from_env(calibration).auc_drop_threshold == 0.034
    assert DriftPolicy.from_env().auc_drop_threshold == DriftPolicy.auc_drop_threshold
    monkeypatch.setenv("AIRLOOP_DRIFT_AUC_DROP", "0.05")
    assert DriftPolicy.from_env(calibration).auc_drop_threshold == 0.05
