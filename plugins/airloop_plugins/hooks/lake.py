"""LakeHook: the lake and artifact store (local folder or S3-compatible bucket via boto3)."""

from __future__ import annotations

from functools import cached_property

from airloop_plugins.hooks.base import AirloopHook


class LakeHook(AirloopHook):
    """Open the lake named by the settings (``AIRLOOP_LAKE_URL``).

    With ``lake_conn_id`` naming an Airflow connection (type ``aws``), the S3 credentials and
    the endpoint (``extra.endpoint_url``) come from it; otherwise from the standard AWS
    environment variables. The hook keeps no run state.
    """

    conn_name_attr = "lake_conn_id"
    default_conn_name = "airloop_lake"
    conn_type = "aws"
    hook_name = "Airloop lake"

    def __init__(self, lake_conn_id: str | None = None, settings=None, **kwargs):
        super().__init__(settings=settings, **kwargs)
        self.lake_conn_id = lake_conn_id

    @cached_property
    def lake(self):
        from airloop.core.storage import S3Lake, open_lake

        lake = open_lake(self.settings)
        if isinstance(lake, S3Lake) and self.lake_conn_id:
            import boto3

            conn = self.get_connection(self.lake_conn_id)
            extra = conn.extra_dejson
            lake._client = boto3.client(
                "s3",
                aws_access_key_id=conn.login or None,
                aws_secret_access_key=conn.password or None,
                endpoint_url=extra.get("endpoint_url") or self.settings.s3_endpoint_url or None,
                region_name=extra.get("region_name") or self.settings.s3_region,
            )
        return lake

    def get_conn(self):
        return self.lake
