"""Training: the XGBoost challenger (GPU when the device choice says so) and the scikit-learn
baseline on the same rows, both scored on the holdout; :func:`train_candidate` returns the
:class:`Candidate` before anything is written.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airloop.core.devices import cpu_threads
from airloop.training.checks import TIME_COLUMN, TrainingDataError, check_training_frame, time_split
from airloop.training.encoding import encode_features, infer_categories, predict
from airloop.training.metrics import evaluate_scores

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.devices import DeviceChoice
    from airloop.core.usecase import ModelSpec

# Parameters that configure the training loop, not the booster.
LOOP_PARAMS = ("num_boost_round",)


@dataclass
class Candidate:
    """A trained challenger, before registration."""

    model_bytes: bytes
    feature_columns: list[str]
    categories: dict[str, list]
    params: dict
    metrics: dict  # holdout metrics of the XGBoost model
    baseline_metrics: dict  # holdout metrics of the scikit-learn baseline, same rows
    split: dict
    data_checks: dict
    device: dict
    reference: "pd.DataFrame"
    timings: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_bytes).hexdigest()


def booster_params(spec: "ModelSpec", overrides: dict | None = None) -> dict:
    """The use case's XGBoost parameters with a run's overrides (None values are ignored)."""
    params = dict(spec.params)
    params.update({k: v for k, v in (overrides or {}).items() if v is not None})
    params.setdefault("objective", "binary:logistic")
    params.setdefault("num_boost_round", 100)
    if int(params["num_boost_round"]) < 1:
        raise TrainingDataError(f"num_boost_round must be at least 1, got {params['num_boost_round']}")
    return params


def fit_xgboost(train: "pd.DataFrame", feature_columns, categories, label: str, params: dict, device: str):
    """Train the XGBoost booster on ``train`` with ``device`` (``cuda`` or ``cpu``)."""
    import xgboost as xgb

    booster_args = {k: v for k, v in params.items() if k not in LOOP_PARAMS}
    booster_args["device"] = device
    booster_args.setdefault("nthread", cpu_threads())  # a run's overrides may set it
    # QuantileDMatrix: the hist method's own input, built once (less memory on CPU and GPU).
    matrix = xgb.QuantileDMatrix(
        encode_features(train, feature_columns, categories), label=train[label], enable_categorical=True
    )
    return xgb.train(booster_args, matrix, num_boost_round=int(params["num_boost_round"]))


def fit_baseline(train: "pd.DataFrame", feature_columns, categories, label: str):
    """The scikit-learn baseline: logistic regression on imputed, scaled numbers and one-hot categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in feature_columns if c not in categories]
    categorical = [c for c in feature_columns if c in categories]
    transformers = []
    if numeric:
        transformers.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=20), categorical))
    model = Pipeline([("prep", ColumnTransformer(transformers)), ("clf", LogisticRegression(max_iter=2000))])
    model.fit(_baseline_input(train, feature_columns, categories), train[label].to_numpy())
    return model


def _baseline_input(frame, feature_columns, categories):
    encoded = encode_features(frame, feature_columns, categories)
    for column in categories:
        encoded[column] = encoded[column].astype("object").where(encoded[column].notna(), "__missing__")
    return encoded


def train_candidate(
    training_set,
    spec: "ModelSpec",
    *,
    device: "DeviceChoice",
    overrides: dict | None = None,
) -> Candidate:
    """Check the data, split by time, train XGBoost and the baseline, score both on the holdout.

    :param training_set: anything with ``frame``, ``feature_columns``, ``label_column``.
    :param device: from :func:`airloop.core.devices.choose_device`; recorded with the model.
    :param overrides: hyperparameters for this run (e.g. ``{"num_boost_round": 1}``).
    :raises TrainingDataError: the data fails a check; nothing is written.
    """
    frame = training_set.frame
    features, label = list(training_set.feature_columns), training_set.label_column
    if label != spec.label:
        raise TrainingDataError(f"training set label is {label!r}, the model spec expects {spec.label!r}")
    checks = check_training_frame(frame, features, label, spec)
    train, valid, split = time_split(frame, spec)
    categories = infer_categories(train, features)
    params = booster_params(spec, overrides)
    constraints = {c: int(d) for c, d in spec.monotone.items() if c in features and c not in categories}
    if constraints and "monotone_constraints" not in params:
        params["monotone_constraints"] = constraints

    started = time.perf_counter()
    booster = fit_xgboost(train, features, categories, label, params, device.device)
    xgb_seconds = time.perf_counter() - started
    started = time.perf_counter()
    baseline = fit_baseline(train, features, categories, label)
    baseline_seconds = time.perf_counter() - started

    slices = valid[spec.slice_column] if spec.slice_column in valid.columns else None
    score_args = {"threshold": spec.threshold, "slices": slices, "min_slice_rows": spec.min_slice_rows}
    metrics = evaluate_scores(valid[label], predict(booster, valid, features, categories), **score_args)
    baseline_scores = baseline.predict_proba(_baseline_input(valid, features, categories))[:, 1]
    baseline_metrics = evaluate_scores(valid[label], baseline_scores, **score_args)

    sample = train.sample(n=min(spec.reference_rows, len(train)), random_state=13).sort_index()
    keep = [c for c in dict.fromkeys([TIME_COLUMN, spec.slice_column, *features, label]) if c in sample.columns]
    reference = sample[keep].copy()
    reference["score"] = predict(booster, sample, features, categories)

    raw = booster.save_raw(raw_format="ubj")
    return Candidate(
        model_bytes=bytes(raw),
        feature_columns=features,
        categories=categories,
        params=params,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        split=split,
        data_checks=checks,
        device=device.as_dict(),
        reference=reference.reset_index(drop=True),
        timings={"xgboost_fit_s": round(xgb_seconds, 3), "baseline_fit_s": round(baseline_seconds, 3)},
    )
