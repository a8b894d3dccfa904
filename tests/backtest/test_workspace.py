"""The backtest's workspace: a policy's lake reads the shared zones and never writes them; the
checkpoint puts the registry back as it was at the end of the last finished day."""

from __future__ import annotations

import sqlite3

import pytest

from airloop.backtest import Checkpoint, Workspace, WorkspaceError, WorkspaceLake
from airloop.backtest.workspace import policy_slug
from airloop.core.storage import LocalLake, StorageError


def test_a_policy_lake_reads_shared_zones_and_refuses_to_write_them(tmp_path):
    shared = LocalLake(tmp_path / "shared")
    shared.write_bytes("raw/flights/ds=2026-06-10/part.parquet", b"raw")
    shared.write_bytes("features/v/ds=2026-06-10/part.parquet", b"feat")
    lake = WorkspaceLake(tmp_path / "policy", shared)
    assert lake.read_bytes("raw/flights/ds=2026-06-10/part.parquet") == b"raw"
    assert lake.exists("features/v/ds=2026-06-10/part.parquet")
    assert lake.list_keys("raw/flights") == ["raw/flights/ds=2026-06-10/part.parquet"]
    assert lake.uri("raw/flights/x") == shared.uri("raw/flights/x")
    assert lake.local_path("raw/flights/ds=2026-06-10/part.parquet").read_bytes() == b"raw"  # DuckDB reads in place
    with pytest.raises(StorageError, match="shared zone"):
        lake.write_bytes("raw/flights/ds=2026-06-10/part.parquet", b"overwritten")
    with pytest.raises(StorageError, match="shared keys"):
        lake.delete(["features/v/ds=2026-06-10/part.parquet"])
    assert shared.read_bytes("raw/flights/ds=2026-06-10/part.parquet") == b"raw"
    lake.write_bytes("predictions/ds=2026-06-10/part.parquet", b"pred")
    assert (tmp_path / "policy" / "predictions" / "ds=2026-06-10" / "part.parquet").read_bytes() == b"pred"
    assert not shared.exists("predictions/ds=2026-06-10/part.parquet")
    assert lake.uri("models/m/v1/model.ubj").startswith((tmp_path / "policy").as_uri())


def test_policy_folders_and_settings(tmp_path, settings):
    workspace = Workspace.open(tmp_path / "ws", settings)
    assert policy_slug("scheduled+drift:7") == "scheduled+drift_7"
    assert workspace.policy_dir("scheduled+drift:7").name == "scheduled+drift_7"
    psettings = workspace.policy_settings(settings, "frozen")
    assert psettings.registry_url == f"sqlite:///{tmp_path / 'ws' / 'policies' / 'frozen' / 'registry.db'}"
    assert psettings.data_dir == tmp_path / "ws" / "shared"  # the shared Feast repo and scratch space
    assert psettings.source_url == settings.source_url
    assert settings.registry_url not in (psettings.registry_url, workspace.shared_settings(settings).registry_url)
    with pytest.raises(WorkspaceError, match="live data folder"):
        Workspace.open(settings.data_dir.parent, settings)


def _db(path, rows):
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        conn.execute("DELETE FROM t")
        conn.executemany("INSERT INTO t VALUES (?)", [(r,) for r in rows])


def _rows(path):
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


def test_the_checkpoint_restores_the_registry_of_the_last_finished_day(tmp_path):
    registry = tmp_path / "registry.db"
    checkpoint = Checkpoint(tmp_path / "checkpoint", registry)
    assert checkpoint.load() is None
    _db(registry, [1])
    checkpoint.save({"days": [{"ds": "2026-06-10"}]}, "2026-06-10")
    _db(registry, [1, 2])
    checkpoint.save({"days": [{"ds": "2026-06-10"}, {"ds": "2026-06-11"}]}, "2026-06-11")
    assert [p.name for p in (tmp_path / "checkpoint").glob("registry-*.db")] == ["registry-2026-06-11.db"]
    _db(registry, [1, 2, 3, 99])  # the killed day's half-done writes
    state = checkpoint.load()
    checkpoint.restore(state)
    assert _rows(registry) == [1, 2]
    assert [d["ds"] for d in state["days"]] == ["2026-06-10", "2026-06-11"]


def test_an_unreadable_or_incomplete_checkpoint_says_what_to_do(tmp_path):
    checkpoint = Checkpoint(tmp_path / "checkpoint", tmp_path / "registry.db")
    (tmp_path / "checkpoint").mkdir()
    checkpoint.state_path.write_text("{half")
    with pytest.raises(WorkspaceError, match="remove the workspace"):
        checkpoint.load()
    with pytest.raises(WorkspaceError, match="missing"):
        checkpoint.restore({"registry_copy": "registry-2026-06-10.db"})
