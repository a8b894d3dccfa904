"""Plain helpers shared by test modules (import as ``from testkit import ...``).

Test modules must not import from ``conftest``: with several ``conftest.py`` files in the tree,
the module name ``conftest`` is ambiguous and resolves to whichever was loaded last.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Iterable

from airloop.core.storage import Lake as _Lake
from airloop.core.storage import StorageError as _StorageError

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (bounded by ``timeout``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def repo_copy(tmp_path: Path, edit=None) -> Path:
    """A copy of feature_repo/ with ``edit(text) -> text`` applied to its definitions."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        path = repo / "definitions.py"
        path.write_text(edit(path.read_text()))
    return repo

class FailingLake(_Lake):
    """A real lake whose ``write_bytes`` fails after ``fail_after`` successful writes.

    Simulates the storage going away mid-publish (disk full, network cut) while every other
    operation, and every write before the failure, really happens on the wrapped lake.
    """

    def __init__(self, inner: _Lake, fail_after: int):
        self.inner = inner
        self.url = inner.url
        self.fail_after = fail_after
        self.writes: list[str] = []

    def write_bytes(self, key: str, data: bytes) -> None:
        if len(self.writes) >= self.fail_after:
            raise _StorageError(f"simulated failure writing {self.uri(key)}")
        self.inner.write_bytes(key, data)
        self.writes.append(key)

    def read_bytes(self, key: str) -> bytes:
        return self.inner.read_bytes(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_keys(self, prefix: str) -> list[str]:
        return self.inner.list_keys(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.inner.delete(keys)
