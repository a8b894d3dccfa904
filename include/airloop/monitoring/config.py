"""Settings of the monitoring stage (:class:`MonitorConfig`), the columns it reads, its input error.

Settings (environment, read by :meth:`MonitorConfig.from_env`):
``AIRLOOP_MONITOR_MIN_ROWS`` (50), ``AIRLOOP_MONITOR_TEST_MAX_ROWS`` (100,000),
``AIRLOOP_MONITOR_HTML_MAX_BYTES`` (8 MB),
``AIRLOOP_MONITOR_HTML_SAMPLE_ROWS`` (5000),
``AIRLOOP_MONITOR_OUTCOME_LAG_DAYS`` (1), ``AIRLOOP_LATE_MINUTES`` (15),
``AIRLOOP_MONITOR_CONTEXT_COLUMNS`` (the use case's), ``AIRLOOP_MONITOR_AUC_WINDOW_DAYS`` (7),
``AIRLOOP_MONITOR_AUC_WINDOW_MIN_DAYS`` (3), ``AIRLOOP_MONITOR_AUC_CONFIDENCE`` (0.95).
"""

from __future__ import annotations

from dataclasses import dataclass

from airloop.core.config import SettingsError, env_float, env_int

SCORE_COLUMN = "score"
LABEL_COLUMN = "is_delayed"


class MonitorInputError(ValueError):
    """An input the monitor needs is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class MonitorConfig:
    """Knobs of the monitoring stage.

    :param min_rows: fewer rows than this in the current or reference sample: skip the check
        (a distance test on a handful of rows is noise, not evidence).
    :param test_max_rows: more current rows than this: Evidently tests a seeded uniform sample
        of this many (the same rows on every rerun of the day), the reference always whole;
        0 tests every row. The reference sample (5,000 rows) bounds the precision of every
        distance anyway: at 1M rows, 100,000 moved no column's score by more than 0.01 against
        its 0.1 threshold and flipped no verdict, at a fifth of the time
        (``bench/bench_monitor.py`` prints both). Row counts in the report are of every row.
    :param html_max_bytes: Evidently's drift HTML holds aggregated distributions, so its size
        hardly depends on the rows (about 4.5 MB for 16 columns at 1k or 1M rows). Should a
        report still exceed this, it is re-rendered from a bounded sample (with a banner saying
        so); the JSON and the headline numbers keep the rows tested.
    :param html_sample_rows: rows per side of that sample.
    :param outcome_lag_days: the performance check of day ``D`` evaluates day ``D - lag``, whose
        flights have landed and were ingested by the time ``D`` is scored.
    :param late_minutes: a flight is late when its arrival delay exceeds this.
    :param context_columns: columns that vary from day to day by nature (the weather, and the
        score that follows it): tested and reported, but left out of the *policy* drift share
        (see :func:`policy_drift_share`). Default: the use case's
        ``extras["monitor_context_columns"]``; ``AIRLOOP_MONITOR_CONTEXT_COLUMNS`` (comma list,
        ``-`` for none) overrides it.
    :param auc_window_days: the realized AUC the policy judges is pooled over the labelled days
        of the last this many days scored by the same model version
        (:mod:`airloop.monitoring.window`).
    :param auc_window_min_days: fewer labelled days than this in the window: no bound yet.
    :param auc_confidence: one-sided confidence of the window's upper AUC bound.
    """

    min_rows: int = 50
    test_max_rows: int = 100_000
    html_max_bytes: int = 8_000_000
    html_sample_rows: int = 5000
    outcome_lag_days: int = 1
    late_minutes: int = 15
    context_columns: tuple[str, ...] = ()
    auc_window_days: int = 7
    auc_window_min_days: int = 3
    auc_confidence: float = 0.95

    def __post_init__(self):
        if not 1 <= self.auc_window_min_days <= self.auc_window_days:
            raise SettingsError(
                f"AUC window: need 1 <= min days <= days, got {self.auc_window_min_days} and {self.auc_window_days}"
            )
        if not 0.5 <= self.auc_confidence < 1:
            raise SettingsError(f"AUC confidence must be in [0.5, 1), got {self.auc_confidence}")

    @classmethod
    def from_env(cls, use_case=None) -> "MonitorConfig":
        from airloop.core.config import env_str

        raw = env_str("AIRLOOP_MONITOR_CONTEXT_COLUMNS", "")
        if raw:
            context = tuple(c.strip() for c in raw.split(",") if c.strip() and c.strip() != "-")
        else:
            context = tuple((use_case.extras if use_case is not None else {}).get("monitor_context_columns", ()))
        return cls(
            context_columns=context,
            min_rows=env_int("AIRLOOP_MONITOR_MIN_ROWS", cls.min_rows, minimum=1),
            test_max_rows=env_int("AIRLOOP_MONITOR_TEST_MAX_ROWS", cls.test_max_rows, minimum=0),
            html_max_bytes=env_int("AIRLOOP_MONITOR_HTML_MAX_BYTES", cls.html_max_bytes, minimum=1),
            html_sample_rows=env_int("AIRLOOP_MONITOR_HTML_SAMPLE_ROWS", cls.html_sample_rows, minimum=1),
            outcome_lag_days=env_int("AIRLOOP_MONITOR_OUTCOME_LAG_DAYS", cls.outcome_lag_days, minimum=0),
            late_minutes=env_int("AIRLOOP_LATE_MINUTES", cls.late_minutes, minimum=0),
            auc_window_days=env_int("AIRLOOP_MONITOR_AUC_WINDOW_DAYS", cls.auc_window_days, minimum=1),
            auc_window_min_days=env_int("AIRLOOP_MONITOR_AUC_WINDOW_MIN_DAYS", cls.auc_window_min_days, minimum=1),
            auc_confidence=env_float("AIRLOOP_MONITOR_AUC_CONFIDENCE", cls.auc_confidence),
        )
