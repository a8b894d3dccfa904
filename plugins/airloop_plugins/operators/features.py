"""Feature operators: compute a day's feature partitions, apply the Feast repo, materialize online."""

from __future__ import annotations

from functools import cached_property

from airloop_plugins.hooks import LakeHook
from airloop_plugins.hooks.feature_store import FeatureStoreHook
from airloop_plugins.operators.base import PartitionedOperator


class FeatureComputeOperator(PartitionedOperator):
    """Compute day ``ds``'s partition of every feature view from the raw zone (``features/<view>/ds=<ds>/``).

    Raw partitions it needs that are not ingested yet (a fresh start has less raw history than
    the views' lookback; a backfill's days finish out of order) are not a fault: the task is
    *skipped*, its log naming every missing day and the backfill that brings them, and nothing
    is written. A computation that does not match the Feast definitions fails at once, without
    retries (a retry computes the same thing). A rerun publishes identical bytes.

    :param ds: partition date ``YYYY-MM-DD`` (templated); resolved from the run when omitted.
    :param views: restrict to these feature views (default: all).
    """

    template_fields = ("ds", "views")
    ui_color = "#eef7e8"

    def __init__(self, *, views: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.views = views

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airloop.features import compute_features, FeatureSchemaMismatch, MissingRawPartition

        day = self.logical_day(context)
        try:
            manifests = compute_features(day, settings=self.settings, views=self.views or None, lake=self.lake_hook.lake)
        except MissingRawPartition as exc:
            reason = inputs_not_ready(day, exc)
            self.log.warning("%s", reason)
            raise AirflowSkipException(reason) from None
        except FeatureSchemaMismatch as exc:
            raise AirflowFailException(f"FeatureSchemaMismatch: {exc}") from None
        for view, manifest in manifests.items():
            self.log.info("Published %d rows of %s at %s from %d raw partitions",
                          manifest["rows"], view, manifest["partition"], len(manifest["raw_partitions"]))
        return {"ds": day.key, "rows": {view: m["rows"] for view, m in manifests.items()}}


def inputs_not_ready(day, exc) -> str:
    """The skip reason for a day whose raw history is not all ingested: what, and what to do."""
    days = sorted(d for missing in exc.missing.values() for d in missing)
    return (
        f"inputs not there yet: features of {day} need raw history that is not ingested. {exc} "
        f"To compute them: make backfill DAG=ingest_flights FROM={days[0]} TO={days[-1]}, "
        f"then clear this task (or `airloop features compute {day}`)."
    )


class FeastApplyOperator(PartitionedOperator):
    """Apply ``feature_repo/`` to the Feast registry only when its definitions changed.

    Refuses an incompatible change (a released feature service's features, a feature's type,
    an entity's join key) before writing anything; concurrent applies are serialised.
    """

    ui_color = "#f3e8fd"

    @cached_property
    def feature_store_hook(self) -> FeatureStoreHook:
        return FeatureStoreHook()

    def execute(self, context):
        result = self.feature_store_hook.apply()
        if result.applied:
            self.log.info("Applied the feature repo: definitions %s (registry had %s)",
                          result.definitions_hash[:12], (result.registry_hash_before or "nothing")[:12])
        else:
            self.log.info("Feature repo unchanged (definitions %s): nothing applied", result.definitions_hash[:12])
        return {"applied": result.applied, "definitions_hash": result.definitions_hash}


class FeastMaterializeOperator(PartitionedOperator):
    """Load day ``ds``'s feature rows, with ``overlap_days`` before it, into the online store.

    The overlap re-reads recent partitions so late corrections reach the online store; an entity
    whose online value is newer than what a (backfill) run would write keeps it. Its outlet
    assets get ``extra={"ds", "rows", "written"}``. When day ``ds``'s feature partition is not
    computed yet the task is skipped with that reason (no asset event).

    :param ds: partition date (templated); resolved from the run when omitted.
    :param overlap_days: days before ``ds`` to load again (templated).
    """

    template_fields = ("ds", "overlap_days")
    ui_color = "#e8eefd"

    def __init__(self, *, overlap_days: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.overlap_days = overlap_days

    @cached_property
    def feature_store_hook(self) -> FeatureStoreHook:
        return FeatureStoreHook()

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        from airloop.features import MissingFeaturePartition

        day = self.logical_day(context)
        start = day.shift(-int(self.overlap_days))
        try:
            results = self.feature_store_hook.materialize(start, day, lake=self.lake_hook.lake)
        except MissingFeaturePartition as exc:
            self.log.warning("Skipping: %s", exc)
            raise AirflowSkipException(f"inputs not there yet: {exc}") from None
        for r in results:
            self.log.info("Materialized %s %s..%s: %d rows read, %d written, %d newer online values kept",
                          r.view, start, day, r.rows_read, r.written, r.kept_newer)
        summary = {
            "ds": day.key,
            "rows": sum(r.rows_read for r in results),
            "written": sum(r.written for r in results),
        }
        self.tag_outlets(context, summary)
        return {**summary, "views": [r.as_dict() for r in results]}
