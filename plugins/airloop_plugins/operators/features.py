"""Feature operators: compute a day's feature partitions, apply the Feast repo, materialize online."""

from __future__ import annotations

from functools import cached_property

from airloop_plugins.hooks import LakeHook
from airloop_plugins.hooks.feature_store import FeatureStoreHook
from airloop_plugins.operators.base import PartitionedOperator


class FeatureComputeOperator(PartitionedOperator):
    """Compute day ``ds``'s partition of every feature view from the raw zone (``features/<view>/ds=<ds>/``).

    Raw partitions it needs that are not ingested yet are not a fault, and nothing is written:

    * only days close before ``ds`` missing (within ``wait_window_days``: a backfill's days
      finish out of order, a night's ingestion runs late): the task *waits* in reschedule mode
      (``up_for_reschedule``, no worker slot held, no retry spent), checking every
      ``poke_interval_s``, for up to ``wait_timeout_s``;
    * older history missing (a fresh start has less raw history than the views' lookback), or
      the wait ran out: the task is *skipped*, its log naming every missing day and the
      backfill that brings them.

    A computation that does not match the Feast definitions fails at once, without retries (a
    retry computes the same thing). A rerun publishes identical bytes.

    :param ds: partition date ``YYYY-MM-DD`` (templated); resolved from the run when omitted.
    :param views: restrict to these feature views (default: all).
    :param wait_window_days: missing raw days at most this many days before ``ds`` are waited for.
    :param wait_timeout_s: longest wait for them, from the first check.
    :param poke_interval_s: time between checks while waiting.
    """

    template_fields = ("ds", "views")
    ui_color = "#eef7e8"

    def __init__(self, *, views: list[str] | None = None, wait_window_days: int = 7, wait_timeout_s: int = 1800,
                 poke_interval_s: int = 60, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.views = views
        self.wait_window_days = wait_window_days
        self.wait_timeout_s = wait_timeout_s
        self.poke_interval_s = poke_interval_s

    def wait_or_skip(self, context, day, exc) -> None:
        """Raise the reschedule that waits for raw days about to arrive, else the skip."""
        from datetime import datetime, timedelta, timezone

        from airflow.sdk.exceptions import AirflowRescheduleException

        missing = sorted(d for days in exc.missing.values() for d in days)
        reason = inputs_not_ready(day, exc)
        if missing[0] >= day.date - timedelta(days=int(self.wait_window_days)):
            now = datetime.now(timezone.utc)
            ti = context.get("ti")
            first = ti.get_first_reschedule_date(context) if ti is not None else None
            waited = (now - first).total_seconds() if first else 0.0
            if waited < int(self.wait_timeout_s):
                self.log.info("Waiting for raw days %s .. %s (ingesting?): checked again in %ss, for up to %ss more",
                              missing[0], missing[-1], self.poke_interval_s, int(int(self.wait_timeout_s) - waited))  # fmt: skip
                raise AirflowRescheduleException(now + timedelta(seconds=int(self.poke_interval_s)))
            reason += f" (waited {int(waited)} s for them)"
        self.skip(context, reason)

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        from airloop.features import compute_features, FeatureSchemaMismatch, MissingRawPartition

        day = self.logical_day(context)
        try:
            manifests = compute_features(day, settings=self.settings, views=self.views or None, lake=self.lake_hook.lake)
        except MissingRawPartition as exc:
            self.wait_or_skip(context, day, exc)
        except FeatureSchemaMismatch as exc:
            raise AirflowFailException(f"FeatureSchemaMismatch: {exc}") from None
        for view, manifest in manifests.items():
            self.log.info("Published %d rows of %s at %s from %d raw partitions",
                          manifest["rows"], view, manifest["partition"], len(manifest["raw_partitions"]))
        self.record_lineage(m["partition"] for m in manifests.values())
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
        from airloop.features import MissingFeaturePartition

        day = self.logical_day(context)
        start = day.shift(-int(self.overlap_days))
        try:
            results = self.feature_store_hook.materialize(start, day, lake=self.lake_hook.lake)
        except MissingFeaturePartition as exc:
            self.skip(context, f"inputs not there yet: {exc}")
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
