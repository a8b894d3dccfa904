"""Volume check: a day's row count against the trailing same-weekday median, and its calibration.

A day's *source rows* (everything the source delivered for it, valid or not) are compared with the
median of the same weekday over the trailing ``weeks`` weeks, as far as those days are already in
the raw zone (their manifests' ``source_rows``). Outside ``[low, high]`` times that median the
contract fails with :class:`VolumeError`, naming the rows, the median, the band and the days used;
nothing of the day is published. With fewer than ``min_history`` such days the check does not
apply (the first weeks of a source) and says so.

:func:`calibrate` replays the same rule over a whole source (every day in order, the history being
the days before it) and returns each day's ratio; :func:`suggest_band` turns the ratios into the
narrowest band, widened by a headroom and rounded outward, under which no real day fails.
``airloop calibrate-volume`` prints both for the configured source.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Mapping

from airloop.ingest.contract import ContractError
from airloop.core.storage import Lake, partition_prefix, read_manifest

if TYPE_CHECKING:
    from airloop.core.config import Settings


class VolumeError(ContractError):
    """A day's row count lies outside the band around its trailing same-weekday median."""


@dataclass(frozen=True)
class VolumePolicy:
    """The volume rule: ``[low, high]`` times the median of up to ``weeks`` trailing same weekdays.

    :param min_history: the rule applies only with at least this many of those days known.
    """

    low: float
    high: float
    weeks: int = 4
    min_history: int = 3

    @classmethod
    def from_settings(cls, settings: "Settings") -> "VolumePolicy":
        return cls(settings.volume_band_low, settings.volume_band_high,
                   settings.volume_history_weeks, settings.volume_min_history)  # fmt: skip

    def band(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class VolumeCheck:
    """The outcome of the volume rule for one table and day, with every figure it used."""

    table: str
    day: date
    rows: int
    history: tuple[tuple[date, int], ...]
    policy: VolumePolicy

    @property
    def applied(self) -> bool:
        return len(self.history) >= self.policy.min_history

    @property
    def median(self) -> float | None:
        return statistics.median(n for _, n in self.history) if self.history else None

    @property
    def ratio(self) -> float | None:
        if self.median is None:
            return None
        if self.median == 0:
            return 1.0 if self.rows == 0 else math.inf
        return self.rows / self.median

    @property
    def passed(self) -> bool:
        return not self.applied or self.policy.low <= self.ratio <= self.policy.high

    def describe(self) -> str:
        used = ", ".join(f"{d} ({n})" for d, n in self.history) or "none"
        if not self.applied:
            return (
                f"{self.table} {self.day}: volume check not applied: {len(self.history)} of the "
                f"{self.policy.min_history} same-weekday days it needs are in the raw zone (found: {used})"
            )
        return (
            f"{self.table} {self.day}: {self.rows} source rows is {self.ratio:.3f} x the median {self.median:g} "
            f"of the same weekday on {used}; the band is {self.policy.band()} "
            "(AIRLOOP_VOLUME_BAND_LOW/HIGH)"
        )


def trailing_weekdays(day: date, weeks: int) -> list[date]:
    """The same weekday in each of the ``weeks`` weeks before ``day``, newest first."""
    return [day - timedelta(days=7 * k) for k in range(1, weeks + 1)]


def check_volume(table: str, day: date, rows: int, history: Mapping[date, int], policy: VolumePolicy) -> VolumeCheck:
    """Apply the rule to ``rows`` with the known counts ``history`` (other days are ignored)."""
    known = tuple((d, int(history[d])) for d in trailing_weekdays(day, policy.weeks) if d in history)
    return VolumeCheck(table, day, int(rows), known, policy)


def raw_history(lake: Lake, table: str, day: date, weeks: int) -> dict[date, int]:
    """Source rows of the trailing same weekdays of ``day`` that are published in the raw zone."""
    history = {}
    for past in trailing_weekdays(day, weeks):
        manifest = read_manifest(lake, partition_prefix("raw", table, past.isoformat()))
        if manifest is not None:
            history[past] = int(manifest.get("source_rows", manifest["rows"]))
    return history


def require_volume(check: VolumeCheck) -> None:
    """Raise :class:`VolumeError` with every figure when ``check`` failed."""
    if not check.passed:
        raise VolumeError(
            f"{check.describe()}: outside the band, so the day is refused and nothing of it is published "
            "(an emptied or truncated source day, or a duplicated delivery?)"
        )


@dataclass(frozen=True)
class Calibration:
    """The rule replayed over a source: each checked day's ratio, and what the band should be."""

    table: str
    checks: tuple[VolumeCheck, ...]

    @property
    def ratios(self) -> list[float]:
        return [c.ratio for c in self.checks if c.applied]

    def extremes(self, n: int = 5) -> tuple[list[VolumeCheck], list[VolumeCheck]]:
        """The ``n`` lowest and ``n`` highest ratios among the checked days."""
        applied = sorted((c for c in self.checks if c.applied), key=lambda c: (c.ratio, c.day))
        return applied[:n], applied[-n:][::-1]

    def failures(self, policy: VolumePolicy) -> list[VolumeCheck]:
        """Checked days that ``policy``'s band would refuse."""
        return [c for c in self.checks if c.applied and not policy.low <= c.ratio <= policy.high]

    def quantiles(self) -> dict[str, float]:
        values = sorted(self.ratios)
        if not values:
            return {}

        def at(q: float) -> float:
            return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]

        return {"min": values[0], "p1": at(0.01), "p5": at(0.05), "p50": at(0.5), "p95": at(0.95),
                "p99": at(0.99), "max": values[-1]}  # fmt: skip


def calibrate(table: str, daily_rows: Mapping[date, int], policy: VolumePolicy) -> Calibration:
    """Replay the rule over every day from the first to the last of ``daily_rows``.

    Days inside that range without an entry count as 0 rows (the source had none). The history of
    a day is the days before it in the range, as the raw zone holds them after a clean run.
    """
    if not daily_rows:
        return Calibration(table, ())
    first, last = min(daily_rows), max(daily_rows)
    counts = {first + timedelta(days=i): int(daily_rows.get(first + timedelta(days=i), 0))
              for i in range((last - first).days + 1)}  # fmt: skip
    checks = tuple(check_volume(table, day, rows, counts, policy) for day, rows in counts.items())
    return Calibration(table, checks)


def suggest_band(ratios: list[float], *, headroom: float = 0.1, step: float = 0.05) -> tuple[float, float]:
    """The band ``[min / (1 + headroom), max * (1 + headroom)]`` rounded outward to ``step``.

    Every ratio in ``ratios`` lies inside the result; the band always holds 1.
    """
    if not ratios:
        raise ValueError("no ratios to calibrate on: the source has too few days for the rule")
    low = math.floor(min(ratios) / (1 + headroom) / step + 1e-9) * step
    high = math.ceil(max(ratios) * (1 + headroom) / step - 1e-9) * step
    return round(max(0.0, min(low, 1.0)), 6), round(max(high, 1.0), 6)
