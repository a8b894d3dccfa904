"""The drift policy's thresholds, calibrated on a healthy period (:func:`calibrate`).

Nothing here is a hand-picked distance. Given the model inputs of a range of days the model is
trusted on (its training window, or weeks of live scoring it served well), and optionally their
scores and realized labels:

* **Per column, the day-to-day variability.** A seeded sample of the whole range plays the
  model's reference sample (``reference_rows``, as training keeps), and every day of the range
  gets its PSI against it (:func:`airloop.monitoring.effects.psi_numeric`). A column whose
  *median* day already differs from the pooled range by ``moving_psi`` or more moves every day by
  construction (rolling delay statistics, the day's weather): it becomes a **context** column,
  reported but not counted. Every other column gets the threshold
  ``max(psi_floor, margin x the largest daily PSI seen in the range)``: a day breaches on a column
  only when it moves further than any day of the healthy period did.
* **Realized AUC, if labels are given.** The pooled AUC of the range is the baseline (or the
  version's holdout AUC, passed in); each ``window_days``-day window of the range gets its upper
  confidence bound (:mod:`airloop.monitoring.window`), and the **AUC tolerance** is the largest
  shortfall of such a bound below the baseline (at least ``auc_floor``): the healthy period
  itself would never have breached.

The result is a small JSON (:meth:`DriftCalibration.to_json`): the same inputs give the same bytes
(seeded sample, sorted keys, no timestamps). ``airloop monitor calibrate FROM TO`` writes it to the
lake (``monitoring/calibration.json``), where the drift check and the policy read it;
``AIRLOOP_DRIFT_CALIBRATION`` names a file to use instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airloop.monitoring.config import LABEL_COLUMN, SCORE_COLUMN, MonitorInputError

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.storage import Lake

CALIBRATION_KEY = "monitoring/calibration.json"
FORMAT = 1
# Without a calibration a policy column breaches at a PSI of 0.2, the conventional "significant
# shift" of credit scoring; run `airloop monitor calibrate` to replace it by measured variability.
UNCALIBRATED_PSI = 0.2
CONTEXT, POLICY = "context", "policy"


@dataclass(frozen=True)
class DriftCalibration:
    """Per-column PSI thresholds and roles, the AUC tolerance, and how they were obtained."""

    columns: dict[str, dict[str, Any]]
    auc_tolerance: float | None = None
    auc: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def role(self, column: str) -> str | None:
        entry = self.columns.get(column)
        return entry["role"] if entry else None

    def threshold(self, column: str) -> float | None:
        entry = self.columns.get(column)
        return entry.get("threshold") if entry else None

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "columns": self.columns, "auc_tolerance": self.auc_tolerance, "auc": self.auc,
                "source": self.source, "parameters": self.parameters}  # fmt: skip
        return (json.dumps(_rounded(body), sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str = "calibration") -> "DriftCalibration":
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT or not isinstance(body.get("columns"), dict):
                raise ValueError(f"format {body.get('format')!r} with columns {type(body.get('columns')).__name__}")
            for name, entry in body["columns"].items():
                if entry.get("role") not in (CONTEXT, POLICY):
                    raise ValueError(f"column {name!r} has role {entry.get('role')!r}")
            return cls(columns=body["columns"], auc_tolerance=body.get("auc_tolerance"), auc=body.get("auc") or {},
                       source=body.get("source") or {}, parameters=body.get("parameters") or {})  # fmt: skip
        except (ValueError, AttributeError, TypeError) as exc:
            raise MonitorInputError(
                f"{where} is not a drift calibration of format {FORMAT} ({exc}); rerun `airloop monitor calibrate FROM TO`"
            ) from None


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def calibrate(
    inputs: "pd.DataFrame",
    *,
    day_column: str = "ds",
    outcomes: "pd.DataFrame | None" = None,
    baseline_auc: float | None = None,
    context_columns=(),
    reference_rows: int = 5000,
    seed: int = 0,
    margin: float = 1.25,
    psi_floor: float = 0.1,
    moving_psi: float = 0.1,
    window_days: int = 7,
    min_window_days: int = 3,
    confidence: float = 0.95,
    auc_floor: float = 0.01,
) -> DriftCalibration:
    """Calibrate on the days of ``inputs`` (see the module doc).

    :param inputs: model inputs (and scores) of the healthy period, one row per prediction, the
        day in ``day_column`` (``YYYY-MM-DD``).
    :param outcomes: ``score``, ``is_delayed`` and ``day_column`` of labelled predictions (may be
        ``inputs`` itself); None calibrates the columns only.
    :param baseline_auc: what the AUC is compared with (the version's holdout AUC); default: the
        pooled AUC of ``outcomes``.
    :param context_columns: columns that are context whatever their variability (the use case's).
    :raises MonitorInputError: on a missing day column or fewer than ``window_days`` days.
    """
    from airloop.monitoring.columns import split_columns
    from airloop.monitoring.effects import _numeric, psi_categorical, psi_numeric
    from airloop.monitoring.metrics import is_context_column

    if day_column not in inputs.columns:
        raise MonitorInputError(f"calibration inputs have no day column {day_column!r} (columns: {sorted(inputs.columns)})")
    days = sorted(str(d) for d in inputs[day_column].dropna().unique())
    if len(days) < window_days:
        raise MonitorInputError(
            f"calibration needs at least {window_days} days of inputs, got {len(days)} ({days[0] if days else '-'}..{days[-1] if days else '-'})"
        )
    frame = inputs.drop(columns=[day_column]).assign(**{"__day": inputs[day_column].astype(str).to_numpy()})
    reference = frame.sample(n=min(reference_rows, len(frame)), random_state=seed)
    numerical, categorical, null_columns = split_columns(reference, frame, [c for c in frame.columns if c != "__day"])
    numerical = [c for c in numerical if c != "__day"]
    categorical = [c for c in categorical if c != "__day"]
    daily: dict[str, list[float]] = {c: [] for c in numerical + categorical}
    ref_num = {c: _numeric(reference[c]) for c in numerical}
    for _, today in frame.groupby("__day", sort=True):
        for c in numerical:
            daily[c].append(psi_numeric(ref_num[c], _numeric(today[c])))
        for c in categorical:
            daily[c].append(psi_categorical(reference[c], today[c]))
    columns = {}
    for c, values in sorted(daily.items()):
        ordered = sorted(values)
        median, largest = ordered[len(ordered) // 2], ordered[-1]
        moving = median >= moving_psi
        role = CONTEXT if moving or is_context_column(c, context_columns) else POLICY
        why = ("moves every day (median daily PSI %.3f >= %.2f)" % (median, moving_psi) if moving
               else "a context column of the use case" if role == CONTEXT else "")  # fmt: skip
        columns[c] = {"role": role, "threshold": max(psi_floor, margin * largest), "median_psi": median,
                      "max_psi": largest, **({"why": why} if why else {})}  # fmt: skip
    auc, tolerance = {}, None
    if outcomes is not None:
        auc = calibrate_auc(outcomes, day_column=day_column, baseline_auc=baseline_auc, window_days=window_days,
                            min_window_days=min_window_days, confidence=confidence)  # fmt: skip
        if auc.get("max_shortfall") is not None:
            tolerance = max(auc_floor, auc["max_shortfall"])
    return DriftCalibration(
        columns=columns,
        auc_tolerance=tolerance,
        auc=auc,
        source={"from": days[0], "to": days[-1], "days": len(days), "rows": len(frame),
                "reference_rows": len(reference), "null_columns": null_columns},  # fmt: skip
        parameters={"seed": seed, "margin": margin, "psi_floor": psi_floor, "moving_psi": moving_psi,
                    "window_days": window_days, "min_window_days": min_window_days, "confidence": confidence,
                    "auc_floor": auc_floor, "psi_bins": 10},  # fmt: skip
    )


def calibrate_auc(outcomes: "pd.DataFrame", *, day_column: str = "ds", baseline_auc: float | None = None,
                  window_days: int = 7, min_window_days: int = 3, confidence: float = 0.95) -> dict:  # fmt: skip
    """Baseline, and the largest shortfall of a window's upper AUC bound below it, over the range."""
    from datetime import date, timedelta

    import pandas as pd

    from airloop.monitoring.metrics import roc_auc
    from airloop.monitoring.window import auc_bound

    missing = {SCORE_COLUMN, LABEL_COLUMN, day_column} - set(outcomes.columns)
    if missing:
        raise MonitorInputError(f"calibration outcomes lack {sorted(missing)}")
    labelled = outcomes[outcomes[LABEL_COLUMN].notna()]
    pooled = roc_auc(labelled[LABEL_COLUMN].astype("int64"), labelled[SCORE_COLUMN])
    baseline = baseline_auc if baseline_auc is not None else pooled
    by_day = {date.fromisoformat(str(k)): g for k, g in labelled.groupby(day_column, sort=True)}
    windows = []
    for end in sorted(by_day):
        inside = [by_day[d] for d in (end - timedelta(days=i) for i in range(window_days)) if d in by_day]
        if len(inside) < min_window_days:
            continue
        pooled_window = pd.concat(inside, ignore_index=True)
        bound = auc_bound(pooled_window[LABEL_COLUMN].astype("int64"), pooled_window[SCORE_COLUMN], confidence)
        if bound is not None:
            windows.append({"end": end.isoformat(), "auc": bound["auc"], "upper": bound["upper"]})
    shortfall = max((baseline - w["upper"] for w in windows), default=None) if baseline is not None else None
    return {"baseline": baseline, "pooled_auc": pooled, "labelled_days": len(by_day), "labelled_rows": len(labelled),
            "windows": len(windows), "min_window_auc": min((w["auc"] for w in windows), default=None),
            "max_shortfall": shortfall}  # fmt: skip


def calibration_path() -> str | None:
    from airloop.core.config import env_str

    return env_str("AIRLOOP_DRIFT_CALIBRATION", "") or None


def save_calibration(lake: "Lake", calibration: DriftCalibration) -> str:
    """Write the calibration to the lake (``monitoring/calibration.json``); returns its URI."""
    lake.write_bytes(CALIBRATION_KEY, calibration.to_json())
    return lake.uri(CALIBRATION_KEY)


def load_calibration(lake: "Lake | None") -> DriftCalibration | None:
    """The calibration in force: ``AIRLOOP_DRIFT_CALIBRATION`` (a file) or the lake's, else None.

    :raises MonitorInputError: when it exists but cannot be read as one (named, with the reason).
    """
    from pathlib import Path

    path = calibration_path()
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise MonitorInputError(f"AIRLOOP_DRIFT_CALIBRATION={path}: {exc.strerror or exc}") from None
        return DriftCalibration.from_json(data, path)
    if lake is None or not lake.exists(CALIBRATION_KEY):
        return None
    return DriftCalibration.from_json(lake.read_bytes(CALIBRATION_KEY), lake.uri(CALIBRATION_KEY))
