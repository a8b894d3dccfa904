"""Ingestion operators: extract one day, hold it to the data contract, publish the day's tables together.

Each task of a run writes in that run's own area (``airloop.ingest.DayRun.for_run_id``); only
:class:`DayPublishOperator` changes what readers see, for every table of the day at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cached_property

from airloop_plugins.hooks import LakeHook, SourceHook
from airloop_plugins.operators.base import PartitionedOperator


def day_run(context, ds: str):
    """The run area of this Airflow run for day ``ds`` (one per run, shared by its tasks)."""
    from airloop.ingest import DayRun

    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", None) or "manual"
    return DayRun.for_run_id(ds, str(run_id))


class SourceExtractOperator(PartitionedOperator):
    """Stage one table's rows for day ``ds`` from the source database into this run's area.

    A day before the source starts is skipped (the reason in the log). A day past the end of the
    source is *no data yet*: the task is rescheduled every ``AIRLOOP_INGEST_POKE_S`` seconds
    (it holds no worker slot meanwhile) and fails, without retry and with an alert through the
    DAG's failure notifier, once it is ``AIRLOOP_INGEST_LATE_AFTER_H`` hours past the day's end.

    :param table: a table of the use case (``flights``, ``weather``).
    :param ds: partition date ``YYYY-MM-DD`` (templated); resolved from the run when omitted.
    """

    template_fields = ("table", "ds")
    ui_color = "#e8f4fd"

    def __init__(self, *, table: str, **kwargs):
        super().__init__(**kwargs)
        self.table = table

    @cached_property
    def source_hook(self) -> SourceHook:
        return SourceHook()

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def now(self) -> datetime:
        """The wall clock (the operator is the boundary that may read it; tests replace it)."""
        return datetime.now(timezone.utc)

    def execute(self, context):
        from airloop.ingest import NoDataYet, OutsideSourceCoverage, extract_to_staging

        day = self.logical_day(context)
        run = day_run(context, day.key)
        self.log.info("Extracting %s for %s from %s into run area %s", self.table, day, self.source_hook.source.safe_url, run.root)
        try:
            manifest = extract_to_staging(
                self.table, day, use_case=self.use_case, source=self.source_hook.source, lake=self.lake_hook.lake, run=run
            )
        except OutsideSourceCoverage as exc:
            self.skip(context, str(exc))
        except NoDataYet as exc:
            self.wait_or_alert(day, exc)
        self.log.info("Staged %d rows at %s", manifest["rows"], manifest["partition"])
        return {"ds": day.key, "rows": manifest["rows"], "staging": manifest["partition"], "run": run.token}

    def wait_or_alert(self, day, exc: Exception):
        """Reschedule while the day is not late; past the deadline fail (no retry) so the notifier fires."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

        now = self.now()
        late_at = day.window[1] + timedelta(hours=self.settings.ingest_late_after_h)
        if now >= late_at:
            raise AirflowFailException(
                f"{exc}. Late: {self.table} for {day} was expected by {late_at.isoformat()} "
                f"(the day's end + AIRLOOP_INGEST_LATE_AFTER_H={self.settings.ingest_late_after_h:g} h); "
                "clear this task once the source has the day"
            ) from None
        again = now + timedelta(seconds=self.settings.ingest_poke_s)
        self.log.info("Waiting: %s; checking again at %s (late after %s)", exc, again.isoformat(), late_at.isoformat())
        raise AirflowRescheduleException(again)


class DataContractOperator(PartitionedOperator):
    """Hold one staged table of day ``ds`` to the contract; write its raw and quarantine candidates.

    Fails without retry (and alerts through the DAG's failure notifier) on a structural break, a
    row count outside the volume band (``AIRLOOP_VOLUME_BAND_LOW/HIGH`` around the trailing
    same-weekday median) or a quarantined share above ``max_quarantine_share``: then nothing of
    the day is published, and the candidates stay in the run area for inspection.

    :param table: a table of the use case.
    :param ds: partition date (templated); resolved from the run when omitted.
    :param max_quarantine_share: overrides ``AIRLOOP_MAX_QUARANTINE_SHARE``.
    """

    template_fields = ("table", "ds", "max_quarantine_share")
    ui_color = "#fdf3e8"

    def __init__(self, *, table: str, max_quarantine_share: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.table = table
        self.max_quarantine_share = max_quarantine_share

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        from airloop.ingest import ContractError, QualityGateError, VolumePolicy, check_quality_gate, validate_staged

        day = self.logical_day(context)
        try:
            summary = validate_staged(
                self.table,
                day,
                use_case=self.use_case,
                lake=self.lake_hook.lake,
                run=day_run(context, day.key),
                replay_offset_days=self.settings.replay_offset_days,
                volume=VolumePolicy.from_settings(self.settings),
            )
        except ContractError as exc:  # a broken schema or volume does not mend itself on retry
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
        self.log.info(
            "%d valid and %d quarantined rows ready in %s",
            summary.valid_rows, summary.quarantined_rows, summary.candidate,
        )  # fmt: skip
        limit = self.settings.max_quarantine_share if self.max_quarantine_share is None else float(self.max_quarantine_share)
        try:
            check_quality_gate(summary, limit, self.settings.quarantine_gate_min_rows)
        except QualityGateError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Quality gate passed: %.3f%% quarantined (limit %.3f%%)", 100 * summary.quarantined_share, 100 * limit)
        return summary.as_dict()


class DayPublishOperator(PartitionedOperator):
    """Publish ``staging/``, ``raw/`` and ``quarantine/`` of every table of day ``ds`` together.

    One commit for the day (see :mod:`airloop.ingest.commit`): before it nothing published
    changed; a crash after it is rolled forward by the retry. Each outlet asset whose table was
    published (``RAW_TABLE_ASSETS``) gets ``extra={"ds", "rows", "quarantined_rows"}``.

    :param tables: the tables of the day, all published or none.
    :param ds: partition date (templated); resolved from the run when omitted.
    """

    template_fields = ("ds",)
    ui_color = "#e8fdf0"

    def __init__(self, *, tables: list[str], **kwargs):
        super().__init__(**kwargs)
        self.tables = tables

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    def execute(self, context):
        from airloop.core.storage import partition_prefix
        from airloop.ingest import day_status, publish_day
        from airloop.ingest.ingestion import RAW
        from airloop_plugins.assets import RAW_TABLE_ASSETS

        day = self.logical_day(context)
        lake = self.lake_hook.lake
        commit = publish_day(lake, day_run(context, day.key), list(self.tables))
        if commit.recovered:
            self.log.warning("Rolled interrupted commits of %s forward first: %s", day, ", ".join(commit.recovered))
        problems = day_status(lake, day.key, list(self.tables))
        if problems:  # cannot happen after a finished commit; say so loudly if it does
            raise RuntimeError(f"day {day} is inconsistent after commit {commit.commit_id}: {'; '.join(problems)}")
        self.log.info("Published %s of %s together (commit %s): %s", ", ".join(self.tables), day, commit.commit_id, commit.tables)
        self.record_lineage(partition_prefix(RAW, t, day.key) for t in self.tables)
        names = {RAW_TABLE_ASSETS[t].name: t for t in self.tables if t in RAW_TABLE_ASSETS}
        for outlet in self.outlets or []:
            if getattr(outlet, "name", None) in names:
                context["outlet_events"][outlet].extra = commit.extra(names[outlet.name])
        return {"ds": day.key, "commit": commit.commit_id, "tables": commit.tables}
