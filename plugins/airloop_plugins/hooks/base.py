"""AirloopHook: what every Airloop hook shares, the settings it reads its locations from."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook


class AirloopHook(BaseHook):
    """A hook configured by :class:`airloop.core.config.Settings`.

    :param settings: explicit settings (tests, the CLI); the process-wide ones when omitted.
    """

    def __init__(self, settings=None, **kwargs):
        super().__init__(**kwargs)
        self._settings = settings

    @cached_property
    def settings(self):
        if self._settings is not None:
            return self._settings
        from airloop.core.config import get_settings

        return get_settings()
