"""Where a day's predictions live: ``predictions/ds=D/`` and the files and columns it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airloop.core.storage import partition_prefix

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay

ZONE = "predictions"
SCORE_COLUMN = "score"
VERSION_COLUMN = "model_version"
PART_FILE, FEATURES_FILE = "part.parquet", "features.parquet"


def prediction_prefix(day: "LogicalDay") -> str:
    """``predictions/ds=YYYY-MM-DD``: where ``day``'s predictions are published."""
    return partition_prefix(ZONE, "", day.key)
