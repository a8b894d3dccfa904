"""Training: a training set from the feature store, XGBoost and a baseline, evaluation and the gate.

The flow the ``train_model`` DAG runs, one module per step:

- :mod:`~airloop.training.windows`: which days to train on (:func:`resolve_window`, from bounds
  the boundary already parsed into dates).
- :mod:`~airloop.training.training_sets`: the training set stored in the lake
  (``training_sets/<fingerprint>/``) so later tasks read exactly the same rows.
- :mod:`~airloop.training.checks`: data checks (:class:`TrainingDataError`) and the time split.
- :mod:`~airloop.training.encoding`: categories, the model's input matrix, scores of a booster.
- :mod:`~airloop.training.metrics`: holdout metrics (:func:`evaluate_scores`).
- :mod:`~airloop.training.fit`: XGBoost and the baseline (:func:`train_candidate`).
- :mod:`~airloop.training.artifacts`: the candidate's artifacts in the lake (``model.ubj``,
  never pickle; ``reference.parquet``; metadata).
- :mod:`~airloop.training.promotion`: champion versus challenger on the same holdout, register
  as ``models/<name>/v<N>/``, promote or record the refusal.
- :mod:`~airloop.training.gate`: the promotion rule (:func:`decide`).
- :mod:`~airloop.training.model_card` / :mod:`~airloop.training.card_render`: the model card of a
  version (one source, HTML and Markdown), written beside the model at registration.
- :mod:`~airloop.training.approval`: the optional human gate (``AIRLOOP_PROMOTION_APPROVAL``).

Everything model-specific (label, slice column, parameters, thresholds) comes from the use
case's :class:`~airloop.core.usecase.ModelSpec`. No Airflow imports here.
"""

from __future__ import annotations

from airloop.training.artifacts import load_candidate, publish_candidate, read_reference
from airloop.training.checks import TrainingDataError, check_training_frame, time_split
from airloop.training.encoding import infer_categories, predict, predict_version
from airloop.training.fit import Candidate, train_candidate
from airloop.training.gate import GateDecision, decide, format_decision
from airloop.training.metrics import evaluate_scores
from airloop.training.promotion import apply_decision, evaluate_candidate, register_candidate
from airloop.training.training_sets import load_training_set, publish_training_set
from airloop.training.windows import SuggestedWindow, WindowError, resolve_window

__all__ = [
    "Candidate",
    "GateDecision",
    "SuggestedWindow",
    "TrainingDataError",
    "WindowError",
    "apply_decision",
    "check_training_frame",
    "decide",
    "evaluate_candidate",
    "evaluate_scores",
    "format_decision",
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
