"""Feast definitions of the flight-delay features: entities, sources, feature views, services.

Declarative only. The rows behind each view are computed from the raw zone by
``airloop.features.compute_features`` (the computation is in ``airloop.usecases.flights``) and
published as ``features/<view>/ds=D/`` in the lake (``features/<view>/<rows version>/ds=D/``
for the views in ``ROWS_VERSION``). Timestamps are replayed UTC instants.

Time semantics (see docs/ARCHITECTURE.md): the rows of day D are predicted as of D 02:00
New York time. Every view is a daily snapshot stamped with the instant day D closes (local
midnight), when D's raw data is ingested: delay statistics use only flights that had reached
their destination gate before that instant (the real arrival, in the destination's time zone);
weather is each airport's last observation of D; aircraft attributes come from the planes table. A lookup at D 02:00 thus needs only partitions up to D-1, the data that
exists at that hour. The TTL makes it see the snapshot of the night before and never an older one.

Environment (read when this file is loaded; ``airloop.features`` sets them from its settings):
``AIRLOOP_FEAST_OFFLINE_ROOT`` (the local lake folder the duckdb offline store reads),
``AIRLOOP_FEAST_OFFLINE_STORE`` (``duckdb`` or ``postgres``: the type of the batch sources) and
``AIRLOOP_FEAST_PG_SCHEMA`` (the schema of the PostgreSQL offline tables).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64, Int64
from feast.value_type import ValueType

OFFLINE_STORE = os.environ.get("AIRLOOP_FEAST_OFFLINE_STORE", "duckdb")
OFFLINE_ROOT = Path(os.environ.get("AIRLOOP_FEAST_OFFLINE_ROOT") or Path(__file__).resolve().parents[1] / "data" / "lake")
PG_SCHEMA = os.environ.get("AIRLOOP_FEAST_PG_SCHEMA", "feast")

# A daily snapshot stamped at local midnight is looked up at 02:00 (2 to 3 hours later across
# daylight-saving switches); 6 hours never reaches back to the snapshot of the day before.
DAILY_SNAPSHOT_TTL = timedelta(hours=6)
WEATHER_TTL = DAILY_SNAPSHOT_TTL
WINDOWS = ("1d", "7d", "28d")


# The version of the *rows* of a view whose computation changed meaning without changing its
# features: the rows live apart (features/<view>/<version>/ds=D/ in the lake, <view>_<version> in
# PostgreSQL), so rows of the old meaning are never read with the new ones; a day not recomputed
# yet is a missing partition (an error naming the day), not a silent mix. The feature service and
# its features are unchanged: models and their consumers keep working.
# - delay statistics v2: a flight counts once it reached its destination gate (arr_time in the
#   destination's time zone); v1 counted it at departure + delay + air time, before taxi-in,
#   so thousands of flights fed a snapshot taken before they arrived.
ROWS_VERSION = {"carrier_delay_stats": "v2", "origin_delay_stats": "v2", "route_delay_stats": "v2"}


def lake_prefix(view: str) -> str:
    """Where the rows of ``view`` live in the lake: ``features/<view>[/<rows version>]``."""
    return "/".join(["features", view, *([ROWS_VERSION[view]] if view in ROWS_VERSION else [])])


def lake_source(view: str):
    """The batch source of one view: its lake partitions (duckdb) or its table (postgres)."""
    prefix = lake_prefix(view)
    if OFFLINE_STORE == "postgres":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        table = prefix.removeprefix("features/").replace("/", "_")  # as airloop.features.offline_store names it
        return PostgreSQLSource(name=f"{view}_source", table=f"{PG_SCHEMA}.{table}", timestamp_field="event_timestamp")
    return FileSource(
        name=f"{view}_source",
        path=str(OFFLINE_ROOT / prefix / "ds=*" / "*.parquet"),
        timestamp_field="event_timestamp",
        description=f"lake partitions {prefix}/ds=YYYY-MM-DD/",
    )


def delay_stat_fields(prefix: str) -> list[Field]:
    """Trailing-window delay statistics of one entity (flights at their destination gate before the timestamp)."""
    fields = []
    for window in WINDOWS:
        fields += [
            Field(name=f"{prefix}_flights_{window}", dtype=Int64, description=f"flights that reached their gate in the last {window}"),
            Field(name=f"{prefix}_dep_delay_mean_{window}", dtype=Float64, description="mean departure delay, minutes"),
            Field(name=f"{prefix}_delayed_share_{window}", dtype=Float64, description="share arriving > 15 min late"),
        ]
    return fields


# --- Entities ---------------------------------------------------------------------------------

# The departure airport (FAA code, e.g. JFK).
origin_airport = Entity(name="origin_airport", join_keys=["origin"], value_type=ValueType.STRING)
# The operating airline (two-letter code).
carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING)
# A city pair flown from New York, "ORIGIN-DEST" (e.g. JFK-LAX).
route = Entity(name="route", join_keys=["route"], value_type=ValueType.STRING)
# One aircraft, by its registration (tail number).
aircraft = Entity(name="aircraft", join_keys=["tailnum"], value_type=ValueType.STRING)

# --- Feature views ----------------------------------------------------------------------------

# The last weather observation of the day at the departure airport.
origin_weather = FeatureView(
    name="origin_weather",
    entities=[origin_airport],
    ttl=WEATHER_TTL,
    schema=[
        Field(name="temp", dtype=Float64, description="degrees F"),
        Field(name="dewp", dtype=Float64, description="dew point, degrees F"),
        Field(name="humid", dtype=Float64, description="relative humidity, percent"),
        Field(name="wind_dir", dtype=Float64, description="degrees"),
        Field(name="wind_speed", dtype=Float64, description="mph"),
        Field(name="wind_gust", dtype=Float64, description="mph"),
        Field(name="precip", dtype=Float64, description="inches"),
        Field(name="pressure", dtype=Float64, description="millibars"),
        Field(name="visib", dtype=Float64, description="miles"),
    ],
    source=lake_source("origin_weather"),
    online=True,
    tags={"cadence": "daily", "lake_prefix": lake_prefix("origin_weather")},
)

# Delay record of the airline over the last 1, 7 and 28 days.
carrier_delay_stats = FeatureView(
    name="carrier_delay_stats",
    entities=[carrier],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=delay_stat_fields("carrier"),
    source=lake_source("carrier_delay_stats"),
    online=True,
    tags={"cadence": "daily", "lake_prefix": lake_prefix("carrier_delay_stats")},
)

# Delay record of the departure airport over the last 1, 7 and 28 days.
origin_delay_stats = FeatureView(
    name="origin_delay_stats",
    entities=[origin_airport],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=delay_stat_fields("origin"),
    source=lake_source("origin_delay_stats"),
    online=True,
    tags={"cadence": "daily", "lake_prefix": lake_prefix("origin_delay_stats")},
)

# Delay record of the city pair over the last 1, 7 and 28 days.
route_delay_stats = FeatureView(
    name="route_delay_stats",
    entities=[route],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=delay_stat_fields("route"),
    source=lake_source("route_delay_stats"),
    online=True,
    tags={"cadence": "daily", "lake_prefix": lake_prefix("route_delay_stats")},
)

# The aircraft itself (from the source's planes table); null for tail numbers it does not list.
aircraft_attributes = FeatureView(
    name="aircraft_attributes",
    entities=[aircraft],
    ttl=DAILY_SNAPSHOT_TTL,
    schema=[
        Field(name="aircraft_age_years", dtype=Float64, description="years since the year of manufacture"),
        Field(name="aircraft_seats", dtype=Int64, description="seats"),
        Field(name="aircraft_engines", dtype=Int64, description="number of engines"),
        Field(name="aircraft_engine_code", dtype=Int64, description="engine type, coded (see flights.ENGINE_CODES)"),
    ],
    source=lake_source("aircraft_attributes"),
    online=True,
    tags={"cadence": "daily", "lake_prefix": lake_prefix("aircraft_attributes")},
)

# --- Feature services -------------------------------------------------------------------------

# What flight-delay model v1 consumes. A released version never changes: a different feature
# list is a new service (flight_delay_v2); Airloop refuses to apply a change to this one.
flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[origin_weather, carrier_delay_stats, origin_delay_stats, route_delay_stats, aircraft_attributes],
    description="Flight-delay model inputs looked up as of 02:00 New York time of the flight's day.",
    tags={"model": "flight_delay_xgb", "version": "1"},
)
