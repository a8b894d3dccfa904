"""The skew check: online values compared with offline ones, for the same rows after the same day.

:func:`skew_check` compares :func:`airloop.features.online.online_features` with
:func:`airloop.features.point_in_time.features_as_of` at the instant the last materialized day
closes: the same data, so any difference is skew (serialisation, types, a stale or partial load).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from airloop.features.feast_repo import feature_store
from airloop.features.layout import default_feature_service, service_layout
from airloop.features.online import online_features, online_timestamps
from airloop.features.point_in_time import features_as_of

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay


@dataclass(frozen=True)
class SkewReport:
    as_of: datetime
    rows: int
    features: int
    mismatches: list
    expired_online: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "rows": self.rows, "features": self.features,
                "mismatches": len(self.mismatches), "examples": self.mismatches[:10], "ok": self.ok,
                "expired_online_values": self.expired_online}


def skew_check(
    entity_df: "pd.DataFrame", day: "LogicalDay", *, settings: "Settings", feature_service: str | None = None,
    store=None, lake=None, tolerance: float = 1e-9,
) -> SkewReport:
    """Compare online values with offline ones for the rows of ``entity_df``, after ``day``.

    The online store must have been materialized through ``day`` (and not beyond). Offline
    values are :func:`features_as_of` the instant ``day`` closes (``day.end``), from partitions
    up to ``day``: the same data, so any difference is skew (serialisation, types, a stale or
    partial load). A mismatch is a (row, feature) whose values differ by more than ``tolerance`` or where
    exactly one side is null.
    """
    import math

    as_of = day.end
    store = store or feature_store(settings)
    name = feature_service or default_feature_service(settings)
    layout = service_layout(store, name)
    offline = features_as_of(entity_df, as_of, settings=settings, feature_service=name, store=store, lake=lake, through=day.date)
    online = online_features(entity_df, settings=settings, feature_service=name, store=store)
    # The online store serves its latest value however old; offline, a value past the view's TTL
    # is null. Apply the same TTL to the online values (counted, not reported as skew).
    import pandas as pd

    expired = 0
    for view in layout.views:
        if view.ttl is None:
            continue
        keys = entity_df[list(view.join_keys)].astype(object).where(entity_df[list(view.join_keys)].notna(), "")
        stamps = pd.to_datetime(pd.Series(online_timestamps(store, view, keys), dtype=object), utc=True)
        too_old = (stamps < pd.Timestamp(as_of) - view.ttl).to_numpy()
        expired += int(too_old.sum())
        online.loc[too_old, list(view.features)] = None
    mismatches = []
    for feature in layout.feature_names:
        for i, (a, b) in enumerate(zip(offline[feature].tolist(), online[feature].tolist())):
            a_null = a is None or (isinstance(a, float) and math.isnan(a))
            b_null = b is None or (isinstance(b, float) and math.isnan(b))
            if a_null and b_null:
                continue
            if a_null != b_null or abs(float(a) - float(b)) > tolerance:
                keys = {k: offline[k].iloc[i] for k in layout.join_keys}
                mismatches.append({"row": i, "feature": feature, "offline": a, "online": b, **keys})
    return SkewReport(as_of, len(entity_df), len(layout.feature_names), mismatches, expired)
