"""Feature operators and the FeatureStoreHook: thin constructors, templated fields, real execution.

``execute`` runs against a real lake, a real SQL registry (SQLite) and a real SQLite online
store under the test's data dir; only the Airflow context (the edge) is a plain dict.
"""

from __future__ import annotations

import inspect
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from airloop import features as F
from airloop_plugins.assets import FEATURES
from airloop_plugins.hooks import FeatureStoreHook
from airloop_plugins.operators import FeastApplyOperator, FeastMaterializeOperator, FeatureComputeOperator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
from feature_helpers import D0, D1, D2, leakage_lake, logical_day  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPERATORS = [FeatureComputeOperator, FeastApplyOperator, FeastMaterializeOperator]


def context(**values) -> dict:
    base = {"params": {}, "dag_run": SimpleNamespace(partition_key=None), "outlet_events": defaultdict(SimpleNamespace)}
    base.update(values)
    return base


@pytest.mark.parametrize("operator", OPERATORS)
def test_template_fields_are_constructor_arguments(operator):
    params = inspect.signature(operator.__init__).parameters
    for name in operator.template_fields:
        assert name in params or name == "ds", f"{operator.__name__}.{name} is not a constructor argument"


def test_constructors_only_assign():
    op = FeastMaterializeOperator(task_id="m", ds="{{ params.ds }}", overlap_days=2)
    assert (op.ds, op.overlap_days) == ("{{ params.ds }}", 2)
    assert not {"feature_store_hook", "lake_hook", "settings", "use_case"} & set(vars(op))
    with pytest.raises(TypeError):
        FeatureComputeOperator(task_id="c", unknown_argument=1)


def test_ds_and_overlap_are_rendered_from_the_run():
    op = FeastMaterializeOperator(task_id="m", ds="{{ params.ds }}", overlap_days="{{ params.overlap }}")
    op.render_template_fields({"params": {"ds": str(D1), "overlap": 3}})
    assert (op.ds, op.overlap_days) == (str(D1), "3")  # execute takes int(overlap_days)


def test_hook_keeps_no_run_state_and_opens_the_store_lazily(settings):
    hook = FeatureStoreHook(settings=settings)
    assert "store" not in vars(hook)
    assert hook.get_conn() is hook.store
    assert hook.store.config.online_store.type == "sqlite"


def test_dag_run_applies_computes_and_materializes_a_partition(settings, lake):
    """The three tasks of materialize_features, in order, for a day given by the run's partition key."""
    leakage_lake(lake)
    run = lambda op, **ctx: op.execute(context(**ctx))  # noqa: E731

    applied = run(FeastApplyOperator(task_id="apply_feature_repo"))
    assert applied["applied"] is True
    assert run(FeastApplyOperator(task_id="apply_feature_repo"))["applied"] is False

    computed = run(FeatureComputeOperator(task_id="compute_features"), params={"ds": str(D0)})
    assert computed["rows"]["carrier_delay_stats"] == 1
    computed = run(FeatureComputeOperator(task_id="compute_features"), dag_run=SimpleNamespace(partition_key=str(D1)))
    assert computed["ds"] == str(D1) and computed["rows"]["aircraft_attributes"] == 3322

    op = FeastMaterializeOperator(task_id="materialize_online", overlap_days=1, outlets=[FEATURES])
    ctx = context(dag_run=SimpleNamespace(partition_key=str(D1)))
    result = op.execute(ctx)
    assert result["ds"] == str(D1)
    assert ctx["outlet_events"][FEATURES].extra == {"ds": str(D1), "rows": result["rows"], "written": result["written"]}
    views = {v["view"]: v for v in result["views"]}
    assert views["carrier_delay_stats"]["rows_read"] == 2 and views["carrier_delay_stats"]["written"] == 1
    # The store now answers with D1's snapshot.
    report = F.skew_check(
        __import__("pandas").DataFrame({"origin": ["JFK"], "carrier": ["AA"], "route": ["JFK-LAX"], "tailnum": ["N10156"]}),
        logical_day(D1), settings=settings,
    )
    assert report.ok, report.mismatches


class RescheduledTI:
    """The task instance's calls here: when its first reschedule was (None: never), XCom pushes."""

    def __init__(self, first=None):
        self.first = first
        self.xcom: dict[str, object] = {}

    def get_first_reschedule_date(self, context):
        return self.first

    def xcom_push(self, key, value):
        self.xcom[key] = value


def test_compute_waits_in_reschedule_mode_for_raw_days_just_before_it(settings, lake):
    """A backfill's days finish out of order: the day before is about to arrive, so the task waits
    (up_for_reschedule: no worker slot, no retry spent) instead of failing or giving up."""
    from datetime import datetime, timezone

    from airflow.sdk.exceptions import AirflowRescheduleException

    leakage_lake(lake)
    lake.delete(lake.list_keys(f"raw/flights/ds={D0}/"))
    op = FeatureComputeOperator(task_id="compute_features", ds=str(D1), poke_interval_s=45)
    before = datetime.now(timezone.utc)
    with pytest.raises(AirflowRescheduleException) as waiting:
        op.execute(context(ti=RescheduledTI()))
    assert 44 <= (waiting.value.reschedule_date - before).total_seconds() <= 60
    assert lake.list_keys("features/") == []


def test_compute_skips_when_the_wait_ran_out_naming_every_missing_day_and_the_backfill(settings, lake):
    from datetime import datetime, timedelta, timezone

    from airflow.sdk.exceptions import AirflowSkipException

    leakage_lake(lake)
    lake.delete(lake.list_keys(f"raw/weather/ds={D1}/"))
    lake.delete(lake.list_keys(f"raw/flights/ds={D0}/"))
    op = FeatureComputeOperator(task_id="compute_features", ds=str(D1), wait_timeout_s=1800)
    started = datetime.now(timezone.utc) - timedelta(seconds=1860)
    ti = RescheduledTI(started)
    with pytest.raises(AirflowSkipException) as skipped:
        op.execute(context(ti=ti))
    reason = str(skipped.value)
    assert ti.xcom == {"skip_reason": reason}  # the task instance's XCom tab shows why
    assert reason.startswith(f"inputs not there yet: features of {D1} need raw history")
    assert f"flights {D0}" in reason and f"weather {D1}" in reason  # every missing day, per table
    assert f"make backfill DAG=ingest_flights FROM={D0} TO={D1}" in reason and "(waited 18" in reason
    assert lake.list_keys("features/") == []


def test_compute_skips_at_once_when_older_history_was_never_ingested(settings, lake):
    """A fresh start: weeks of raw history missing, which no wait brings."""
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowSkipException

    leakage_lake(lake)  # D0 .. D2 only
    day = D2 + timedelta(days=20)
    with pytest.raises(AirflowSkipException, match=f"FROM={D2 + timedelta(days=1)} TO={day}"):
        FeatureComputeOperator(task_id="compute_features", ds=str(day)).execute(context(ti=RescheduledTI()))
    assert lake.list_keys("features/") == []


def test_compute_fails_without_retry_when_the_computation_does_not_match_the_definition(settings, lake, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    def mismatch(*args, **kwargs):
        raise F.FeatureSchemaMismatch("computed columns ['x'] do not match")

    monkeypatch.setattr(F, "compute_features", mismatch)
    with pytest.raises(AirflowFailException, match="FeatureSchemaMismatch: computed columns"):
        FeatureComputeOperator(task_id="compute_features", ds=str(D1)).execute(context())


def test_materialize_skips_a_day_whose_features_are_not_computed(settings, lake):
    from airflow.sdk.exceptions import AirflowSkipException

    leakage_lake(lake)
    F.apply_definitions(settings)
    ti = RescheduledTI()
    with pytest.raises(AirflowSkipException, match=f"inputs not there yet: feature partition .*ds={D1}") as skipped:
        FeastMaterializeOperator(task_id="m", ds=str(D1), overlap_days=1).execute(context(ti=ti))
    assert ti.xcom == {"skip_reason": str(skipped.value)}


def test_materialize_overlap_skips_a_missing_earlier_day(settings, lake):
    leakage_lake(lake)
    F.apply_definitions(settings)
    F.compute_features(logical_day(D1), settings=settings, lake=lake)  # D0 never computed: a backfill in progress
    result = FeastMaterializeOperator(task_id="m", ds=str(D1), overlap_days=1).execute(context())
    assert {v["view"]: v["rows_read"] for v in result["views"]}["carrier_delay_stats"] == 1
