"""Reading feature partitions: the point-in-time join and the lookup as of one instant.

* :func:`historical_features` is the point-in-time join: for each entity row, the latest
  feature row at or before its ``event_timestamp`` and within the view's TTL. It runs in DuckDB
  (ASOF JOIN) from Feast's own definitions (the feature service's views, join keys, timestamp
  fields, TTLs, read from the registry); ``tests/features/test_features_feast.py`` proves it equal
  to Feast's ``get_historical_features``. It is about 20 times faster and never drops a row.
* :func:`features_as_of` is the scoring fast path: one instant for every row, so a latest-value
  lookup per entity; equal to :func:`historical_features` at that instant.

Entities with no history get null features, never an exception; so does an entity whose latest
row is older than the view's TTL.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from airloop.core.storage import (
    MANIFEST_NAME,
    LocalLake,
    PartitionCorrupt,
    PartitionNotFound,
    read_partition_files,
    sha256_bytes,
)
from airloop.features.errors import FeatureError, MissingFeaturePartition
from airloop.features.feast_repo import feature_store
from airloop.features.layout import (
    EVENT_TIMESTAMP,
    ServiceLayout,
    ViewLayout,
    default_feature_service,
    history_start,
    load_feature_use_case,
    service_layout,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from airloop.core.config import Settings
    from airloop.core.storage import Lake


def _partition_days_for(view: ViewLayout, first: datetime, last: datetime, tz: str) -> list[date]:
    """Partitions that can hold rows of ``view`` with timestamps in ``[first - ttl, last]``."""
    zone = ZoneInfo(tz)
    low = (first - (view.ttl or timedelta(0))).astimezone(zone)
    high = last.astimezone(zone)
    # A partition D holds instants of local day D and the instant D closes (= start of D + 1),
    # so a row at a local midnight may sit in the partition of the day before.
    first_day = low.date() - timedelta(days=1 if low.time() == time(0) else 0)
    # A daily snapshot's rows are all at the close of D: none of D's is at or before an instant
    # inside D (a lookup at D 02:00 needs D-1 at the latest, the data that exists by then).
    last_day = high.date() - timedelta(days=1) if view.daily_snapshot else high.date()
    return [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]


def partitions_read(lake: "Lake", layout: ServiceLayout, first: datetime, last: datetime, tz: str) -> list[str]:
    """The published feature partitions a lookup of instants ``[first, last]`` reads (for lineage:
    the same days :func:`historical_features` reads, those with a manifest)."""
    from airloop.core.storage import list_partitions

    found = []
    for view in layout.views:
        published = set(list_partitions(lake, view.lake_prefix))
        days = _partition_days_for(view, first, last, tz)
        found += [p for p in (f"{view.lake_prefix}/ds={d.isoformat()}" for d in days) if p in published]
    return found


def read_feature_rows(
    lake: "Lake", view: ViewLayout, days: list[date], *, first_day: date | None = None, strict: bool = True, con=None
) -> "pa.Table":
    """The rows of ``view`` in the partitions of ``days`` (sha256 checked), one Arrow table.

    :param first_day: partitions before it are not expected to exist (before the source's history).
    :param strict: raise :class:`MissingFeaturePartition` for a missing partition (else skip it).
    :param con: a DuckDB connection to decode local files with (opening one costs ~15 ms).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from concurrent.futures import ThreadPoolExecutor

    columns = [*view.join_keys, view.timestamp_field, *view.features]

    def read(day: date):
        prefix = f"{view.lake_prefix}/ds={day.isoformat()}"
        try:
            _, files = read_partition_files(lake, prefix)
        except PartitionNotFound:
            if not strict or (first_day is not None and day < first_day):
                return None
            raise MissingFeaturePartition(
                f"feature partition {lake.uri(prefix)} is missing: compute features for {day} first "
                f"(`airloop features compute {day}` or the materialize_features DAG)"
            ) from None
        return pq.ParquetFile(pa.BufferReader(files["part.parquet"])).read(columns=columns)

    if isinstance(lake, LocalLake):
        return _read_local_feature_rows(lake, view, days, first_day=first_day, strict=strict, con=con)
    else:
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(days)))) as pool:  # wait on the network in parallel
            tables = [t for t in pool.map(read, days) if t is not None]
    if not tables:
        return None
    return _utc_micros(pa.concat_tables(tables, promote_options="permissive"), view.timestamp_field)


def _read_local_feature_rows(lake: "LocalLake", view: ViewLayout, days: list[date], *, first_day, strict, con=None) -> "pa.Table | None":
    """:func:`read_feature_rows` on a local lake: each file checked against its manifest's sha256,
    then all decoded by one parallel DuckDB ``read_parquet`` (about twice as fast as one
    pyarrow read per small file)."""
    files = []
    for day in days:
        prefix = f"{view.lake_prefix}/ds={day.isoformat()}"
        base = lake.local_path(prefix)
        if not (base / MANIFEST_NAME).is_file():
            if not strict or (first_day is not None and day < first_day):
                continue
            raise MissingFeaturePartition(
                f"feature partition {lake.uri(prefix)} is missing: compute features for {day} first "
                f"(`airloop features compute {day}` or the materialize_features DAG)"
            )
        manifest = json.loads((base / MANIFEST_NAME).read_bytes())
        for entry in manifest["files"]:
            if entry["logical_name"] != "part.parquet":
                continue
            path = base / entry["name"]
            if not path.is_file() or sha256_bytes(path.read_bytes()) != entry["sha256"]:
                raise PartitionCorrupt(f"{lake.uri(prefix)}/{entry['name']} is missing or does not match its manifest's sha256")
            files.append(str(path))
    if not files:
        return None
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    columns = ", ".join(_quote(c) for c in [*view.join_keys, view.timestamp_field, *view.features])
    table = (con or _duckdb()).sql(f"SELECT {columns} FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false)").to_arrow_table()
    return _utc_micros(table, view.timestamp_field)


def _duckdb():
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ttl_sql(ttl: timedelta) -> str:
    return f"INTERVAL {int(ttl.total_seconds() * 1_000_000)} MICROSECONDS"


def _empty_view_table(view: ViewLayout, sample: "pa.Table"):
    import pyarrow as pa

    types = {"Int64": pa.int64(), "Int32": pa.int32(), "Float64": pa.float64(), "Float32": pa.float32(), "String": pa.string()}
    fields = [pa.field(k, sample.schema.field(k).type if k in sample.schema.names else pa.string()) for k in view.join_keys]
    fields.append(pa.field(view.timestamp_field, pa.timestamp("us", tz="UTC")))
    fields += [pa.field(f, types.get(t, pa.float64())) for f, t in zip(view.features, view.dtypes)]
    return pa.schema(fields).empty_table()


def point_in_time_join(entities: "pa.Table", layout: ServiceLayout, tables: dict[str, "pa.Table | None"], *, con=None) -> list["pa.Table"]:
    """ASOF-join ``entities`` (join keys, ``event_timestamp``, ``__row``) to each view's rows.

    For each entity row and view: the row with the same join keys and the latest timestamp at
    or before the entity's ``event_timestamp``; its features when that timestamp is within the
    view's TTL, nulls otherwise (and for keys with no rows). Returns one table per view with
    ``__row`` and its features, one row per entity row, in no particular order. (One query per
    view: a single query chaining five ASOF joins carries every column through each join and
    measured 3x slower at 1M rows.)
    """
    con = con or _duckdb()
    con.register("entity_rows", entities)
    out = []
    for i, view in enumerate(layout.views):
        table = tables.get(view.name)
        con.register(f"view_{i}", table if table is not None else _empty_view_table(view, entities))
        on = " AND ".join(f"e.{_quote(k)} = v.{_quote(k)}" for k in view.join_keys)
        ts = f"v.{_quote(view.timestamp_field)}"
        fresh = f"{ts} >= e.{EVENT_TIMESTAMP} - {_ttl_sql(view.ttl)}" if view.ttl else "TRUE"
        selects = ", ".join(f"CASE WHEN {fresh} THEN v.{_quote(f)} END AS {_quote(f)}" for f in view.features)
        sql = f"SELECT e.__row, {selects} FROM entity_rows e ASOF LEFT JOIN view_{i} v ON {on} AND e.{EVENT_TIMESTAMP} >= {ts}"
        out.append(con.sql(sql).to_arrow_table())
    return out


def _utc_micros(table: "pa.Table", column: str) -> "pa.Table":
    """``column`` as microsecond UTC timestamps (DuckDB's TIMESTAMPTZ), so joins compare like types."""
    import pyarrow as pa

    index = table.schema.get_field_index(column)
    return table.set_column(index, column, table.column(column).cast(pa.timestamp("us", tz="UTC")))


def _entity_table(entity_df: "pd.DataFrame", keys: list[str]) -> "pa.Table":
    """The join keys, ``event_timestamp`` and a row number of ``entity_df`` (nothing else travels)."""
    import pandas as pd
    import pyarrow as pa

    missing = [k for k in [*keys, EVENT_TIMESTAMP] if k not in entity_df.columns]
    if missing:
        raise FeatureError(f"the entity rows miss the columns {missing} (they have {list(entity_df.columns)})")
    stamps = pd.to_datetime(entity_df[EVENT_TIMESTAMP], utc=True)
    if stamps.isna().any():
        raise FeatureError(f"{int(stamps.isna().sum())} entity rows have no {EVENT_TIMESTAMP}")
    columns = {k: pa.array(entity_df[k].to_numpy(dtype=object), pa.string(), from_pandas=True) for k in keys}  # NaN/None -> null
    columns[EVENT_TIMESTAMP] = pa.array(stamps.dt.as_unit("us"), pa.timestamp("us", tz="UTC"))
    columns["__row"] = pa.array(range(len(entity_df)), pa.int64())
    return pa.table(columns)


def _with_features(joined: "list[pa.Table]", entity_df: "pd.DataFrame", layout: ServiceLayout) -> "pd.DataFrame":
    """``entity_df`` (unchanged, same index) with the joined features appended as float64.

    Every feature comes back as float64 with NaN for null, whatever its Feast type, so a
    column's dtype never depends on whether a batch happened to contain a null.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    values = {}
    for table in joined:
        if table.num_rows != len(entity_df):
            raise FeatureError(f"the point-in-time join returned {table.num_rows} rows for {len(entity_df)} entity rows")
        position = table.column("__row").to_numpy()  # a permutation of 0..n-1: scatter back in order
        for feature in table.column_names[1:]:
            column = np.empty(len(entity_df), dtype="float64")
            column[position] = table.column(feature).cast(pa.float64()).to_numpy(zero_copy_only=False)
            values[feature] = column
    features = pd.DataFrame({f: values[f] for f in layout.feature_names}, index=entity_df.index)
    return pd.concat([entity_df.drop(columns=[c for c in layout.feature_names if c in entity_df.columns]), features], axis=1)


def historical_features(
    entity_df: "pd.DataFrame", *, settings: "Settings", feature_service: str | None = None, store=None, lake=None
) -> "pd.DataFrame":
    """Point-in-time correct features for each row of ``entity_df`` (Feast semantics, in DuckDB).

    :param entity_df: the service's join keys and ``event_timestamp`` (tz-aware), any other columns.
    :returns: ``entity_df``'s columns followed by the service's features, same rows and order.
    """
    import pandas as pd

    from airloop.core.storage import open_lake

    store = store or feature_store(settings)
    lake = lake or open_lake(settings)
    layout = service_layout(store, feature_service or default_feature_service(settings))
    entities = _entity_table(entity_df, layout.join_keys)
    if len(entity_df) == 0:
        return _with_features(point_in_time_join(entities, layout, {}), entity_df, layout)
    use_case = load_feature_use_case(settings)
    stamps = pd.to_datetime(entity_df[EVENT_TIMESTAMP], utc=True)
    first, last = stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
    first_day = history_start(settings, use_case.features)
    con = _duckdb()
    tables = {
        view.name: read_feature_rows(lake, view, _partition_days_for(view, first, last, use_case.timezone), first_day=first_day, con=con)
        for view in layout.views
    }
    return _with_features(point_in_time_join(entities, layout, tables, con=con), entity_df, layout)


def features_as_of(
    entity_df: "pd.DataFrame",
    as_of: datetime,
    *,
    settings: "Settings",
    feature_service: str | None = None,
    store=None,
    lake=None,
    through: date | None = None,
    layout: ServiceLayout | None = None,
) -> "pd.DataFrame":
    """Features of every row of ``entity_df`` as of one instant (scoring): latest value per entity.

    ``entity_df`` holds the service's join keys (other columns are kept); keys with no row within
    a view's TTL before ``as_of`` get nulls. Equal to :func:`historical_features` with every
    ``event_timestamp`` set to ``as_of``, but reads only the partitions around that instant.

    :param through: read no partition after this day (the skew check compares with an online
        store materialized through it).
    :param layout: the service's registered layout when the caller has it (then neither
        ``store`` nor Feast is needed; see :mod:`airloop.features.registered_layout`).
    :returns: ``entity_df``'s columns, ``event_timestamp`` (= ``as_of``) and the features.
    """
    import pandas as pd

    from airloop.core.storage import open_lake

    if as_of.tzinfo is None:
        raise FeatureError(f"as_of must be timezone-aware, got {as_of!r}")
    lake = lake or open_lake(settings)
    use_case = load_feature_use_case(settings)
    if layout is None:
        layout = service_layout(store or feature_store(settings), feature_service or default_feature_service(settings))
    frame = entity_df.drop(columns=[EVENT_TIMESTAMP], errors="ignore").assign(
        **{EVENT_TIMESTAMP: pd.Timestamp(as_of).tz_convert("UTC")}
    )
    entities = _entity_table(frame, layout.join_keys)
    first_day = history_start(settings, use_case.features)
    con = _duckdb()
    con.register("entity_rows", entities)
    con.execute("SET VARIABLE as_of = CAST($as_of AS TIMESTAMPTZ)", {"as_of": as_of})
    selects, joins = ["e.__row"], []
    for i, view in enumerate(layout.views):
        days = [d for d in _partition_days_for(view, as_of, as_of, use_case.timezone) if through is None or d <= through]
        table = read_feature_rows(lake, view, days, first_day=first_day, con=con)
        con.register(f"view_{i}", table if table is not None else _empty_view_table(view, entities))
        ts = _quote(view.timestamp_field)
        keys = ", ".join(_quote(k) for k in view.join_keys)
        low = f"AND CAST({ts} AS TIMESTAMPTZ) >= getvariable('as_of') - {_ttl_sql(view.ttl)}" if view.ttl else ""
        latest = (
            f"SELECT * FROM view_{i} WHERE CAST({ts} AS TIMESTAMPTZ) <= getvariable('as_of') {low} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC) = 1"
        )
        on = " AND ".join(f"e.{_quote(k)} = v{i}.{_quote(k)}" for k in view.join_keys)
        joins.append(f"LEFT JOIN ({latest}) v{i} ON {on}")
        selects += [f"v{i}.{_quote(f)}" for f in view.features]
    sql = f"SELECT {', '.join(selects)} FROM entity_rows e {' '.join(joins)}"
    return _with_features([con.sql(sql).to_arrow_table()], frame, layout)


def entity_rows(raw_events: "pd.DataFrame", *, settings: "Settings") -> "pd.DataFrame":
    """The use case's join keys and request-time columns added to raw event rows (schedule only)."""
    use_case = load_feature_use_case(settings)
    return use_case.features.entity_rows(raw_events, use_case.timezone)
