"""The PostgreSQL copy of feature partitions that Feast's PostgreSQL offline store reads (services profile).

The lake stays the record; :func:`sync_offline_table` replaces one day's rows of a view in
``<schema>.<view>`` (``<view>_<version>`` for a versioned view) so Feast's own offline store serves the same rows.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from airloop.features.feast_repo import feast_environment
from airloop.features.layout import FEATURES_ZONE, ViewLayout
from airloop.features.point_in_time import _quote

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings


_PG_TYPES = {"Int64": "BIGINT", "Int32": "INTEGER", "Float64": "DOUBLE PRECISION", "Float32": "REAL", "String": "TEXT"}


def _offline_engine(values: dict[str, str]):
    """The offline store's engine, through :func:`airloop.core.database.create_engine` (driver
    checked, the password never in an error)."""
    from sqlalchemy.engine import URL

    from airloop.core.database import create_engine

    url = URL.create(
        "postgresql+psycopg2",
        username=values["AIRLOOP_FEAST_PG_USER"],
        password=values["AIRLOOP_FEAST_PG_PASSWORD"] or None,
        host=values["AIRLOOP_FEAST_PG_HOST"],
        port=int(values["AIRLOOP_FEAST_PG_PORT"]),
        database=values["AIRLOOP_FEAST_PG_DATABASE"],
    )
    return create_engine(
        url.render_as_string(hide_password=False), pool_pre_ping=True, connect_args={"sslmode": values["AIRLOOP_FEAST_PG_SSLMODE"]}
    )


def offline_table(view: ViewLayout) -> str:
    """The PostgreSQL table of ``view``'s rows: its lake prefix without ``features/``, ``/`` as ``_``."""
    return view.lake_prefix.removeprefix(f"{FEATURES_ZONE}/").replace("/", "_")


def sync_offline_table(settings: "Settings", view: ViewLayout, day: date, frame: "pd.DataFrame") -> int | None:
    """Replace day ``day``'s rows of ``view`` in the PostgreSQL offline store (services profile).

    The lake stays the record; this copy lets Feast's own PostgreSQL offline store (the batch
    sources of ``feature_repo/definitions.py`` in that profile) serve the same rows. Idempotent:
    one transaction deletes the day's rows and inserts them again. Returns the rows written, or
    None when the offline store is not PostgreSQL.
    """
    from sqlalchemy import text

    values = feast_environment(settings)
    if values["AIRLOOP_FEAST_OFFLINE_STORE"] != "postgres":
        return None
    # The table follows the view's lake prefix: a versioned view (features/<view>/v2) gets its own
    # table (<view>_v2), as feature_repo/definitions.py's PostgreSQL sources name it.
    schema, table = values["AIRLOOP_FEAST_PG_SCHEMA"], offline_table(view)
    qualified = f"{_quote(schema)}.{_quote(table)}"
    columns = [f"{_quote(k)} TEXT" for k in view.join_keys]
    columns.append(f"{_quote(view.timestamp_field)} TIMESTAMPTZ NOT NULL")
    columns += [f"{_quote(f)} {_PG_TYPES.get(t, 'DOUBLE PRECISION')}" for f, t in zip(view.features, view.dtypes)]
    names = [*view.join_keys, view.timestamp_field, *view.features]
    rows = [
        {**{f"c{i}": (None if _is_null(v) else (v.to_pydatetime() if hasattr(v, "to_pydatetime") else v.item() if hasattr(v, "item") else v))
            for i, v in enumerate(record)}, "ds": day}
        for record in frame[names].itertuples(index=False, name=None)
    ]
    engine = _offline_engine(values)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}"))
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS {qualified} (ds DATE NOT NULL, {', '.join(columns)})"))
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"{qualified}/{day}"})
            conn.execute(text(f"DELETE FROM {qualified} WHERE ds = :ds"), {"ds": day})
            if rows:
                placeholders = ", ".join(f":c{i}" for i in range(len(names)))
                conn.execute(
                    text(f"INSERT INTO {qualified} (ds, {', '.join(_quote(n) for n in names)}) VALUES (:ds, {placeholders})"), rows
                )
    finally:
        engine.dispose()
    return len(rows)


def _is_null(value) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))
