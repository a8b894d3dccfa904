"""Scoring with the real features stage: ingested days, computed feature partitions, Feast repo.

``feature_env`` (session-scoped, also used by ``tests/plugins/test_scoring_operators.py``) ingests
the first replayed days, computes their features, applies the Feast repo, trains a small model
on the real training set and promotes it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pytest

from airloop.scoring import (
    view_prefixes,
    FeatureLookup,
    prediction_prefix,
    read_predictions,
    read_schedule,
    score_day,
    upstream_partitions,
)
from airloop.core.storage import read_manifest
from airloop.core.usecase import load_use_case

USE_CASE = load_use_case("airloop.usecases.flights:USE_CASE")
DAYS = [date(2025, 12, 30) + timedelta(days=i) for i in range(5)]  # the source's first days
SCORED = USE_CASE.day(DAYS[-1])


@dataclass
class FeatureEnv:
    settings: object
    lake: object
    version: int
    feature_columns: list[str]
    env: dict


@pytest.fixture(scope="session")
def feature_env(tmp_path_factory, loaded_source):
    """Real raw + feature partitions for DAYS, the Feast repo applied, a promoted model."""
    import xgboost as xgb

    from airloop import features
    from airloop.core.config import Settings, get_settings
    from airloop.ingest import ingest_day
    from airloop.registry import ModelRegistry
    from airloop.core.storage import open_lake, sha256_bytes
    from airloop.features.training_set import build_training_set

    data_dir = tmp_path_factory.mktemp("predict-features")
    env = {"AIRLOOP_DATA_DIR": str(data_dir), "AIRLOOP_SOURCE_URL": loaded_source}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("AIRLOOP_LAKE_URL", raising=False)
        mp.delenv("AIRLOOP_REGISTRY_URL", raising=False)
        get_settings.cache_clear()
        settings = Settings.from_env()
        lake = open_lake(settings)
        for day in DAYS:
            for table in USE_CASE.tables:
                ingest_day(table, day, settings)
        features.apply_definitions(settings)
        for day in DAYS:
            features.compute_features(USE_CASE.day(day), settings=settings)
        training = build_training_set(DAYS[1], DAYS[2], settings=settings)
        dtrain = xgb.DMatrix(
            training.frame[training.feature_columns], label=training.frame[training.label_column],
            feature_names=training.feature_columns,
        )  # fmt: skip
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 1}, dtrain, 15)
        data = bytes(booster.save_raw("ubj"))
        registry = ModelRegistry(settings.registry_url)
        name = USE_CASE.model.name
        mv = registry.reserve_version(
            name, feature_service=training.feature_service, feature_columns=training.feature_columns,
            window_start=DAYS[1], window_end=DAYS[2], fingerprint=training.fingerprint, params={}, metrics={},
            code_version="test", device="cpu",
        )  # fmt: skip
        key = f"models/{name}/v{mv.version}/model.ubj"
        lake.write_bytes(key, data)
        registry.finalize_version(name, mv.version, artifact_uri=lake.uri(key), sha256=sha256_bytes(data), reference_uri=None)
        registry.promote(name, mv.version, reason="test", actor="test")
    get_settings.cache_clear()
    return FeatureEnv(settings, lake, mv.version, list(training.feature_columns), env)


def clear_predictions(env: FeatureEnv) -> None:
    shutil.rmtree(env.lake.local_path("predictions"), ignore_errors=True)


def test_scores_a_day_with_the_real_feature_service(feature_env, loaded_source):
    from airloop import features

    env = feature_env
    clear_predictions(env)
    result = score_day(SCORED, settings=env.settings, model_version=env.version)
    part = read_predictions(env.lake, SCORED)
    used = read_predictions(env.lake, SCORED, logical_name="features.parquet")
    assert result.rows == len(part) == len(used) > 500
    assert part["score"].between(0, 1).all()
    assert list(used.columns[5:]) == env.feature_columns
    # The weather and delay statistics are mostly known for tonight's flights.
    assert used["temp"].notna().mean() > 0.9 and used["carrier_flights_7d"].notna().mean() > 0.9

    # Same values as the point-in-time join (the training path) at the prediction time.
    entities = features.entity_rows(_raw_flights(env, SCORED), settings=env.settings)
    entities["event_timestamp"] = pd.Timestamp(SCORED.cutoff)
    expected = features.historical_features(entities, settings=env.settings)
    key = list(USE_CASE.prediction.key)
    merged = used.merge(expected[key + env.feature_columns], on=key, suffixes=("", "_pit"), validate="one_to_one")
    assert len(merged) == len(used)
    for column in env.feature_columns:
        pd.testing.assert_series_equal(
            merged[column].astype("float64"), merged[f"{column}_pit"].astype("float64"), check_names=False
        )

    manifest = read_manifest(env.lake, prediction_prefix(SCORED))
    prefixes = view_prefixes(env.settings, USE_CASE, lake=env.lake)
    assert prefixes["carrier_delay_stats"] == "features/carrier_delay_stats/v2"  # the rows version, as registered
    assert [p["partition"] for p in manifest["inputs"]["partitions"]] == sorted(upstream_partitions(SCORED, USE_CASE, prefixes))
    assert all(p["partition"].endswith(f"ds={SCORED.shift(-1).key}") for p in manifest["inputs"]["partitions"])
    assert manifest["feature_service"] == USE_CASE.features.feature_service


def _raw_flights(env, day):
    from airloop.core.storage import read_partition_frame

    return read_partition_frame(env.lake, f"raw/flights/ds={day.key}")


def test_schedule_read_survives_feasts_sqlite_datetime_adapter(feature_env):
    """Feast's SQLite online store makes sqlite3 bind datetimes as epoch integers (globally)."""
    import feast.infra.online_stores.sqlite  # noqa: F401  registers the adapter
    from test_score import source_count

    from airloop.ingest.source import SourceDatabase

    source = SourceDatabase(feature_env.env["AIRLOOP_SOURCE_URL"], replay_offset_days=4746)
    _, chunks = read_schedule(source, USE_CASE, SCORED, chunk_rows=300)
    assert sum(len(c) for c in chunks) == source_count(feature_env.env["AIRLOOP_SOURCE_URL"], SCORED.date) > 500


def test_nightly_scoring_needs_only_the_previous_days_partitions(feature_env, tmp_path):
    """At D 02:00 only D-1 has been ingested: scoring must not need D's own partitions."""
    env = feature_env
    clear_predictions(env)
    moved = []
    for prefix in upstream_partitions(SCORED.shift(1), USE_CASE, view_prefixes(env.settings, USE_CASE, lake=env.lake)):  # day D
        source = env.lake.local_path(prefix)
        target = tmp_path / prefix.replace("/", "_")
        shutil.move(source, target)
        moved.append((target, source))
    try:
        result = score_day(SCORED, settings=env.settings, model_version=env.version)
    finally:
        for target, source in moved:
            shutil.move(target, source)
    used = read_predictions(env.lake, SCORED, logical_name="features.parquet")
    assert result.rows == len(used) > 500
    # The day's own features were not there, yet weather and delay statistics are known.
    assert used["temp"].notna().mean() > 0.9 and used["carrier_flights_7d"].notna().mean() > 0.9


def test_feature_lookup_names_the_model_inputs(feature_env):
    lookup = FeatureLookup(feature_env.settings, lake=feature_env.lake)
    assert lookup.columns() == feature_env.feature_columns
    assert lookup.service_name == USE_CASE.features.feature_service


def test_chunked_lookup_equals_one_chunk(feature_env):
    """Entities already seen (nulls included) are reused across chunks; the values do not change."""
    env = feature_env
    clear_predictions(env)
    score_day(SCORED, settings=env.settings, model_version=env.version, chunk_rows=1_000_000)
    whole = read_predictions(env.lake, SCORED, logical_name="features.parquet")
    score_day(SCORED, settings=env.settings, model_version=env.version, chunk_rows=61)
    chunked = read_predictions(env.lake, SCORED, logical_name="features.parquet")
    pd.testing.assert_frame_equal(chunked, whole)


def test_lookup_reuses_entities_with_null_keys_across_chunks(feature_env):
    """A null key (an aircraft without tail number) is looked up once, then found again."""
    env = feature_env
    lookup = FeatureLookup(env.settings, lake=env.lake)
    rows = _raw_flights(env, SCORED).head(50).copy()
    rows["tailnum"] = rows["tailnum"].astype("string")
    rows.loc[rows.index[:3], "tailnum"] = pd.NA
    as_of = SCORED.cutoff
    first = lookup.lookup(rows, as_of)
    second = lookup.lookup(rows, as_of)
    assert lookup._latest["aircraft_attributes"][0].is_unique
    pd.testing.assert_frame_equal(first, second)
    assert first.loc[rows.index[:3], "aircraft_seats"].isna().all()


@pytest.mark.parametrize("dtype", ["string", "object"])
def test_route_equals_concatenating_every_row(dtype):
    """The flights use case builds ``route`` per distinct pair; the same values as per row, nulls kept."""
    from airloop.usecases.flights import _route

    origin = pd.Series(["JFK", "LGA", None, "EWR", "JFK", "LGA"], dtype=dtype, index=range(10, 16))
    dest = pd.Series(["LAX", "ORD", "SFO", None, "LAX", "LAX"], dtype=dtype, index=range(10, 16))
    pd.testing.assert_series_equal(_route(origin, dest), origin + "-" + dest)
    empty = origin.iloc[:0]
    pd.testing.assert_series_equal(_route(empty, dest.iloc[:0]), empty + "-" + dest.iloc[:0])
