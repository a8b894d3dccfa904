"""The services profile: SQL registry and offline store on PostgreSQL, online store on Redis.

Runs the hand-made raw zone through the same functions as the embedded tests, against a fresh
PostgreSQL database and a Redis database number of its own; skipped when either is unreachable.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from airloop import features as F
from testkit import port_open
from feature_helpers import D0, D1, D2, leakage_lake, local, logical_day

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
REDIS_DB = 13


@pytest.fixture
def services(settings, monkeypatch):
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if not port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    import redis
    from sqlalchemy import create_engine, text

    name = f"airloop_feast_svc_{uuid.uuid4().hex[:8]}"
    admin = create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    client.flushdb()
    monkeypatch.setenv("AIRLOOP_FEAST_PROFILE", "services")
    monkeypatch.setenv("AIRLOOP_FEAST_REGISTRY_PATH", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
    monkeypatch.setenv("AIRLOOP_FEAST_PG_DATABASE", name)
    monkeypatch.setenv("AIRLOOP_FEAST_OFFLINE_STORE", "postgres")
    monkeypatch.setenv("AIRLOOP_FEAST_REDIS", f"127.0.0.1:6379,db={REDIS_DB}")
    yield settings
    client.flushdb()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_services_profile_end_to_end(services, lake):
    settings = services
    leakage_lake(lake)
    store = F.feature_store(settings)
    assert (store.config.online_store.type, store.config.offline_store.type) == ("redis", "postgres")
    assert F.apply_definitions(settings, store=store).applied
    for day in (D0, D1, D2):
        F.compute_features(logical_day(day), settings=settings, lake=lake)
    F.compute_features(logical_day(D1), settings=settings, lake=lake)  # rerun: the offline table is replaced, not appended

    # Materialize through D1 into Redis; online equals offline.
    sample = pd.DataFrame({
        "origin": ["JFK", "EWR", "JFK"], "carrier": ["AA", "AA", "UA"], "route": ["JFK-LAX", "JFK-BOS", "LGA-ORD"],
        "tailnum": ["N10156", "N102UW", "NZZZ99"],
    })
    F.materialize(logical_day(D0), logical_day(D1), settings=settings, store=store, lake=lake)
    report = F.skew_check(sample, logical_day(D1), settings=settings, store=store, lake=lake)
    assert report.ok, report.mismatches
    # A backfill of D0 afterwards keeps the newer values.
    results = {r.view: r for r in F.materialize(logical_day(D0), logical_day(D0), settings=settings, store=store, lake=lake)}
    assert results["carrier_delay_stats"].kept_newer == 1 and results["carrier_delay_stats"].written == 0
    assert F.skew_check(sample, logical_day(D1), settings=settings, store=store, lake=lake).ok

    # Feast's own retrieval from the PostgreSQL offline store equals Airloop's join.
    instants = [local(D1, "02:00"), local(D1, "23:59"), local(D2, "02:00")]
    entity = pd.DataFrame([(*row, t) for t in instants for row in sample.itertuples(index=False)], columns=[*sample.columns, "event_timestamp"])
    entity["event_timestamp"] = pd.to_datetime(entity["event_timestamp"], utc=True)
    entity["row_id"] = range(len(entity))
    theirs = store.get_historical_features(entity_df=entity, features=store.get_feature_service("flight_delay_v1")).to_df()
    theirs = theirs.sort_values("row_id").set_index("row_id")
    ours = F.historical_features(entity, settings=settings, store=store, lake=lake).set_index("row_id")
    assert len(theirs) == len(ours) == 9
    for col in F.service_layout(store, "flight_delay_v1").feature_names:
        a, b = ours[col].to_numpy("float64"), pd.to_numeric(theirs[col], errors="coerce").to_numpy("float64")
        assert np.allclose(a, b, equal_nan=True), f"{col}: ours {a} Feast {b}"
    assert ours["carrier_flights_1d"].notna().sum() >= 3
