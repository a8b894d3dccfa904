"""Features: Feast definitions, feature partitions computed from the raw zone, point-in-time reads.

Computes ``features/<view>/ds=D/`` from raw partitions, applies the Feast repo, loads the online
store, and reads feature rows as of an instant (scoring) or for a training window
(``training_set``). Everything downstream asks for features through this package.
"""

from __future__ import annotations

from airloop.features.compute import (
    apply_definitions,
    compute_features,
    default_feature_service,
    definitions_hash,
    entity_rows,
    EVENT_TIMESTAMP,
    feast_environment,
    feature_columns,
    feature_store,
    FeatureError,
    features_as_of,
    FeatureSchemaMismatch,
    historical_features,
    IncompatibleDefinitionChange,
    load_definitions,
    materialize,
    MissingFeaturePartition,
    MissingRawPartition,
    prediction_time,
    repo_yaml,
    service_layout,
    service_layout_from_definitions,
    ServiceLayout,
    skew_check,
    ViewLayout,
    _registry_summary,
    _use_case,
)
from airloop.features.training_set import (
    build_training_set,
)

__all__ = [
    "EVENT_TIMESTAMP",
    "FeatureError",
    "FeatureSchemaMismatch",
    "IncompatibleDefinitionChange",
    "MissingFeaturePartition",
    "MissingRawPartition",
    "ServiceLayout",
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
    "materialize",
    "prediction_time",
    "repo_yaml",
    "service_layout",
    "service_layout_from_definitions",
    "skew_check",
]
