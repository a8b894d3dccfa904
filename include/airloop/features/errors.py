"""The features stage's errors: each message names what to fix."""

from __future__ import annotations

from datetime import date


class FeatureError(RuntimeError):
    """Base class of the features stage's errors; messages name what to fix."""


class MissingRawPartition(FeatureError):
    """Raw partitions a feature view needs were never published.

    The message names the first one (with its URI) and, when more are missing, every missing day
    of every table as compact ranges, so one run tells the user everything to ingest.
    """

    def __init__(self, table: str, ds: date, uri: str, view: str, missing: "dict[str, list[date]] | None" = None):
        self.table, self.ds, self.uri, self.view = table, ds, uri, view
        self.missing = missing or {table: [ds]}
        count = sum(len(days) for days in self.missing.values())
        if count == 1:
            tail = "Ingest that day first; nothing was written"
        else:
            spans = "; ".join(f"{name} {day_spans(days)}" for name, days in sorted(self.missing.items()))
            tail = f"{count} raw partitions are missing in all: {spans}. Ingest those days first; nothing was written"
        super().__init__(
            f"raw partition {table} for {ds} is missing ({uri} has no manifest); feature view {view!r} "
            f"needs it. {tail}"
        )


def day_spans(days: "list[date]") -> str:
    """``2026-01-01..2026-01-03 (3 days), 2026-01-07``: sorted days as runs of consecutive days."""
    ordered = sorted(set(days))
    runs: list[list[date]] = []
    for day in ordered:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(
        f"{run[0]}" if len(run) == 1 else f"{run[0]}..{run[-1]} ({len(run)} days)" for run in runs
    )


class MissingFeaturePartition(FeatureError):
    """A feature partition needed for a lookup or a materialization was never computed."""


class FeatureSchemaMismatch(FeatureError):
    """Computed rows do not match the feature view's Feast definition."""


class IncompatibleDefinitionChange(FeatureError):
    """The repo's definitions change something already registered in a way that breaks consumers."""
