"""Plain helpers shared by test modules (import as ``from testkit import ...``).

Test modules must not import from ``conftest``: with several ``conftest.py`` files in the tree,
the module name ``conftest`` is ambiguous and resolves to whichever was loaded last.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

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
