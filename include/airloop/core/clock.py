"""Where the loop's instants come from: a :class:`Clock` passed in, never the wall clock read inside.

Every timestamp the loop writes or reads (a promotion's time, "the champion serving at 02:00 of
day D", a monitoring row's ``updated_at``, a drift event's ``created_at``, a scoring run's start)
comes from a clock the caller hands over. The boundary (operators, CLI) uses :data:`SYSTEM_CLOCK`,
the real time; a backtest hands a :class:`ReplayClock` that it moves to each replayed instant, so
a promotion replayed for a past day is stamped on that day and the champion history it leaves is
the one the live system would have written.

:class:`SystemClock` is the one place of the library that reads the wall clock.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning an aware UTC instant."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time (what operators and the CLI pass)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ReplayClock:
    """A clock its owner sets: the backtest moves it to each replayed instant (scoring at the
    day's cutoff, training at 03:00, ...). It never moves by itself.

    :param instant: the first instant (aware).
    :raises ValueError: a naive datetime (a replayed instant must say its zone).
    """

    def __init__(self, instant: datetime):
        self._now = _aware(instant)

    def set(self, instant: datetime) -> datetime:
        """Move the clock to ``instant`` (aware; stored as UTC); return it."""
        self._now = _aware(instant)
        return self._now

    def now(self) -> datetime:
        return self._now

    def __repr__(self) -> str:
        return f"ReplayClock({self._now.isoformat()})"


def _aware(instant: datetime) -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"a clock instant must be a datetime, got {type(instant).__name__} {instant!r}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: a clock instant must be aware (e.g. UTC)")
    return instant.astimezone(timezone.utc)


def clock_or_system(clock: "Clock | None") -> "Clock":
    """``clock``, or the real time when none was passed (keeps existing callers working)."""
    return SYSTEM_CLOCK if clock is None else clock
