"""Reports in the lake: ``reports/ds=D/drift/`` and ``reports/ds=D/performance/``.

Each is a published partition: ``report.html`` of bounded size so it opens in a browser (see
:class:`~airloop.monitoring.config.MonitorConfig`), ``report.json`` complete, manifest last.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from airloop.monitoring.result import KINDS, OK, PERFORMANCE, ReportResult

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import Lake

REPORTS_ZONE = "reports"


def report_prefix(day: "LogicalDay", kind: str) -> str:
    """``reports/ds=2026-03-02/drift`` (one published partition per day and kind)."""
    return _prefix(day.key, kind)


def report_prefix_of(result: ReportResult) -> str:
    """Where the report of ``result`` is (or would be) published."""
    return _prefix(result.ds, result.kind)


def _prefix(key: str, kind: str) -> str:
    """The report partition of the day keyed ``key`` (a result's stored ``ds``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}; use one of {KINDS}")
    return f"{REPORTS_ZONE}/ds={key}/{kind}"


def report_inputs(ds: str, kind: str) -> list[str]:
    """The partitions a report of day ``ds`` reads: the day's predictions (their model version is
    in their manifest) and, for performance, the day's realized outcomes (``raw/flights``)."""
    inputs = [f"predictions/ds={ds}"]
    if kind == PERFORMANCE:
        inputs.append(f"raw/flights/ds={ds}")
    return inputs


def publish_report(lake: "Lake", result: ReportResult) -> str | None:
    """Publish ``report.json`` (complete) and ``report.html`` for a result that has them.

    Returns the partition prefix, or None for results without a report (skipped, awaiting).
    """
    from airloop.core.storage import publish_partition

    if result.status != OK:
        return None
    files = {"report.json": json.dumps(result.body, sort_keys=True, default=str).encode()}
    if result.html is not None:
        files["report.html"] = result.html
    prefix = _prefix(result.ds, result.kind)
    manifest = {"ds": result.ds, "kind": result.kind, "model_version": result.model_version,
                "rows_current": result.rows_current, "rows_reference": result.rows_reference,
                "metrics": result.metrics, "inputs": report_inputs(result.ds, result.kind)}  # fmt: skip
    publish_partition(lake, prefix, files, json.loads(json.dumps(manifest, default=str)))
    return prefix


def read_report(lake: "Lake", day: "LogicalDay", kind: str, logical_name: str = "report.html") -> bytes | None:
    """The bytes of a published report file, or None when that report does not exist."""
    from airloop.core.storage import PartitionNotFound, read_partition_files

    try:
        _, files = read_partition_files(lake, report_prefix(day, kind))
    except PartitionNotFound:
        return None
    return files.get(logical_name)
