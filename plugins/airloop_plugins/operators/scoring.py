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

    Waiting only makes sense for what the nightly schedule brings (day ``ds - 1``'s ingestion and
    features). When the older raw history those features read is not ingested at all (a fresh
    start, a gap), no wait helps: the task is *skipped* at once, naming the missing days and the
    backfill that brings them.

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
        from airloop.scoring import missing_inputs, upstream_partitions, view_prefixes

        day = self.logical_day(context)
        lake = self.lake_hook.lake
        prefixes = view_prefixes(self.settings, self.use_case, lake=lake)
        self._missing = missing_inputs(lake, upstream_partitions(day, self.use_case, prefixes))
        if self._missing:
            absent = missing_history(self.lake_hook.lake, day.shift(-1), self.use_case, self.settings)
            if absent:
                from airloop.features.errors import day_spans

                days = sorted(d for table_days in absent.values() for d in table_days)
                spans = "; ".join(f"{table} {day_spans(table_days)}" for table, table_days in sorted(absent.items()))
                self.skip(
                    context,
                    f"inputs not there yet: scoring {day} needs the features of {day.shift(-1)}, which read raw "
                    f"history that is not ingested ({spans}); waiting cannot bring it. Backfill it "
                    f"(make backfill DAG=ingest_flights FROM={days[0]} TO={days[-1]}), then clear this run."
                )
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


def missing_history(lake, day, use_case, settings) -> dict:
    """Raw partitions before ``day`` that ``day``'s features read and nobody has ingested.

    ``day`` itself is left out: its ingestion is what the nightly schedule brings (worth a wait).
    Days before the data's first day are not expected. Returns ``{table: [dates]}``, empty when
    the history is all there.
    """
    from airloop.core.storage import partition_prefix, read_manifest
    from airloop.features.compute import raw_partitions_needed
    from airloop.features.layout import history_start

    if use_case.features is None:
        return {}
    first_day = history_start(settings, use_case.features)
    needed: dict[str, set] = {}
    for view in use_case.features.views:
        for table, days in raw_partitions_needed(day, view.inputs, first_day).items():
            needed.setdefault(table, set()).update(d for d in days if d < day.date)
    absent = {
        table: sorted(d for d in days if read_manifest(lake, partition_prefix("raw", table, d.isoformat())) is None)
        for table, days in needed.items()
    }
    return {table: days for table, days in absent.items() if days}


class BatchPredictOperator(PartitionedOperator):
    """Score every row scheduled on day ``ds`` and publish ``predictions/ds=<ds>/``.

    Model: ``model_version`` when given (or the run's ``model_version`` param), otherwise the
    champion serving at the day's prediction time (see :func:`airloop.scoring.choose_model`).
    Refusals that a retry cannot fix (no champion served the day while one exists now, a pinned
    version that does not exist, features the model needs are gone, corrupt upstream) fail the
    task at once, saying what to do. Inputs not there yet are skipped with the reason: no model
    registered at all yet (a fresh start: train_model promotes the first one), a day outside
    the replayed source. Its outlet assets get ``extra={"ds", "model_version", "rows",
    "rows_missing_features"}``.

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
        from airflow.sdk.exceptions import AirflowFailException

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
            self.skip(context, str(exc))
        except NoChampionError as exc:
            if pinned is None and self.registry_hook.registry.champion(self.use_case.model.name) is None:
                self.skip(context, f"inputs not there yet: {exc}")
            raise AirflowFailException(f"NoChampionError: {exc}") from None
        except (FeatureMismatchError, UpstreamCorruptError) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
        self.log.info(
            "Published %d predictions of %s with model v%d (%d rows with missing features) at %s in %.2fs",
            result.rows, result.ds, result.model_version, result.rows_missing_features, result.prefix, result.duration_s,
        )  # fmt: skip
        self.record_lineage([result.prefix])
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
