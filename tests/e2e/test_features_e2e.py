"""End to end: a backfill of ``ingest_flights`` makes ``materialize_features`` run once per day.

Through a real scheduler: the partitioned raw-zone assets trigger one ``materialize_features``
run per partition key; each computes the day's feature partitions, loads them online and emits
the ``airloop_features`` asset with ``extra.ds``. Days: the first two of the replayed source
(no other e2e test uses them).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAYS = ["2025-12-30", "2025-12-31"]


def test_ingest_backfill_triggers_features_per_partition(airflow_stack):
    import pandas as pd

    from airloop import features as F
    from airloop.core.config import Settings
    from airloop.core.storage import LocalLake, read_partition_frame

    stack = airflow_stack
    keys = set(DAYS)
    stack.unpause("materialize_features")
    try:
        stack.unpause("ingest_flights")
        stack.backfill("ingest_flights", DAYS[0], DAYS[-1], reprocess="completed")
        in_days = lambda r: r.partition_key in keys  # noqa: E731
        ingest = stack.wait_for_runs("ingest_flights", len(DAYS), timeout=600, where=in_days)
        for run in ingest:
            assert run.state == "success", stack.explain("ingest_flights", run)
        runs = stack.wait_for_runs("materialize_features", len(DAYS), timeout=600, where=in_days)
    finally:
        stack.pause("materialize_features")
    assert sorted(r.partition_key for r in runs) == DAYS
    for run in runs:
        assert run.state == "success", stack.explain("materialize_features", run)

    lake = LocalLake(stack.data_dir / "lake")
    for day in DAYS:
        weather = read_partition_frame(lake, f"features/origin_weather/ds={day}")
        assert sorted(weather["origin"]) == ["EWR", "JFK", "LGA"]  # each airport's last report of the day
    stats = read_partition_frame(lake, f"features/carrier_delay_stats/v2/ds={DAYS[1]}")  # rows version v2
    assert stats["carrier_flights_7d"].gt(stats["carrier_flights_1d"]).any()  # two days of history

    events = stack.asset_events(source_dag_id="materialize_features")
    assert sorted(e["extra"]["ds"] for e in events if e["extra"].get("ds") in keys) == DAYS

    # The scheduled runs loaded the online store: it agrees with the offline partitions.
    settings = Settings().with_overrides(data_dir=stack.data_dir, lake_url=(stack.data_dir / "lake").as_uri(), source_url="sqlite://")
    sample = pd.DataFrame({"origin": ["JFK", "LGA"], "carrier": ["AA", "B6"], "route": ["JFK-LAX", "LGA-MCO"], "tailnum": ["N10156", "N102UW"]})
    report = F.skew_check(sample, F.load_feature_use_case(settings).day(DAYS[1]), settings=settings)
    assert report.ok, report.mismatches
