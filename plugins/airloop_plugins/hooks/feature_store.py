"""FeatureStoreHook: the Feast feature store (registry, offline and online stores) of the settings."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airloop_plugins.hooks.base import AirloopHook

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay


class FeatureStoreHook(AirloopHook):
    """Open Airloop's Feast feature store (``feature_repo/`` with the profile's ``feature_store*.yaml``).

    The store's locations come from the settings and the environment (see
    :func:`airloop.features.feast_environment`): SQL registry and SQLite online store under the
    data dir (embedded), or PostgreSQL and Redis (services). The hook keeps no run state.
    """

    hook_name = "Airloop feature store"

    @cached_property
    def store(self):
        from airloop.features import feature_store

        return feature_store(self.settings)

    def get_conn(self):
        return self.store

    def apply(self):
        """Apply the repo when its definitions changed; returns :class:`airloop.features.ApplyResult`."""
        from airloop.features import apply_definitions

        return apply_definitions(self.settings, store=self.store)

    def materialize(self, start: "LogicalDay", end: "LogicalDay", *, lake=None):
        """Load the latest rows of partitions ``[start, end]`` (days, inclusive) into the online store."""
        from airloop.features import materialize

        return materialize(start, end, settings=self.settings, store=self.store, lake=lake)
