"""A backtest's own workspace: the shared data, one folder per policy, and the checkpoints.

Layout under the workspace folder (never the live registry or lake)::

    shared/                 data_dir of the policy-independent work
      lake/                 raw/, staging/, quarantine/, features/, training_sets/
      feast/                the Feast registry and online store of this workspace
    policies/<policy>/
      lake/                 models/, candidates/, predictions/, reports/ of this policy
      registry.db           its registry, monitoring tables and scoring runs (SQLite)
      checkpoint/           state.json and the registry as of the last finished day
    backtest.json, backtest.csv, backtest.html

A policy's lake (:class:`WorkspaceLake`) reads the shared zones from ``shared/lake`` and refuses
to write there, so ingestion and features are computed once for every policy.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from airloop.core.storage import LocalLake, StorageError

if TYPE_CHECKING:
    from airloop.core.config import Settings

SHARED_ZONES = ("raw", "staging", "quarantine", "features", "training_sets")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


class WorkspaceError(RuntimeError):
    """The workspace cannot be used (it belongs to another range, it is the live data, ...)."""


class WorkspaceLake(LocalLake):
    """A policy's lake: its own folder, with the shared zones read from the shared lake.

    Writes and deletes under a shared zone are refused (:class:`StorageError`): a policy never
    changes what the other policies read.
    """

    def __init__(self, root: Path, shared: LocalLake, shared_zones: Iterable[str] = SHARED_ZONES):
        super().__init__(root)
        self.shared = shared
        self.shared_zones = tuple(shared_zones)

    def _is_shared(self, key: str) -> bool:
        return key.split("/", 1)[0] in self.shared_zones

    def _path(self, key: str) -> Path:
        return self.shared._path(key) if self._is_shared(key) else super()._path(key)

    def uri(self, key: str) -> str:
        return self.shared.uri(key) if self._is_shared(key) else super().uri(key)

    def list_keys(self, prefix: str) -> list[str]:
        return self.shared.list_keys(prefix) if prefix and self._is_shared(prefix) else super().list_keys(prefix)

    def write_bytes(self, key: str, data: bytes) -> None:
        if self._is_shared(key):
            raise StorageError(f"a policy's lake does not write the shared zone of {key!r} (shared by every policy)")
        super().write_bytes(key, data)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        shared = [k for k in keys if self._is_shared(k)]
        if shared:
            raise StorageError(f"a policy's lake does not delete shared keys {shared[:3]}")
        super().delete(keys)


def policy_slug(name: str) -> str:
    """A folder name for a policy name (``scheduled+drift:7`` -> ``scheduled+drift_7``)."""
    return _UNSAFE.sub("_", name)


@dataclass(frozen=True)
class Workspace:
    """The folders of one backtest (see the module docstring)."""

    root: Path

    @classmethod
    def open(cls, root: Path | str, settings: "Settings") -> "Workspace":
        """The workspace at ``root`` (created when missing).

        :raises WorkspaceError: ``root`` is the live data folder or holds the live registry.
        """
        root = Path(root).expanduser().resolve()
        live = Path(settings.data_dir).resolve()
        if root == live or (root in live.parents):
            raise WorkspaceError(f"the backtest workspace {root} would contain the live data folder {live}; choose another")
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    @property
    def shared_dir(self) -> Path:
        return self.root / "shared"

    def policy_dir(self, name: str) -> Path:
        return self.root / "policies" / policy_slug(name)

    def shared_settings(self, settings: "Settings") -> "Settings":
        """The live settings with the data folder, lake and registry moved into the workspace.

        The source database is the live one (read only); the registry URL points at a file no
        policy uses, so nothing reaches the live registry by accident.
        """
        data = self.shared_dir
        return settings.with_overrides(
            data_dir=data, lake_url=(data / "lake").as_uri(), registry_url=f"sqlite:///{data / 'unused-registry.db'}",
            feature_repo=settings.feature_repo,
        )  # fmt: skip

    def shared_lake(self) -> LocalLake:
        return LocalLake(self.shared_dir / "lake")

    def policy_settings(self, settings: "Settings", name: str) -> "Settings":
        """Settings of one policy: the shared data folder (Feast), its own lake and registry."""
        folder = self.policy_dir(name)
        return self.shared_settings(settings).with_overrides(
            lake_url=(folder / "lake").as_uri(), registry_url=f"sqlite:///{folder / 'registry.db'}"
        )

    def policy_lake(self, name: str) -> WorkspaceLake:
        return WorkspaceLake(self.policy_dir(name) / "lake", self.shared_lake())


# --- checkpoints ----------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def dump_json(value) -> bytes:
    """Deterministic JSON bytes (sorted keys, fixed indentation): a rerun writes the same bytes."""
    return (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode()


class Checkpoint:
    """The state of one policy after its last finished day, and its registry as of then.

    ``save`` copies the registry database (SQLite's online backup) to ``registry-<ds>.db``, then
    writes ``state.json`` naming it, then removes older copies; ``restore`` puts that copy back
    in place of the registry. A backtest killed mid-day therefore resumes from the end of the
    last finished day, with every SQL row (versions, promotions, monitoring, drift events) as it
    was then, and redoes the day: the lake's writes are idempotent (content-addressed files,
    manifests last), so the result is the same bytes as an uninterrupted run.
    """

    def __init__(self, folder: Path, registry_path: Path):
        self.folder = Path(folder)
        self.registry_path = Path(registry_path)

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def load(self) -> dict | None:
        if not self.state_path.exists():
            return None
        try:
            return json.loads(self.state_path.read_text())
        except json.JSONDecodeError as exc:
            raise WorkspaceError(f"checkpoint {self.state_path} is unreadable ({exc}); remove the workspace to start over") from None

    def save(self, state: dict, ds: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        copy = self.folder / f"registry-{ds}.db"
        tmp = copy.with_name(f".tmp-{copy.name}")
        tmp.unlink(missing_ok=True)
        with sqlite3.connect(self.registry_path) as src, sqlite3.connect(tmp) as dst:
            src.backup(dst)
        os.replace(tmp, copy)
        write_atomic(self.state_path, dump_json({**state, "registry_copy": copy.name}))
        for old in self.folder.glob("registry-*.db"):
            if old.name != copy.name:
                old.unlink(missing_ok=True)

    def restore(self, state: dict) -> None:
        """Put the registry of ``state`` back (the killed day's rows are dropped)."""
        copy = self.folder / state["registry_copy"]
        if not copy.exists():
            raise WorkspaceError(f"checkpoint {self.state_path} names {copy.name}, which is missing; remove the workspace to start over")
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{self.registry_path}{suffix}").unlink(missing_ok=True)
        tmp = self.registry_path.with_name(f".tmp-{self.registry_path.name}")
        tmp.unlink(missing_ok=True)
        with sqlite3.connect(copy) as src, sqlite3.connect(tmp) as dst:
            src.backup(dst)
        os.replace(tmp, self.registry_path)
