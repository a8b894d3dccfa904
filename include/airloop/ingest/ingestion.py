"""Batch ingestion: source window -> staging -> data contract -> raw zone + quarantine, a day at a time.

Per day ``D`` (a local calendar day of the use case's timezone), in one attempt's run area
(:class:`~airloop.ingest.commit.DayRun`, never the published partitions):

1. :func:`extract_to_staging` runs the parametrized query for exactly that day and stages each
   table's source rows as they came.
2. :func:`validate_staged` holds them to the contract: the structure (:class:`ContractError`),
   the volume against the trailing same-weekday median (:class:`~airloop.ingest.volume.VolumeError`),
   then row by row: valid, replayed rows and quarantined rows (each with its reason).
   :func:`check_quality_gate` refuses a day with too many quarantined rows.
3. :func:`~airloop.ingest.commit.publish_day` publishes ``staging/``, ``raw/`` and
   ``quarantine/`` of every table of the day together, or nothing.

A failure anywhere before the commit point leaves every published partition of the day as it was;
a rerun of the same source day gives byte-identical partitions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from airloop.ingest.commit import DayCommit, DayRun, publish_day, require_candidate
from airloop.ingest.contract import check_columns, validate
from airloop.ingest.volume import VolumePolicy, check_volume, raw_history, require_volume
from airloop.core.storage import (
    Lake,
    frame_to_parquet,
    new_run_token,
    partition_prefix,
    publish_partition,
    read_partition_frame,
)
from airloop.core.version import code_version

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.ingest.source import SourceDatabase
    from airloop.core.usecase import UseCase

log = logging.getLogger(__name__)

STAGING, RAW, QUARANTINE = "staging", "raw", "quarantine"


class OutsideSourceCoverage(LookupError):
    """The requested day lies before the replayed range the source holds (nothing to ingest, ever)."""


class NoDataYet(LookupError):
    """The requested day lies past the end of the source (or the source is empty): not delivered yet.

    Not a skip: the caller waits for it, and alerts when it is late.
    """


class QualityGateError(RuntimeError):
    """Too many rows were quarantined; the message carries the numbers."""


@dataclass(frozen=True)
class IngestSummary:
    table: str
    ds: str
    rows: int
    valid_rows: int
    quarantined_rows: int
    raw_prefix: str
    quarantine_prefix: str
    candidate: str = ""

    @property
    def quarantined_share(self) -> float:
        return self.quarantined_rows / self.rows if self.rows else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "quarantined_share": round(self.quarantined_share, 6)}


def _coverage_span(coverage, use_case: "UseCase") -> str:
    zone = ZoneInfo(use_case.timezone)
    return f"{coverage[0].astimezone(zone):%Y-%m-%d} .. {coverage[1].astimezone(zone):%Y-%m-%d} ({use_case.timezone})"


def extract_to_staging(
    table_name: str, day: "LogicalDay", *, use_case: "UseCase", source: "SourceDatabase", lake: Lake, run: DayRun
) -> dict:
    """Stage the source rows of one table and day in ``run``'s area; return the candidate manifest.

    :raises OutsideSourceCoverage: the day ends before the source starts (nothing is written).
    :raises NoDataYet: the day starts after the source's last instant, or the source is empty.
    """
    table = use_case.table(table_name)
    start, end = day.window
    coverage = source.coverage(table)
    if coverage is None:
        raise NoDataYet(f"{table_name} for {day}: the source table is empty; no data yet")
    if start > coverage[1]:
        raise NoDataYet(
            f"{table_name} for {day}: no data yet; the replayed source covers {_coverage_span(coverage, use_case)}, "
            f"its last instant is {coverage[1].isoformat()}"
        )
    if end <= coverage[0]:
        raise OutsideSourceCoverage(
            f"{table_name} for {day} is outside the replayed source, which covers "
            f"{_coverage_span(coverage, use_case)}; nothing to ingest"
        )
    extract = source.extract(table, start, end)
    prefix = run.prefix(STAGING, table_name)
    frame = extract.frame
    # Staging keeps source values as they came; stringify mixed object columns for Parquet.
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    published = publish_partition(
        lake,
        prefix,
        {"part.parquet": frame_to_parquet(frame)},
        {
            "table": table_name,
            "ds": day.key,
            "rows": len(frame),
            "columns": list(frame.columns),
            "source": {
                "url": source.safe_url,
                "query": extract.query,
                "window_start": extract.source_start.isoformat(),
                "window_end": extract.source_end.isoformat(),
            },
            "replayed_window": {"start": start.isoformat(), "end": end.isoformat()},
            "replay_offset_days": source.replay_offset_days,
            "code_version": code_version(),
        },
    )
    log.info("staged %d %s rows for %s at %s (run %s)", len(frame), table_name, day, lake.uri(prefix), run.token)
    return published.manifest


def validate_staged(
    table_name: str,
    day: "LogicalDay",
    *,
    use_case: "UseCase",
    lake: Lake,
    run: DayRun,
    replay_offset_days: int,
    volume: VolumePolicy | None = None,
) -> IngestSummary:
    """Hold ``run``'s staged rows to the contract; write its raw and quarantine candidates.

    Nothing is published here (see :func:`~airloop.ingest.commit.publish_day`).

    :param volume: the volume rule (None: not checked), against the raw zone's trailing days.
    :raises ContractError: the staged rows miss contract columns, or (:class:`VolumeError`) their
        count lies outside the volume band; no candidate is written.
    """
    import pandas as pd

    ds = day.key
    table = use_case.table(table_name)
    staged_manifest = require_candidate(lake, run, STAGING, table_name)
    staging_prefix = run.prefix(STAGING, table_name)
    frame = read_partition_frame(lake, staging_prefix)
    check_columns(frame, [c.name for c in table.columns], f"{table_name} for {ds} (staged at {staging_prefix})")
    if volume is not None:
        check = check_volume(table_name, day.date, len(frame), raw_history(lake, table_name, day.date, volume.weeks), volume)
        log.info("%s", check.describe())
        require_volume(check)

    result = validate(frame, table)
    raw = table.transform(result.valid, replay_offset_days) if table.transform else result.valid
    quarantined = result.quarantined
    if table.time_column in quarantined:
        replayed = pd.to_datetime(quarantined[table.time_column], utc=True, errors="coerce")
        quarantined["_replayed_" + table.time_column] = replayed + pd.Timedelta(days=replay_offset_days)

    lineage = {
        "table": table_name,
        "ds": ds,
        "source": staged_manifest["source"],
        "replayed_window": staged_manifest["replayed_window"],
        "staging_files": staged_manifest["files"],
        "code_version": code_version(),
        "contract": [c.name for c in table.columns],
        "key": list(table.key),
    }
    raw_prefix, q_prefix = partition_prefix(RAW, table_name, ds), partition_prefix(QUARANTINE, table_name, ds)
    publish_partition(
        lake,
        run.prefix(QUARANTINE, table_name),
        {"part.parquet": frame_to_parquet(quarantined)},
        {**lineage, "rows": len(quarantined), "reasons": result.reason_counts()},
    )
    publish_partition(
        lake,
        run.prefix(RAW, table_name),
        {"part.parquet": frame_to_parquet(raw)},
        {
            **lineage,
            "rows": len(raw),
            "source_rows": result.total,
            "quarantined_rows": len(quarantined),
            "quarantine_reasons": result.reason_summary(table.key),
            "quarantine_partition": q_prefix,
        },
    )
    summary = IngestSummary(
        table_name, ds, result.total, len(raw), len(quarantined), raw_prefix, q_prefix, lake.uri(run.root)
    )
    log.info(
        "%s %s: %d source rows -> %d raw, %d quarantined (%.3f%%) %s; candidates in %s",
        table_name, ds, summary.rows, summary.valid_rows, summary.quarantined_rows,
        100 * summary.quarantined_share, result.reason_counts(), summary.candidate,
    )  # fmt: skip
    return summary


def check_quality_gate(summary: IngestSummary, max_share: float, min_rows: int = 0) -> None:
    """Fail when more than ``max_share`` of the day's rows, and more than ``min_rows`` rows, were quarantined.

    :param min_rows: rows tolerated whatever their share (one bad reading in a small table).
    """
    if summary.quarantined_share > max_share and summary.quarantined_rows > min_rows:
        where = f"; the day's candidate rows (valid and quarantined, with reasons) are kept at {summary.candidate}" if summary.candidate else ""
        raise QualityGateError(
            f"{summary.table} {summary.ds}: {summary.quarantined_rows} of {summary.rows} rows quarantined "
            f"({summary.quarantined_share:.2%}) exceeds the limit of {max_share:.2%} (and {min_rows} rows); "
            f"nothing of the day is published{where}"
        )


def read_quarantine(lake: Lake, table_name: str, day: "LogicalDay"):
    """The quarantined rows of one table and day, with their reasons."""
    return read_partition_frame(lake, partition_prefix(QUARANTINE, table_name, day.key))


def ingest_tables(
    day: "LogicalDay | date", settings: "Settings", tables: list[str] | None = None, *, run: DayRun | None = None
) -> tuple[dict[str, IngestSummary], DayCommit]:
    """Extract, validate and publish ``tables`` (default: all) of one day, together or not at all.

    The same steps as the DAG (volume check and quality gate included), for the CLI and tests.

    :param day: the day, as a :class:`~airloop.core.dates.LogicalDay` or a calendar date of the
        use case's business clock (typed either way: nothing is parsed here).
    :param run: the attempt's area (default: a fresh one); a failed attempt's candidates stay there.
    :raises OutsideSourceCoverage, NoDataYet, ContractError, QualityGateError: nothing published.
    """
    from airloop.ingest.source import SourceDatabase
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    day = use_case.day(day)
    tables = list(tables or use_case.tables)
    lake = open_lake(settings)
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    run = run or DayRun(day.key, new_run_token())
    for table in tables:
        extract_to_staging(table, day, use_case=use_case, source=source, lake=lake, run=run)
    policy = VolumePolicy.from_settings(settings)
    summaries = {}
    for table in tables:
        summaries[table] = validate_staged(
            table, day, use_case=use_case, lake=lake, run=run,
            replay_offset_days=settings.replay_offset_days, volume=policy,
        )  # fmt: skip
        check_quality_gate(summaries[table], settings.max_quarantine_share, settings.quarantine_gate_min_rows)
    return summaries, publish_day(lake, run, tables)


def ingest_day(table_name: str, day: "LogicalDay | date", settings: "Settings") -> IngestSummary:
    """Ingest one table of one day (see :func:`ingest_tables`); its summary."""
    summaries, _ = ingest_tables(day, settings, [table_name])
    return summaries[table_name]
