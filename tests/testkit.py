"""Plain helpers shared by test modules (import as ``from testkit import ...``).

Test modules must not import from ``conftest``: with several ``conftest.py`` files in the tree,
the module name ``conftest`` is ambiguous and resolves to whichever was loaded last.
"""

from __future__ import annotations

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
