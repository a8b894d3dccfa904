"""SourceHook: the upstream source database (SQLAlchemy URL from the settings)."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook


class SourceHook(BaseHook):
    """Open the upstream source database named by ``AIRLOOP_SOURCE_URL``.

    Errors name the URL without its password. The hook keeps no run state.
    """

    hook_name = "Airloop source"

    def __init__(self, settings=None, **kwargs):
        super().__init__(**kwargs)
        self._settings = settings

    @cached_property
    def settings(self):
        if self._settings is not None:
            return self._settings
        from airloop.config import get_settings

        return get_settings()

    @cached_property
    def source(self):
        from airloop.source import SourceDatabase

        return SourceDatabase(self.settings.source_url, replay_offset_days=self.settings.replay_offset_days)

    def get_conn(self):
        return self.source
