"""ModelRegistryHook: the model registry database (SQLite file or PostgreSQL)."""

from __future__ import annotations

from functools import cached_property

from airloop_plugins.hooks.base import AirloopHook


class ModelRegistryHook(AirloopHook):
    """Open :class:`airloop.registry.ModelRegistry` at ``AIRLOOP_REGISTRY_URL``.

    With ``registry_conn_id`` naming an Airflow connection (e.g. type ``postgres``), the URL
    comes from that connection instead, so the password stays in Airflow's secrets backend.
    The hook keeps no run state; errors name the URL without its password.
    """

    conn_name_attr = "registry_conn_id"
    default_conn_name = "airloop_registry"
    conn_type = "postgres"
    hook_name = "Airloop model registry"

    def __init__(self, registry_conn_id: str | None = None, settings=None, **kwargs):
        super().__init__(settings=settings, **kwargs)
        self.registry_conn_id = registry_conn_id

    @cached_property
    def url(self) -> str:
        if not self.registry_conn_id:
            return self.settings.registry_url
        uri = self.get_connection(self.registry_conn_id).get_uri()
        # Airflow writes postgres connections as postgres://; SQLAlchemy 2 wants postgresql://.
        return "postgresql" + uri[len("postgres") :] if uri.startswith("postgres://") else uri

    @cached_property
    def registry(self):
        from airloop.registry import ModelRegistry

        return ModelRegistry(self.url)

    def get_conn(self):
        return self.registry
