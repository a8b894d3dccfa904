"""Ingestion: one operating day of the upstream source, held to its data contract, into the lake.

``source`` reads the upstream database, ``contract`` checks rows against the use case's
contract (bad rows get a reason), ``ingestion`` stages, validates and publishes one day's
partitions (``raw/`` and ``quarantine/``).
"""

from __future__ import annotations

from airloop.ingest.ingestion import (
    check_quality_gate,
    extract_to_staging,
    ingest_day,
    IngestSummary,
    OutsideSourceCoverage,
    QualityGateError,
    read_quarantine,
    validate_and_publish,
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

__all__ = [
    "ContractError",
    "IngestSummary",
    "OutsideSourceCoverage",
    "QualityGateError",
    "REASON_COLUMN",
    "SourceDatabase",
    "SourceUnavailable",
    "check_columns",
    "check_quality_gate",
    "extract_to_staging",
    "ingest_day",
    "read_quarantine",
    "validate",
    "validate_and_publish",
]
