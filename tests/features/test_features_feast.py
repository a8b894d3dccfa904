"""Airloop's DuckDB point-in-time join equals Feast's own ``get_historical_features``.

Feast runs with its duckdb offline store over the same lake partitions (the FileSources of
``feature_repo/definitions.py``), on the edge cases of the hand-made raw zone and on a sample of
real replayed flights. Feast's result must also keep every entity row (its file/dask store drops
rows without a feature inside the TTL; the duckdb one does not).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from airloop import features as F
from airloop.core.dates import ds_range
from airloop.features.training_set import build_training_set
from feature_helpers import D0, D1, D2, leakage_lake, local, logical_day

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
KEYS = ["origin", "carrier", "route", "tailnum"]


def feast_join(store, entity: pd.DataFrame) -> pd.DataFrame:
    service = store.get_feature_service("flight_delay_v1")
    out = store.get_historical_features(entity_df=entity, features=service).to_df()
    return out.sort_values("row_id").set_index("row_id")


def assert_same_features(ours: pd.DataFrame, theirs: pd.DataFrame, columns: list[str]) -> None:
    assert len(ours) == len(theirs)
    assert ours.index.tolist() == theirs.index.tolist()
    for col in columns:
        a = ours[col].to_numpy(dtype="float64")
        b = pd.to_numeric(theirs[col], errors="coerce").to_numpy(dtype="float64")
        same = np.isclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
        assert same.all(), f"{col}: ours {a[~same][:5]} Feast {b[~same][:5]}"


def test_equal_to_feast_on_the_edge_cases(settings, lake):
    leakage_lake(lake)
    for day in (D0, D1, D2):
        F.compute_features(logical_day(day), settings=settings, lake=lake)
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    instants = [
        local(D1, "02:00"),  # EWR weather exactly at the TTL; LGA past it
        pd.Timestamp(logical_day(D1).end),  # a snapshot's own instant
        local(D1, "23:59"),  # stats past their TTL
        local(D2, "02:00"),
        local(D0, "01:00"),  # before any snapshot exists
    ]
    combos = [
        ("JFK", "AA", "JFK-LAX", "N10156"), ("EWR", "AA", "JFK-BOS", "N102UW"), ("LGA", "UA", "LGA-ORD", "NZZZ99"),
        ("XYZ", "ZZ", "XYZ-ABC", ""),  # no history anywhere
    ]
    entity = pd.DataFrame([(*c, t) for t in instants for c in combos], columns=[*KEYS, "event_timestamp"])
    entity["event_timestamp"] = pd.to_datetime(entity["event_timestamp"], utc=True)
    entity["row_id"] = range(len(entity))
    ours = F.historical_features(entity, settings=settings, store=store, lake=lake).set_index("row_id")
    theirs = feast_join(store, entity)
    columns = F.service_layout(store, "flight_delay_v1").feature_names
    assert_same_features(ours, theirs, columns)
    # Not vacuous: both sides hold values and nulls.
    assert ours["carrier_flights_1d"].notna().sum() >= 4 and ours["temp"].isna().sum() >= 8


@pytest.mark.slow
def test_equal_to_feast_on_real_replayed_flights(settings, lake):
    from airloop.ingest import ingest_day

    days = ds_range(D0, "2026-01-08")
    for day in days:
        for table in ("flights", "weather"):
            ingest_day(table, day, settings)
    for day in days:
        F.compute_features(logical_day(day), settings=settings, lake=lake)
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    ts = build_training_set(date(2026, 1, 2), date(2026, 1, 8), settings=settings, store=store, lake=lake)
    sample = ts.frame.sample(2000, random_state=7).reset_index(drop=True)
    entity = sample[[*KEYS, "event_timestamp"]].copy()
    entity["tailnum"] = entity["tailnum"].fillna("")
    entity["event_timestamp"] = entity["event_timestamp"].astype("datetime64[ns, UTC]")
    entity["row_id"] = range(len(entity))
    theirs = feast_join(store, entity)
    ours = sample.assign(row_id=range(len(sample))).set_index("row_id")
    assert_same_features(ours, theirs, F.service_layout(store, "flight_delay_v1").feature_names)
