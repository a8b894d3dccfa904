"""The features stage's errors: each message names what to fix."""

from __future__ import annotations

from datetime import date


class FeatureError(RuntimeError):
    """Base class of the features stage's errors; messages name what to fix."""


class MissingRawPartition(FeatureError):
    """A raw partition a feature view needs was never published."""

    def __init__(self, table: str, ds: date, uri: str, view: str):
        self.table, self.ds, self.uri, self.view = table, ds, uri, view
        super().__init__(
            f"raw partition {table} for {ds} is missing ({uri} has no manifest); feature view {view!r} "
            f"needs it. Ingest that day first; nothing was written"
        )


class MissingFeaturePartition(FeatureError):
    """A feature partition needed for a lookup or a materialization was never computed."""


class FeatureSchemaMismatch(FeatureError):
    """Computed rows do not match the feature view's Feast definition."""


class IncompatibleDefinitionChange(FeatureError):
    """The repo's definitions change something already registered in a way that breaks consumers."""
