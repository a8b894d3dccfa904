"""The code version recorded in manifests and the model registry."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache

from airloop.core.config import PROJECT_ROOT


@lru_cache(maxsize=1)
def code_version() -> str:
    """``AIRLOOP_CODE_VERSION`` if set (images set it at build), else the git commit, else 'unknown'."""
    if os.environ.get("AIRLOOP_CODE_VERSION"):
        return os.environ["AIRLOOP_CODE_VERSION"]
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
