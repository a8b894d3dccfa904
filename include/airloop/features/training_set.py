"""Training sets: the labelled rows of a window of days, with point-in-time correct features.

Each row of day D (a predicted event of the use case's event table, e.g. a scheduled flight) is
looked up as of D's *prediction time* (nightly scoring, e.g. 02:00 local), not as of its own
event time: a model trained on fresher features than scoring will ever have is skewed by
construction. The join itself is :func:`airloop.features.point_in_time.historical_features` (Feast's
semantics, run in DuckDB from the registered feature service). Unlabelled rows (a cancelled or
diverted flight) are dropped.

The :class:`TrainingSet` carries a fingerprint for lineage: a hash of the feature service's
version (its registered definition), the window and the rows (keys, features and labels).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from airloop.core.storage import PartitionNotFound, partition_prefix, read_partition_files
from airloop.features.errors import FeatureError, MissingRawPartition
from airloop.features.feast_repo import feature_store
from airloop.features.layout import EVENT_TIMESTAMP, default_feature_service, load_feature_use_case, service_layout
from airloop.features.point_in_time import historical_features, partitions_read

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.storage import Lake

log = logging.getLogger(__name__)

DS_COLUMN = "ds"


@dataclass(frozen=True)
class TrainingSet:
    """A labelled training frame and what it was built from.

    :param frame: one row per labelled event: ``ds``, the event key, the join keys,
        ``event_timestamp`` (the prediction time it was looked up at), the feature columns and
        the label (0/1).
    :param fingerprint: sha256 of the feature service version, the window and the rows.
    :param feature_columns: the model's inputs (request-time columns, then Feast features).
    :param inputs: the lake partitions it was built from (the window's raw event partitions, the
        feature partitions the lookups read), for lineage.
    """

    frame: "pd.DataFrame"
    fingerprint: str
    feature_columns: list[str]
    label_column: str
    feature_service: str
    window: tuple[date, date]
    inputs: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_events(days: list[date], *, table: str, lake: "Lake") -> "pd.DataFrame":
    """The raw rows of ``table`` for ``days`` with a ``ds`` column; every partition must exist."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for day in days:
        prefix = partition_prefix("raw", table, day.isoformat())
        try:
            _, files = read_partition_files(lake, prefix)
        except PartitionNotFound:
            raise MissingRawPartition(table, day, lake.uri(prefix), "training set") from None
        part = pq.ParquetFile(pa.BufferReader(files["part.parquet"])).read()
        tables.append(part.add_column(0, DS_COLUMN, pa.array([day.isoformat()] * part.num_rows, pa.string())))
    # One conversion to pandas for the whole window (per-partition conversions cost more).
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def frame_digest(frame: "pd.DataFrame") -> str:
    """sha256 of a frame's values and column names (row order matters)."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(json.dumps(list(map(str, frame.columns))).encode() + hashed).hexdigest()


def build_training_set(
    start: date,
    end: date,
    *,
    settings: "Settings",
    feature_service: str | None = None,
    store=None,
    lake: "Lake | None" = None,
) -> TrainingSet:
    """Build the labelled training frame of days ``[start, end]`` (inclusive).

    Day D's rows are looked up as of D's cutoff (``use_case.day(D).cutoff``, the prediction time).

    :param start: the first day of the window.
    :param end: the last day of the window (inclusive).
    :raises MissingRawPartition: a day of the window has no raw partition.
    :raises airloop.features.MissingFeaturePartition: a feature partition the lookups need is
        missing (compute features for those days first).
    """
    from airloop.core.storage import open_lake

    use_case = load_feature_use_case(settings)
    days = use_case.day(start).range_to(use_case.day(end))
    spec = use_case.features
    service = feature_service or default_feature_service(settings)
    label_column = use_case.model.label if use_case.model else "label"
    store = store or feature_store(settings)
    lake = lake or open_lake(settings)
    layout = service_layout(store, service)

    events = read_events([d.date for d in days], table=spec.event_table, lake=lake)
    labels = spec.label(events)
    labelled = events[labels.notna().to_numpy()].reset_index(drop=True)
    entity = spec.entity_rows(labelled, use_case.timezone)
    instants = {d.key: d.cutoff for d in days}
    entity[EVENT_TIMESTAMP] = entity[DS_COLUMN].map(instants)
    entity[EVENT_TIMESTAMP] = entity[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
    entity[label_column] = labels[labels.notna()].astype("int64").to_numpy()

    columns: list[str] = []
    for col in [DS_COLUMN, *spec.event_key, *layout.join_keys, EVENT_TIMESTAMP, *spec.request_columns, label_column]:
        if col not in columns:
            columns.append(col)
    missing = [c for c in columns if c not in entity.columns]
    if missing:
        raise FeatureError(f"the use case's entity rows miss {missing}; check FeatureSpec.entity_rows")
    entity = entity[columns].sort_values([DS_COLUMN, *spec.event_key], kind="stable").reset_index(drop=True)

    frame = historical_features(entity, settings=settings, feature_service=service, store=store, lake=lake)
    feature_columns = [*spec.request_columns, *layout.feature_names]
    frame = frame[[c for c in columns if c != label_column] + layout.feature_names + [label_column]]

    fingerprint = hashlib.sha256(
        json.dumps(
            {"feature_service": service, "service_version": layout.digest(), "window": [start.isoformat(), end.isoformat()],
             "rows": frame_digest(frame)},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    log.info("training set %s..%s: %d labelled rows of %d events, fingerprint %s", start, end, len(frame), len(events), fingerprint[:12])
    inputs = [partition_prefix("raw", spec.event_table, d.key) for d in days]
    if len(entity):
        stamps = entity[EVENT_TIMESTAMP]
        inputs += partitions_read(lake, layout, stamps.min().to_pydatetime(), stamps.max().to_pydatetime(), use_case.timezone)
    return TrainingSet(frame, fingerprint, feature_columns, label_column, service, (start, end), tuple(inputs))
