"""When does drift call for retraining? A small, pure policy over the daily monitoring series.

A day *breaches* when

* its **drift signal** (the share of the policy's columns whose PSI against the reference exceeds
  the threshold calibrated on a healthy period: :func:`airloop.monitoring.drift.drift_signal`)
  reaches ``drift_share_threshold``; or
* its **bounded AUC drop** (the baseline AUC minus the upper confidence bound of the realized AUC
  pooled over the last days scored by the same version: :mod:`airloop.monitoring.window`) reaches
  ``auc_drop_threshold``, the calibrated tolerance: the model is measurably worse, beyond what
  a healthy period's weeks varied. One day's AUC alone (``auc_drop``) is shown, never counted:
  a few hundred labelled flights are too few to tell noise from degradation.

The policy **fires** on day ``D`` when:

1. ``consecutive_days`` consecutive calendar days breach, the last of them ``D`` (or one of the
   ``outcome_lag_days`` days before, whose AUC arrived only now), all under the same model
   version (a new champion starts a fresh count: the old model's drift is not
   evidence against the new one), and all of them come after the last firing;
2. the last firing is more than ``cooldown_days`` before ``D`` (a retraining takes time to land;
   the same episode must not start a second one).

A day without evidence (skipped: tiny sample; awaiting outcomes; not monitored) does not breach,
so it breaks a streak: missing data never raises an alarm. A day that already fired is not
fired again when rerun (see :meth:`~airloop.monitoring.MonitoringStore.record_event`).

The suggested training window is the ``training_window_days`` days ending on the last day whose
outcomes are known (``D - outcome_lag_days``): the most recent labelled data, i.e. the new regime.

Settings (environment): ``AIRLOOP_DRIFT_SHARE_THRESHOLD`` (0.5), ``AIRLOOP_DRIFT_AUC_DROP`` (the
calibration's AUC tolerance, else 0.02), ``AIRLOOP_DRIFT_CONSECUTIVE_DAYS`` (3),
``AIRLOOP_DRIFT_COOLDOWN_DAYS`` (14), ``AIRLOOP_RETRAIN_WINDOW_DAYS`` (28).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Iterable

from airloop.core.config import SettingsError, env_float, env_int

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay
    from airloop.monitoring.calibration import DriftCalibration


@dataclass(frozen=True)
class DayEvidence:
    """What monitoring saw on one scored day (None = no evidence of that kind).

    ``drift_share`` is the drift signal the policy counts, ``drifted_columns`` the columns beyond
    their thresholds; ``auc_drop`` is the day's own AUC below the baseline (shown, not counted),
    ``auc_drop_bound`` the rolling window's bounded drop (counted), ``window_auc`` its AUC.
    """

    ds: date
    model_version: int | None = None
    drift_share: float | None = None
    auc_drop: float | None = None
    drifted_columns: tuple[str, ...] = ()
    auc_drop_bound: float | None = None
    window_auc: float | None = None


@dataclass(frozen=True)
class Decision:
    """The policy's verdict for one day, with the reason in words."""

    ds: date
    fire: bool
    reason: str
    streak: list[DayEvidence] = field(default_factory=list)
    window_start: date | None = None
    window_end: date | None = None

    def extra(self) -> dict:
        """The ``DRIFT`` asset event's ``extra``: the evidence and the suggested window."""
        last = self.streak[-1] if self.streak else None
        return {
            "ds": self.ds.isoformat(),
            "reason": self.reason,
            "model_version": last.model_version if last else None,
            "drift_share": last.drift_share if last else None,
            "auc_drop": last.auc_drop if last else None,
            "auc_drop_bound": last.auc_drop_bound if last else None,
            "window_auc": last.window_auc if last else None,
            "drifted_columns": list(last.drifted_columns) if last else [],
            "evidence": [
                {"ds": d.ds.isoformat(), "drift_share": d.drift_share, "auc_drop": d.auc_drop,
                 "auc_drop_bound": d.auc_drop_bound, "window_auc": d.window_auc}
                for d in self.streak
            ],
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
        }


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds, persistence and cooldown of drift-triggered retraining (see module doc)."""

    drift_share_threshold: float = 0.5
    auc_drop_threshold: float = 0.02
    consecutive_days: int = 3
    cooldown_days: int = 14
    training_window_days: int = 28
    outcome_lag_days: int = 1

    def __post_init__(self):
        if not 0 < self.drift_share_threshold <= 1:
            raise SettingsError(f"drift share threshold must be in (0, 1], got {self.drift_share_threshold}")
        if self.auc_drop_threshold <= 0:
            raise SettingsError(f"AUC drop threshold must be positive, got {self.auc_drop_threshold}")
        if self.consecutive_days < 1 or self.cooldown_days < 0 or self.training_window_days < 1:
            raise SettingsError(
                "consecutive days and training window must be >= 1 and cooldown >= 0, got "
                f"{self.consecutive_days}, {self.training_window_days}, {self.cooldown_days}"
            )

    @classmethod
    def from_env(cls, calibration: "DriftCalibration | None" = None) -> "DriftPolicy":
        """Settings from the environment; the AUC tolerance from ``calibration`` unless
        ``AIRLOOP_DRIFT_AUC_DROP`` is set (see :mod:`airloop.monitoring.calibration`)."""
        auc_default = cls.auc_drop_threshold
        if calibration is not None and calibration.auc_tolerance is not None:
            auc_default = float(calibration.auc_tolerance)
        return cls(
            drift_share_threshold=env_float("AIRLOOP_DRIFT_SHARE_THRESHOLD", cls.drift_share_threshold),
            auc_drop_threshold=env_float("AIRLOOP_DRIFT_AUC_DROP", auc_default),
            consecutive_days=env_int("AIRLOOP_DRIFT_CONSECUTIVE_DAYS", cls.consecutive_days),
            cooldown_days=env_int("AIRLOOP_DRIFT_COOLDOWN_DAYS", cls.cooldown_days),
            training_window_days=env_int("AIRLOOP_RETRAIN_WINDOW_DAYS", cls.training_window_days),
            outcome_lag_days=env_int("AIRLOOP_MONITOR_OUTCOME_LAG_DAYS", cls.outcome_lag_days, minimum=0),
        )

    def breaches(self, day: DayEvidence) -> list[str]:
        """The reasons ``day`` breaches (empty when it does not)."""
        reasons = []
        if day.drift_share is not None and day.drift_share >= self.drift_share_threshold:
            reasons.append(f"drift share {day.drift_share:.2f} >= {self.drift_share_threshold:.2f}")
        if day.auc_drop_bound is not None and day.auc_drop_bound >= self.auc_drop_threshold:
            window = f" (window AUC {day.window_auc:.3f})" if day.window_auc is not None else ""
            reasons.append(f"bounded AUC drop {day.auc_drop_bound:.3f} >= {self.auc_drop_threshold:.3f}{window}")
        return reasons

    def decide(self, day: "LogicalDay", history: Iterable[DayEvidence], fired_on: Iterable[date] = ()) -> Decision:
        """Should the policy fire on ``day``?

        :param history: evidence per day (any order; days after ``day`` are ignored).
        :param fired_on: days the policy fired before (days on or after ``day`` are ignored, so
            re-deciding a day gives the same answer); see :meth:`MonitoringStore.fired_days`.
        """
        ds = day.date
        by_day = {d.ds: d for d in history if d.ds <= ds}
        earlier_fires = sorted(f for f in fired_on if f < ds)
        last_fire = earlier_fires[-1] if earlier_fires else None
        # Outcomes arrive ``outcome_lag_days`` late, so the most recent days may still lack their
        # AUC: the streak may end on any of them (the latest breaching one).
        recent = [ds - timedelta(days=i) for i in range(self.outcome_lag_days + 1)]
        anchor = next((d for d in recent if d in by_day and self.breaches(by_day[d])), None)
        if anchor is None:
            return Decision(ds, False, f"{ds} does not breach the thresholds" if ds in by_day else f"no evidence for {ds}")
        today = by_day[anchor]
        streak: list[DayEvidence] = []
        streak_day = anchor
        reached_last_fire = False
        while streak_day in by_day and self.breaches(by_day[streak_day]) and by_day[streak_day].model_version == today.model_version:
            if last_fire is not None and streak_day <= last_fire:
                reached_last_fire = True
                break
            streak.insert(0, by_day[streak_day])
            streak_day -= timedelta(days=1)
        if len(streak) < self.consecutive_days and reached_last_fire:
            return Decision(ds, False, f"same drift episode as the firing on {last_fire}: {len(streak)} breaching "
                            f"day(s) since, {self.consecutive_days} needed after a {self.cooldown_days}-day cooldown", streak)  # fmt: skip
        if len(streak) < self.consecutive_days:
            return Decision(ds, False, f"{len(streak)} consecutive breaching day(s), {self.consecutive_days} needed", streak)
        if last_fire is not None and (ds - last_fire).days <= self.cooldown_days:
            return Decision(ds, False, f"in cooldown: fired on {last_fire}, {self.cooldown_days}-day cooldown", streak)
        window_end = ds - timedelta(days=self.outcome_lag_days)
        window_start = window_end - timedelta(days=self.training_window_days - 1)
        reason = f"{len(streak)} consecutive breaching days ({'; '.join(self.breaches(today))})"
        return Decision(ds, True, reason, streak, window_start, window_end)


def evidence_from_rows(rows: Iterable[dict]) -> list[DayEvidence]:
    """Daily evidence from ``monitoring_metrics`` rows (both kinds of a day merged).

    Only rows with status ``ok`` count; the AUC numbers of a day are those of its own
    predictions (known ``outcome_lag_days`` later), the drift share that of its inputs: the drift
    signal, or for rows written before it the share of non-context columns Evidently flagged.
    The rows' stored ``ds`` (``YYYY-MM-DD``) is read back into a date here.
    """
    days: dict[date, dict] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        day = days.setdefault(date.fromisoformat(row["ds"]), {"model_version": row.get("model_version")})
        if row["kind"] == "drift":
            if row.get("drift_signal") is not None:
                day["drift_share"] = row["drift_signal"]
                day["drifted_columns"] = tuple(row.get("drift_signal_columns") or ())
            else:  # rows written before the drift signal: Evidently's share without context columns
                policy_share = row.get("policy_drift_share")
                day["drift_share"] = policy_share if policy_share is not None else row.get("drift_share")
                day["drifted_columns"] = tuple(row.get("drifted_column_names") or ())
            day["model_version"] = row.get("model_version")
        elif row["kind"] == "performance":
            day["auc_drop"] = row.get("auc_drop")
            day["auc_drop_bound"] = row.get("auc_drop_bound")
            day["window_auc"] = row.get("window_auc")
    return [DayEvidence(ds=d, **values) for d, values in sorted(days.items())]
