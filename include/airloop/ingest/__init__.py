"""Ingestion: one operating day of the upstream source, held to its data contract, into the lake.

``source`` reads the upstream database, ``contract`` checks rows against the use case's
contract (bad rows get a reason), ``volume`` checks a day's row count against its trailing
same-weekday median, ``ingestion`` stages and validates one day in an attempt's own area, and
``commit`` publishes every table of the day (``staging/``, ``raw/``, ``quarantine/``) together.
"""

from __future__ import annotations

from airloop.ingest.commit import (
    DayCommit,
    DayCommitError,
    DayRun,
    day_status,
    publish_day,
    recover_day,
)
from airloop.ingest.ingestion import (
    check_quality_gate,
    extract_to_staging,
    ingest_day,
    ingest_tables,
    IngestSummary,
    NoDataYet,
    OutsideSourceCoverage,
    QualityGateError,
    read_quarantine,
    validate_staged,
)
from airloop.ingest.contract import (
    check_columns,
    ContractError,
    REASON_COLUMN,
    validate,
)
from airloop.ingest.source import (
    SourceDatabase,
    SourceUnavailable,
)
from airloop.ingest.volume import (
    VolumeError,
    VolumePolicy,
    calibrate,
    suggest_band,
)

__all__ = [
    "ContractError",
    "DayCommit",
    "DayCommitError",
    "DayRun",
    "IngestSummary",
    "NoDataYet",
    "OutsideSourceCoverage",
    "QualityGateError",
    "REASON_COLUMN",
    "SourceDatabase",
    "SourceUnavailable",
    "VolumeError",
    "VolumePolicy",
    "calibrate",
    "check_columns",
    "check_quality_gate",
    "day_status",
    "extract_to_staging",
    "ingest_day",
    "ingest_tables",
    "publish_day",
    "read_quarantine",
    "recover_day",
    "suggest_band",
    "validate",
    "validate_staged",
]
