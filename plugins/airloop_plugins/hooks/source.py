"""SourceHook: the upstream source database (SQLAlchemy URL from the settings)."""

from __future__ import annotations

from functools import cached_property

from airloop_plugins.hooks.base import AirloopHook


class SourceHook(AirloopHook):
    """Open the upstream source database named by ``AIRLOOP_SOURCE_URL``.

    Errors name the URL without its password. The hook keeps no run state.
    """

    hook_name = "Airloop source"

    @cached_property
    def source(self):
        from airloop.ingest.source import SourceDatabase

        return SourceDatabase(self.settings.source_url, replay_offset_days=self.settings.replay_offset_days)

    def get_conn(self):
        return self.source
