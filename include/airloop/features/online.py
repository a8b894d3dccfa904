"""The online store: loading it from feature partitions, and reading it back.

:func:`materialize` writes the latest row per entity of an interval of partitions to the online
store, never replacing a newer value with an older one (out-of-order backfills are safe);
:func:`online_features` reads the current values (Feast's ``get_online_features``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from airloop.core.storage import read_manifest
from airloop.features.feast_repo import feast_sqlite_adapters, feature_store
from airloop.features.layout import ViewLayout, default_feature_service, history_start, load_feature_use_case, service_layout
from airloop.features.point_in_time import read_feature_rows

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    rows_read: int
    entities: int
    written: int
    kept_newer: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _entity_key_protos(frame: "pd.DataFrame", view: ViewLayout, config):
    from feast.infra.key_encoding_utils import serialize_entity_key  # noqa: F401  (import check)
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    keys = []
    for values in frame[list(view.join_keys)].itertuples(index=False, name=None):
        keys.append(EntityKey(join_keys=list(view.join_keys), entity_values=[Value(string_val=str(v)) for v in values]))
    return keys


def online_timestamps(store, view: ViewLayout, frame: "pd.DataFrame") -> list:
    """The event timestamps the online store holds for the entities of ``frame`` (None: absent)."""
    fv = store.get_feature_view(view.name, allow_registry_cache=True)
    if store.config.online_store.type == "sqlite":
        return _sqlite_online_timestamps(store, fv, view, frame)
    provider = store._get_provider()  # the provider is Feast's documented online-store interface
    rows = provider.online_read(store.config, fv, _entity_key_protos(frame, view, store.config), None)
    return [ts for ts, _ in rows]


def _sqlite_online_timestamps(store, fv, view: ViewLayout, frame: "pd.DataFrame") -> list:
    """Event timestamps straight from Feast's SQLite table: one row per entity, no feature decoding.

    Feast's ``online_read`` decodes every feature of every entity to return one timestamp; this
    reads the rows of one feature only (an entity's features share their timestamp). The value is
    what Feast stores: epoch seconds of the naive UTC instant, read back as Feast does.
    """
    import sqlite3

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.sqlite import _table_id

    config = store.config
    table = _table_id(config.project, fv, config.registry.enable_online_feature_view_versioning)
    keys = [serialize_entity_key(k, entity_key_serialization_version=config.entity_key_serialization_version)
            for k in _entity_key_protos(frame, view, config)]
    found: dict[bytes, datetime] = {}
    with contextlib.closing(sqlite3.connect(config.online_store.path, timeout=30)) as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for key, event_ts in conn.execute(
                f'SELECT entity_key, event_ts FROM "{table}" WHERE feature_name = ? AND entity_key IN ({marks})',
                [view.features[0], *chunk],
            ):
                found[bytes(key)] = datetime.fromtimestamp(int(event_ts))
    return [found.get(k) for k in keys]


def materialize(
    start: "LogicalDay",
    end: "LogicalDay",
    *,
    settings: "Settings",
    views: list[str] | None = None,
    feature_service: str | None = None,
    store=None,
    lake=None,
) -> list[MaterializeResult]:
    """Load the latest row per entity of partitions ``[start, end]`` into the online store.

    All partitions are read (and checked) before anything is written. A missing ``end``
    partition raises :class:`MissingFeaturePartition`; missing earlier ones (the overlap, e.g.
    during an out-of-order backfill) are skipped with a warning. An entity whose online value is newer than the interval's
    latest row keeps it, so backfilling an older interval after a newer one changes nothing;
    rerunning an interval writes the same values again.

    :param start: the first day of the interval.
    :param end: the last day of the interval (inclusive); its partition must exist.
    :param views: feature views to load (default: every view of the feature service).
    """
    import pandas as pd
    import pyarrow as pa

    from airloop.core.storage import open_lake

    store = store or feature_store(settings)
    lake = lake or open_lake(settings)
    use_case = load_feature_use_case(settings)
    layout = service_layout(store, feature_service or default_feature_service(settings))
    chosen = [v for v in layout.views if not views or v.name in views]
    days = [d.date for d in start.range_to(end)]
    first_day = history_start(settings, use_case.features)
    frames = {}
    for view in chosen:
        for day in days[:-1]:
            if read_manifest(lake, f"{view.lake_prefix}/ds={day.isoformat()}") is None and day >= first_day:
                log.warning("materialize %s: partition %s is missing; loading the other days", view.name, day)
        table = read_feature_rows(lake, view, days[:-1], first_day=first_day, strict=False)
        last = read_feature_rows(lake, view, days[-1:], first_day=first_day)
        table = last if table is None else table if last is None else pa.concat_tables([table, last])
        frame = table.to_pandas() if table is not None else pd.DataFrame(columns=[*view.join_keys, view.timestamp_field, *view.features])
        frames[view.name] = frame
    results = []
    for view in chosen:
        frame = frames[view.name]
        rows_read = len(frame)
        latest = (
            frame.sort_values([*view.join_keys, view.timestamp_field])
            .drop_duplicates(list(view.join_keys), keep="last")
            .reset_index(drop=True)
        )
        kept_newer = 0
        if len(latest):
            current = online_timestamps(store, view, latest)
            stamps = pd.to_datetime(latest[view.timestamp_field], utc=True)
            # Online stores return naive UTC (SQLite) or aware instants; None for an absent key.
            online = pd.to_datetime(pd.Series(current, dtype=object, index=stamps.index), utc=True)
            newer_online = online.notna() & (online > stamps)
            kept_newer = int(newer_online.sum())
            latest = latest[~newer_online.to_numpy()]
        if len(latest):
            with feast_sqlite_adapters():
                store.write_to_online_store(view.name, latest, allow_registry_cache=True)
        log.info("materialized %s %s..%s: %d rows read, %d entities, %d written, %d kept newer online values",
                 view.name, days[0], days[-1], rows_read, len(latest) + kept_newer, len(latest), kept_newer)
        results.append(MaterializeResult(view.name, rows_read, len(latest) + kept_newer, len(latest), kept_newer))
    return results


def online_features(entity_df: "pd.DataFrame", *, settings: "Settings", feature_service: str | None = None, store=None) -> "pd.DataFrame":
    """The online store's current values for each row of ``entity_df`` (Feast's ``get_online_features``)."""
    store = store or feature_store(settings)
    name = feature_service or default_feature_service(settings)
    layout = service_layout(store, name)
    rows = entity_df[layout.join_keys].astype(object).where(entity_df[layout.join_keys].notna(), "").to_dict("records")
    service = store.get_feature_service(name)
    with feast_sqlite_adapters():
        frame = store.get_online_features(features=service, entity_rows=rows).to_df()
    out = entity_df.reset_index(drop=True).copy()
    for feature in layout.feature_names:
        out[feature] = frame[feature].to_numpy()
    out.index = entity_df.index
    return out
