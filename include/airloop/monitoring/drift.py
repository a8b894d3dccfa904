"""The data-drift check of one day (:func:`drift_report`): which columns to test, which rows.

The day's model inputs and prediction scores (``predictions/ds=D/``) against the champion's
reference sample (``reference.parquet``, drawn from its training window). For people, Evidently's
``DataDriftPreset`` tests every column (under 1000 reference rows K-S / chi-square; above,
Wasserstein / Jensen-Shannon distance > 0.1) and the *drift share* is the share of columns that
drifted. A sample smaller than ``min_rows`` gives status ``skipped`` with the reason and no drift
share; a column entirely null on either side is left out of the test and listed under
``null_columns``. A long day is tested on a sample seeded by the day alone (:func:`rows_to_test`).

For the drift policy, the **drift signal** (:func:`drift_signal`): every column's PSI against the
reference, compared with its threshold calibrated on the day-to-day variability of a healthy
period (:mod:`airloop.monitoring.calibration`); columns that move every day by construction are
context, not counted. Computed directly, so ``render_html=False`` needs no Evidently at all.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING

from airloop.monitoring.calibration import CONTEXT, UNCALIBRATED_PSI
from airloop.monitoring.columns import NOT_MONITORED, split_columns  # noqa: F401  (public here too)
from airloop.monitoring.config import MonitorConfig
from airloop.monitoring.metrics import is_context_column, parse_drift_json, policy_drift_share
from airloop.monitoring.render import snapshot_html
from airloop.monitoring.result import DRIFT, OK, SKIPPED, ReportResult

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.dates import LogicalDay
    from airloop.monitoring.calibration import DriftCalibration

def _sample(frame: "pd.DataFrame", rows: int, seed: int = 0) -> "pd.DataFrame":
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


def day_seed(day: "LogicalDay") -> int:
    """A seed of the day alone (its key): a rerun of the day samples the same rows."""
    return int(hashlib.sha256(day.key.encode()).hexdigest()[:8], 16)


def rows_to_test(current: "pd.DataFrame", day: "LogicalDay", max_rows: int) -> "pd.DataFrame":
    """``current``, or a seeded uniform sample of ``max_rows`` of it (in row order) when longer."""
    if not max_rows or len(current) <= max_rows:
        return current
    return _sample(current, max_rows, seed=day_seed(day)).sort_index()


def drift_report(
    day: "LogicalDay",
    reference: "pd.DataFrame",
    current: "pd.DataFrame",
    *,
    config: MonitorConfig | None = None,
    columns: list[str] | None = None,
    model_version: int | None = None,
    render_html: bool = True,
    calibration: "DriftCalibration | None" = None,
) -> ReportResult:
    """Drift of ``current`` (``day``'s inputs and scores) against ``reference`` (the champion's
    training sample): Evidently's report for people, the policy's signal computed directly.

    :param columns: columns to consider (default: every column of ``current``); identifiers,
        timestamps and the label are never tested, entirely null columns are listed apart.
    :param render_html: False builds no Evidently report: the drift share is computed with the
        same distances directly (:mod:`airloop.monitoring.effects`), ``body`` holds the numbers only.
    :param calibration: per-column thresholds and roles (:mod:`airloop.monitoring.calibration`);
        None: the use case's context columns and a PSI of 0.2.
    :returns: a result with status ``skipped`` (and no drift share) when either side has fewer
        than ``config.min_rows`` rows or no testable column is left.
    """
    from airloop.monitoring.effects import column_effects

    config = config or MonitorConfig()
    result = ReportResult(ds=day.key, kind=DRIFT, status=SKIPPED, model_version=model_version,
                          rows_current=len(current), rows_reference=len(reference))  # fmt: skip
    too_few = [(name, len(f)) for name, f in (("current", current), ("reference", reference)) if len(f) < config.min_rows]
    if too_few:
        result.message = "; ".join(
            f"{name} sample has {n} rows (fewer than {config.min_rows}): drift not assessed" for name, n in too_few
        )
        return result
    tested_current = rows_to_test(current, day, config.test_max_rows)
    sampled = len(tested_current) < len(current)
    numerical, categorical, null_columns = split_columns(reference, tested_current, columns)
    result.metrics["null_columns"] = null_columns
    result.metrics["rows_tested_current"] = len(tested_current)
    tested = numerical + categorical
    if not tested:
        result.message = "no column shared by the reference and the current sample can be tested"
        return result

    effects = column_effects(reference, tested_current, numerical, categorical)
    snapshot = None
    if render_html:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)

        def run(ref, cur):
            with warnings.catch_warnings():
                # A category the reference never saw has an expected count of 0 in Evidently's
                # chi-square test: scipy warns once per such column, and the test reports the
                # column drifted (an infinite statistic), which is the right verdict.
                warnings.filterwarnings("ignore", message="divide by zero encountered in divide", category=RuntimeWarning)
                return Report([DataDriftPreset()]).run(
                    Dataset.from_pandas(cur[tested], data_definition=definition),
                    Dataset.from_pandas(ref[tested], data_definition=definition),
                )

        snapshot = run(reference, tested_current)
        result.body = snapshot.dict()
        parsed = parse_drift_json(result.body)
    else:
        parsed = native_drift(effects)
    result.metrics.update({k: parsed[k] for k in ("drift_share", "drifted_columns", "n_columns", "drifted_column_names")})
    result.metrics["policy_drift_share"], policy_drifted = policy_drift_share(parsed["columns"], config.context_columns)
    result.metrics["context_columns"] = sorted(c for c in parsed["columns"] if is_context_column(c, config.context_columns))
    signal = drift_signal(effects, calibration, config.context_columns)
    result.metrics.update({"drift_signal": signal["share"], "drift_signal_columns": signal["breached"],
                           "calibrated": calibration is not None})  # fmt: skip
    result.body["airloop"] = {"columns": parsed["columns"], "null_columns": null_columns,
                              "context_columns": result.metrics["context_columns"],
                              "policy_drift_share": result.metrics["policy_drift_share"],
                              "policy_drifted_columns": policy_drifted, "signal": signal,
                              "rows_current": len(current), "rows_reference": len(reference),
                              "rows_tested_current": len(tested_current),
                              "current_sample_seed": day_seed(day) if sampled else None}  # fmt: skip
    result.status = OK
    notes = []
    if sampled:
        notes.append(
            f"tested on a seeded sample of {len(tested_current):,} of {len(current):,} current rows "
            "(AIRLOOP_MONITOR_TEST_MAX_ROWS)"
        )
    if null_columns:
        notes.append(f"entirely null on one side, not tested: {', '.join(null_columns)}")
    result.message = "; ".join(notes)
    if snapshot is not None:
        banner = f"Drift on {day.key}: {notes[0]}; the reference is whole ({len(reference):,} rows)." if sampled else None
        result.html = snapshot_html(snapshot, banner)
        cap = config.html_sample_rows
        if len(result.html) > config.html_max_bytes and (len(tested_current) > cap or len(reference) > cap):
            banner = (
                f"Drift on {day.key}: rendered from a sample of {min(cap, len(tested_current))} of {len(current)} current "
                f"and {min(cap, len(reference))} of {len(reference)} reference rows. Headline numbers "
                f"({len(tested_current):,} current rows tested): drift share {parsed['drift_share']:.2f}, drifted columns: "
                f"{', '.join(parsed['drifted_column_names']) or 'none'}."
            )
            result.html = snapshot_html(run(_sample(reference, cap), _sample(tested_current, cap)), banner)
    return result


def native_drift(effects: dict[str, dict]) -> dict:
    """What :func:`parse_drift_json` reads from Evidently, from the directly computed distances."""
    columns = {c: {k: e[k] for k in ("method", "threshold", "score", "drifted")} for c, e in effects.items()}
    drifted = sorted(c for c, v in columns.items() if v["drifted"])
    return {"drift_share": len(drifted) / len(columns), "drifted_columns": len(drifted), "n_columns": len(columns),
            "drifted_column_names": drifted, "columns": columns}  # fmt: skip


def drift_signal(effects: dict[str, dict], calibration: "DriftCalibration | None", context_columns=()) -> dict:
    """The policy's drift signal: the share of policy columns whose PSI exceeds their threshold.

    With a calibration, a column's role and threshold are the calibrated ones (a column it does
    not know is a policy column at the uncalibrated PSI); without, the use case's context columns
    are left out and every other column breaches at :data:`UNCALIBRATED_PSI`.
    """
    per_column, breached, counted = {}, [], 0
    for col, e in sorted(effects.items()):
        role = calibration.role(col) if calibration is not None else None
        if role is None:
            role = CONTEXT if is_context_column(col, context_columns) else "policy"
        threshold = (calibration.threshold(col) if calibration is not None else None) or UNCALIBRATED_PSI
        per_column[col] = {"psi": e["psi"], "threshold": threshold, "role": role}
        if role == CONTEXT:
            continue
        counted += 1
        if e["psi"] > threshold:
            breached.append(col)
    return {"share": (len(breached) / counted) if counted else None, "breached": breached, "counted": counted,
            "columns": per_column}  # fmt: skip
