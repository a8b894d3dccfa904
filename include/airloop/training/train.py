"""Training: an XGBoost classifier and a scikit-learn baseline on one training set, judged on a
holdout that lies strictly after the training days.

The flow the ``train_model`` DAG runs, one function per task:

1. :func:`publish_training_set` stores the assembled training set in the lake
   (``training_sets/<fingerprint>/``) so later tasks read exactly the same rows.
2. :func:`train_candidate` checks the data (rows, classes, nulls: :class:`TrainingDataError`),
   splits it by time, trains XGBoost (GPU when the device choice says so) and the baseline,
   and scores both on the holdout; :func:`publish_candidate` writes the artifacts
   (``model.ubj`` in XGBoost's own format, never pickle; ``reference.parquet``; metrics).
3. :func:`evaluate_candidate` scores challenger and champion on the same holdout and asks the
   gate (:mod:`airloop.training.gate`).
4. :func:`register_candidate` copies the candidate into ``models/<name>/v<N>/`` and records
   the version; :func:`apply_decision` promotes it or records the refusal.

Everything model-specific (label, slice column, parameters, thresholds) comes from the use
case's :class:`~airloop.core.usecase.ModelSpec`. No Airflow imports here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airloop.registry import ModelRegistry, ModelVersion
    from airloop.core.devices import DeviceChoice
    from airloop.core.storage import Lake
    from airloop.core.usecase import ModelSpec

log = logging.getLogger(__name__)

TRAINING_SETS_ZONE = "training_sets"
MODELS_ZONE = "models"
TIME_COLUMN = "ds"
# Parameters that configure the training loop, not the booster.
LOOP_PARAMS = ("num_boost_round",)


class TrainingDataError(ValueError):
    """The training data cannot make a trustworthy model; the message has the numbers."""


class WindowError(ValueError):
    """No valid training window could be resolved for the run."""


# --- the training set in the lake ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredTrainingSet:
    """A training set read back from the lake (same fields as ``airloop.features.training_set.TrainingSet``)."""

    frame: "pd.DataFrame"
    fingerprint: str
    feature_columns: list[str]
    label_column: str
    feature_service: str
    window: tuple[date, date]
    prefix: str = ""


def _window(value) -> tuple[date, date]:
    start, end = value
    return date.fromisoformat(str(start)[:10]), date.fromisoformat(str(end)[:10])


def training_set_prefix(fingerprint: str) -> str:
    return f"{TRAINING_SETS_ZONE}/{fingerprint[:24]}"


def publish_training_set(training_set, lake: "Lake") -> dict:
    """Store a training set under ``training_sets/<fingerprint>/`` (idempotent); return its summary."""
    from airloop.core.storage import frame_to_parquet, publish_partition, read_manifest

    prefix = training_set_prefix(training_set.fingerprint)
    start, end = _window(training_set.window)
    summary = {
        "prefix": prefix,
        "fingerprint": training_set.fingerprint,
        "rows": int(len(training_set.frame)),
        "feature_columns": list(training_set.feature_columns),
        "label_column": training_set.label_column,
        "feature_service": training_set.feature_service,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
    }
    existing = read_manifest(lake, prefix)
    if existing and existing.get("fingerprint") == training_set.fingerprint:
        log.info("Training set %s already stored at %s", training_set.fingerprint[:12], prefix)
        return summary
    publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(training_set.frame)}, dict(summary))
    log.info("Stored training set %s (%d rows) at %s", training_set.fingerprint[:12], summary["rows"], prefix)
    return summary


def load_training_set(lake: "Lake", prefix: str) -> StoredTrainingSet:
    """Read a training set stored by :func:`publish_training_set` (file hashes checked)."""
    from airloop.core.storage import read_partition_frame, require_manifest

    manifest = require_manifest(lake, prefix)
    frame = read_partition_frame(lake, prefix)
    return StoredTrainingSet(
        frame=frame,
        fingerprint=manifest["fingerprint"],
        feature_columns=list(manifest["feature_columns"]),
        label_column=manifest["label_column"],
        feature_service=manifest["feature_service"],
        window=(date.fromisoformat(manifest["window_start"]), date.fromisoformat(manifest["window_end"])),
        prefix=prefix,
    )


def frame_fingerprint(frame: "pd.DataFrame", *extra: str) -> str:
    """sha256 of a frame's deterministic Parquet bytes (plus any extra strings)."""
    from airloop.core.storage import frame_to_parquet

    digest = hashlib.sha256(frame_to_parquet(frame))
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


# --- windows -----------------------------------------------------------------------------------


def resolve_window(
    *,
    params: dict | None = None,
    event_extras: list[dict] | None = None,
    available_days: list[date] | None = None,
    window_days: int,
) -> tuple[date, date, str]:
    """The training window ``[start, end]`` (inclusive days) and where it came from.

    In order: explicit ``window_start``/``window_end`` params; the suggested window in the
    ``extra`` of the latest triggering drift event (``window_start``/``window_end``; only an end:
    the ``window_days`` days up to it); otherwise the last ``window_days`` days of ingested
    partitions (``available_days``). Never the run's logical date.
    """
    params = params or {}
    start, end = params.get("window_start"), params.get("window_end")
    if start or end:
        if not (start and end):
            raise WindowError("give both window_start and window_end (YYYY-MM-DD), or neither")
        first, last = _parse_day(start, "window_start"), _parse_day(end, "window_end")
        if last < first:
            raise WindowError(f"window_end {last} is before window_start {first}")
        return first, last, "params"
    extras = [e for e in (event_extras or []) if e and e.get("window_end")]
    if extras:
        latest = max(extras, key=lambda e: str(e["window_end"]))
        last = _parse_day(latest["window_end"], "event window_end")
        if latest.get("window_start"):
            first = _parse_day(latest["window_start"], "event window_start")
            if last < first:
                raise WindowError(f"the drift event's window_end {last} is before its window_start {first}")
        else:
            first = last - timedelta(days=window_days - 1)
        return first, last, f"drift event window {first} .. {last} (event ds={latest.get('ds')})"
    days = sorted(available_days or [])
    if not days:
        raise WindowError(
            "no training window: give window_start/window_end, trigger from a drift event with "
            "extra.window_end, or ingest some partitions first"
        )
    last = days[-1]
    first = max(days[0], last - timedelta(days=window_days - 1))
    return first, last, f"last {window_days} days of ingested partitions"


def _parse_day(value, name: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise WindowError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


# --- data checks, split, encoding -----------------------------------------------------------------


def check_training_frame(frame: "pd.DataFrame", feature_columns: list[str], label: str, spec: "ModelSpec") -> dict:
    """Refuse data that cannot make a trustworthy model; return the numbers checked.

    :raises TrainingDataError: missing columns, a label that is not 0/1, fewer than
        ``spec.min_rows`` rows, fewer than ``spec.min_class_rows`` of either class, or feature
        columns null in more than ``spec.max_null_share`` of rows.
    """
    missing = [c for c in [*feature_columns, label, TIME_COLUMN] if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"training set lacks columns {missing}")
    rows = len(frame)
    if rows < spec.min_rows:
        raise TrainingDataError(f"training window has {rows} labelled rows; at least {spec.min_rows} are needed")
    labels = frame[label]
    if labels.isna().any():
        raise TrainingDataError(f"label {label!r} has {int(labels.isna().sum())} null values; unlabelled rows must be dropped")
    values = set(labels.unique().tolist())
    if not values <= {0, 1}:
        raise TrainingDataError(f"label {label!r} must be 0/1, found values {sorted(values)[:10]}")
    positives = int((labels == 1).sum())
    negatives = rows - positives
    if min(positives, negatives) < spec.min_class_rows:
        raise TrainingDataError(
            f"label {label!r} has {positives} positive and {negatives} negative rows; each class needs at "
            f"least {spec.min_class_rows} (a single-class window cannot train a classifier)"
        )
    null_share = {c: float(frame[c].isna().mean()) for c in feature_columns}
    limits = {c: spec.null_share_limits.get(c, spec.max_null_share) for c in feature_columns}
    too_null = {c: round(s, 4) for c, s in null_share.items() if s > limits[c]}
    if too_null:
        exceptions = {c: limits[c] for c in too_null if c in spec.null_share_limits}
        raise TrainingDataError(
            f"{len(too_null)} of {len(feature_columns)} feature columns are null in more than "
            f"{spec.max_null_share:.0%} of {rows} rows: {too_null}"
            + (f" (their own limits: {exceptions})" if exceptions else "")
        )
    overall = float(sum(null_share.values()) / max(len(null_share), 1))
    return {
        "rows": rows,
        "positives": positives,
        "negatives": negatives,
        "positive_rate": positives / rows,
        "null_share_overall": overall,
        "null_share_max": max(null_share.values(), default=0.0),
    }


def time_split(frame: "pd.DataFrame", spec: "ModelSpec") -> tuple["pd.DataFrame", "pd.DataFrame", dict]:
    """Split by day: the last ``validation_share`` of the window's days are the holdout.

    Every validation row's day is strictly after every training row's day.
    """
    days = sorted(frame[TIME_COLUMN].astype(str).str[:10].unique())
    if len(days) < 2:
        raise TrainingDataError(f"the window holds {len(days)} day(s) of data; a time split needs at least 2")
    n_valid = min(len(days) - 1, max(1, round(len(days) * spec.validation_share)))
    first_valid = days[-n_valid]
    day_of_row = frame[TIME_COLUMN].astype(str).str[:10]
    train, valid = frame[day_of_row < first_valid], frame[day_of_row >= first_valid]
    for part, name in ((train, "training"), (valid, "validation")):
        pos = int(part[spec.label].sum())
        neg = len(part) - pos
        if min(pos, neg) < spec.min_class_rows:
            raise TrainingDataError(
                f"the {name} part ({name == 'training' and days[0] or first_valid} .. "
                f"{name == 'training' and days[-n_valid - 1] or days[-1]}) has {pos} positive and {neg} negative "
                f"rows; each class needs at least {spec.min_class_rows}"
            )
    info = {
        "train_start": days[0],
        "train_end": days[-n_valid - 1],
        "valid_start": first_valid,
        "valid_end": days[-1],
        "train_rows": int(len(train)),
        "valid_rows": int(len(valid)),
    }
    return train, valid, info


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


# --- metrics ---------------------------------------------------------------------------------------


def evaluate_scores(
    y_true, scores, *, threshold: float, slices=None, min_slice_rows: int = 1, calibration_bins: int = 10
) -> dict:
    """ROC AUC, log loss, Brier, calibration error, precision/recall at ``threshold``, per-slice AUC.

    ``worst_slice_roc_auc`` is the lowest AUC among slices with at least ``min_slice_rows``
    rows and both classes (None when no slice qualifies).
    """
    import numpy as np
    from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score, roc_auc_score

    y = np.asarray(y_true, dtype="int64")
    p = np.clip(np.asarray(scores, dtype="float64"), 1e-7, 1 - 1e-7)
    flagged = (p >= threshold).astype("int64")
    bins = np.minimum((p * calibration_bins).astype("int64"), calibration_bins - 1)
    ece = 0.0
    for b in range(calibration_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    metrics: dict[str, Any] = {
        "rows": int(len(y)),
        "positive_rate": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "threshold": float(threshold),
        "precision": float(precision_score(y, flagged, zero_division=0)),
        "recall": float(recall_score(y, flagged, zero_division=0)),
        "flagged_rate": float(flagged.mean()),
    }
    if slices is not None:
        keys = np.asarray(slices).astype(str)
        per_slice = {}
        for key in sorted(set(keys.tolist())):
            mask = keys == key
            ys, ps = y[mask], p[mask]
            both = len(set(ys.tolist())) == 2
            per_slice[key] = {
                "rows": int(mask.sum()),
                "positive_rate": float(ys.mean()),
                "roc_auc": float(roc_auc_score(ys, ps)) if both else None,
                "brier": float(brier_score_loss(ys, ps)),
            }
        metrics["slices"] = per_slice
        eligible = [(s["roc_auc"], k) for k, s in per_slice.items() if s["roc_auc"] is not None and s["rows"] >= min_slice_rows]
        worst = min(eligible) if eligible else (None, None)
        metrics["worst_slice_roc_auc"], metrics["worst_slice"] = worst
    return metrics


# --- training -------------------------------------------------------------------------------------


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


# --- candidate artifacts ----------------------------------------------------------------------------


def candidate_prefix(model_name: str, fingerprint: str, params: dict, device: str) -> str:
    """Where a run's candidate goes: the same inputs give the same prefix (idempotent reruns)."""
    token = hashlib.sha256(json.dumps([fingerprint, params, device], sort_keys=True, default=str).encode()).hexdigest()
    return f"{MODELS_ZONE}/{model_name}/candidates/{token[:16]}"


def _metadata(candidate: Candidate, training_set) -> dict:
    start, end = _window(training_set.window)
    return {
        "fingerprint": training_set.fingerprint,
        "feature_service": training_set.feature_service,
        "feature_columns": candidate.feature_columns,
        "categories": candidate.categories,
        "label_column": training_set.label_column,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "params": candidate.params,
        "metrics": candidate.metrics,
        "baseline_metrics": candidate.baseline_metrics,
        "split": candidate.split,
        "data_checks": candidate.data_checks,
        "device": candidate.device,
        "model_sha256": candidate.sha256,
    }


def _files(model_bytes: bytes, reference: "pd.DataFrame", metadata: dict) -> dict[str, bytes]:
    from airloop.core.storage import frame_to_parquet

    return {
        "model.ubj": model_bytes,
        "reference.parquet": frame_to_parquet(reference),
        "metadata.json": json.dumps(metadata, indent=2, sort_keys=True, default=str).encode(),
    }


def publish_candidate(candidate: Candidate, training_set, lake: "Lake", spec: "ModelSpec") -> dict:
    """Write the candidate's artifacts under ``models/<name>/candidates/<token>/``; return a summary
    small enough for XCom."""
    from airloop.core.storage import publish_partition

    metadata = _metadata(candidate, training_set)
    metadata["training_set_prefix"] = getattr(training_set, "prefix", "")
    prefix = candidate_prefix(spec.name, training_set.fingerprint, candidate.params, candidate.device["device"])
    publish_partition(lake, prefix, _files(candidate.model_bytes, candidate.reference, metadata), {"model_name": spec.name})
    return {
        "candidate_prefix": prefix,
        "sha256": candidate.sha256,
        "metrics": _headline(candidate.metrics),
        "baseline_metrics": _headline(candidate.baseline_metrics),
        "device": candidate.device,
        "split": candidate.split,
        "timings": candidate.timings,
    }


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "slices"}


@dataclass(frozen=True)
class StoredCandidate:
    prefix: str
    model_bytes: bytes
    reference_bytes: bytes
    metadata: dict

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_bytes).hexdigest()

    def booster(self):
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(self.model_bytes))
        return booster


def load_candidate(lake: "Lake", prefix: str) -> StoredCandidate:
    """Read a candidate's artifacts back (sha256 of every file checked against its manifest)."""
    from airloop.core.storage import read_partition_files

    _, files = read_partition_files(lake, prefix)
    return StoredCandidate(prefix, files["model.ubj"], files["reference.parquet"], json.loads(files["metadata.json"]))


# --- evaluate, register, promote ------------------------------------------------------------------


def evaluate_candidate(
    candidate: StoredCandidate,
    training_set,
    spec: "ModelSpec",
    *,
    registry: "ModelRegistry",
    lake: "Lake",
) -> dict:
    """Score the challenger and the current champion on the same holdout; return the gate decision.

    Without a champion the challenger is compared with the baseline trained on the same data
    (its holdout metrics were computed at training time on the same rows). With one, the holdout
    keeps only days after the champion's own training days: a model is never judged on rows it
    learned from. When too few such rows remain, the challenger is kept out (with the numbers).
    """
    from airloop.training.gate import decide

    _, valid, split = time_split(training_set.frame, spec)
    meta = candidate.metadata
    champion = registry.champion(spec.name)
    holdout = {"start": split["valid_start"], "end": split["valid_end"], "rows": split["valid_rows"]}

    def score(rows, scores):
        slices = rows[spec.slice_column] if spec.slice_column in rows.columns else None
        return evaluate_scores(rows[spec.label], scores, threshold=spec.threshold, slices=slices,
                               min_slice_rows=spec.min_slice_rows)  # fmt: skip

    def challenger_on(rows):
        return score(rows, predict(candidate.booster(), rows, meta["feature_columns"], meta["categories"]))

    if champion is None:
        decision = decide(challenger_on(valid), meta["baseline_metrics"], spec=spec, incumbent="baseline")
    else:
        name = f"champion v{champion.version}"
        missing = [c for c in champion.feature_columns if c not in valid.columns]
        champion_train_end = str((champion.metrics.get("split") or {}).get("train_end") or champion.window_end)
        unseen = valid[valid[TIME_COLUMN].astype(str).str[:10] > champion_train_end]
        positives = int(unseen[spec.label].sum())
        refusal = None
        if missing:
            refusal = f"{name} needs features {missing} this holdout lacks; it cannot be compared on the same rows"
        elif min(positives, len(unseen) - positives) < spec.min_class_rows:
            refusal = (
                f"{name} was trained on days up to {champion_train_end}; the holdout {holdout['start']} .. "
                f"{holdout['end']} has {len(unseen)} rows after that ({positives} positive), too few to compare "
                f"(each class needs {spec.min_class_rows}); train on a later window"
            )
        if refusal:
            decision = decide(challenger_on(valid), None, spec=spec, incumbent=name,
                              incumbent_version=champion.version, refusal=refusal)  # fmt: skip
        else:
            if len(unseen) < len(valid):
                log.info("Holdout restricted to %d of %d rows after %s's training days", len(unseen), len(valid), name)
                holdout = {"start": str(unseen[TIME_COLUMN].min())[:10], "end": holdout["end"], "rows": int(len(unseen))}
            incumbent = score(unseen, predict_version(registry, champion, lake, unseen))
            decision = decide(challenger_on(unseen), incumbent, spec=spec, incumbent=name, incumbent_version=champion.version)
    out = decision.as_dict()
    out["holdout"] = holdout
    out["candidate_sha256"] = candidate.sha256
    return out


def register_candidate(
    candidate: StoredCandidate,
    spec: "ModelSpec",
    *,
    registry: "ModelRegistry",
    lake: "Lake",
    run_id: str = "",
    code_version: str | None = None,
) -> "ModelVersion":
    """Copy the candidate into ``models/<name>/v<N>/`` and record version N (``candidate``).

    Idempotent per run: a rerun of the same run with the same model bytes returns the version
    it registered before.
    """
    from airloop.core.storage import publish_partition
    from airloop.core.version import code_version as current_code_version

    if run_id:
        existing = registry.find_version(spec.name, run_id=run_id, sha256=candidate.sha256)
        if existing is not None:
            log.info("Run %s already registered %s", run_id, existing.label)
            return existing
    meta = candidate.metadata
    metrics = dict(meta["metrics"])
    metrics["baseline"] = meta["baseline_metrics"]
    metrics["split"] = meta["split"]
    metrics["data_checks"] = meta["data_checks"]
    mv = registry.reserve_version(
        spec.name,
        feature_service=meta["feature_service"],
        feature_columns=meta["feature_columns"],
        categories=meta["categories"],
        window_start=date.fromisoformat(meta["window_start"]),
        window_end=date.fromisoformat(meta["window_end"]),
        fingerprint=meta["fingerprint"],
        params=meta["params"],
        metrics=metrics,
        code_version=code_version or current_code_version(),
        device=meta["device"]["device"],
        device_reason=meta["device"]["reason"],
        training_rows=int(meta["split"]["train_rows"]),
        run_id=run_id,
    )
    prefix = f"{MODELS_ZONE}/{spec.name}/v{mv.version}"
    try:
        files = {
            "model.ubj": candidate.model_bytes,
            "reference.parquet": candidate.reference_bytes,
            "metadata.json": json.dumps({**meta, "version": mv.version}, indent=2, sort_keys=True, default=str).encode(),
        }
        published = publish_partition(lake, prefix, files, {"model_name": spec.name, "version": mv.version})
    except Exception as exc:
        registry.fail_version(spec.name, mv.version, f"publishing artifacts to {lake.uri(prefix)} failed: {exc}")
        raise
    names = {f["logical_name"]: f["name"] for f in published.manifest["files"]}
    return registry.finalize_version(
        spec.name,
        mv.version,
        artifact_uri=lake.uri(f"{prefix}/{names['model.ubj']}"),
        sha256=candidate.sha256,
        reference_uri=lake.uri(f"{prefix}/{names['reference.parquet']}"),
    )


def apply_decision(
    decision: dict,
    mv: "ModelVersion",
    *,
    registry: "ModelRegistry",
    actor: str,
    run_id: str = "",
    reason: str = "",
):
    """Promote ``mv`` when the gate said so (only if the champion is still the one it was
    compared with), else record the refusal. Returns the history entry."""
    why = decision["reason"] if not reason else f"{reason}; gate: {decision['reason']}"
    # A retried task finds its own earlier outcome and returns it instead of acting twice.
    done = {"promote": "champion", "refuse": "rejected"}["promote" if decision["promote"] else "refuse"]
    if mv.status == done:
        earlier = [e for e in registry.history(mv.model_name) if e.candidate_version == mv.version and e.run_id == run_id]
        if earlier:
            return earlier[-1]
    if decision["promote"]:
        return registry.promote(
            mv.model_name, mv.version, reason=why, actor=actor, run_id=run_id,
            expected_champion=decision.get("incumbent_version"), details=decision,
        )  # fmt: skip
    return registry.refuse(mv.model_name, mv.version, reason=why, actor=actor, run_id=run_id, details=decision)


def read_reference(lake: "Lake", mv: "ModelVersion") -> "pd.DataFrame":
    """The reference sample (training features, label, score) of a registered version."""
    import pyarrow.parquet as pq

    from airloop.registry import artifact_key

    if not mv.reference_uri:
        raise TrainingDataError(f"{mv.label} has no reference sample")
    return pq.read_table(io.BytesIO(lake.read_bytes(artifact_key(mv.reference_uri, lake)))).to_pandas()
