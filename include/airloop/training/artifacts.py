"""A candidate's artifacts in the lake: ``model.ubj`` (XGBoost's own format, never pickle),
``reference.parquet`` and ``metadata.json`` under ``models/<name>/candidates/<token>/``, read back
with their sha256 checked; and a registered version's reference sample.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airloop.training.checks import TrainingDataError
from airloop.training.fit import Candidate

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.storage import Lake
    from airloop.core.usecase import ModelSpec
    from airloop.registry import ModelVersion

MODELS_ZONE = "models"


def candidate_prefix(model_name: str, fingerprint: str, params: dict, device: str) -> str:
    """Where a run's candidate goes: the same inputs give the same prefix (idempotent reruns)."""
    token = hashlib.sha256(json.dumps([fingerprint, params, device], sort_keys=True, default=str).encode()).hexdigest()
    return f"{MODELS_ZONE}/{model_name}/candidates/{token[:16]}"


def _metadata(candidate: Candidate, training_set) -> dict:
    start, end = training_set.window
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


def read_reference(lake: "Lake", mv: "ModelVersion") -> "pd.DataFrame":
    """The reference sample (training features, label, score) of a registered version."""
    import pyarrow.parquet as pq

    from airloop.registry import artifact_key

    if not mv.reference_uri:
        raise TrainingDataError(f"{mv.label} has no reference sample")
    return pq.read_table(io.BytesIO(lake.read_bytes(artifact_key(mv.reference_uri, lake)))).to_pandas()
