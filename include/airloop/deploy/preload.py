"""Pay the heavy imports once per worker, not once per task.

Every Airflow 3 task runs in a process of its own, and on Linux that process is a bare
``os.fork()`` of the process that launched it: a LocalExecutor worker (itself forked from the
scheduler) or a Celery prefork child. Whatever those long-lived parents imported, the task
process has for free (copy-on-write pages). Left alone, each task pays its imports again:
pandas + pyarrow + DuckDB about 2 s, XGBoost and scikit-learn about 3 s each, Feast and
Evidently 6-8 s each, on a 2-core machine; one day's data work is well under a second.

:func:`preload` imports the stage libraries in the parent. It is called from
``config/airflow_local_settings.py`` (Airflow imports that file first thing in every process)
and acts only in the processes that fork tasks: ``airflow scheduler`` (LocalExecutor) and
``airflow celery worker``; the API server, DAG processor, triggerer and CLI commands stay light.

``AIRLOOP_PRELOAD``: ``auto`` (default: the processes above), ``off``, or ``on`` (this process,
whatever it is: for tests and benchmarks). ``AIRLOOP_PRELOAD_MODULES`` overrides the list
(comma-separated module names). A module that fails to import is logged and skipped: a broken
optional library costs its task the import error, never the scheduler.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# What the stages import when they run (see each stage's lazy imports). Fork-safe at import
# time: none of them starts threads or opens connections until used.
DEFAULT_MODULES = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "duckdb",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "pandera.pandas",
    "pandera.errors",
    "sklearn.metrics",
    "sklearn.linear_model",
    "xgboost",
    "feast",
    "feast.infra.online_stores.sqlite",
    "evidently",
    "evidently.presets",
    "airflow.sdk",
    "airflow.sdk.execution_time.task_runner",
    # The stages, every module of each ("pkg.*"): the list does not go stale as modules are added.
    "airloop.ingest.*",
    "airloop.features.*",
    "airloop.registry.*",
    "airloop.training.*",
    "airloop.scoring.*",
    "airloop.monitoring.*",
)
# With an OpenLineage transport configured, the provider's listener imports its client in every
# task process that emits an event (1-2.5 s measured here on the loaded 2-core machine): imported
# once in the parent instead. Without a transport the provider is off and none of it is loaded.
OPENLINEAGE_MODULES = (
    "openlineage.client",
    "airflow.providers.openlineage.plugins.listener",
    "airflow.providers.openlineage.plugins.adapter",
    "airflow.providers.openlineage.extractors",
    "airloop.lineage.*",
)
MODES = ("auto", "on", "off")


class PreloadError(ValueError):
    """``AIRLOOP_PRELOAD`` has a value that is not one of :data:`MODES`."""


@dataclass
class PreloadReport:
    """What :func:`preload` did: modules imported, failed (with the error) and seconds spent."""

    imported: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        text = f"airloop preload: {len(self.imported)} modules in {self.seconds:.1f} s"
        if self.failed:
            text += "; failed: " + ", ".join(f"{name} ({error})" for name, error in self.failed.items())
        return text


def forks_tasks(argv: list[str]) -> bool:
    """Is this the command line of a process that forks task processes?

    ``airflow scheduler`` (its LocalExecutor workers fork the tasks) and ``airflow celery worker``
    (prefork pool). Not ``airflow standalone`` itself: it starts the scheduler as a child process,
    which preloads on its own.
    """
    words = [os.path.basename(argv[0])] + list(argv[1:]) if argv else []
    if not words or not (words[0].endswith("__main__.py") or "airflow" in words[:2]):
        return False
    commands = [w for w in words[1:] if not w.startswith("-")]
    return commands[:1] == ["scheduler"] or commands[:2] == ["celery", "worker"]


def mode_from_env(environ: dict[str, str] | None = None) -> str:
    value = (environ if environ is not None else os.environ).get("AIRLOOP_PRELOAD", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise PreloadError(f"AIRLOOP_PRELOAD must be one of {', '.join(MODES)}, got {value!r}")
    return value


def modules_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    value = (environ if environ is not None else os.environ).get("AIRLOOP_PRELOAD_MODULES", "")
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if names:
        return names
    env = environ if environ is not None else os.environ
    lineage_on = env.get("AIRFLOW__OPENLINEAGE__TRANSPORT") or env.get("OPENLINEAGE_URL")
    return DEFAULT_MODULES + OPENLINEAGE_MODULES if lineage_on else DEFAULT_MODULES


def expand(modules: tuple[str, ...], report: PreloadReport | None = None) -> list[str]:
    """``modules`` with each ``pkg.*`` replaced by the package and all its submodules (sorted)."""
    import pkgutil

    names: list[str] = []
    for name in modules:
        if not name.endswith(".*"):
            names.append(name)
            continue
        package_name = name[:-2]
        try:
            package = importlib.import_module(package_name)
        except Exception as error:  # noqa: BLE001
            if report is not None:
                report.failed[package_name] = f"{type(error).__name__}: {error}"
            continue
        names.append(package_name)
        paths = getattr(package, "__path__", None) or []
        names += sorted(info.name for info in pkgutil.walk_packages(paths, prefix=f"{package_name}."))
    return names


def preload(modules: tuple[str, ...] = DEFAULT_MODULES, *, clock=time.perf_counter) -> PreloadReport:
    """Import ``modules`` (in order) into this process; never raises for a module's failure."""
    report = PreloadReport()
    started = clock()
    for name in expand(modules, report):
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - a broken optional library must not stop the scheduler
            report.failed[name] = f"{type(error).__name__}: {error}"
        else:
            report.imported.append(name)
    report.seconds = clock() - started
    return report


def preload_for_process(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> PreloadReport | None:
    """The hook ``airflow_local_settings`` calls: preload when this process forks tasks."""
    argv = sys.argv if argv is None else argv
    mode = mode_from_env(environ)
    if mode == "off" or (mode == "auto" and not forks_tasks(argv)):
        return None
    report = preload(modules_from_env(environ))
    print(report.summary(), file=sys.stderr, flush=True)
    return report
