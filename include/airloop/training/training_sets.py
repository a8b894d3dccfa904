"""The training set in the lake: stored once under ``training_sets/<fingerprint>/`` so every
later task of a training run reads exactly the same rows.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.storage import Lake

log = logging.getLogger(__name__)

TRAINING_SETS_ZONE = "training_sets"


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


def training_set_prefix(fingerprint: str) -> str:
    return f"{TRAINING_SETS_ZONE}/{fingerprint[:24]}"


def publish_training_set(training_set, lake: "Lake") -> dict:
    """Store a training set under ``training_sets/<fingerprint>/`` (idempotent); return its summary."""
    from airloop.core.storage import frame_to_parquet, publish_partition, read_manifest

    prefix = training_set_prefix(training_set.fingerprint)
    start, end = training_set.window
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
    # What it was built from (lineage: ``airloop lineage``, the OpenLineage events); not in the
    # summary, which travels through XCom.
    inputs = [{"partition": p} for p in getattr(training_set, "inputs", ())]
    publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(training_set.frame)}, {**summary, "inputs": inputs})
    log.info("Stored training set %s (%d rows) at %s", training_set.fingerprint[:12], summary["rows"], prefix)
    return summary


def load_training_set(lake: "Lake", prefix: str) -> StoredTrainingSet:
    """Read a training set stored by :func:`publish_training_set` (file hashes checked)."""
    from airloop.core.storage import read_partition_frame, require_manifest

    manifest = require_manifest(lake, prefix)
    frame = read_partition_frame(lake, prefix)
    # The manifest stores the window as YYYY-MM-DD text (written by publish_training_set): read it back.
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
