"""Monitoring operators: drift and performance reports of a scored day, and the drift policy.

Thin wrappers over :mod:`airloop.monitoring` (reports, store, drift policy); each takes the run's
:class:`~airloop.core.dates.LogicalDay` from :meth:`logical_day`. Evidently and pandas are imported
inside ``execute`` only.
"""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseOperatorLink

from airloop_plugins.hooks import LakeHook
from airloop_plugins.operators.base import PartitionedOperator

REPORTS_URL_PREFIX = "/airloop"


def report_url(ds: str, kind: str) -> str:
    """Where the UI plugin serves a report (absolute when ``[api] base_url`` is set)."""
    try:
        from airflow.configuration import conf

        base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # outside a configured Airflow (tests of the link alone)
        base = ""
    return f"{base}{REPORTS_URL_PREFIX}/reports/{ds}/{kind}"


class EvidentlyReportLink(BaseOperatorLink):
    """'Evidently report' button on a report task instance: opens the report of its day."""

    name = "Evidently report"

    def get_link(self, operator, *, ti_key) -> str:
        ds = getattr(operator, "report_ds", None)
        if not ds:
            return ""
        return report_url(ds, operator.report_kind)


class _ReportOperator(PartitionedOperator):
    report_kind = "drift"
    operator_extra_links = (EvidentlyReportLink(),)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.report_ds: str | None = None

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    @cached_property
    def store(self):
        from airloop.monitoring import MonitoringStore

        return MonitoringStore(self.settings.registry_url)

    def _log_result(self, result) -> dict:
        summary = result.summary()
        if result.status == "ok":
            from airloop.monitoring.lake import report_prefix_of

            self.record_lineage([report_prefix_of(result)])
            self.log.info("%s report of %s: %s", result.kind, result.ds, {k: summary.get(k) for k in (
                "drift_share", "drifted_column_names", "null_columns", "drift_signal", "drift_signal_columns", "auc",
                "auc_drop", "window_auc", "auc_drop_bound", "rows_current")})  # fmt: skip
        else:
            self.log.warning("%s report of %s not produced (%s): %s", result.kind, result.ds, result.status, result.message)
        return summary


class DriftReportOperator(_ReportOperator):
    """Evidently data-drift report of day ``ds``'s model inputs and scores against the champion's
    reference sample; HTML + JSON to ``reports/ds=<ds>/drift/``, numbers to ``monitoring_metrics``.

    Skips (with the reason) when the day was not scored. A tiny or empty sample is recorded as
    ``skipped`` with its reason and no drift share (no false alarm).

    :param ds: partition date (templated); resolved from the run when omitted.
    """

    report_kind = "drift"
    ui_color = "#efe8fd"

    def execute(self, context):
        from airloop.monitoring import monitor_drift
        from airloop.core.storage import PartitionNotFound

        day = self.logical_day(context)
        try:
            result = monitor_drift(day, settings=self.settings, lake=self.lake_hook.lake, store=self.store)
        except PartitionNotFound as exc:
            self.skip(context, f"{day.key} was not scored, nothing to monitor: {exc}")
        if result.status == "ok":
            self.report_ds = day.key
        return self._log_result(result)


class PerformanceReportOperator(_ReportOperator):
    """Evidently classification report on the realized outcomes of the scored day
    ``ds - outcome_lag_days`` (``AIRLOOP_MONITOR_OUTCOME_LAG_DAYS``, default 1: yesterday's
    flights have landed and were ingested at midnight). Stores ``awaiting_outcomes`` while that
    day's ``raw/flights`` partition does not exist.

    :param ds: the monitoring date (templated); the evaluated day is ``ds - lag``.
    """

    report_kind = "performance"
    ui_color = "#e8fdf0"

    def execute(self, context):
        from airloop.monitoring import MonitorConfig, monitor_performance, outcome_day

        day = self.logical_day(context)
        config = MonitorConfig.from_env()
        evaluated = outcome_day(day, config)
        self.log.info("Monitoring date %s evaluates the realized outcomes of %s", day.key, evaluated.key)
        result = monitor_performance(
            evaluated, settings=self.settings, lake=self.lake_hook.lake, store=self.store, config=config, measured_on=day
        )
        if result.status == "ok":
            self.report_ds = evaluated.key
        return self._log_result(result)


class DriftPolicyOperator(PartitionedOperator):
    """Apply the drift policy (:class:`airloop.monitoring.DriftPolicy`) to the monitoring series
    up to ``ds``; when it fires, record the event, notify, and update the outlet assets (``DRIFT``)
    with ``extra`` = evidence + suggested training window (``window_start``, ``window_end``).

    When it does not fire the task is skipped with the reason, so no asset event is emitted. A
    day that already fired is not emitted again on a rerun (one episode, one retraining).

    :param ds: partition date (templated); resolved from the run when omitted.
    :param notifier: called with the context (and ``context["drift"]``) when the policy fires.
    """

    ui_color = "#fde8e8"

    def __init__(self, *, notifier=None, **kwargs):
        super().__init__(**kwargs)
        self.notifier = notifier

    @cached_property
    def store(self):
        from airloop.monitoring import MonitoringStore

        return MonitoringStore(self.settings.registry_url)

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        from airloop.monitoring import DriftPolicy, evidence_from_rows, load_calibration

        day = self.logical_day(context)
        # The AUC tolerance measured by `airloop monitor calibrate` (the lake's calibration.json).
        policy = DriftPolicy.from_env(load_calibration(LakeHook().lake))
        lookback = day.shift(-(policy.cooldown_days + policy.consecutive_days + policy.outcome_lag_days + 1))
        history = evidence_from_rows(self.store.rows(start=lookback.date, end=day.date))
        decision = policy.decide(day, history, self.store.fired_days())
        if not decision.fire:
            # The skip reason is not in the task log by itself: say it there too.
            self.log.info("Drift policy did not fire on %s: %s", day.key, decision.reason)
            raise AirflowSkipException(f"drift policy did not fire on {day.key}: {decision.reason}")
        extra = decision.extra()
        if not self.store.record_event(extra["ds"], model_version=extra["model_version"],
                                       window_start=extra["window_start"], window_end=extra["window_end"],
                                       evidence=extra, run_id=context["run_id"]):  # fmt: skip
            self.log.info("Drift policy already fired for %s in another run: no second retraining", day.key)
            raise AirflowSkipException(f"drift policy already fired for {day.key} in another run; not emitting a second retraining")
        self.log.warning("Drift policy fired on %s: %s; suggested training window %s..%s",
                         day.key, decision.reason, extra["window_start"], extra["window_end"])  # fmt: skip
        self.tag_outlets(context, extra)
        if self.notifier is not None:
            context["drift"] = extra
            try:
                self.notifier(context)
            except Exception:  # an unreachable mail server must not cancel the retraining
                self.log.exception("Could not send the drift notification; the DRIFT event is still emitted")
        return extra
