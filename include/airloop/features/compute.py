"""Computing feature partitions: day D's rows of every feature view, from raw partitions.

:func:`compute_features` checks that every raw partition it needs exists before anything is
computed, checks each computed frame against the view's Feast definition before the first
publish, and publishes ``<lake prefix>/ds=D/`` (``features/<view>`` unless the definition's
``lake_prefix`` tag versions it; the manifest lists the raw partitions and
dimension tables used). A rerun writes the same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airloop.core.dates import LogicalDay
from airloop.core.storage import (
    frame_to_parquet,
    partition_prefix,
    publish_partition,
    read_manifest,
    read_partition_files,
    sha256_bytes,
)
from airloop.core.version import code_version
from airloop.features.errors import FeatureSchemaMismatch, MissingRawPartition
from airloop.features.feast_repo import load_definitions
from airloop.features.layout import ViewLayout, _view_layout, history_start, load_feature_use_case
from airloop.features.offline_store import sync_offline_table

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.storage import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureContext:
    """What a view's compute function knows about the day it computes (see FeatureViewSpec)."""

    ds: date
    timezone: str
    day_start: datetime
    day_end: datetime
    replay_offset_days: int
    dimensions: dict = field(default_factory=dict)

    def window_start(self, days: int) -> datetime:
        """The instant ``days`` local days before :attr:`day_end` (start of day D - days + 1)."""
        return LogicalDay(self.ds, self.timezone).shift(1 - days).start

    def source_date(self, ds: date) -> date:
        """The source-time date a replayed day corresponds to."""
        return ds - timedelta(days=self.replay_offset_days)

    @staticmethod
    def timestamp(instant: datetime):
        import pandas as pd

        return pd.Timestamp(instant).tz_convert("UTC").as_unit("ns")


def raw_partitions_needed(day: LogicalDay, inputs: dict[str, int], first_day: date) -> dict[str, list[date]]:
    """Raw days each input table needs for ``day`` (those before ``first_day`` left out)."""
    return {
        table: [d.date for d in day.shift(-lookback).range_to(day) if d.date >= first_day]
        for table, lookback in sorted(inputs.items())
    }


def _read_raw(lake: "Lake", table: str, days: list[date]):
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    frames, used = [], []
    for day in days:
        prefix = partition_prefix("raw", table, day.isoformat())
        manifest, files = read_partition_files(lake, prefix)
        frames.append(pq.read_table(io.BytesIO(files["part.parquet"])).to_pandas())
        used.append({"partition": prefix, "files": [f["sha256"] for f in manifest["files"]]})
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, used


def _read_dimension(settings: "Settings", table: str):
    from airloop.ingest.source import SourceDatabase

    import pandas as pd

    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    with source.engine.connect() as conn:
        frame = pd.read_sql_table(table, conn)
    return frame.sort_values(list(frame.columns[:1])).reset_index(drop=True)


_INT_TYPES = ("Int32", "Int64")
_FLOAT_TYPES = ("Float32", "Float64")


def validate_feature_frame(frame: "pd.DataFrame", view: ViewLayout, where: str) -> None:
    """Raise :class:`FeatureSchemaMismatch` unless ``frame`` has exactly the view's columns and types."""
    import pandas as pd

    expected = [*view.join_keys, view.timestamp_field, *view.features]
    if list(frame.columns) != expected:
        raise FeatureSchemaMismatch(
            f"{where}: computed columns {list(frame.columns)} do not match the Feast definition of "
            f"{view.name!r}, which expects {expected}; change the computation or the definition (nothing was written)"
        )
    ts = frame[view.timestamp_field]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise FeatureSchemaMismatch(f"{where}: {view.timestamp_field} must be a UTC timestamp, got {ts.dtype}")
    for name, dtype in zip(view.features, view.dtypes):
        column = frame[name]
        ok = (
            pd.api.types.is_integer_dtype(column.dtype) if dtype in _INT_TYPES
            else pd.api.types.is_float_dtype(column.dtype) if dtype in _FLOAT_TYPES
            else True
        )
        if not ok:
            raise FeatureSchemaMismatch(f"{where}: feature {view.name}:{name} is defined as {dtype} but computed as {column.dtype}")
    keys = [*view.join_keys, view.timestamp_field]
    duplicated = frame.duplicated(keys)
    if duplicated.any():
        raise FeatureSchemaMismatch(f"{where}: {int(duplicated.sum())} rows repeat a ({', '.join(keys)}) pair")


def compute_features(
    day: LogicalDay, *, settings: "Settings", views: list[str] | None = None, lake: "Lake | None" = None
) -> dict[str, dict]:
    """Compute and publish ``day``'s partition of each feature view; return their manifests.

    Every needed raw partition is checked before any computation or write
    (:class:`MissingRawPartition` names every missing one); every computed frame is checked
    against the view's Feast definition before the first publish (:class:`FeatureSchemaMismatch`).

    :param day: the day to compute (its window is the day's own: build it with ``use_case.day``).
    :param views: restrict to these feature views (default: all the use case computes).
    """
    from airloop.core.storage import open_lake

    lake = lake or open_lake(settings)
    spec = load_feature_use_case(settings).features
    specs = [spec.view(v) for v in views] if views else list(spec.views)
    first_day = history_start(settings, spec)

    # 1. Every raw partition needed, before anything else.
    plan = {s.name: raw_partitions_needed(day, s.inputs, first_day) for s in specs}
    missing: dict[str, list[date]] = {}
    first_missing = None
    for view_name, tables in plan.items():
        for table, days in tables.items():
            for needed in days:
                if needed in missing.get(table, ()):
                    continue
                prefix = partition_prefix("raw", table, needed.isoformat())
                if read_manifest(lake, prefix) is None:
                    missing.setdefault(table, []).append(needed)
                    first_missing = first_missing or (table, needed, lake.uri(prefix), view_name)
    if first_missing:
        raise MissingRawPartition(*first_missing, missing=missing)

    definitions = load_definitions(settings)
    join_keys_of = {e.name: e.join_key for e in definitions.entities}
    start, end = day.window

    # 2. Compute every view in memory and check it against its definition.
    raw_cache: dict[tuple[str, date, date], tuple] = {}
    dimension_cache: dict[str, Any] = {}
    results = []
    for view_spec in specs:
        layout = _view_layout(definitions.feature_view(view_spec.name), join_keys_of)
        frames, used = {}, []
        for table, days in plan[view_spec.name].items():
            key = (table, days[0] if days else day.date, days[-1] if days else day.date)
            if key not in raw_cache:
                raw_cache[key] = _read_raw(lake, table, days)
            frames[table], table_used = raw_cache[key]
            used += table_used
        dimensions = {}
        for table in view_spec.dimensions:
            if table not in dimension_cache:
                dimension_cache[table] = _read_dimension(settings, table)
            dimensions[table] = dimension_cache[table]
        context = FeatureContext(day.date, day.tz, start, end, settings.replay_offset_days, dimensions)
        frame = view_spec.compute(day.date, frames, context)
        validate_feature_frame(frame, layout, f"{view_spec.name} for {day}")
        if layout.daily_snapshot and len(frame) and (frame[layout.timestamp_field] != context.timestamp(end)).any():
            raise FeatureSchemaMismatch(
                f"{view_spec.name} for {day}: a daily snapshot view (tag cadence=daily) must stamp every row "
                f"with the instant {day} closes ({end.isoformat()}); nothing was written"
            )
        expected_before = sorted(
            d.key for table, lookback in view_spec.inputs.items()
            for d in day.shift(-lookback).range_to(day) if d.date < first_day
        )
        manifest = {
            "view": view_spec.name,
            "ds": day.key,
            "rows": len(frame),
            "columns": list(frame.columns),
            "event_timestamp_min": frame[layout.timestamp_field].min().isoformat() if len(frame) else None,
            "event_timestamp_max": frame[layout.timestamp_field].max().isoformat() if len(frame) else None,
            "raw_partitions": used,
            "days_before_history_start": expected_before,
            "dimensions": {
                t: {"rows": len(dimension_cache[t]), "sha256": sha256_bytes(frame_to_parquet(dimension_cache[t]))}
                for t in view_spec.dimensions
            },
            "code_version": code_version(),
        }
        results.append((view_spec.name, layout, frame, manifest))

    # 3. Publish (each partition's manifest last), then copy to a PostgreSQL offline store.
    out = {}
    for name, layout, frame, manifest in results:
        # Where the view's definition reads its rows (tag lake_prefix): a view whose rows changed
        # meaning moves to a versioned prefix, so old rows are never read with new ones.
        prefix = f"{layout.lake_prefix}/ds={day.key}"
        published = publish_partition(lake, prefix, {"part.parquet": frame_to_parquet(frame)}, manifest)
        log.info("published %d rows of %s for %s at %s", len(frame), name, day, lake.uri(prefix))
        out[name] = published.manifest
    for name, layout, frame, manifest in results:
        synced = sync_offline_table(settings, layout, day.date, frame)
        if synced is not None:
            log.info("replaced %s for %s in the PostgreSQL offline store (%d rows)", name, day, synced)
    return out
