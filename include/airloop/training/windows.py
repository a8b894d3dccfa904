"""The training window: which days a run trains on, from explicit bounds, a drift event's
suggestion or the ingested partitions (never the run's logical date).

The bounds arrive as ``datetime.date`` values: the boundary (the ``build_training_set`` operator)
parses the params and the drift events' ``extra`` once, and this module only decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


class WindowError(ValueError):
    """No valid training window could be resolved for the run."""


@dataclass(frozen=True)
class SuggestedWindow:
    """The training window a drift event suggests (its ``extra``'s ``window_start``/``window_end``).

    :param end: last day of the suggested window, inclusive.
    :param start: first day, or None (then the ``window_days`` days up to ``end``).
    :param ds: the day the drift was found (the event's ``extra["ds"]``), for the log.
    """

    end: date
    start: date | None = None
    ds: date | None = None


def resolve_window(
    *,
    window_start: date | None = None,
    window_end: date | None = None,
    suggested: list[SuggestedWindow] | None = None,
    available_days: list[date] | None = None,
    window_days: int,
) -> tuple[date, date, str]:
    """The training window ``[start, end]`` (inclusive days) and where it came from.

    In order: explicit ``window_start``/``window_end`` (the run's params); the window suggested by
    the latest triggering drift event (the one ending last; only an end: the ``window_days`` days
    up to it); otherwise the last ``window_days`` days of ingested partitions
    (``available_days``). Never the run's logical date.
    """
    if window_start or window_end:
        if not (window_start and window_end):
            raise WindowError("give both window_start and window_end (YYYY-MM-DD), or neither")
        if window_end < window_start:
            raise WindowError(f"window_end {window_end} is before window_start {window_start}")
        return window_start, window_end, "params"
    if suggested:
        latest = max(suggested, key=lambda s: s.end)
        last = latest.end
        if latest.start is not None:
            first = latest.start
            if last < first:
                raise WindowError(f"the drift event's window_end {last} is before its window_start {first}")
        else:
            first = last - timedelta(days=window_days - 1)
        return first, last, f"drift event window {first} .. {last} (event ds={latest.ds})"
    days = sorted(available_days or [])
    if not days:
        raise WindowError(
            "no training window: give window_start/window_end, trigger from a drift event with "
            "extra.window_end, or ingest some partitions first"
        )
    last = days[-1]
    first = max(days[0], last - timedelta(days=window_days - 1))
    return first, last, f"last {window_days} days of ingested partitions"
