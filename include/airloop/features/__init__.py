"""Features: computed from the raw zone, defined in Feast, served identically offline and online.

The stage in one page:

* :func:`compute_features` computes a day's rows of every feature view of the use case from raw
  partitions (``raw/<table>/ds=...``) and publishes them as ``features/<view>/ds=D/``. Every
  raw partition it needs must exist (checked before anything is written); the manifest lists
  the raw partitions (and dimension tables) it used. A rerun writes the same bytes.
* The Feast repo (``feature_repo/``) declares entities, feature views and versioned feature
  services. :func:`apply_definitions` applies it only when its definitions differ from the
  registry's, refuses incompatible changes before writing anything, and serialises concurrent
  applies with a lock.
* :func:`historical_features` is the point-in-time join (Feast's semantics, run in DuckDB);
  :func:`features_as_of` is the scoring fast path, the same lookup at one instant.
* :func:`materialize` loads the online store, never replacing a newer value with an older one;
  :func:`skew_check` compares online values with :func:`features_as_of`.
* :func:`build_training_set` labels a window of days with features as of each day's cutoff.

The days these functions work on are :class:`airloop.core.dates.LogicalDay` values (a window's
bounds: ``datetime.date``), parsed once by the caller (``use_case.day(...)``).

Submodules:

* ``errors``: :class:`FeatureError` and its kinds.
* ``feast_repo``: the profile's ``feature_store*.yaml``, :func:`feature_store`, the repo's
  definitions, the registry lock.
* ``layout``: :class:`ViewLayout` / :class:`ServiceLayout` (what a feature service consumes,
  as plain data), the use case's feature service and model input columns.
* ``apply``: :func:`apply_definitions` and the compatibility check.
* ``registered_layout``: registered layouts recorded in the lake, for processes that skip Feast.
* ``compute``: :func:`compute_features` (feature partitions from raw partitions).
* ``offline_store``: the PostgreSQL copy of the partitions (services profile).
* ``point_in_time``: reading partitions, :func:`historical_features`, :func:`features_as_of`.
* ``online``: :func:`materialize` and :func:`online_features`.
* ``skew``: :func:`skew_check`.
* ``training_set``: :func:`build_training_set`.
"""

from __future__ import annotations

from airloop.features.apply import ApplyResult, apply_definitions, definitions_hash
from airloop.features.compute import compute_features
from airloop.features.errors import (
    FeatureError,
    FeatureSchemaMismatch,
    IncompatibleDefinitionChange,
    MissingFeaturePartition,
    MissingRawPartition,
)
from airloop.features.feast_repo import feast_environment, feature_store, load_definitions, repo_yaml
from airloop.features.layout import (
    EVENT_TIMESTAMP,
    ServiceLayout,
    ViewLayout,
    default_feature_service,
    feature_columns,
    load_feature_use_case,
    service_layout,
    service_layout_from_definitions,
)
from airloop.features.online import MaterializeResult, materialize, online_features
from airloop.features.point_in_time import entity_rows, features_as_of, historical_features
from airloop.features.skew import SkewReport, skew_check
from airloop.features.training_set import TrainingSet, build_training_set, read_events

__all__ = [
    "EVENT_TIMESTAMP",
    "ApplyResult",
    "FeatureError",
    "FeatureSchemaMismatch",
    "IncompatibleDefinitionChange",
    "MaterializeResult",
    "MissingFeaturePartition",
    "MissingRawPartition",
    "ServiceLayout",
    "SkewReport",
    "TrainingSet",
    "ViewLayout",
    "apply_definitions",
    "build_training_set",
    "compute_features",
    "default_feature_service",
    "definitions_hash",
    "entity_rows",
    "feast_environment",
    "feature_columns",
    "feature_store",
    "features_as_of",
    "historical_features",
    "load_definitions",
    "load_feature_use_case",
    "materialize",
    "online_features",
    "read_events",
    "repo_yaml",
    "service_layout",
    "service_layout_from_definitions",
    "skew_check",
]
