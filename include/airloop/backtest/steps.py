"""One replayed day of one policy, through the functions the DAGs call, on the replayed clock.

The instants follow the live schedule of the loop (New York time, the use case's clock):

=========================  =====================  =========================================
what                       replayed instant       library call (the DAG that makes it live)
=========================  =====================  =========================================
score day D                D's cutoff (02:00)     ``scoring.score_day`` (``batch_predict``)
monitor D, outcomes D-1    cutoff + 30 min        ``monitoring.monitor_drift`` /
                                                  ``monitor_performance`` (``monitor_model``)
policy decides             cutoff + 30 min        ``DriftPolicy.decide`` via the policy
train, gate, promote       cutoff + 1 h (03:00)   ``features.build_training_set`` ...
                                                  ``training.apply_decision`` (``train_model``)
=========================  =====================  =========================================

A promotion of day D is therefore first used by D+1's scoring, as in the live loop;
``ModelRegistry.champion_at`` answers from the replayed history. Trainings are stamped an hour
after the cutoff rather than at 03:00 local: on the spring-forward day 02:00 does not exist and
resolves to 03:00 (the scheduler's rule), so "03:00" would be the scoring instant itself and a
rerun of that day's scoring would pick the model trained after it. The initial model is stamped
an hour before the first day's cutoff.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from airloop.backtest.policies import TrainDecision
    from airloop.core.clock import ReplayClock
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.storage import LocalLake, Lake
    from airloop.core.usecase import UseCase

log = logging.getLogger(__name__)

MONITOR_DELAY = timedelta(minutes=30)
TRAIN_DELAY = timedelta(hours=1)


@dataclass
class StageTimer:
    """Wall and process CPU seconds per stage (for progress and the benchmark; never in the
    results). On a loaded machine the wall time overstates the work; the CPU time does not."""

    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def add(self, stage: str, started: tuple[float, float]) -> None:
        wall, cpu = started
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - wall
        self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + time.process_time() - cpu
        self.counts[stage] = self.counts.get(stage, 0) + 1


@dataclass
class PolicyRun:
    """What one policy's days need: its settings, lake, registry, monitoring store and clock."""

    name: str
    policy: Any
    settings: "Settings"
    lake: "Lake"
    shared_settings: "Settings"
    shared_lake: "LocalLake"
    use_case: "UseCase"
    clock: "ReplayClock"
    registry: Any
    store: Any
    config: Any
    cpu_clock: Callable[[], float]
    train_overrides: dict
    timer: StageTimer

    @property
    def run_prefix(self) -> str:
        return f"backtest/{self.name}"


def _render_kwargs(function) -> dict:
    """``render=False`` when the monitoring function takes it (skip the HTML no one reads)."""
    try:
        return {"render": False} if "render" in inspect.signature(function).parameters else {}
    except (TypeError, ValueError):
        return {}


def score(run: PolicyRun, day: "LogicalDay") -> dict:
    """Score ``day`` at its cutoff with the champion serving then."""
    from airloop.scoring import NoScheduleError, score_day

    run.clock.set(day.cutoff)
    started = run.timer.start()
    try:
        result = score_day(day, settings=run.settings, lake=run.lake, registry=run.registry, use_case=run.use_case,
                           run_id=f"{run.run_prefix}/score/{day.key}", clock=run.clock)  # fmt: skip
    except NoScheduleError as exc:
        return {"status": "no_schedule", "message": str(exc)}
    finally:
        run.timer.add("score", started)
    return {"status": "ok", "rows": result.rows, "model_version": result.model_version}


def monitor(run: PolicyRun, day: "LogicalDay") -> dict:
    """Drift of ``day``'s inputs and performance of the day whose outcomes are known now."""
    from airloop.core.storage import PartitionNotFound
    from airloop.monitoring import monitor_drift, monitor_performance, outcome_day

    run.clock.set(day.cutoff + MONITOR_DELAY)
    started = run.timer.start()
    try:
        drift = monitor_drift(day, settings=run.settings, lake=run.lake, store=run.store, config=run.config,
                              **_render_kwargs(monitor_drift))  # fmt: skip
        drift_out = {"status": drift.status, **_numbers(drift.metrics, ("drift_share", "policy_drift_share"))}
    except PartitionNotFound:
        drift_out = {"status": "skipped"}
    evaluated = outcome_day(day, run.config)
    perf = monitor_performance(evaluated, settings=run.settings, lake=run.lake, store=run.store, config=run.config,
                               measured_on=day, **_render_kwargs(monitor_performance))  # fmt: skip
    run.timer.add("monitor", started)
    return {"drift": drift_out, "performance": {"ds": evaluated.key, "status": perf.status,
                                                **_numbers(perf.metrics, ("auc", "reference_auc", "auc_drop"))}}  # fmt: skip


def evidence(run: PolicyRun, day: "LogicalDay") -> tuple:
    """The monitoring evidence per day up to ``day`` (``evidence_from_rows`` over the store)."""
    from airloop.monitoring import evidence_from_rows

    return tuple(evidence_from_rows(run.store.rows(end=day.date)))


def signal_of(history: tuple, day: "LogicalDay", lag_days: int) -> dict:
    """The signals the drift policy counts, as known on ``day``: the drift share of ``day`` and
    the bounded AUC drop (and the day's own drop, shown) of the day whose outcomes arrived."""
    by_day = {e.ds: e for e in history}
    today, evaluated = by_day.get(day.date), by_day.get(day.shift(-lag_days).date)
    return {
        "drift_share": _round(getattr(today, "drift_share", None)),
        "auc_drop_bound": _round(getattr(evaluated, "auc_drop_bound", None)),
        "auc_drop": _round(getattr(evaluated, "auc_drop", None)),
    }


def decide(run: PolicyRun, day: "LogicalDay", history: tuple, *, first_day, history_start, last_training) -> "TrainDecision | None":
    """Ask the policy, with what monitoring knows as of ``day``; record a drift firing."""
    from airloop.backtest.policies import PolicyState

    started = run.timer.start()
    fired = tuple(run.store.fired_days()) if run.policy.uses_drift else ()
    state = PolicyState(
        first_day=first_day, history_start=history_start, window_days=run.use_case.model.window_days,
        last_training=last_training, champion_version=run.registry.champion_version(run.use_case.model.name),
        evidence=history if run.policy.uses_drift else (), fired_on=fired,
    )  # fmt: skip
    decision = run.policy.decide(day, state)
    if decision is not None and decision.drift is not None:
        run.store.record_event(
            day.key, model_version=decision.drift.get("model_version"), window_start=decision.window_start.isoformat(),
            window_end=decision.window_end.isoformat(), evidence=decision.drift, run_id=f"{run.run_prefix}/drift/{day.key}",
        )  # fmt: skip
    run.timer.add("policy", started)
    return decision


def training_set_for(run: PolicyRun, start, end) -> tuple[str, float]:
    """The stored training set of the window ``[start, end]`` and the CPU seconds it cost.

    Built once per window in the shared lake (``training_sets/``; the same window gives the same
    rows whichever policy asks) through ``features.build_training_set``; every policy training
    on it is charged the CPU time it took to build.
    """
    import json

    from airloop.features import build_training_set
    from airloop.training import publish_training_set

    index_key = f"training_sets/_windows/{start.isoformat()}_{end.isoformat()}.json"
    if run.shared_lake.exists(index_key):
        entry = json.loads(run.shared_lake.read_bytes(index_key))
        return entry["prefix"], float(entry["build_cpu_s"])
    started, cpu = run.timer.start(), run.cpu_clock()
    training_set = build_training_set(start, end, settings=run.shared_settings, lake=run.shared_lake)
    summary = publish_training_set(training_set, run.shared_lake)
    build_cpu = run.cpu_clock() - cpu
    run.shared_lake.write_bytes(index_key, json.dumps({"prefix": summary["prefix"], "build_cpu_s": build_cpu}).encode())
    run.timer.add("training_set", started)
    return summary["prefix"], build_cpu


def train(run: PolicyRun, day: "LogicalDay", decision: "TrainDecision", *, at=None) -> dict:
    """Train, evaluate against the champion, register and promote or refuse (the ``train_model``
    DAG's tasks, in order) at ``at`` (default an hour after ``day``'s cutoff). Returns what happened."""
    from airloop.core.devices import choose_device
    from airloop.training import (
        TrainingDataError,
        apply_decision,
        evaluate_candidate,
        load_candidate,
        load_training_set,
        publish_candidate,
        register_candidate,
        train_candidate,
    )

    run.clock.set(at or day.cutoff + TRAIN_DELAY)
    spec = run.use_case.model
    run_id = f"{run.run_prefix}/train/{day.key}"
    out: dict[str, Any] = {"window_start": decision.window_start.isoformat(), "window_end": decision.window_end.isoformat(),
                           "reason": decision.reason, "at": run.clock.now().isoformat()}  # fmt: skip
    prefix, build_cpu = training_set_for(run, decision.window_start, decision.window_end)
    started, cpu = run.timer.start(), run.cpu_clock()
    try:
        training_set = load_training_set(run.shared_lake, prefix)
        candidate = train_candidate(training_set, spec, device=choose_device("cpu", policy="cpu"), overrides=run.train_overrides)
    except TrainingDataError as exc:
        run.timer.add("train", started)
        return {**out, "status": "refused_data", "message": str(exc), "cpu_s": build_cpu + run.cpu_clock() - cpu}
    summary = publish_candidate(candidate, training_set, run.lake, spec)
    stored = load_candidate(run.lake, summary["candidate_prefix"])
    gate = evaluate_candidate(stored, training_set, spec, registry=run.registry, lake=run.lake)
    mv = register_candidate(stored, spec, registry=run.registry, lake=run.lake, run_id=run_id)
    entry = apply_decision(gate, mv, registry=run.registry, actor=f"backtest:{run.name}", run_id=run_id, reason=decision.reason)
    run.timer.add("train", started)
    return {
        **out, "status": "promoted" if entry.action == "promote" else "refused", "version": mv.version,
        "holdout_auc": _round(summary["metrics"].get("roc_auc")), "gate": gate.get("reason", ""),
        "cpu_s": build_cpu + run.cpu_clock() - cpu,
    }  # fmt: skip


def calibrate_initial(run: PolicyRun, window_start, window_end, version: int) -> dict:
    """Calibrate the drift signal on the initial model's training window, into the policy's lake.

    What ``airloop monitor calibrate`` does live for a model that has scored nothing yet, on the
    window's stored training set: every column the drift check compares (the model inputs, and
    ``score`` as version ``version`` scores each day) gets its day-to-day variability, and the
    AUC tolerance comes from the version's scores on its own holdout days (the time split it was
    gated on) against its holdout AUC. Written to ``monitoring/calibration.json`` of the policy's
    lake, where ``monitor_drift`` reads it and the policy is built from it
    (:meth:`~airloop.backtest.policies.DriftTriggeredPolicy.calibrate`). Same window and version,
    same bytes (seeded sample, sorted JSON): a resumed backtest writes it identically.
    """
    from airloop.monitoring import save_calibration
    from airloop.monitoring.calibration import calibrate
    from airloop.monitoring.config import LABEL_COLUMN, SCORE_COLUMN
    from airloop.training import load_training_set
    from airloop.training.checks import TIME_COLUMN, time_split
    from airloop.training.encoding import predict_version

    spec = run.use_case.model
    started = run.timer.start()
    prefix, _ = training_set_for(run, window_start, window_end)
    frame = load_training_set(run.shared_lake, prefix).frame.reset_index(drop=True)
    mv = next((v for v in run.registry.versions(spec.name) if v.version == version), None)
    if mv is None:
        raise RuntimeError(f"{run.name}: the initial model v{version} is not in the workspace registry")
    days = frame[TIME_COLUMN].astype(str).str[:10]
    scores = predict_version(run.registry, mv, run.lake, frame)
    # The columns the drift check sees: the model's inputs and its score, not the label or keys.
    keep = [c for c in dict.fromkeys([spec.slice_column, *mv.feature_columns]) if c in frame.columns]
    inputs = frame[keep].assign(**{SCORE_COLUMN: scores, "ds": days.to_numpy()})
    _, valid, _ = time_split(frame, spec)
    outcomes = valid[[spec.label]].rename(columns={spec.label: LABEL_COLUMN}).assign(
        **{SCORE_COLUMN: scores[valid.index.to_numpy()], "ds": days[valid.index].to_numpy()}
    )
    roc = (mv.metrics or {}).get("roc_auc")
    calibration = calibrate(
        inputs, outcomes=outcomes, baseline_auc=float(roc) if isinstance(roc, (int, float)) else None,
        context_columns=run.config.context_columns, reference_rows=spec.reference_rows,
        window_days=run.config.auc_window_days, min_window_days=run.config.auc_window_min_days,
        confidence=run.config.auc_confidence,
    )  # fmt: skip
    save_calibration(run.lake, calibration)
    run.timer.add("calibrate", started)
    policy_columns = sorted(c for c, e in calibration.columns.items() if e["role"] == "policy")
    return {"from": calibration.source["from"], "to": calibration.source["to"],
            "auc_tolerance": _round(calibration.auc_tolerance), "policy_columns": len(policy_columns),
            "context_columns": len(calibration.columns) - len(policy_columns)}  # fmt: skip


def use_calibration(run: PolicyRun) -> None:
    """Build the policy's drift policy from the calibration its lake holds (``load_calibration``,
    as ``monitor_drift`` reads it there), so the policy and the drift check judge alike.

    :raises WorkspaceError: a drift policy's workspace has no calibration (a backtest started
        before calibration existed: its days were monitored uncalibrated; use a new workspace).
    """
    from airloop.backtest.workspace import WorkspaceError
    from airloop.monitoring import load_calibration
    from airloop.monitoring.calibration import CALIBRATION_KEY

    calibration = load_calibration(run.lake)
    if calibration is None and getattr(run.policy, "uses_drift", False):
        raise WorkspaceError(
            f"{run.name}: {run.lake.uri(CALIBRATION_KEY)} is missing (a backtest started without drift calibration); "
            "use another workspace"
        )
    if hasattr(run.policy, "calibrate"):
        run.policy.calibrate(calibration)


def _numbers(metrics: dict, names) -> dict:
    return {name: _round(metrics.get(name)) for name in names}


def _round(value, digits: int = 6):
    return None if value is None else round(float(value), digits)
