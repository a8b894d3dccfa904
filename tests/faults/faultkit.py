"""Helpers of the fault-injection tests: run a stage in a child process killed at its Nth write,
snapshot partitions byte for byte, make a "last good" partition that differs from a fresh run's."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from testkit import ROOT

KILLPOINT = Path(__file__).with_name("killpoint.py")
NEWEST = "2026-01-14"  # the newest closed day of the seeded history (a Wednesday)

# What every stage's child runs first: the settings and use case from the environment, as a task does.
PRELUDE = """
from airloop.core.config import Settings
from airloop.core.storage import open_lake
from airloop.core.usecase import load_use_case
settings = Settings.from_env()
use_case = load_use_case(settings.use_case)
lake = open_lake(settings)
"""


@dataclass
class ChildRun:
    returncode: int
    writes: list[str]
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9


def run_stage(code: str, log: Path, *, on: str = "replace", at: int = 0, match: str = "", timeout: int = 300,
              env: dict | None = None) -> ChildRun:
    """Run ``PRELUDE + code`` in a fresh interpreter; SIGKILL it at its ``at``-th write matching the
    regex ``match`` (0: never); ``env`` overrides the environment (another data folder)."""
    log.unlink(missing_ok=True)
    log.touch()
    env = {
        **os.environ,
        "FAULT_ON": on,
        "FAULT_AT": str(at),
        "FAULT_MATCH": match,
        "FAULT_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    proc = subprocess.run([sys.executable, str(KILLPOINT), PRELUDE + code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)  # fmt: skip
    writes = [line.split("\t", 1)[1] for line in log.read_text().splitlines()]
    if at == 0 and proc.returncode != 0:
        raise AssertionError(f"the stage failed without a fault (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return ChildRun(proc.returncode, writes, proc.stderr)


def snapshot(lake, prefix: str) -> dict[str, bytes]:
    """Every visible key under ``prefix`` with its bytes (hidden temporary files are not listed)."""
    keys = lake.list_keys(prefix.rstrip("/") + "/") if prefix else lake.list_keys("")
    return {k: lake.read_bytes(k) for k in keys}


def published_view(lake, prefix: str) -> dict[str, bytes]:
    """What a reader of ``prefix`` gets: the manifest and the files it lists, with their bytes.

    A killed run may leave a data file of its own beside them (content-hashed, listed by no
    manifest, removed by the next publish): readers never see it, so it is not part of this.
    """
    from airloop.core.storage import MANIFEST_NAME, read_manifest

    manifest = read_manifest(lake, prefix)
    if manifest is None:
        return {}
    keys = [f"{prefix}/{MANIFEST_NAME}", *(f"{prefix}/{f['name']}" for f in manifest["files"])]
    return {k: lake.read_bytes(k) for k in keys}


def manifest_rows(lake, prefix: str) -> int | None:
    from airloop.core.storage import read_manifest

    manifest = read_manifest(lake, prefix)
    return None if manifest is None else manifest.get("rows")


def publish_last_good(lake, prefix: str) -> dict[str, bytes]:
    """Replace ``prefix`` by an earlier, valid version of itself and return its bytes.

    The earlier version holds the first half of each Parquet file's rows and a marked copy of
    every other file, published the normal way (data first, manifest last): a run killed before
    its own manifest must leave exactly these bytes, and a finished rerun must replace them.
    """
    import pyarrow.parquet as pq

    from airloop.core.storage import frame_to_parquet, publish_partition, read_partition_files

    manifest, files = read_partition_files(lake, prefix)
    older = {}
    for name, data in files.items():
        if name.endswith(".parquet"):
            frame = pq.read_table(io.BytesIO(data)).to_pandas()
            older[name] = frame_to_parquet(frame.iloc[: len(frame) // 2])
        else:
            older[name] = data + b"\n<!-- an earlier run -->\n"
    extra = {k: v for k, v in manifest.items() if k not in ("files", "partition")}
    if isinstance(extra.get("rows"), int):
        extra["rows"] = extra["rows"] // 2
    publish_partition(lake, prefix, older, extra)
    return snapshot(lake, prefix)


def registry_state(url: str, model: str) -> dict:
    """The registry's champion, version statuses and promotion history of ``model`` (no timestamps)."""
    from airloop.registry import ModelRegistry

    registry = ModelRegistry(url, create=False)
    try:
        return {
            "champion": registry.champion_version(model),
            "champions": [v.version for v in registry.versions(model) if v.status == "champion"],
            "statuses": {v.version: v.status for v in registry.versions(model)},
            "history": [(e.action, e.from_version, e.to_version, e.candidate_version, e.run_id) for e in registry.history(model)],
        }
    finally:
        registry.engine.dispose()


class counted_replaces:
    """Count (in this process) the ``os.replace`` calls whose target matches the regex ``match``: the
    writes a child run will make, in order, so a test can pick which one to kill at."""

    def __init__(self, match: str):
        import re

        self.match = re.compile(match)
        self.writes: list[str] = []

    def __enter__(self):
        self._real = os.replace

        def replace(src, dst, *args, **kwargs):
            if self.match.search(str(dst)):
                self.writes.append(str(dst))
            return self._real(src, dst, *args, **kwargs)

        os.replace = replace
        return self

    def __exit__(self, *exc):
        os.replace = self._real
        return False


UUID = rb"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"


def without_random_ids(files: dict[str, bytes]) -> dict[str, bytes]:
    """A report partition with Evidently's random element ids (``metric_<uuid4>``) masked.

    Evidently names the HTML's elements with fresh uuid4s, so two renderings of the same report
    differ in those ids only; the content-hashed name and sha256 of the HTML in the manifest
    follow. Keys lose their content hash; every other byte is compared as it is.
    """
    import re

    out = {}
    for key, data in files.items():
        key = re.sub(r"-[0-9a-f]{12}(\.\w+)$", r"\1", key)
        if key.endswith(".html"):
            data = re.sub(UUID, b"<id>", data)
        elif key.endswith("_manifest.json"):
            data = re.sub(rb'"(name|sha256)": "[^"]*"', b'"\\1": "<hash>"', data)
        out[key] = data
    return out
