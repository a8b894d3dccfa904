"""OpenLineage dataset names for lake keys, and back.

A partition is named by its lake URI, split the way the OpenLineage naming spec splits object
storage and local files: ``s3://bucket/prefix/raw/flights/ds=D`` is namespace ``s3://bucket``,
name ``prefix/raw/flights/ds=D``; ``file:///srv/lake/raw/flights/ds=D`` is namespace ``file``,
name ``/srv/lake/raw/flights/ds=D``. A model version is the folder of its artifacts,
``models/<name>/v<N>`` (its registry version in the ``version`` facet). The source database's
tables are named by the database's URL, credentials removed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

FILE_NAMESPACE = "file"


def dataset_id(lake_url: str, node: str, *, source_url: str = "") -> tuple[str, str]:
    """``(namespace, name)`` of the node ``node`` of the lake at ``lake_url``."""
    if node.startswith("source:"):
        from airloop.core.redaction import redact_url

        return redact_url(source_url or "source://unknown"), node.split(":", 1)[1]
    uri = f"{lake_url.rstrip('/')}/{node}"
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return FILE_NAMESPACE, parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def node_of(namespace: str, name: str, lake_url: str) -> str:
    """The lake key a dataset ``(namespace, name)`` names; ``source:<name>`` outside the lake."""
    uri = f"file://{name}" if namespace == FILE_NAMESPACE else f"{namespace.rstrip('/')}/{name.lstrip('/')}"
    base = lake_url.rstrip("/") + "/"
    return uri[len(base) :] if uri.startswith(base) else f"source:{name}"
