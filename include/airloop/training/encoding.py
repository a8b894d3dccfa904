"""The model's inputs and scores: categories seen in training, the encoded input matrix, and the
scores of a booster (or of a registered version) for a frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.training.checks import TrainingDataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airloop.core.storage import Lake
    from airloop.registry import ModelRegistry, ModelVersion


def infer_categories(frame: "pd.DataFrame", feature_columns: list[str]) -> dict[str, list]:
    """Categories of every non-numeric feature column, as seen in training (sorted)."""
    import pandas as pd

    out = {}
    for column in feature_columns:
        series = frame[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            out[column] = sorted(str(v) for v in series.dropna().unique())
    return out


def encode_features(frame: "pd.DataFrame", feature_columns: list[str], categories: dict[str, list]) -> "pd.DataFrame":
    """The model's input matrix: numbers as float32, categorical columns with the training categories
    (values never seen in training become missing)."""
    import pandas as pd

    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"frame lacks feature columns {missing}")
    data = {}
    for column in feature_columns:
        if column in categories:
            data[column] = pd.Categorical(frame[column].astype("string"), categories=categories[column])
        else:
            data[column] = pd.to_numeric(frame[column], errors="coerce").astype("float32")
    return pd.DataFrame(data, index=frame.index)


def predict(booster, frame: "pd.DataFrame", feature_columns: list[str], categories: dict[str, list]) -> "np.ndarray":
    """Scores (probability of the positive class) of ``booster`` for ``frame``."""
    import numpy as np
    import xgboost as xgb

    matrix = xgb.DMatrix(encode_features(frame, feature_columns, categories), enable_categorical=True)
    return np.asarray(booster.predict(matrix), dtype="float64")


def predict_version(registry: "ModelRegistry", mv: "ModelVersion", lake: "Lake", frame: "pd.DataFrame") -> "np.ndarray":
    """Score ``frame`` with a registered version (its artifact's sha256 is verified first)."""
    return predict(registry.load_booster(mv, lake), frame, mv.feature_columns, mv.categories)
