"""What a season must backfill before its first day, derived from the use case.

A season scores ``[first, last]`` with a champion trained on the ``training_days`` days before
``first``. Working back from that training:

* the first training window is ``[first - training_days, first - 1]``;
* a training row of day D (and a scored row of day D) is looked up at D's prediction time,
  whose newest feature partitions are those of D - 1 (daily snapshots stamped when D - 1 closes:
  the same rule scoring's sensor waits on, :func:`airloop.scoring.upstream_partitions`). So the
  feature days are ``[window start - 1, first - 1]``; the last one serves the first scored day;
* a feature partition of day F reads raw partitions ``F - lookback .. F``, the lookback being
  the largest of the feature views' ``inputs`` (``FeatureViewSpec.inputs``: 31 days for the
  flights' delay statistics, ``STAT_LOOKBACK_DAYS``). So the raw days are
  ``[window start - 1 - lookback, first - 1]``.

Days before the data's first day are left out: partitions there are absent by nature (the
feature stage expects them to be). A training window that would start before the data is an
error that names the days, as is a range that runs past the data's last day.

:func:`plan_warmup` is pure (dates in, dates out); :meth:`WarmupPlan.describe` is what the season
prints before it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay
    from airloop.core.usecase import UseCase

#: fewest days a training window may have: the time split holds out at least the last day.
MIN_TRAINING_DAYS = 2


class WarmupError(ValueError):
    """The season's range cannot be run on the data there is (the message names the days)."""


@dataclass(frozen=True)
class WarmupPlan:
    """The days a season backfills before ``first``, and why (see the module docstring).

    :param first: the first scored day; :param last: the last one.
    :param raw_days: raw partitions to ingest before ``first`` (feature lookback included).
    :param feature_days: feature partitions to compute before ``first``.
    :param training_days: the first training window, ``[training_days[0], training_days[-1]]``.
    :param raw_lookback_days: the largest raw lookback of the feature views.
    :param data_first: the data's first day (earlier partitions are absent by nature).
    """

    first: "LogicalDay"
    last: "LogicalDay"
    raw_days: "list[LogicalDay]"
    feature_days: "list[LogicalDay]"
    training_days: "list[LogicalDay]"
    raw_lookback_days: int
    data_first: date

    @property
    def raw_only_days(self) -> "list[LogicalDay]":
        """Raw days ingested only as history for the features (no feature partition needed)."""
        first_feature = self.feature_days[0].date if self.feature_days else self.first.date
        return [d for d in self.raw_days if d.date < first_feature]

    def describe(self) -> str:
        """Several lines: what will be backfilled before ``first`` and why."""

        def span(days) -> str:
            return f"{days[0]} .. {days[-1]} ({len(days)} days)" if days else "nothing"

        clipped = ""
        if self.raw_days and self.raw_days[0].date == self.data_first:
            clipped = f"; starts at the data's first day {self.data_first}, nothing earlier exists"
        return "\n".join([
            f"[season] plan for {self.first} .. {self.last} ({(self.last.date - self.first.date).days + 1} days scored)",
            f"[season]   raw history   {span(self.raw_days)}: the feature days and the "
            f"{self.raw_lookback_days} days of raw lookback before them{clipped}",
            f"[season]   features      {span(self.feature_days)}: training lookups read the day before "
            f"each training day; the last one serves {self.first}",
            f"[season]   first training window {span(self.training_days)}",
        ])  # fmt: skip


def raw_lookback_days(use_case: "UseCase") -> int:
    """Days of raw history before D that computing D's features reads (the views' largest)."""
    if use_case.features is None:
        return 0
    return max((days for view in use_case.features.views for days in view.inputs.values()), default=0)


def plan_warmup(
    first: "LogicalDay",
    last: "LogicalDay",
    *,
    use_case: "UseCase",
    training_days: int,
    data_first: date,
    data_last: date | None = None,
) -> WarmupPlan:
    """The warm-up of a season over ``[first, last]`` (see the module docstring).

    :param training_days: days of the first training window, at most the model's
        ``window_days`` (``ModelSpec.window_days``), at least :data:`MIN_TRAINING_DAYS`.
    :param data_first: the data's first day, replayed (``FeatureSpec.history_start`` or the source).
    :param data_last: the data's last day, when known.
    :raises WarmupError: the range is reversed or outside the data, or the data before ``first``
        is too short for the first training window (the message names the days and what to do).
    """
    if last.date < first.date:
        raise WarmupError(f"the season's last day {last} is before its first day {first}")
    window_days = use_case.model.window_days if use_case.model is not None else training_days
    if not MIN_TRAINING_DAYS <= training_days <= window_days:
        raise WarmupError(
            f"the first training window must have {MIN_TRAINING_DAYS} .. {window_days} days "
            f"(the model's window_days), got {training_days}"
        )
    if data_last is not None and last.date > data_last:
        raise WarmupError(
            f"the season runs to {last}, past the data's last day {data_last}: "
            f"{(last.date - data_last).days} days ({data_last + timedelta(days=1)} .. {last}) "
            "have no data; end it on or before that day"
        )
    window = first.shift(-training_days).range_to(first.shift(-1))
    if window[0].date < data_first:
        available = (first.date - data_first).days
        earliest = data_first + timedelta(days=training_days)
        hint = (f" or train the first model on fewer days (--warmup-days {available})"
                if available >= MIN_TRAINING_DAYS else "")  # fmt: skip
        raise WarmupError(
            f"a season from {first} trains its first model on the {training_days} days before it "
            f"({window[0]} .. {window[-1]}), but the data starts at {data_first}: "
            f"{(data_first - window[0].date).days} of those days have no data. "
            f"Start the season on or after {earliest}{hint}"
        )
    lookback = raw_lookback_days(use_case)
    feature_from = window[0].shift(-1)
    raw_from = feature_from.shift(-lookback)

    def clipped(start: "LogicalDay") -> "list[LogicalDay]":
        return [d for d in start.range_to(first.shift(-1)) if d.date >= data_first]

    return WarmupPlan(
        first=first,
        last=last,
        raw_days=clipped(raw_from),
        feature_days=clipped(feature_from),
        training_days=window,
        raw_lookback_days=lookback,
        data_first=data_first,
    )


def replay_offset_for(yesterday: date, *, offset: int, data_first: date, data_last: date, history_days: int) -> int:
    """The replay offset under which ``yesterday`` has data and ``history_days`` of it before.

    The data covers ``[data_first, data_last]`` under ``offset`` (replayed days). Moving the offset
    by ``delta`` days moves that range by ``delta``; ``yesterday`` fits when
    ``data_first + delta + history_days <= yesterday <= data_last + delta``. In order:

    1. ``offset`` itself when it fits (an installation keeps the calendar its docs use);
    2. ``offset`` plus a whole number of 52-week years when one fits (the same season, next year);
    3. otherwise the largest fitting shift (the most days left before the data runs out).

    Every answer differs from ``offset`` by a multiple of 7, so weekdays stay aligned.

    :raises WarmupError: the data is shorter than ``history_days`` + 1 days.
    """
    low = (yesterday - data_last).days
    high = (yesterday - data_first).days - history_days
    if high < low or high - high % 7 < low:
        raise WarmupError(
            f"the data ({data_first} .. {data_last} under offset {offset}) holds "
            f"{(data_last - data_first).days + 1} days; {history_days + 1} are needed up to {yesterday}"
        )
    if low <= 0 <= high:
        return offset
    years = [k * 364 for k in range(-(-low // 364), high // 364 + 1)]
    if years:
        return offset + min(years, key=abs)
    return offset + high - high % 7
