"""One storage layer for the lake and model artifacts: a local folder or an S3-compatible bucket.

Keys are ``/``-separated paths relative to the lake root (``raw/flights/ds=2026-03-01/...``).
A *partition* is a key prefix holding data files plus a ``_manifest.json`` that lists them with
their sha256. Publishing writes the data files under content-addressed names first and the
manifest last, with an atomic rename (local) or a single PUT (S3): a reader that starts from the
manifest never sees a half-written partition, and a failure mid-write leaves the previous
partition (manifest and files) untouched. Files no longer listed are removed after the switch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from airloop.core.redaction import redact_text, redact_url

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings

MANIFEST_NAME = "_manifest.json"


class StorageError(RuntimeError):
    """A lake operation failed; the message names the lake URL and key."""


class PartitionNotFound(StorageError):
    """A partition has no manifest: it was never published (or not completely)."""


class PartitionCorrupt(StorageError):
    """A partition's files do not match its manifest."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Lake(ABC):
    """Byte-level access to the lake; each ``write_bytes`` is atomic for its key."""

    url: str

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under ``prefix`` (recursive), sorted."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None: ...

    def uri(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


class LocalLake(Lake):
    """A lake in a local folder (``file:///abs/path``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise StorageError(f"key {key!r} escapes the lake root {self.root}")
        return path

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not mkstemp: its files are 0600 whatever the umask. Created like any other file, the
        # data gets the mode the process's umask gives (0644 under 022), as operators expect.
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}{path.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            # "[Errno 28] No space left on device" alone does not say which write failed: name the
            # key (still an OSError with its errno, so callers that catch one keep working).
            raise OSError(exc.errno, f"{exc.strerror or exc}: could not write {self.uri(key)}") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{self.uri(key)} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        if base.is_file():
            return [prefix]
        root = self.root.resolve()
        return sorted(
            str(p.relative_to(root)).replace(os.sep, "/")
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        """The file behind ``key`` (local lakes only; lets DuckDB read in place)."""
        return self._path(key)


class S3Lake(Lake):
    """A lake in an S3 bucket (``s3://bucket/prefix``) on AWS or any S3-compatible server."""

    def __init__(self, url: str, *, endpoint_url: str = "", region: str = "us-east-1", client=None):
        parts = urlsplit(url)
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.url = url.rstrip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60),
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, exc: Exception) -> StorageError:
        where = f" via {redact_url(self.endpoint_url)}" if self.endpoint_url else ""
        return StorageError(f"could not {action} {self.uri(key)}{where}: {redact_text(exc)}")

    def ensure_bucket(self) -> bool:
        """Create the bucket if it is missing; return True when it was created."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError:
            kwargs = {}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self.client.create_bucket(Bucket=self.bucket, **kwargs)
            return True

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:  # botocore raises many unrelated types
            raise self._fail("write", key, exc) from exc

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            raise self._fail("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail("check", key, exc) from exc

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as exc:
            raise self._fail("list", prefix, exc) from exc
        return sorted(keys)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        batch = [{"Key": self._key(k)} for k in keys]
        for start in range(0, len(batch), 1000):
            chunk = batch[start : start + 1000]
            try:
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
            except Exception as exc:
                raise self._fail("delete", keys[start], exc) from exc
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(
                    f"could not delete {len(response['Errors'])} objects from {self.url}, "
                    f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )


def open_lake(settings: "Settings | None" = None, url: str | None = None) -> Lake:
    """Open the lake named by ``url`` or by the settings' ``lake_url``."""
    if settings is None:
        from airloop.core.config import get_settings

        settings = get_settings()
    url = url or settings.lake_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalLake(Path(parts.path))
    if parts.scheme == "s3":
        return S3Lake(url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    raise StorageError(f"unsupported lake URL {url!r}: use file:// or s3://")


# --- partitions -----------------------------------------------------------------------------


def partition_prefix(zone: str, table: str, ds: str) -> str:
    """``raw/flights/ds=2026-03-01`` style prefix of one daily partition."""
    return f"{zone}/{table}/ds={ds}" if table else f"{zone}/ds={ds}"


def frame_to_parquet(frame: "pd.DataFrame") -> bytes:
    """Serialize a frame to Parquet deterministically (same frame -> same bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    # pandas metadata embeds nothing run-specific, but drop it so bytes depend on data only.
    table = table.replace_schema_metadata(None)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue()


@dataclass(frozen=True)
class PublishedPartition:
    prefix: str
    manifest: dict

    @property
    def files(self) -> list[str]:
        return [f["name"] for f in self.manifest["files"]]


def publish_partition(
    lake: Lake,
    prefix: str,
    files: dict[str, bytes],
    manifest: dict,
) -> PublishedPartition:
    """Publish ``files`` under ``prefix`` atomically: data first, manifest last, then clean up.

    File names get their content hash (``part-<sha12>.parquet``) so a rerun with the same data
    writes the same names and bytes, and a rerun with new data never overwrites a file that the
    current manifest still lists.

    :param files: logical name (``part.parquet``) -> bytes.
    :param manifest: extra fields for the manifest (row counts, source window, ...).
    """
    listed = []
    for logical, data in sorted(files.items()):
        digest = sha256_bytes(data)
        stem, dot, ext = logical.rpartition(".")
        name = f"{stem or logical}-{digest[:12]}{dot}{ext}" if dot else f"{logical}-{digest[:12]}"
        lake.write_bytes(f"{prefix}/{name}", data)
        listed.append({"name": name, "logical_name": logical, "sha256": digest, "bytes": len(data)})
    body = dict(manifest)
    body["files"] = listed
    body["partition"] = prefix
    lake.write_json(f"{prefix}/{MANIFEST_NAME}", body)
    keep = {f"{prefix}/{f['name']}" for f in listed} | {f"{prefix}/{MANIFEST_NAME}"}
    stale = [k for k in lake.list_keys(prefix + "/") if k not in keep]
    lake.delete(stale)
    return PublishedPartition(prefix, body)


def read_manifest(lake: Lake, prefix: str) -> dict | None:
    """The partition's manifest, or None when it was never (completely) published."""
    key = f"{prefix}/{MANIFEST_NAME}"
    if not lake.exists(key):
        return None
    return lake.read_json(key)


def require_manifest(lake: Lake, prefix: str) -> dict:
    manifest = read_manifest(lake, prefix)
    if manifest is None:
        raise PartitionNotFound(f"partition {lake.uri(prefix)} has no {MANIFEST_NAME}: it was never published")
    return manifest


def read_partition_files(lake: Lake, prefix: str, *, verify: bool = True) -> tuple[dict, dict[str, bytes]]:
    """Read a partition's manifest and the bytes of every file it lists (checked by sha256)."""
    manifest = require_manifest(lake, prefix)
    out = {}
    for entry in manifest["files"]:
        data = lake.read_bytes(f"{prefix}/{entry['name']}")
        if verify and sha256_bytes(data) != entry["sha256"]:
            raise PartitionCorrupt(
                f"{lake.uri(prefix)}/{entry['name']}: sha256 does not match the manifest "
                f"(expected {entry['sha256'][:12]}, got {sha256_bytes(data)[:12]})"
            )
        out[entry["logical_name"]] = data
    return manifest, out


def read_partition_frame(
    lake: Lake, prefix: str, *, logical_name: str = "part.parquet", columns: list[str] | None = None
) -> "pd.DataFrame":
    """Read one Parquet file of a published partition as a DataFrame."""
    import pyarrow.parquet as pq

    _, files = read_partition_files(lake, prefix)
    if logical_name not in files:
        raise PartitionCorrupt(f"{lake.uri(prefix)} lists no {logical_name}")
    return pq.read_table(io.BytesIO(files[logical_name]), columns=columns).to_pandas()


def list_partitions(lake: Lake, zone_prefix: str) -> list[str]:
    """Published partition prefixes under ``zone_prefix`` (those with a manifest), sorted."""
    suffix = "/" + MANIFEST_NAME
    return sorted(k[: -len(suffix)] for k in lake.list_keys(zone_prefix.rstrip("/") + "/") if k.endswith(suffix))


def new_run_token() -> str:
    return uuid.uuid4().hex[:12]
