"""Scoring operators: wait for a day's upstream partitions, then score the day in one task."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk.bases.sensor import BaseSensorOperator

from airloop_plugins.hooks import LakeHook, SourceHook
from airloop_plugins.operators.base import PartitionedOperator


class PredictionInputsSensor(PartitionedOperator, BaseSensorOperator):
    """Wait until every upstream partition that scoring day ``ds`` reads is published.

    Each poke checks the manifests of every feature view's partition of day ``ds - 1`` (a few
    small reads, see :func:`airloop.scoring.upstream_partitions`). Use ``mode="reschedule"``:
    between pokes the task gives its worker slot (and pool slot) back. When ``timeout`` passes,
    the task fails naming the partitions still missing.

    :param ds: the day to be scored (templated); resolved from the run when omitted.
    """

    template_fields = ("ds",)
    ui_color = "#f0f4e8"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._missing: list[str] = []

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def poke(self, context) -> bool:
        from airloop.scoring import missing_inputs, upstream_partitions

        day = self.logical_day(context)
        self._missing = missing_inputs(self.lake_hook.lake, upstream_partitions(day, self.use_case))
        if self._missing:
            self.log.info("Waiting for %d upstream partitions of %s: %s", len(self._missing), day, ", ".join(self._missing))
            return False
        self.log.info("Every upstream partition of %s is published", day)
        return True

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSensorTimeout

        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            missing = ", ".join(self._missing) or "(none recorded)"
            raise AirflowSensorTimeout(
                f"{exc} Upstream partitions still missing for {self.logical_day(context)}: {missing}. "
                "Run (or backfill) ingest_flights and the features DAG for those days, then clear this task."
            ) from None


class BatchPredictOperator(PartitionedOperator):
    """Score every row scheduled on day ``ds`` and publish ``predictions/ds=<ds>/``.

    Model: ``model_version`` when given (or the run's ``model_version`` param), otherwise the
    champion serving at the day's prediction time (see :func:`airloop.scoring.choose_model`).
    Refusals that a retry cannot fix (no champion, features the model needs are gone, corrupt
    upstream) fail the task at once; a day outside the replayed source is skipped. Its outlet
    assets get ``extra={"ds", "model_version", "rows", "rows_missing_features"}``.

    :param ds: partition date (templated); resolved from the run when omitted.
    :param model_version: pin a registry version (templated; empty: the policy above).
    :param chunk_rows: rows per scoring chunk (default ``AIRLOOP_SCORING_CHUNK_ROWS``).
    """

    template_fields = ("ds", "model_version")
    ui_color = "#e8fdf0"

    def __init__(self, *, model_version: int | str | None = None, chunk_rows: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model_version = model_version
        self.chunk_rows = chunk_rows

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    @cached_property
    def source_hook(self) -> SourceHook:
        return SourceHook()

    @cached_property
    def registry_hook(self):
        from airloop_plugins.hooks.registry import ModelRegistryHook

        return ModelRegistryHook()

    def pinned_version(self, context) -> str | None:
        value = self.model_version
        if value in (None, "", "None"):
            value = (context.get("params") or {}).get("model_version")
        return None if value in (None, "", "None") else str(value)

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airloop.scoring import FeatureMismatchError, NoChampionError, NoScheduleError, UpstreamCorruptError, score_day

        day = self.logical_day(context)
        pinned = self.pinned_version(context)
        dag_run = context.get("dag_run")
        run_id = getattr(dag_run, "run_id", None)
        self.log.info("Scoring %s with %s", day, f"pinned model v{pinned}" if pinned else "the champion serving then")
        try:
            result = score_day(
                day,
                settings=self.settings,
                model_version=pinned,
                lake=self.lake_hook.lake,
                source=self.source_hook.source,
                registry=self.registry_hook.registry,
                use_case=self.use_case,
                chunk_rows=self.chunk_rows,
                airflow_run_id=run_id,
            )
        except NoScheduleError as exc:
            raise AirflowSkipException(str(exc)) from None
        except (NoChampionError, FeatureMismatchError, UpstreamCorruptError) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
        self.log.info(
            "Published %d predictions of %s with model v%d (%d rows with missing features) at %s in %.2fs",
            result.rows, result.ds, result.model_version, result.rows_missing_features, result.prefix, result.duration_s,
        )  # fmt: skip
        self.tag_outlets(
            context,
            {
                "ds": result.ds,
                "model_version": result.model_version,
                "rows": result.rows,
                "rows_missing_features": result.rows_missing_features,
            },
        )
        return result.as_dict()
