"""A model card per registered version: one source (:class:`ModelCard`), rendered as HTML and
Markdown by :mod:`~airloop.training.card_render`.

The card is built when the version is registered (:func:`build_card` before the version number
is allocated, :meth:`ModelCard.for_version` after) and stored beside the model in
``models/<name>/v<N>/`` as ``model_card.json`` (the source), ``model_card.html`` and
``model_card.md`` (:func:`~airloop.training.card_render.card_files`), through the same lake and the same manifest as
``model.ubj``. The version's metrics record the logical names under ``metrics["model_card"]``
(:data:`CARD_FILES`); :func:`load_card` reads the source back, sha256 checked.

What a card holds: training window, features and the feature service (its name carries the
version), the training set's fingerprint and lake prefix, holdout metrics overall and per slice
(and the baseline's), a calibration table and the feature importance (gain) behind the two
plots, and the automatic gate's decision with its reasons. How the version fared since it was
registered (realized AUC per week while it served, :func:`weekly_auc`) is not stored: it is
computed when the card is viewed, from the monitoring table's rows, by the caller.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airloop.training.checks import time_split
from airloop.training.encoding import predict

if TYPE_CHECKING:
    from airloop.core.storage import Lake
    from airloop.core.usecase import ModelSpec
    from airloop.registry import ModelVersion
    from airloop.training.artifacts import StoredCandidate

# Logical names of the card's files in the version's partition (what metrics["model_card"] holds).
CARD_FILES = {"source": "model_card.json", "html": "model_card.html", "markdown": "model_card.md"}
CALIBRATION_BINS = 10
TOP_FEATURES = 20


class ModelCardError(ValueError):
    """A card cannot be built or read; the message names the version and the reason."""


@dataclass(frozen=True)
class ModelCard:
    """Everything a model card shows, JSON-able (:meth:`as_dict` / :meth:`from_dict`).

    ``version`` is None until the registry allocated it (see :meth:`for_version`).
    """

    model_name: str
    version: int | None
    window_start: str
    window_end: str
    feature_service: str
    features: list[dict]  # {"name", "kind": "numeric" | "categorical", "categories": n}
    fingerprint: str
    training_set: str  # lake prefix of the stored training set ("" when unknown)
    training_rows: int
    holdout: dict  # {"start", "end", "rows"}
    slice_column: str
    metrics: dict  # holdout metrics of the model, "slices" included
    baseline_metrics: dict
    calibration: list[dict]  # {"low", "high", "rows", "mean_score", "observed_rate"}
    importance: list[dict]  # {"feature", "gain", "share"}, largest first
    gate: dict | None  # the automatic gate's decision (reason, guardrails, numbers)
    params: dict = field(default_factory=dict)
    device: str = ""
    code_version: str = ""
    sha256: str = ""
    registered_at: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.model_name} v{self.version}" if self.version is not None else f"{self.model_name} (candidate)"

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        fields = cls.__dataclass_fields__
        required = [f for f, spec in fields.items() if spec.default is MISSING and spec.default_factory is MISSING]
        missing = [f for f in required if f not in data]
        if missing:
            raise ModelCardError(f"model card source lacks {missing}")
        return cls(**{k: v for k, v in data.items() if k in fields})

    def for_version(self, mv: "ModelVersion") -> "ModelCard":
        """The card of the registered version ``mv`` (its number, code version, registration time)."""
        return replace(
            self, version=mv.version, code_version=mv.code_version, device=mv.device or self.device,
            registered_at=mv.created_at.isoformat() if mv.created_at else "",
        )  # fmt: skip


def calibration_table(labels, scores, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Mean score and observed positive rate per equal-width score bin (empty bins left out)."""
    import numpy as np

    y = np.asarray(labels, dtype="float64")
    p = np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
    if len(y) != len(p):
        raise ModelCardError(f"calibration needs one score per label, got {len(p)} scores for {len(y)} labels")
    index = np.minimum((p * bins).astype("int64"), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append({"low": b / bins, "high": (b + 1) / bins, "rows": int(mask.sum()),
                        "mean_score": float(p[mask].mean()), "observed_rate": float(y[mask].mean())})  # fmt: skip
    return out


def feature_importance(booster, feature_columns: list[str], top: int = TOP_FEATURES) -> list[dict]:
    """Total gain per feature (features the trees never split on have 0), largest first, with its share."""
    scores = booster.get_score(importance_type="total_gain") if booster is not None else {}
    gains = {name: float(scores.get(name, 0.0)) for name in feature_columns}
    total = sum(gains.values()) or 1.0
    ranked = sorted(gains.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{"feature": name, "gain": gain, "share": gain / total} for name, gain in ranked]


def build_card(candidate: "StoredCandidate", training_set, spec: "ModelSpec", decision: dict | None = None) -> ModelCard:
    """The card of a candidate (before registration): scores its holdout again for calibration.

    :param training_set: the stored training set the candidate was trained on (``frame``,
        ``prefix``, ``fingerprint``); its holdout is the same time split as at training time.
    :param decision: the automatic gate's decision (``evaluate_candidate``), or None.
    :raises ModelCardError: the training set is not the candidate's.
    """
    meta = candidate.metadata
    if training_set.fingerprint != meta["fingerprint"]:
        raise ModelCardError(
            f"training set {training_set.fingerprint[:12]} is not the one candidate {candidate.prefix} was trained on "
            f"({meta['fingerprint'][:12]})"
        )
    _, valid, split = time_split(training_set.frame, spec)
    booster = candidate.booster()
    scores = predict(booster, valid, meta["feature_columns"], meta["categories"])
    categories = meta.get("categories") or {}
    features = [
        {"name": c, "kind": "categorical" if c in categories else "numeric", "categories": len(categories.get(c, []))}
        for c in meta["feature_columns"]
    ]
    return ModelCard(
        model_name=spec.name,
        version=None,
        window_start=meta["window_start"],
        window_end=meta["window_end"],
        feature_service=meta["feature_service"],
        features=features,
        fingerprint=meta["fingerprint"],
        training_set=meta.get("training_set_prefix") or getattr(training_set, "prefix", "") or "",
        training_rows=int(split["train_rows"]),
        holdout={"start": split["valid_start"], "end": split["valid_end"], "rows": int(split["valid_rows"])},
        slice_column=spec.slice_column,
        metrics=meta["metrics"],
        baseline_metrics=meta["baseline_metrics"],
        calibration=calibration_table(valid[spec.label], scores),
        importance=feature_importance(booster, meta["feature_columns"]),
        gate=decision,
        params=meta.get("params") or {},
        device=(meta.get("device") or {}).get("device", ""),
        sha256=candidate.sha256,
    )


def card_from_version(mv: "ModelVersion") -> ModelCard:
    """A card from the registry's record alone, for a version registered before cards existed
    (no calibration or importance: they need the holdout and the booster)."""
    metrics = dict(mv.metrics or {})
    split = metrics.get("split") or {}
    return ModelCard(
        model_name=mv.model_name, version=mv.version, window_start=str(mv.window_start), window_end=str(mv.window_end),
        feature_service=mv.feature_service,
        features=[{"name": c, "kind": "categorical" if c in (mv.categories or {}) else "numeric",
                   "categories": len((mv.categories or {}).get(c, []))} for c in mv.feature_columns],
        fingerprint=mv.fingerprint, training_set="", training_rows=int(mv.training_rows or 0),
        holdout={"start": split.get("valid_start"), "end": split.get("valid_end"), "rows": split.get("valid_rows")},
        slice_column="", metrics={k: v for k, v in metrics.items() if k not in ("baseline", "split", "data_checks", "model_card")},
        baseline_metrics=metrics.get("baseline") or {}, calibration=[], importance=[], gate=mv.gate,
        params=mv.params or {}, device=mv.device, code_version=mv.code_version, sha256=mv.sha256 or "",
        registered_at=mv.created_at.isoformat() if mv.created_at else "",
        notes=["Built from the registry record: this version was registered without a stored card, so the "
               "calibration and feature-importance plots are not available."],
    )  # fmt: skip


def has_card(mv: "ModelVersion") -> bool:
    """Whether the version's metrics say a card was stored beside its model."""
    return isinstance((mv.metrics or {}).get("model_card"), dict)


def read_card_file(lake: "Lake", mv: "ModelVersion", kind: str = "source") -> bytes:
    """One of the stored card's files (``source``, ``html``, ``markdown``), sha256 checked.

    :raises ModelCardError: the version has no stored card, or the file is missing or changed.
    """
    from airloop.core.storage import read_manifest, sha256_bytes
    from airloop.registry import artifact_key

    if not has_card(mv) or not mv.artifact_uri:
        raise ModelCardError(f"{mv.label} has no stored model card")
    logical = mv.metrics["model_card"].get(kind)
    if logical is None:
        raise ModelCardError(f"{mv.label}: unknown card file {kind!r}; use one of {sorted(CARD_FILES)}")
    prefix = artifact_key(mv.artifact_uri, lake).rsplit("/", 1)[0]
    manifest = read_manifest(lake, prefix) or {"files": []}
    entry = next((f for f in manifest["files"] if f["logical_name"] == logical), None)
    if entry is None:
        raise ModelCardError(f"{mv.label}: {lake.uri(prefix)} lists no {logical}")
    data = lake.read_bytes(f"{prefix}/{entry['name']}")
    if sha256_bytes(data) != entry["sha256"]:
        raise ModelCardError(f"{mv.label}: {logical} does not match its manifest's sha256 (changed after registration)")
    return data


def load_card(lake: "Lake", mv: "ModelVersion") -> ModelCard:
    """The version's card: the stored source when there is one, else :func:`card_from_version`."""
    if not has_card(mv):
        return card_from_version(mv)
    return ModelCard.from_dict(json.loads(read_card_file(lake, mv, "source")))


def weekly_auc(rows: list[dict], version: int) -> list[dict]:
    """Realized AUC per week (Monday to Sunday) of the days ``version`` served.

    :param rows: performance rows of the monitoring table (``ds``, ``model_version``, ``auc``,
        ``rows_current``, ``status``); rows of other versions, without an AUC or not ``ok`` are
        left out.
    :returns: ``{"week_start", "week_end", "days", "rows", "auc", "auc_min", "auc_max"}`` per week,
        oldest first. ``auc`` is the mean of the days' AUCs weighted by their labelled rows (the
        table keeps daily AUCs, not the scores a pooled weekly AUC would need).
    """
    weeks: dict[date, list[tuple[float, int]]] = {}
    for row in rows:
        if row.get("model_version") != version or row.get("auc") is None or row.get("status", "ok") != "ok":
            continue
        day = date.fromisoformat(str(row["ds"])[:10])
        weight = int(row.get("rows_current") or 0) or 1
        weeks.setdefault(day - timedelta(days=day.weekday()), []).append((float(row["auc"]), weight))
    out = []
    for start in sorted(weeks):
        values = weeks[start]
        total = sum(w for _, w in values)
        out.append({
            "week_start": start.isoformat(), "week_end": (start + timedelta(days=6)).isoformat(), "days": len(values),
            "rows": total, "auc": sum(a * w for a, w in values) / total,
            "auc_min": min(a for a, _ in values), "auc_max": max(a for a, _ in values),
        })  # fmt: skip
    return out


def served_summary(weeks: list[dict]) -> dict[str, Any]:
    """One line's worth of :func:`weekly_auc`: weeks served, first and last week, overall AUC."""
    if not weeks:
        return {"served": False}
    total = sum(w["rows"] for w in weeks)
    return {"served": True, "weeks": len(weeks), "first": weeks[0]["week_start"], "last": weeks[-1]["week_end"],
            "auc": sum(w["auc"] * w["rows"] for w in weeks) / total}  # fmt: skip


__all__ = ["CARD_FILES", "ModelCard", "ModelCardError", "build_card", "calibration_table",
           "card_from_version", "feature_importance", "has_card", "load_card", "read_card_file", "served_summary",
           "weekly_auc"]  # fmt: skip
