"""The backtest: replay a range day by day for each policy, resumable, then write the report.

:func:`run_backtest` does, in its workspace (:mod:`~airloop.backtest.workspace`):

1. **Shared, once for every policy**: ingest every day from the history's start to the end of
   the range (``ingest.ingest_day``), apply the Feast definitions and compute each day's feature
   partitions (``features.compute_features``). Days already done are skipped (manifests).
2. **Per policy, per day** (:mod:`~airloop.backtest.steps`, on a replayed clock): the initial
   model on every day before ``start`` (or ``initial_start`` .. ``start - 1``), stamped an hour
   before ``start``'s cutoff, and the drift signal calibrated on that window into the policy's
   lake (:func:`~airloop.backtest.steps.calibrate_initial`; monitoring and a drift policy read it
   there); then for each day: score, monitor, let the policy decide, train behind the
   gate. After each day the policy's checkpoint is saved (its registry database and its state):
   a killed backtest resumes from the last finished day and gives the same bytes.
3. **Report**: ``backtest.json``, ``backtest.csv`` and ``backtest.html`` (:mod:`~airloop.backtest.report`).

Progress lines go to ``log`` (day i/N, seconds per day, time left).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from airloop.backtest.policies import RetrainingPolicy, TrainDecision, make_policy
from airloop.backtest.steps import (
    TRAIN_DELAY,
    PolicyRun,
    calibrate_initial,
    StageTimer,
    decide,
    evidence,
    monitor,
    score,
    signal_of,
    train,
    use_calibration,
)
from airloop.backtest.workspace import Checkpoint, Workspace, WorkspaceError, write_atomic

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay

STATE_VERSION = 1


@dataclass
class BacktestResult:
    """Where the outputs are, the report, and the wall and CPU seconds per stage."""

    workspace: Workspace
    report: dict
    timings: dict[str, float]
    counts: dict[str, int]
    days: int
    cpu_timings: dict[str, float]


def prepare_shared(workspace: Workspace, settings: "Settings", days: "list[LogicalDay]", *, log: Callable = print,
                   timer: StageTimer | None = None) -> None:  # fmt: skip
    """Ingest and compute features for ``days`` in the workspace's shared lake.

    A day is done once its features are published (``shared/prepared/<ds>.done`` is written
    after them); done days are skipped, so a killed preparation resumes where it stopped.
    """
    from airloop import features
    from airloop.core.storage import partition_prefix, read_manifest
    from airloop.core.usecase import load_use_case
    from airloop.ingest import ingest_day

    timer = timer or StageTimer()
    shared = workspace.shared_settings(settings)
    lake = workspace.shared_lake()
    use_case = load_use_case(shared.use_case)
    features.apply_definitions(shared)
    done = workspace.shared_dir / "prepared"
    started_all = time.perf_counter()
    for i, day in enumerate(days, 1):
        marker = done / f"{day.key}.done"
        if not marker.exists():
            started = timer.start()
            for table in use_case.tables:
                if read_manifest(lake, partition_prefix("raw", table, day.key)) is None:
                    ingest_day(table, day, shared)
            timer.add("ingest", started)
            started = timer.start()
            features.compute_features(day, settings=shared, lake=lake)
            timer.add("features", started)
            write_atomic(marker, b"")
        if i % 10 == 0 or i == len(days):
            log(_progress("shared", i, len(days), started_all, f"{day.key} ingested, features computed"))


def run_backtest(
    start: "LogicalDay",
    end: "LogicalDay",
    *,
    policies: Iterable[RetrainingPolicy | str],
    workspace: Workspace | str,
    settings: "Settings",
    initial_start: "LogicalDay | None" = None,
    train_overrides: dict | None = None,
    cpu_clock: Callable[[], float] = time.process_time,
    log: Callable[[str], Any] = print,
    after_day: Callable[[int, "LogicalDay"], None] | None = None,
) -> BacktestResult:
    """Replay ``[start, end]`` for each policy in ``workspace`` and write the report there.

    :param start: the first replayed day (days are the use case's, parsed at the boundary).
    :param end: the last replayed day.
    :param policies: policy objects or names (:func:`~airloop.backtest.policies.make_policy`).
    :param workspace: the backtest's folder (created; never the live data folder).
    :param initial_start: first day of the initial training window (default: the history's
        first day); the window ends the day before ``start``.
    :param train_overrides: XGBoost parameters for every training (e.g. fewer rounds in CI).
    :param cpu_clock: the CPU-time source of the training figures (default ``time.process_time``).
    :param after_day: called after every finished day (all policies checkpointed), with its index.
    :raises WorkspaceError: the workspace holds a backtest of another range or other policies.
    """
    from airloop.core.clock import ReplayClock
    from airloop.core.usecase import load_use_case
    from airloop.monitoring import MonitorConfig, MonitoringStore
    from airloop.registry import ModelRegistry

    if end < start:
        raise ValueError(f"the backtest ends ({end}) before it starts ({start})")
    policies = [make_policy(p) if isinstance(p, str) else p for p in policies]
    names = [p.name for p in policies]
    if not policies or len(set(names)) != len(names):
        raise ValueError(f"give one or more policies, each once (got {names})")
    workspace = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace, settings)
    use_case = load_use_case(settings.use_case)
    if use_case.model is None:
        raise ValueError(f"use case {use_case.name!r} defines no model to backtest")
    history = use_case.day(use_case.features.history_start).shift(settings.replay_offset_days)
    initial_start = max(initial_start or history, history)
    if initial_start >= start:
        raise ValueError(f"the initial training window must end before {start}: it starts on {initial_start}")
    _check_source_covers(settings, use_case, end)
    timer = StageTimer()
    days = start.range_to(end)
    config = MonitorConfig.from_env(use_case)
    runs, states, checkpoints = [], {}, {}
    for policy in policies:
        folder = workspace.policy_dir(policy.name)
        psettings = workspace.policy_settings(settings, policy.name)
        checkpoint = Checkpoint(folder / "checkpoint", folder / "registry.db")
        header = {"version": STATE_VERSION, "policy": policy.describe(), "start": start.key, "end": end.key,
                  "initial_start": initial_start.key, "train_overrides": dict(train_overrides or {})}  # fmt: skip
        state = checkpoint.load()
        if state is not None:
            if state["header"] != _jsonable(header):
                raise WorkspaceError(
                    f"{folder} holds a backtest of {state['header']}, not {_jsonable(header)}: use another workspace"
                )
            checkpoint.restore(state)
            log(f"[backtest] {policy.name}: resuming after {state['days'][-1]['ds'] if state['days'] else 'the initial model'}")
        else:
            state = {"header": _jsonable(header), "initial": None, "days": []}
        clock = ReplayClock(start.start)
        run = PolicyRun(
            name=policy.name, policy=policy, settings=psettings, lake=workspace.policy_lake(policy.name),
            shared_settings=workspace.shared_settings(settings), shared_lake=workspace.shared_lake(),
            use_case=use_case, clock=clock, registry=ModelRegistry(psettings.registry_url, clock=clock),
            store=MonitoringStore(psettings.registry_url, clock=clock), config=config, cpu_clock=cpu_clock,
            train_overrides=dict(train_overrides or {}), timer=timer,
        )  # fmt: skip
        runs.append(run)
        states[policy.name], checkpoints[policy.name] = state, checkpoint

    prepare_shared(workspace, settings, history.range_to(end), log=log, timer=timer)
    for run in runs:
        state = states[run.name]
        if state["initial"] is None:
            decision = TrainDecision(initial_start.date, start.shift(-1).date, "initial model")
            state["initial"] = _clean(train(run, start, decision, at=start.cutoff - TRAIN_DELAY))
            if state["initial"].get("status") != "promoted":
                raise RuntimeError(f"{run.name}: the initial model was not promoted: {state['initial']}")
            calibrated = calibrate_initial(run, decision.window_start, decision.window_end, state["initial"]["version"])
            state["initial"]["calibration"] = _clean(calibrated)
            checkpoints[run.name].save(state, f"initial-{start.key}")
        use_calibration(run)

    started_all = time.perf_counter()
    done_before = min(len(states[r.name]["days"]) for r in runs)
    for i, day in enumerate(days):
        for run in runs:
            state = states[run.name]
            if len(state["days"]) > i:
                continue
            last_training = _last_training(state) or start.shift(-1).date
            record: dict[str, Any] = {"ds": day.key, "scoring": score(run, day)}
            record.update(monitor(run, day))
            known = evidence(run, day)
            record["signal"] = signal_of(known, day, config.outcome_lag_days)
            decision = decide(run, day, known, first_day=start.date, history_start=history.date, last_training=last_training)
            if decision is not None:
                record["firing"] = decision.drift
                record["training"] = train(run, day, decision)
            state["days"].append(_clean(record))
            checkpoints[run.name].save(state, day.key)
        if i >= done_before:
            log(_progress("replay", i + 1 - done_before, len(days) - done_before, started_all, _summary(day, runs, states)))
        if after_day is not None:
            after_day(i, day)

    from airloop.backtest.report import write_report

    report = write_report(workspace, {r.name: states[r.name] for r in runs}, policies=[r.policy for r in runs],
                          settings=settings, lakes={r.name: r.lake for r in runs}, use_case=use_case)  # fmt: skip
    return BacktestResult(workspace, report, dict(timer.seconds), dict(timer.counts), len(days), dict(timer.cpu_seconds))


def _last_training(state: dict):
    from datetime import date

    days = [d for d in state["days"] if d.get("training")]
    return date.fromisoformat(days[-1]["ds"]) if days else None  # our own stored key, read back


def _summary(day: "LogicalDay", runs, states) -> str:
    parts = []
    for run in runs:
        rec = states[run.name]["days"][-1]
        text = f"{run.name} v{rec['scoring'].get('model_version', '-')}"
        training = rec.get("training")
        if training:
            text += f" trained v{training.get('version', '-')} {training['status']}"
        if rec.get("firing"):
            text += " (drift fired)"
        parts.append(text)
    return f"{day.key}: " + "; ".join(parts)


def _progress(stage: str, i: int, n: int, started: float, text: str) -> str:
    elapsed = time.perf_counter() - started
    rate = elapsed / i if i else 0.0
    left = rate * (n - i)
    return f"[backtest] {stage} day {i}/{n} {rate:.1f} s/day, ETA {int(left // 60)}m{int(left % 60):02d}s  {text}"


def _clean(value):
    """JSON-ready, floats rounded (CPU seconds to the millisecond): the checkpoint's exact bytes."""
    if isinstance(value, dict):
        return {k: (round(v, 3) if k == "cpu_s" and isinstance(v, float) else _clean(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _check_source_covers(settings: "Settings", use_case, end: "LogicalDay") -> None:
    """Refuse, before any work, a range that runs past a source table's data (the flights' last
    replayed day has no weather: the source's weather ends a day earlier).

    :raises ValueError: names the table, its last instant and the last day the range may end on.
    """
    from airloop.ingest import SourceDatabase, SourceUnavailable

    try:
        source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
        coverages = {name: source.coverage(use_case.table(name)) for name in use_case.tables}
    except SourceUnavailable:  # not loaded here: the shared preparation says so with its own error
        return
    for name, coverage in sorted(coverages.items()):
        if coverage is not None and coverage[1] < end.start:
            last = use_case.day(coverage[1].astimezone(end.start.tzinfo).date())
            raise ValueError(
                f"the backtest runs to {end}, but the source's {name} ends at {coverage[1].isoformat()} "
                f"(replayed): end it on or before {last}"
            )
