"""The outcome of one check (:class:`ReportResult`): its kind, status and headline numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay

DRIFT, PERFORMANCE = "drift", "performance"
KINDS = (DRIFT, PERFORMANCE)
OK, SKIPPED, AWAITING = "ok", "skipped", "awaiting_outcomes"


@dataclass
class ReportResult:
    """The outcome of one check: headline numbers, the full JSON and the rendered HTML.

    ``ds`` is the checked day's partition key (``YYYY-MM-DD``, as stored in the lake and SQL);
    ``status`` is ``ok``, ``skipped`` (with ``message``) or ``awaiting_outcomes``.
    """

    ds: str
    kind: str
    status: str
    message: str = ""
    model_version: int | None = None
    rows_current: int = 0
    rows_reference: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    html: bytes | None = None

    def summary(self) -> dict[str, Any]:
        """Everything but the report payloads (for logs, XCom and the CLI)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("body", "html", "metrics")}
        out.update(self.metrics)
        return out


def awaiting_outcomes(day: "LogicalDay", message: str, model_version: int | None = None) -> ReportResult:
    """The performance result of ``day`` while its outcomes are not ingested (no numbers, never zero)."""
    return ReportResult(ds=day.key, kind=PERFORMANCE, status=AWAITING, message=message, model_version=model_version)
