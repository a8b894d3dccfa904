"""Batch ingestion: source window -> staging -> data contract -> raw zone + quarantine.

Per table and day ``ds`` (a local calendar day of the use case's timezone):

1. :func:`extract_to_staging` runs the parametrized query for exactly that day and stages the
   source rows as they came (``staging/<table>/ds=<ds>/``).
2. :func:`validate_and_publish` checks them against the contract, publishes the quarantined rows
   with their reasons (``quarantine/<table>/ds=<ds>/``) and then the valid, replayed rows
   (``raw/<table>/ds=<ds>/``). Each partition's manifest is written last.
3. :func:`check_quality_gate` fails when the quarantined share is above the threshold.

Reruns for the same day replace the partitions with byte-identical files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from airloop.ingest.contract import check_columns, validate
from airloop.core.storage import (
    Lake,
    frame_to_parquet,
    partition_prefix,
    publish_partition,
    read_partition_frame,
    require_manifest,
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
    """The requested day lies outside the replayed range the source holds (nothing to ingest)."""


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

    @property
    def quarantined_share(self) -> float:
        return self.quarantined_rows / self.rows if self.rows else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "quarantined_share": round(self.quarantined_share, 6)}


def extract_to_staging(
    table_name: str, day: "LogicalDay", *, use_case: "UseCase", source: "SourceDatabase", lake: Lake
) -> dict:
    """Stage the source rows of one table and day; return the staging manifest.

    :raises OutsideSourceCoverage: the day is outside what the source holds (replayed range).
    """
    table = use_case.table(table_name)
    start, end = day.window
    coverage = source.coverage(table)
    if coverage is None or end <= coverage[0] or start > coverage[1]:
        zone = ZoneInfo(use_case.timezone)
        span = (
            f"{coverage[0].astimezone(zone):%Y-%m-%d} .. {coverage[1].astimezone(zone):%Y-%m-%d} ({use_case.timezone})"
            if coverage
            else "nothing (empty table)"
        )
        raise OutsideSourceCoverage(
            f"{table_name} for {day} is outside the replayed source, which covers {span}; nothing to ingest"
        )
    extract = source.extract(table, start, end)
    prefix = partition_prefix(STAGING, table_name, day.key)
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
    log.info("staged %d %s rows for %s at %s", len(frame), table_name, day, lake.uri(prefix))
    return published.manifest


def validate_and_publish(
    table_name: str, day: "LogicalDay", *, use_case: "UseCase", lake: Lake, replay_offset_days: int
) -> IngestSummary:
    """Validate the staged day and publish quarantine, then raw (each manifest last).

    :raises ContractError: the staged rows miss contract columns (nothing is published).
    """
    import pandas as pd

    ds = day.key
    table = use_case.table(table_name)
    staging_prefix = partition_prefix(STAGING, table_name, ds)
    staged_manifest = require_manifest(lake, staging_prefix)
    frame = read_partition_frame(lake, staging_prefix)
    check_columns(frame, [c.name for c in table.columns], f"{table_name} for {ds} (from {staging_prefix})")

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
    q_prefix = partition_prefix(QUARANTINE, table_name, ds)
    publish_partition(
        lake,
        q_prefix,
        {"part.parquet": frame_to_parquet(quarantined)},
        {**lineage, "rows": len(quarantined), "reasons": result.reason_counts()},
    )
    raw_prefix = partition_prefix(RAW, table_name, ds)
    publish_partition(
        lake,
        raw_prefix,
        {"part.parquet": frame_to_parquet(raw)},
        {
            **lineage,
            "rows": len(raw),
            "source_rows": result.total,
            "quarantined_rows": len(quarantined),
            "quarantine_partition": q_prefix,
        },
    )
    summary = IngestSummary(table_name, ds, result.total, len(raw), len(quarantined), raw_prefix, q_prefix)
    log.info(
        "%s %s: %d source rows -> %d raw, %d quarantined (%.3f%%) %s",
        table_name, ds, summary.rows, summary.valid_rows, summary.quarantined_rows,
        100 * summary.quarantined_share, result.reason_counts(),
    )  # fmt: skip
    return summary


def check_quality_gate(summary: IngestSummary, max_share: float, min_rows: int = 0) -> None:
    """Fail when more than ``max_share`` of the day's rows, and more than ``min_rows`` rows, were quarantined.

    :param min_rows: rows tolerated whatever their share (one bad reading in a small table).
    """
    if summary.quarantined_share > max_share and summary.quarantined_rows > min_rows:
        raise QualityGateError(
            f"{summary.table} {summary.ds}: {summary.quarantined_rows} of {summary.rows} rows quarantined "
            f"({summary.quarantined_share:.2%}) exceeds the limit of {max_share:.2%} (and {min_rows} rows); "
            f"valid rows are published at {summary.raw_prefix}, bad rows with reasons at {summary.quarantine_prefix}"
        )


def read_quarantine(lake: Lake, table_name: str, day: "LogicalDay"):
    """The quarantined rows of one table and day, with their reasons."""
    return read_partition_frame(lake, partition_prefix(QUARANTINE, table_name, day.key))



def ingest_day(table_name: str, day: "LogicalDay | date", settings: "Settings") -> IngestSummary:
    """Extract, validate and publish one table for one day with the given settings (CLI, tests).

    :param day: the day, as a :class:`~airloop.core.dates.LogicalDay` or a calendar date of the
        use case's business clock (typed either way: nothing is parsed here).
    """
    from airloop.ingest.source import SourceDatabase
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case

    use_case = load_use_case(settings.use_case)
    day = use_case.day(day)
    lake = open_lake(settings)
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    extract_to_staging(table_name, day, use_case=use_case, source=source, lake=lake)
    return validate_and_publish(
        table_name, day, use_case=use_case, lake=lake, replay_offset_days=settings.replay_offset_days
    )
