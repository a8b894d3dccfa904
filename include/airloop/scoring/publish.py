"""Publishing from files: local output files become a lake partition, atomically, manifest last.

Like :func:`airloop.core.storage.publish_partition` (content-hashed names, sha256 in the
manifest), but streamed from files so a large day's outputs never sit in memory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

from airloop.core.storage import MANIFEST_NAME, Lake, LocalLake, S3Lake, StorageError, read_manifest


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _put_file(lake: Lake, key: str, path: Path, digest: str) -> None:
    """Copy a local file to ``key`` atomically, without loading it in memory where possible."""
    if isinstance(lake, LocalLake):
        target = lake.local_path(key)
        if target.is_file() and sha256_file(target)[0] == digest:
            return  # a rerun with identical content: the published file is already right
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex[:12]}{target.suffix}"
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            # Name the key, as LocalLake.write_bytes does (still an OSError with its errno).
            raise OSError(exc.errno, f"{exc.strerror or exc}: could not write {lake.uri(key)}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    elif isinstance(lake, S3Lake):
        full = f"{lake.prefix}/{key}" if lake.prefix else key
        try:
            lake.client.upload_file(str(path), lake.bucket, full)  # multipart for large files
        except Exception as exc:
            raise StorageError(f"could not write {lake.uri(key)}: {exc}") from exc
    else:
        lake.write_bytes(key, path.read_bytes())


def publish_files(lake: Lake, prefix: str, files: dict[str, Path], manifest: dict) -> dict:
    """Publish local files as a partition, like :func:`airloop.core.storage.publish_partition`.

    Same layout and manifest (content-hashed names, ``files`` with sha256, manifest last), but
    streamed from files so large outputs never sit in memory. After the switch it removes the
    files the *previous* manifest listed and the new one does not: never a file it does not
    know, which may be a concurrent run's for the same day, still waiting for its manifest.
    """
    previous = read_manifest(lake, prefix) or {}
    listed = []
    for logical, path in sorted(files.items()):
        digest, size = sha256_file(path)
        stem, dot, ext = logical.rpartition(".")
        name = f"{stem}-{digest[:12]}{dot}{ext}"
        _put_file(lake, f"{prefix}/{name}", path, digest)
        listed.append({"name": name, "logical_name": logical, "sha256": digest, "bytes": size})
    body = dict(manifest)
    body["files"] = listed
    body["partition"] = prefix
    lake.write_json(f"{prefix}/{MANIFEST_NAME}", body)
    keep = {f["name"] for f in listed}
    lake.delete([f"{prefix}/{f['name']}" for f in previous.get("files", []) if f["name"] not in keep])
    return body
