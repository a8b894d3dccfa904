"""All or nothing per day: every attempt writes in its own run area, one commit publishes the day.

An attempt at day ``D`` (one Airflow run, one CLI call) never writes the day's published
partitions while it extracts and validates. Its candidates go to its own area::

    _ingest/ds=D/run=<token>/<zone>/<table>/   candidate partitions (files, manifest last)
    _ingest/ds=D/run=<token>/_commit.json      the decision, written once every candidate is complete

:func:`publish_day` then makes every table of the day visible together:

1. It reads the candidate manifests of every table and zone (``staging``, ``raw``,
   ``quarantine``); one missing stops it before anything is written.
2. It writes ``_commit.json`` in one atomic write: **the commit point**. Before it no published
   partition of the day changed, whatever failed (extract, contract, a candidate's write).
3. It applies the commit: the data files are copied into the published prefixes first (content-hashed
   names: a file that a current manifest lists is never overwritten with other bytes), then the
   manifests are written, each carrying the commit's ``day_commit`` id and ``day_tables``, then
   files no manifest lists are removed.
4. It deletes the run area, ``_commit.json`` last.

A crash inside step 3 leaves some tables published and others not yet, plus the commit record:
:func:`recover_day` (run at the start of every :func:`publish_day`, and by Airflow's retry of the
publish task) rolls it forward, and :func:`day_status` reports such a day meanwhile (a pending
commit, or tables whose ``day_commit`` differ from their day's). Downstream DAGs never see it:
the raw-zone asset events are emitted only once the publish task succeeded.

The commit id is a hash of the candidates' content, so a rerun of the same source day gives the
same id and byte-identical manifests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field

from airloop.core.storage import (
    MANIFEST_NAME,
    Lake,
    PartitionCorrupt,
    PartitionNotFound,
    partition_prefix,
    read_manifest,
    sha256_bytes,
)

log = logging.getLogger(__name__)

RUNS_ZONE = "_ingest"
ZONES = ("staging", "quarantine", "raw")  # the order a commit writes the manifests in
COMMIT_NAME = "_commit.json"
_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


class DayCommitError(RuntimeError):
    """A day cannot be published as a whole (a candidate is missing or does not match)."""


@dataclass(frozen=True)
class DayRun:
    """The area one attempt at one day writes its candidates in, before the day is published.

    :param ds: the day's partition key.
    :param token: names the attempt: letters, digits, ``_.-`` (see :meth:`for_run_id`).
    """

    ds: str
    token: str

    def __post_init__(self):
        if not _TOKEN.match(self.token):
            raise ValueError(f"run token {self.token!r} must be 1-80 characters of letters, digits, '_', '.', '-'")

    @classmethod
    def for_run_id(cls, ds: str, run_id: str) -> "DayRun":
        """The area of an Airflow run (``scheduled__2026-03-07T05:00:00+00:00``): readable and unique."""
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-")[:60] or "run"
        return cls(ds, f"{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}")

    @property
    def root(self) -> str:
        return f"{RUNS_ZONE}/ds={self.ds}/run={self.token}"

    def prefix(self, zone: str, table: str) -> str:
        """Where this attempt's candidate partition of ``zone``/``table`` lives."""
        return f"{self.root}/{zone}/{table}"

    @property
    def commit_key(self) -> str:
        return f"{self.root}/{COMMIT_NAME}"


@dataclass(frozen=True)
class DayCommit:
    """A published day: its commit id and, per table, the raw and quarantined row counts."""

    ds: str
    commit_id: str
    tables: dict[str, dict] = field(default_factory=dict)
    recovered: tuple[str, ...] = ()

    def extra(self, table: str) -> dict:
        """What the table's raw-zone asset event carries (``ds``, ``rows``, ``quarantined_rows``)."""
        counts = self.tables[table]
        return {"ds": self.ds, "rows": counts["rows"], "quarantined_rows": counts["quarantined_rows"]}


def _candidates(lake: Lake, run: DayRun, tables: list[str]) -> dict[str, dict]:
    """Published prefix -> candidate manifest, for every table and zone; all must be complete."""
    found, missing = {}, []
    for table in tables:
        for zone in ZONES:
            manifest = read_manifest(lake, run.prefix(zone, table))
            if manifest is None:
                missing.append(f"{zone}/{table}")
            else:
                found[partition_prefix(zone, table, run.ds)] = manifest
    if missing:
        raise DayCommitError(
            f"day {run.ds} cannot be published: run {run.token} has no candidate for {', '.join(missing)} "
            f"under {lake.uri(run.root)} (run its extract and contract steps first); nothing was published"
        )
    return found


def _commit_id(candidates: dict[str, dict]) -> str:
    content = {prefix: {k: v for k, v in m.items() if k != "partition"} for prefix, m in candidates.items()}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def publish_day(lake: Lake, run: DayRun, tables: list[str]) -> DayCommit:
    """Publish every table of the run's day together (see the module docstring); idempotent.

    :raises DayCommitError: a table's candidate is missing; nothing was published.
    """
    recovered = recover_day(lake, run.ds, skip=run.token)
    if lake.exists(run.commit_key):  # a retry after a crash past the commit point
        record = lake.read_json(run.commit_key)
        _apply(lake, run, record)
        log.info("day %s: rolled commit %s of run %s forward", run.ds, record["commit_id"], run.token)
        return DayCommit(run.ds, record["commit_id"], record["tables"], recovered)
    candidates = _candidates(lake, run, sorted(tables))
    commit_id = _commit_id(candidates)
    counts = {}
    for table in sorted(tables):
        raw = candidates[partition_prefix("raw", table, run.ds)]
        counts[table] = {"rows": raw["rows"], "quarantined_rows": raw["quarantined_rows"], "source_rows": raw["source_rows"]}
    record = {
        "ds": run.ds,
        "commit_id": commit_id,
        "tables": counts,
        "partitions": {prefix: run.prefix(prefix.split("/")[0], prefix.split("/")[1]) for prefix in candidates},
    }
    lake.write_json(run.commit_key, record)  # the commit point
    _apply(lake, run, record)
    log.info("day %s: published %s together (commit %s)", run.ds, ", ".join(sorted(tables)), commit_id)
    return DayCommit(run.ds, commit_id, counts, recovered)


def _apply(lake: Lake, run: DayRun, record: dict) -> None:
    """Install a committed day: data files, then manifests, then clean up (idempotent)."""
    tables = sorted(record["tables"])
    ordered = sorted(record["partitions"].items(), key=lambda item: (ZONES.index(item[0].split("/")[0]), item[0]))
    manifests = {}
    for final, candidate in ordered:
        manifest = read_manifest(lake, candidate)
        if manifest is None:  # its clean-up had started: this partition was installed already
            installed = read_manifest(lake, final)
            if installed is None or installed.get("day_commit") != record["commit_id"]:
                raise DayCommitError(f"commit {record['commit_id']} of {run.ds} lost its candidate {lake.uri(candidate)}")
            manifests[final] = installed
            continue
        for entry in manifest["files"]:
            target = f"{final}/{entry['name']}"
            if lake.exists(target):  # same content-hashed name: already in place
                continue
            data = lake.read_bytes(f"{candidate}/{entry['name']}")
            if sha256_bytes(data) != entry["sha256"]:
                raise PartitionCorrupt(f"{lake.uri(candidate)}/{entry['name']}: sha256 does not match its manifest")
            lake.write_bytes(target, data)
        manifests[final] = {**manifest, "partition": final, "day_commit": record["commit_id"], "day_tables": tables}
    for final, _ in ordered:
        lake.write_json(f"{final}/{MANIFEST_NAME}", manifests[final])
    for final, _ in ordered:
        keep = {f"{final}/{f['name']}" for f in manifests[final]["files"]} | {f"{final}/{MANIFEST_NAME}"}
        lake.delete([k for k in lake.list_keys(final + "/") if k not in keep])
    _remove_run(lake, run)


def _remove_run(lake: Lake, run: DayRun) -> None:
    keys = lake.list_keys(run.root + "/")
    lake.delete([k for k in keys if k != run.commit_key])
    lake.delete([run.commit_key])


def pending_commits(lake: Lake, ds: str) -> list[DayRun]:
    """Runs of day ``ds`` that passed their commit point but did not finish applying it."""
    suffix = "/" + COMMIT_NAME
    runs = []
    for key in lake.list_keys(f"{RUNS_ZONE}/ds={ds}/"):
        if key.endswith(suffix) and key.count("/") == 3:
            runs.append(DayRun(ds, key.split("/")[2].removeprefix("run=")))
    return runs


def recover_day(lake: Lake, ds: str, *, skip: str | None = None) -> tuple[str, ...]:
    """Roll forward every committed but unfinished publish of day ``ds``; return their commit ids."""
    done = []
    for run in pending_commits(lake, ds):
        if run.token == skip:
            continue
        record = lake.read_json(run.commit_key)
        log.warning("day %s: commit %s of run %s was interrupted; rolling it forward", ds, record["commit_id"], run.token)
        _apply(lake, run, record)
        done.append(record["commit_id"])
    return tuple(done)


def day_status(lake: Lake, ds: str, tables: list[str]) -> list[str]:
    """Problems of day ``ds`` as a reader would meet them; empty when the day is consistent.

    Reports commits past their commit point but not applied, and published tables that claim to
    have been published together (``day_tables``) but carry different ``day_commit`` ids.
    """
    problems = [f"commit of run {run.token} is not fully applied" for run in pending_commits(lake, ds)]
    published = {t: read_manifest(lake, partition_prefix("raw", t, ds)) for t in tables}
    for zone in ("staging", "quarantine"):
        for table in tables:
            manifest = read_manifest(lake, partition_prefix(zone, table, ds))
            raw = published[table]
            if (manifest is None) != (raw is None):
                problems.append(f"{zone}/{table} and raw/{table} of {ds}: one is published and the other is not")
            elif manifest is not None and manifest.get("day_commit") != raw.get("day_commit"):
                problems.append(f"{zone}/{table} of {ds} is from commit {manifest.get('day_commit')}, raw/{table} from {raw.get('day_commit')}")
    for table, manifest in published.items():
        for other in (manifest or {}).get("day_tables", []):
            mate = published.get(other) if other in published else read_manifest(lake, partition_prefix("raw", other, ds))
            if mate is None or mate.get("day_commit") != manifest.get("day_commit"):
                problems.append(
                    f"raw/{table} of {ds} was published with {other} in commit {manifest.get('day_commit')}, "
                    f"but raw/{other} is {'missing' if mate is None else 'from commit ' + str(mate.get('day_commit'))}"
                )
    return problems


def require_candidate(lake: Lake, run: DayRun, zone: str, table: str) -> dict:
    """The candidate manifest of ``zone``/``table`` in ``run`` (raises naming where it was looked for)."""
    manifest = read_manifest(lake, run.prefix(zone, table))
    if manifest is None:
        raise PartitionNotFound(
            f"run {run.token} of {run.ds} has no {zone} candidate for {table} at {lake.uri(run.prefix(zone, table))}: "
            "run the extract step of this run first"
        )
    return manifest
