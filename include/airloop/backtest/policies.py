"""Retraining policies: when to train a challenger, on which window. Each is one small class.

A policy answers one question per replayed day, after the day was scored and monitored:
``decide(day, state) -> TrainDecision | None``. Every challenger still goes through the
champion/challenger gate (:func:`airloop.training.evaluate_candidate`), so a policy chooses when
to *try*, never what serves. Policies are pure: they read :class:`PolicyState` (what the loop
knew at that instant) and keep no state of their own, so a resumed backtest decides the same.

Shipped policies (``--policy NAME``):

* ``frozen``: never retrains (the initial model serves the whole range).
* ``scheduled`` / ``scheduled:N``: every ``N`` days (default 7, the ``train_model`` DAG's weekly
  run), on the ``window_days`` days ending the day before.
* ``drift``: when the monitoring package's :class:`~airloop.monitoring.DriftPolicy` fires, on the
  window it suggests.
* ``scheduled+drift`` / ``scheduled+drift:N``: both (the shipped default of the live loop).

A new policy: subclass :class:`RetrainingPolicy` (or write any class with ``name``,
``uses_drift`` and ``decide``) and pass an instance to :func:`~airloop.backtest.run_backtest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from airloop.core.dates import LogicalDay
    from airloop.monitoring import DayEvidence, DriftCalibration, DriftPolicy


class PolicyError(ValueError):
    """A policy name or parameter that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class TrainDecision:
    """Train a challenger on ``[window_start, window_end]`` (inclusive days), and why.

    :param drift: the drift policy's evidence (``Decision.extra()``) when drift fired, else None;
        the backtest records it as a drift event and lists it in the report.
    """

    window_start: date
    window_end: date
    reason: str
    drift: dict | None = None


@dataclass(frozen=True)
class PolicyState:
    """What the loop knew when a policy decides on a day (after that day's monitoring).

    :param first_day: the first replayed day (the initial model serves from it).
    :param history_start: the first day with data: no window starts before it.
    :param window_days: the model's training window length (``ModelSpec.window_days``).
    :param last_training: the day of the latest training (the initial one included).
    :param champion_version: the version serving now.
    :param evidence: monitoring evidence per day up to the decided day (``evidence_from_rows``).
    :param fired_on: days drift fired before (``MonitoringStore.fired_days``).
    """

    first_day: date
    history_start: date
    window_days: int
    last_training: date | None = None
    champion_version: int | None = None
    evidence: "tuple[DayEvidence, ...]" = ()
    fired_on: tuple[date, ...] = ()

    def window_ending(self, end: date) -> tuple[date, date]:
        """The ``window_days`` days ending on ``end``, clipped to the history."""
        return max(self.history_start, end - timedelta(days=self.window_days - 1)), end


@runtime_checkable
class RetrainingPolicyLike(Protocol):
    """What the backtest needs of a policy."""

    name: str
    uses_drift: bool

    def decide(self, day: "LogicalDay", state: PolicyState) -> TrainDecision | None: ...


class RetrainingPolicy:
    """Base class of a retraining policy: set ``name`` and write :meth:`decide`.

    ``uses_drift``: the policy reads the drift evidence (the backtest then records firings).
    """

    name: str = "policy"
    uses_drift: bool = False

    def decide(self, day: "LogicalDay", state: PolicyState) -> TrainDecision | None:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The policy's parameters, written into the report."""
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FrozenPolicy(RetrainingPolicy):
    """Never retrain: the initial model serves the whole range."""

    name = "frozen"

    def decide(self, day, state):
        return None


@dataclass(repr=False)
class ScheduledPolicy(RetrainingPolicy):
    """Train every ``every_days`` days counted from the first replayed day, on the window ending
    the day before (the latest day whose outcomes are known at 03:00)."""

    every_days: int = 7
    name: str = "scheduled"

    def __post_init__(self):
        if self.every_days < 1:
            raise PolicyError(f"a scheduled policy needs every_days >= 1, got {self.every_days}")

    def due(self, day: "LogicalDay", state: PolicyState) -> bool:
        elapsed = (day.date - state.first_day).days
        return elapsed > 0 and elapsed % self.every_days == 0

    def decide(self, day, state):
        if not self.due(day, state):
            return None
        start, end = state.window_ending(day.date - timedelta(days=1))
        return TrainDecision(start, end, f"scheduled: every {self.every_days} days")

    def describe(self):
        return {"name": self.name, "every_days": self.every_days}


@dataclass(repr=False)
class DriftTriggeredPolicy(RetrainingPolicy):
    """Train when the monitoring package's drift policy fires, on the window it suggests.

    :param drift_policy: default :meth:`DriftPolicy.from_env` (the live loop's thresholds), which
        the backtest replaces by ``DriftPolicy.from_env(calibration)`` once the workspace is
        calibrated (:meth:`calibrate`); a policy given here is kept as given.
    """

    drift_policy: "DriftPolicy | None" = None
    name: str = "drift"
    uses_drift: bool = True
    drift_from_env: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.drift_policy is None:
            from airloop.monitoring import DriftPolicy

            self.drift_policy = DriftPolicy.from_env()
            self.drift_from_env = True

    def calibrate(self, calibration: "DriftCalibration | None") -> None:
        """Use ``DriftPolicy.from_env(calibration)`` (the calibrated AUC tolerance, as the live
        ``monitor_model`` DAG does), unless the drift policy was given explicitly."""
        if self.drift_from_env:
            from airloop.monitoring import DriftPolicy

            self.drift_policy = DriftPolicy.from_env(calibration)

    def fired(self, day: "LogicalDay", state: PolicyState) -> TrainDecision | None:
        decision = self.drift_policy.decide(day, list(state.evidence), list(state.fired_on))
        if not decision.fire:
            return None
        start, end = decision.window_start, decision.window_end
        if start is None or end is None:
            start, end = state.window_ending(day.date - timedelta(days=1))
        start = max(start, state.history_start)
        return TrainDecision(start, end, f"drift: {decision.reason}", drift=_jsonable(decision.extra()))

    def decide(self, day, state):
        return self.fired(day, state)

    def describe(self):
        return {"name": self.name, "drift_policy": _jsonable(_fields(self.drift_policy))}


@dataclass(repr=False)
class ScheduledDriftPolicy(DriftTriggeredPolicy):
    """The live loop's default: the weekly run, and a drift-triggered run in between.

    On a day both want a training, one challenger is trained (on the drift window, which ends on
    the same day) and both reasons are recorded.
    """

    every_days: int = 7
    name: str = "scheduled+drift"

    def __post_init__(self):
        super().__post_init__()
        self.schedule = ScheduledPolicy(self.every_days)

    def decide(self, day, state):
        drift = self.fired(day, state)
        scheduled = self.schedule.decide(day, state)
        if drift is not None and scheduled is not None:
            return TrainDecision(drift.window_start, drift.window_end, f"{scheduled.reason}; {drift.reason}", drift.drift)
        return drift or scheduled

    def describe(self):
        return {**super().describe(), "every_days": self.every_days}


POLICY_NAMES = ("frozen", "scheduled", "drift", "scheduled+drift")


def make_policy(spec: str) -> RetrainingPolicy:
    """The shipped policy named by ``spec``: ``frozen``, ``scheduled[:N]``, ``drift``,
    ``scheduled+drift[:N]`` (``N``: days between scheduled trainings, default 7).

    :raises PolicyError: an unknown name or a bad ``N`` (the message lists the names).
    """
    name, _, arg = str(spec).strip().partition(":")
    every = 7
    if arg:
        if name not in ("scheduled", "scheduled+drift"):
            raise PolicyError(f"policy {name!r} takes no parameter (got {spec!r})")
        try:
            every = int(arg)
        except ValueError:
            raise PolicyError(f"policy {spec!r}: the number of days must be an integer, got {arg!r}") from None
    label = name if not arg else f"{name}:{every}"
    if name == "frozen":
        return FrozenPolicy()
    if name == "scheduled":
        return ScheduledPolicy(every, name=label)
    if name == "drift":
        return DriftTriggeredPolicy()
    if name == "scheduled+drift":
        return ScheduledDriftPolicy(every_days=every, name=label)
    raise PolicyError(f"unknown policy {spec!r}; use one of {', '.join(POLICY_NAMES)} (scheduled[:N] takes a day count)")


def _fields(obj) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) else dict(getattr(obj, "__dict__", {}))


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))

