"""What every Airloop operator shares: resolving its partition date and tagging its asset events."""

from __future__ import annotations

import resource
import time
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, NoReturn

from airflow.sdk import BaseOperator

from airloop_plugins.operators.lineage import LineageMixin

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay

# The XCom key under which a skipped task leaves its reason (the task instance's XCom tab).
SKIP_REASON_KEY = "skip_reason"


class SkipReasonMixin:
    """For operators whose task may find its inputs not there yet: :meth:`skip` says why."""

    def skip(self, context, reason: str) -> NoReturn:
        """Skip this task, saying why where a person looks: the task log and XCom ``skip_reason``.

        A run note would be the natural place, but Airflow 3.3's task SDK cannot write one: its
        execution API lets a task trigger a new run with a note, not annotate its own run or task
        instance (``PATCH /api/v2/.../dagRuns/{run_id}`` needs a user's token). The XCom shows on
        the task instance's XCom tab and is readable by downstream tasks and the REST API.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        self.log.warning("Skipping: %s", reason)
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=SKIP_REASON_KEY, value=reason)
        raise AirflowSkipException(reason)


class PartitionedOperator(SkipReasonMixin, LineageMixin, BaseOperator):
    """An operator that works on one daily partition ``ds``.

    ``ds`` (templated) wins when given; otherwise it is resolved from the run (``ds`` param,
    partition key, triggering asset events, logical date: see :func:`airloop.core.dates.resolve_ds`).
    What ``execute`` published (:meth:`record_lineage`) is the task's OpenLineage outputs.
    """

    template_fields = ("ds",)

    def __init__(self, *, ds: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ds = ds

    @cached_property
    def settings(self):
        from airloop.core.config import get_settings

        return get_settings()

    @cached_property
    def use_case(self):
        from airloop.core.usecase import load_use_case

        return load_use_case(self.settings.use_case)

    def pre_execute(self, context):
        """Log how long the task process took to reach its work (``airloop task: started up``).

        From the process's start (the fork of the executor's worker) to here: Airflow's task
        runner, the DAG file's parse, and every import not preloaded (``airloop.deploy.preload``).
        ``bench/bench_year.py`` reads these lines.
        """
        super().pre_execute(context)
        self.mask_credentials()
        self._work_started = time.monotonic()
        try:
            import psutil

            startup = time.time() - psutil.Process().create_time()
        except Exception:  # noqa: BLE001 - a figure for the log, never a reason to fail
            return
        self.log.info("airloop task: started up in %.2f s (process start to the stage's work)", startup)

    def mask_credentials(self) -> None:
        """Register every credential of the URLs and keys this task may see with Airflow's secrets
        masker, so that even a library's own message cannot put one in the task log."""
        import os

        from airflow.sdk.log import mask_secret

        from airloop.core.redaction import url_secrets

        settings = self.settings
        for url in (settings.source_url, settings.registry_url, settings.lake_url):
            for secret in url_secrets(url or ""):
                mask_secret(secret)
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AIRLOOP_FEAST_PG_PASSWORD"):
            if os.environ.get(name):
                mask_secret(os.environ[name], name)

    def post_execute(self, context, result=None):
        """Log the work's seconds and the process's peak RSS (``airloop task: work ...``)."""
        super().post_execute(context, result)
        started = getattr(self, "_work_started", None)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        work = f"{time.monotonic() - started:.2f} s" if started is not None else "?"
        self.log.info("airloop task: work %s, peak RSS %.0f MB", work, peak_mb)

    def logical_day(self, context) -> "LogicalDay":
        """The run's day, parsed once here (the boundary) into the value the stages take."""
        from airloop.core.dates import resolve_ds

        return self.use_case.day(self.ds or resolve_ds(context, self.use_case.timezone))

    def partition_date(self, context) -> date:
        return self.logical_day(context).date

    def tag_outlets(self, context, extra: dict) -> None:
        """Attach ``extra`` (always with ``ds``) to the events of this task's outlet assets."""
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = extra
