"""The drift signal that means degradation: effect sizes, calibration, the rolling AUC bound, and
the policy on synthetic daily series (quiet stays quiet, a step change fires once per episode)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from airloop.core.dates import LogicalDay
from airloop.monitoring import (
    DayEvidence,
    DriftCalibration,
    DriftPolicy,
    MonitorConfig,
    MonitorInputError,
    calibrate,
    drift_report,
)
from airloop.monitoring.effects import psi_categorical, psi_numeric
from airloop.monitoring.window import auc_bound, delong

CARRIERS = ["AA", "B6", "DL", "EV", "UA", "US"]
CONFIG = MonitorConfig(min_rows=50, context_columns=("temp", "score"))


def on(day: date) -> LogicalDay:
    return LogicalDay(day, "America/New_York")


def flights(n: int, rng, *, shift: float = 0.0, weather: float = 0.0, signal: float = 1.0, day_level: float = 0.0):
    """One day of flights: schedule columns (stable), the day's weather and a rolling delay rate
    (the same for every flight of the day: they move every day by construction), a score and
    a realized label whose dependence on the score is ``signal``."""
    frame = pd.DataFrame(
        {
            "carrier": rng.choice(CARRIERS, n, p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.1] if shift else None),
            "distance": rng.normal(1000 + 1500 * shift, 300, n).clip(50),
            "sched_hour": rng.integers(5 + int(10 * shift), 23, n),
            "temp": rng.normal(weather, 2, n),
            "origin_delayed_share_7d": np.full(n, day_level),
        }
    )
    risk = rng.normal(0, 1, n)
    frame["score"] = 1 / (1 + np.exp(-(risk - 1.5)))
    frame["is_delayed"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-(signal * risk - 1.5 + rng.normal(0, 1 - min(signal, 1), n))))).astype(int)
    return frame


def period(days: int, *, seed: int, start: date = date(2013, 1, 1), n: int = 600, **kwargs) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(days):
        day_kwargs = {"weather": rng.normal(0, 8), "day_level": rng.uniform(0.1, 0.4), **kwargs}
        frames.append(flights(n, rng, **day_kwargs).assign(ds=(start + timedelta(days=i)).isoformat()))
    return pd.concat(frames, ignore_index=True)


# --- effect sizes ------------------------------------------------------------------------------


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    assert psi_numeric(ref, rng.normal(0, 1, 900)) < 0.05
    assert psi_numeric(ref, rng.normal(1, 1, 900)) > 0.5
    # a missing value is a bin of its own: a column going null is a shift, not silently dropped
    half_null = np.where(rng.uniform(size=900) < 0.5, np.nan, rng.normal(0, 1, 900))
    assert psi_numeric(ref, half_null) > 1
    cats = pd.Series(rng.choice(CARRIERS, 5000))
    assert psi_categorical(cats, pd.Series(rng.choice(CARRIERS, 900))) < 0.05
    assert psi_categorical(cats, pd.Series(["AA"] * 900)) > 1


def test_psi_does_not_grow_with_the_sample_like_a_p_value():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 5000)
    small, large = psi_numeric(ref, rng.normal(0.05, 1, 900)), psi_numeric(ref, rng.normal(0.05, 1, 100_000))
    assert small < 0.05 and large < 0.05


def test_the_drift_share_without_rendering_matches_evidentlys():
    rng = np.random.default_rng(2)
    reference = flights(3000, rng)
    for current in (flights(900, rng), flights(900, rng, shift=1.0, weather=15)):
        day = on(date(2026, 6, 14))
        rendered = drift_report(day, reference, current, config=CONFIG)
        quick = drift_report(day, reference, current, config=CONFIG, render_html=False)
        assert quick.html is None
        assert quick.metrics["drifted_column_names"] == rendered.metrics["drifted_column_names"]
        assert quick.metrics["drift_share"] == pytest.approx(rendered.metrics["drift_share"])
        for col, value in rendered.body["airloop"]["columns"].items():
            assert quick.body["airloop"]["columns"][col]["score"] == pytest.approx(value["score"], abs=1e-6), col


# --- calibration -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy():
    return period(30, seed=3)


@pytest.fixture(scope="module")
def calibration(healthy):
    return calibrate(healthy.drop(columns=["is_delayed"]), outcomes=healthy, context_columns=("score",))


def test_calibration_is_reproducible_byte_for_byte(healthy, calibration):
    again = calibrate(healthy.drop(columns=["is_delayed"]), outcomes=healthy, context_columns=("score",))
    assert again.to_json() == calibration.to_json()
    shuffled = healthy.sample(frac=1.0, random_state=5).reset_index(drop=True)  # row order is not an input
    assert calibrate(shuffled.drop(columns=["is_delayed"]), outcomes=shuffled, context_columns=("score",)).columns.keys() == calibration.columns.keys()
    assert DriftCalibration.from_json(calibration.to_json()).to_json() == calibration.to_json()


def test_columns_that_move_every_day_become_context_the_others_get_measured_thresholds(calibration):
    cols = calibration.columns
    assert cols["temp"]["role"] == "context" and "moves every day" in cols["temp"]["why"]
    assert cols["origin_delayed_share_7d"]["role"] == "context"
    assert cols["score"]["role"] == "context" and "use case" in cols["score"]["why"]
    for name in ("carrier", "distance", "sched_hour"):
        assert cols[name]["role"] == "policy"
        assert cols[name]["threshold"] == pytest.approx(max(0.1, 1.25 * cols[name]["max_psi"]))
    assert calibration.source == {"from": "2013-01-01", "to": "2013-01-30", "days": 30, "rows": 18000,
                                  "reference_rows": 5000, "null_columns": []}  # fmt: skip


def test_the_auc_tolerance_is_the_healthy_periods_largest_bounded_shortfall(calibration):
    auc = calibration.auc
    assert auc["windows"] == 28 and auc["baseline"] == pytest.approx(auc["pooled_auc"])
    assert calibration.auc_tolerance == pytest.approx(max(0.01, auc["max_shortfall"]))


@pytest.mark.parametrize(
    "frame, match",
    [(pd.DataFrame({"distance": [1.0] * 10}), "no day column 'ds'"),
     (period(5, seed=4), "at least 7 days of inputs, got 5")],  # fmt: skip
)
def test_calibration_refuses_unusable_inputs_with_the_reason(frame, match):
    with pytest.raises(MonitorInputError, match=match):
        calibrate(frame)


@pytest.mark.parametrize("data", [b"not json", b'{"format": 99, "columns": {}}', b'{"format": 1, "columns": {"x": {"role": "?"}}}'])
def test_a_damaged_calibration_file_is_named_with_the_reason(data):
    with pytest.raises(MonitorInputError, match="lake/monitoring/calibration.json is not a drift calibration"):
        DriftCalibration.from_json(data, "lake/monitoring/calibration.json")


# --- the rolling AUC bound ---------------------------------------------------------------------


def test_delong_matches_sklearn_and_a_seeded_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 800)
    scores = rng.normal(labels * 0.5, 1)
    auc, variance = delong(labels, scores)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    boot = [roc_auc_score(labels[i], scores[i]) for i in (rng.integers(0, 800, 800) for _ in range(300))]
    assert np.sqrt(variance) == pytest.approx(np.std(boot), rel=0.15)
    assert delong([1, 1, 1], [0.1, 0.2, 0.3]) == (None, None)


def test_the_rolling_bound_does_not_breach_on_noise_of_a_few_hundred_rows():
    """300 labelled flights a day from one stable model for 120 days: one day's AUC falls 0.05
    below the true AUC on many days, the 7-day window's upper bound never by the tolerance."""
    rng = np.random.default_rng(7)
    days = [flights(300, rng) for _ in range(120)]
    true_auc = delong(*(np.concatenate(x) for x in zip(*[(d["is_delayed"], d["score"]) for d in days])))[0]
    one_day = [delong(d["is_delayed"], d["score"])[0] for d in days]
    assert sum(true_auc - a >= 0.05 for a in one_day) >= 10  # the old signal: noise breaches
    drops = []
    for end in range(6, 120):
        window = pd.concat(days[end - 6 : end + 1])
        drops.append(true_auc - auc_bound(window["is_delayed"], window["score"])["upper"])
    assert max(drops) < DriftPolicy.auc_drop_threshold


def test_the_rolling_bound_breaches_when_the_model_really_got_worse():
    rng = np.random.default_rng(8)
    good = pd.concat([flights(300, rng) for _ in range(20)])
    baseline = delong(good["is_delayed"], good["score"])[0]
    worse = pd.concat([flights(300, rng, signal=0.4) for _ in range(7)])
    assert baseline - auc_bound(worse["is_delayed"], worse["score"])["upper"] > 0.05


# --- the policy on synthetic series ------------------------------------------------------------


def replay(frame: pd.DataFrame, calibration, reference, baseline, policy):
    """Day by day as monitor_model: drift signal, 7-day window bound, the policy; returns firings."""
    history, fired, by_day = [], [], {}
    for ds, today in frame.groupby("ds", sort=True):
        day = date.fromisoformat(ds)
        result = drift_report(on(day), reference, today.drop(columns=["is_delayed"]), config=CONFIG,
                              render_html=False, calibration=calibration)  # fmt: skip
        by_day[day] = today
        window = pd.concat([by_day[d] for d in (day - timedelta(days=i) for i in range(7)) if d in by_day])
        bound = auc_bound(window["is_delayed"], window["score"]) if len(window) >= 3 * 300 else None
        history.append(DayEvidence(ds=day, model_version=1, drift_share=result.metrics["drift_signal"],
                                   auc_drop_bound=(baseline - bound["upper"]) if bound else None))  # fmt: skip
        if policy.decide(on(day), history, fired).fire:
            fired.append(day)
    return fired


@pytest.fixture(scope="module")
def trained(healthy, calibration):
    reference = healthy.drop(columns=["is_delayed", "ds"]).sample(n=5000, random_state=13)
    baseline = delong(healthy["is_delayed"], healthy["score"])[0]
    return reference, baseline, DriftPolicy.from_env(calibration)


def test_a_quiet_series_never_fires(calibration, trained):
    reference, baseline, policy = trained
    quiet = period(90, seed=9, start=date(2013, 2, 1), n=300)
    assert replay(quiet, calibration, reference, baseline, policy) == []


def test_a_step_change_fires_once_per_episode(calibration, trained):
    reference, baseline, policy = trained
    start = date(2013, 6, 1)
    episodes = [period(20, seed=10, start=start, n=300),
                period(12, seed=11, start=start + timedelta(days=20), n=300, shift=1.0),  # the schedule changes
                period(30, seed=12, start=start + timedelta(days=32), n=300),
                period(12, seed=13, start=start + timedelta(days=62), n=300, signal=0.3),  # the model gets worse
                period(20, seed=14, start=start + timedelta(days=74), n=300)]  # fmt: skip
    fired = replay(pd.concat(episodes, ignore_index=True), calibration, reference, baseline, policy)
    assert len(fired) == 2, fired
    assert start + timedelta(days=20) <= fired[0] <= start + timedelta(days=24)  # within days of the change
    assert start + timedelta(days=62) <= fired[1] <= start + timedelta(days=70)
