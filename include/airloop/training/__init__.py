"""Training: a training set from the feature store, XGBoost and a baseline, evaluation and the gate.

``train`` builds candidates and their artifacts, ``gate`` decides champion versus challenger.
"""

from __future__ import annotations

from airloop.training.train import (
    apply_decision,
    check_training_frame,
    evaluate_candidate,
    evaluate_scores,
    infer_categories,
    load_candidate,
    load_training_set,
    predict,
    predict_version,
    publish_candidate,
    publish_training_set,
    read_reference,
    register_candidate,
    resolve_window,
    time_split,
    train_candidate,
    TrainingDataError,
    WindowError,
)

__all__ = [
    "TrainingDataError",
    "WindowError",
    "apply_decision",
    "check_training_frame",
    "evaluate_candidate",
    "evaluate_scores",
    "infer_categories",
    "load_candidate",
    "load_training_set",
    "predict",
    "predict_version",
    "publish_candidate",
    "publish_training_set",
    "read_reference",
    "register_candidate",
    "resolve_window",
    "time_split",
    "train_candidate",
]
