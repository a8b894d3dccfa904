"""The storage layer on a local folder and on a real S3-compatible server (moto's server mode)."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from airloop.core.config import Settings, SettingsError
from testkit import FailingLake
from airloop.core.storage import (
    MANIFEST_NAME,
    Lake,
    LocalLake,
    PartitionCorrupt,
    PartitionNotFound,
    S3Lake,
    StorageError,
    frame_to_parquet,
    list_partitions,
    open_lake,
    publish_partition,
    read_manifest,
    read_partition_files,
    read_partition_frame,
    require_manifest,
    sha256_bytes,
)




@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path) -> Lake:
    """A fresh, empty lake: a local folder, or a new bucket on the moto server."""
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    endpoint = request.getfixturevalue("s3_env")
    lake = S3Lake(f"s3://airloop-test-{uuid.uuid4().hex[:10]}/lake", endpoint_url=endpoint)
    assert lake.ensure_bucket() is True
    assert lake.ensure_bucket() is False
    return lake


def frame(n: int = 5, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": range(offset, offset + n), "value": [i * 1.5 for i in range(n)], "code": ["a"] * n})


# --- byte level -------------------------------------------------------------------------------


def test_write_read_list_delete_round_trip(any_lake):
    any_lake.write_bytes("raw/t/ds=2026-01-01/a.bin", b"one")
    any_lake.write_bytes("raw/t/ds=2026-01-02/b.bin", b"two")
    any_lake.write_bytes("raw/u/ds=2026-01-01/c.bin", b"three")
    assert any_lake.read_bytes("raw/t/ds=2026-01-02/b.bin") == b"two"
    assert any_lake.exists("raw/t/ds=2026-01-01/a.bin")
    assert not any_lake.exists("raw/t/ds=2026-01-01/missing.bin")
    assert any_lake.list_keys("raw/t/") == ["raw/t/ds=2026-01-01/a.bin", "raw/t/ds=2026-01-02/b.bin"]
    assert any_lake.list_keys("nothing/") == []
    any_lake.write_bytes("raw/t/ds=2026-01-01/a.bin", b"replaced")
    assert any_lake.read_bytes("raw/t/ds=2026-01-01/a.bin") == b"replaced"
    any_lake.delete(["raw/t/ds=2026-01-01/a.bin", "raw/t/ds=2026-01-01/never-existed.bin"])
    assert any_lake.list_keys("raw/") == ["raw/t/ds=2026-01-02/b.bin", "raw/u/ds=2026-01-01/c.bin"]
    assert any_lake.uri("raw/x") == f"{any_lake.url}/raw/x"


def test_reading_a_missing_key_names_it(any_lake):
    with pytest.raises(StorageError, match="raw/t/none.bin"):
        any_lake.read_bytes("raw/t/none.bin")


def test_local_lake_refuses_keys_outside_its_root(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(StorageError, match="escapes the lake root"):
        lake.write_bytes("../outside.bin", b"x")
    assert not (tmp_path / "outside.bin").exists()


def test_local_write_leaves_no_temp_file_when_it_fails(tmp_path, monkeypatch):
    import os

    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes("a/b.bin", b"good")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        lake.write_bytes("a/b.bin", b"new")
    assert lake.read_bytes("a/b.bin") == b"good"
    assert sorted(p.name for p in (tmp_path / "lake" / "a").iterdir()) == ["b.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_local_lake_files_get_the_mode_the_umask_gives(tmp_path, umask):
    import os
    import stat

    previous = os.umask(umask)
    try:
        lake = LocalLake(tmp_path / "lake")
        lake.write_bytes("raw/t/ds=2026-01-01/a.bin", b"one")
        published = publish_partition(lake, "raw/t/ds=2026-01-02", {"part.parquet": frame_to_parquet(frame())}, {})
    finally:
        os.umask(previous)
    keys = ["raw/t/ds=2026-01-01/a.bin", f"{published.prefix}/{published.files[0]}", f"{published.prefix}/{MANIFEST_NAME}"]
    modes = {key: stat.S_IMODE((tmp_path / "lake" / key).stat().st_mode) for key in keys}
    assert modes == dict.fromkeys(keys, 0o666 & ~umask)  # 0644 under 022, 0640 under 027: never 0600
    folder = stat.S_IMODE((tmp_path / "lake" / "raw" / "t").stat().st_mode)
    assert folder == 0o777 & ~umask


def test_s3_errors_name_the_object_and_endpoint(s3_env):
    lake = S3Lake(f"s3://airloop-missing-{uuid.uuid4().hex[:8]}/lake", endpoint_url=s3_env)
    with pytest.raises(StorageError) as err:
        lake.write_bytes("raw/x.bin", b"x")
    assert f"{lake.url}/raw/x.bin" in str(err.value) and s3_env in str(err.value)


def test_s3_unreachable_endpoint_fails_with_a_clear_error(monkeypatch):
    import socket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    lake = S3Lake("s3://bucket/lake", endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(StorageError, match=f"could not read s3://bucket/lake/k via http://127.0.0.1:{port}"):
        lake.read_bytes("k")


# --- partitions ---------------------------------------------------------------------------------


def test_publish_writes_content_addressed_files_then_the_manifest_last(any_lake):
    recorder = FailingLake(any_lake, fail_after=10**6)
    files = {"part.parquet": frame_to_parquet(frame()), "extra.json": b'{"a": 1}'}
    published = publish_partition(recorder, "raw/t/ds=2026-01-01", files, {"rows": 5})

    assert recorder.writes[-1] == f"raw/t/ds=2026-01-01/{MANIFEST_NAME}"
    manifest = require_manifest(any_lake, "raw/t/ds=2026-01-01")
    assert manifest == published.manifest
    assert manifest["rows"] == 5 and manifest["partition"] == "raw/t/ds=2026-01-01"
    for entry in manifest["files"]:
        data = files[entry["logical_name"]]
        assert entry["sha256"] == sha256_bytes(data) and entry["bytes"] == len(data)
        assert entry["sha256"][:12] in entry["name"]
    assert sorted(published.files) == sorted(e["name"] for e in manifest["files"])
    assert read_partition_frame(any_lake, "raw/t/ds=2026-01-01").equals(frame())


def test_republishing_the_same_data_gives_identical_bytes(any_lake):
    prefix = "raw/t/ds=2026-01-01"
    publish_partition(any_lake, prefix, {"part.parquet": frame_to_parquet(frame())}, {"rows": 5})
    first = {k: any_lake.read_bytes(k) for k in any_lake.list_keys(prefix + "/")}
    publish_partition(any_lake, prefix, {"part.parquet": frame_to_parquet(frame())}, {"rows": 5})
    second = {k: any_lake.read_bytes(k) for k in any_lake.list_keys(prefix + "/")}
    assert first == second and len(first) == 2


def test_republishing_new_data_replaces_the_partition_and_removes_stale_files(any_lake):
    prefix = "raw/t/ds=2026-01-01"
    old = publish_partition(any_lake, prefix, {"part.parquet": frame_to_parquet(frame())}, {"rows": 5})
    new = publish_partition(any_lake, prefix, {"part.parquet": frame_to_parquet(frame(3, 100))}, {"rows": 3})
    assert old.files != new.files
    assert any_lake.list_keys(prefix + "/") == sorted([f"{prefix}/{new.files[0]}", f"{prefix}/{MANIFEST_NAME}"])
    assert read_partition_frame(any_lake, prefix)["id"].tolist() == [100, 101, 102]


def test_frame_to_parquet_is_deterministic_and_round_trips():
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-01T05:00:00Z", None], utc=True),
            "n": pd.array([1, None], dtype="Int64"),
            "s": pd.array(["x", None], dtype="string"),
        }
    )
    assert frame_to_parquet(df) == frame_to_parquet(df.copy())
    back = pd.read_parquet(__import__("io").BytesIO(frame_to_parquet(df)))
    assert back["n"].isna().tolist() == [False, True] and str(back["ts"].dt.tz) == "UTC"


def test_unpublished_and_corrupt_partitions_are_refused(any_lake):
    prefix = "raw/t/ds=2026-01-01"
    assert read_manifest(any_lake, prefix) is None
    with pytest.raises(PartitionNotFound, match="never published"):
        read_partition_frame(any_lake, prefix)
    published = publish_partition(any_lake, prefix, {"part.parquet": frame_to_parquet(frame())}, {})
    any_lake.write_bytes(f"{prefix}/{published.files[0]}", b"tampered")
    with pytest.raises(PartitionCorrupt, match="sha256 does not match"):
        read_partition_frame(any_lake, prefix)
    with pytest.raises(PartitionCorrupt, match="lists no features.parquet"):
        any_lake.write_bytes(f"{prefix}/{published.files[0]}", frame_to_parquet(frame()))
        read_partition_frame(any_lake, prefix, logical_name="features.parquet")


def test_list_partitions_shows_only_published_ones(any_lake):
    publish_partition(any_lake, "raw/t/ds=2026-01-02", {"part.parquet": b"b"}, {})
    publish_partition(any_lake, "raw/t/ds=2026-01-01", {"part.parquet": b"a"}, {})
    any_lake.write_bytes("raw/t/ds=2026-01-03/part-abc.parquet", b"orphan without manifest")
    assert list_partitions(any_lake, "raw/t") == ["raw/t/ds=2026-01-01", "raw/t/ds=2026-01-02"]
    assert list_partitions(any_lake, "raw/none") == []


@pytest.mark.parametrize("fail_after", [0, 1, 2], ids=["before-any-file", "after-one-file", "at-the-manifest"])
def test_a_failure_mid_publish_keeps_the_previous_partition(any_lake, fail_after):
    """Storage failing mid-write: the previous good partition stays readable and unchanged."""
    prefix = "raw/t/ds=2026-01-01"
    good = {"a.parquet": frame_to_parquet(frame()), "b.parquet": frame_to_parquet(frame(2))}
    publish_partition(any_lake, prefix, good, {"rows": 5})
    manifest_before, files_before = read_partition_files(any_lake, prefix)

    failing = FailingLake(any_lake, fail_after=fail_after)
    new = {"a.parquet": frame_to_parquet(frame(7, 50)), "b.parquet": frame_to_parquet(frame(1, 90))}
    with pytest.raises(StorageError, match="simulated failure"):
        publish_partition(failing, prefix, new, {"rows": 7})
    assert len(failing.writes) == fail_after

    manifest_after, files_after = read_partition_files(any_lake, prefix)
    assert manifest_after == manifest_before and files_after == files_before
    assert list_partitions(any_lake, "raw/t") == [prefix]


@pytest.mark.parametrize("fail_after", [0, 1])
def test_a_failure_on_a_first_publish_leaves_no_visible_partition(any_lake, fail_after):
    prefix = "raw/t/ds=2026-01-05"
    with pytest.raises(StorageError, match="simulated failure"):
        publish_partition(FailingLake(any_lake, fail_after), prefix, {"part.parquet": b"x", "z.bin": b"y"}, {})
    assert read_manifest(any_lake, prefix) is None
    assert list_partitions(any_lake, "raw/t") == []
    with pytest.raises(PartitionNotFound):
        read_partition_frame(any_lake, prefix)
    # A later successful publish of the same partition cleans up what the failed one left.
    publish_partition(any_lake, prefix, {"part.parquet": b"x"}, {})
    assert any_lake.list_keys(prefix + "/") == sorted(
        [f"{prefix}/{MANIFEST_NAME}", f"{prefix}/{require_manifest(any_lake, prefix)['files'][0]['name']}"]
    )


def test_manifests_are_sorted_json_without_wall_clock(any_lake):
    publish_partition(any_lake, "raw/t/ds=2026-01-01", {"part.parquet": b"x"}, {"rows": 1, "b": 2, "a": 1})
    text = any_lake.read_bytes(f"raw/t/ds=2026-01-01/{MANIFEST_NAME}").decode()
    assert list(json.loads(text)) == sorted(json.loads(text))


# --- selection by setting -----------------------------------------------------------------------


def test_open_lake_selects_the_backend_from_one_setting(tmp_path):
    local = open_lake(Settings(lake_url=(tmp_path / "lake").as_uri()))
    assert isinstance(local, LocalLake) and local.root == tmp_path / "lake"
    s3 = open_lake(Settings(lake_url="s3://bucket/some/prefix", s3_endpoint_url="http://127.0.0.1:9"))
    assert isinstance(s3, S3Lake)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "some/prefix", "http://127.0.0.1:9")
    with pytest.raises(StorageError, match="use file:// or s3://"):
        open_lake(Settings(), url="gs://bucket/lake")


def test_an_unsupported_lake_url_setting_is_refused(monkeypatch):
    monkeypatch.setenv("AIRLOOP_LAKE_URL", "/no/scheme/lake")
    with pytest.raises(SettingsError, match="AIRLOOP_LAKE_URL must start with file:// or s3://"):
        Settings.from_env()


def test_s3_lake_with_a_prefix_lists_keys_relative_to_it(s3_env):
    bucket = f"airloop-test-{uuid.uuid4().hex[:10]}"
    deep = S3Lake(f"s3://{bucket}/team/lake", endpoint_url=s3_env)
    deep.ensure_bucket()
    other = S3Lake(f"s3://{bucket}/other", endpoint_url=s3_env)
    deep.write_bytes("raw/a.bin", b"a")
    other.write_bytes("raw/b.bin", b"b")
    assert deep.list_keys("raw/") == ["raw/a.bin"]
    assert other.list_keys("") == ["raw/b.bin"]
    assert deep.client.get_object(Bucket=bucket, Key="team/lake/raw/a.bin")["Body"].read() == b"a"
