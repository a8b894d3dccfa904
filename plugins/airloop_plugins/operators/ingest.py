"""Ingestion operators: extract one day from the source, then hold it to the data contract."""

from __future__ import annotations

from functools import cached_property

from airloop_plugins.hooks import LakeHook, SourceHook
from airloop_plugins.operators.base import PartitionedOperator


class SourceExtractOperator(PartitionedOperator):
    """Stage one table's rows for day ``ds`` from the source database into ``staging/``.

    Skips (with the reason in the log) when the day lies outside the replayed source.

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

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        from airloop.ingest import OutsideSourceCoverage, extract_to_staging

        day = self.logical_day(context)
        self.log.info("Extracting %s for %s from %s", self.table, day, self.source_hook.source.safe_url)
        try:
            manifest = extract_to_staging(
                self.table, day, use_case=self.use_case, source=self.source_hook.source, lake=self.lake_hook.lake
            )
        except OutsideSourceCoverage as exc:
            # Say why in the task log itself: Airflow logs a skip as a bare "Skipping task."
            self.log.warning("Skipping %s for %s: %s", self.table, day, exc)
            raise AirflowSkipException(str(exc)) from None
        self.log.info("Staged %d rows at %s", manifest["rows"], manifest["partition"])
        return {"ds": day.key, "rows": manifest["rows"], "staging": manifest["partition"]}


class DataContractOperator(PartitionedOperator):
    """Validate one staged day against the use case's contract and publish raw + quarantine.

    Valid rows go to ``raw/<table>/ds=<ds>/``, bad rows with a reason each to
    ``quarantine/<table>/ds=<ds>/``; manifests are written last. The task then fails (no retry)
    when the quarantined share exceeds ``max_quarantine_share``, with the numbers in the message.
    Its outlet assets get ``extra={"ds", "rows", "quarantined_rows"}``.

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

        from airloop.ingest import QualityGateError, check_quality_gate, validate_and_publish

        summary = validate_and_publish(
            self.table,
            self.logical_day(context),
            use_case=self.use_case,
            lake=self.lake_hook.lake,
            replay_offset_days=self.settings.replay_offset_days,
        )
        self.log.info(
            "Published %d valid rows to %s and %d quarantined rows to %s",
            summary.valid_rows, summary.raw_prefix, summary.quarantined_rows, summary.quarantine_prefix,
        )  # fmt: skip
        limit = self.settings.max_quarantine_share if self.max_quarantine_share is None else float(self.max_quarantine_share)
        try:
            check_quality_gate(summary, limit, self.settings.quarantine_gate_min_rows)
        except QualityGateError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Quality gate passed: %.3f%% quarantined (limit %.3f%%)", 100 * summary.quarantined_share, 100 * limit)
        self.tag_outlets(context, {"ds": summary.ds, "rows": summary.valid_rows, "quarantined_rows": summary.quarantined_rows})
        return summary.as_dict()
