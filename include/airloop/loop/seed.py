"""The history a fresh installation needs so that its first DAG runs are green: ``make demo``.

A fresh Airflow has no history: the features of yesterday read weeks of raw days, scoring needs
a champion, monitoring needs scored days. :func:`seed_history` fills that history in one
process with the same library calls the DAGs make (no scheduler, one import of each library),
as if the loop had been running for the last ``scored_days`` days:

1. the raw days the features read and the first training window needs (the season's warm-up
   plan, :func:`airloop.loop.warmup.plan_warmup`, ending with the newest closed day);
2. the Feast repo applied, the feature days computed, the newest day loaded online;
3. the weekly ``train_model`` replayed: at the start of the scored days and every
   ``retrain_every`` days after, a model trained on the ``training_days`` before that day goes
   through the same gate (against the baseline, then the champion) and registry; each is
   registered at the instant its window closed (a replayed clock, as the backtest does);
4. every scored day scored with the champion of that day and monitored (drift and, where
   outcomes are in, performance), so *Model versions* and *Monitoring* have something to show;
   the newest ``reported_days`` get Evidently's HTML reports, older days the numbers only.

A week before the first promotion is not scored: nothing would have served it. The gate is
never bypassed; when no training passes it, the seed says so and scores nothing. Every step
checks before acting: a second run finds everything in place and does almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay


@dataclass
class SeedReport:
    """What :func:`seed_history` did (counts of days, the champion's version)."""

    ingested: int = 0
    features: int = 0
    champion: int | None = None
    trainings: list[str] = field(default_factory=list)  # each training's outcome, in order
    scored: int = 0
    monitored: int = 0
    refusal: str = ""  # why the first model was not promoted (then nothing is scored)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        """Trained at least once in this run."""
        return bool(self.trainings)


def seed_history(
    settings: "Settings",
    *,
    newest: "LogicalDay",
    training_days: int = 28,
    scored_days: int = 28,
    retrain_every: int = 7,
    reported_days: int = 7,
    log: Callable[[str], None] = print,
) -> SeedReport:
    """Seed the history ending with ``newest`` (the newest closed day); see the module docstring.

    :param newest: the last day to ingest, score and monitor (yesterday, for a demo).
    :param training_days: the window each training reads (the days before its training day).
    :param scored_days: days scored and monitored, ending with ``newest``.
    :param retrain_every: days between trainings (train_model runs weekly).
    :param reported_days: the newest days get Evidently's HTML reports; older scored days get the
        numbers only (the chart and table), since a report costs about 9 s a day here.
    :raises airloop.loop.warmup.WarmupError: the data cannot hold that history (names the days).
    """
    import time

    from airloop import features as F
    from airloop.core.clock import ReplayClock
    from airloop.core.storage import open_lake, partition_prefix, read_manifest
    from airloop.core.usecase import load_use_case
    from airloop.ingest import ingest_tables
    from airloop.loop.season import missing_feature_days, season_plan
    from airloop.monitoring import MonitorConfig, MonitoringStore, predictions_prefix
    from airloop.registry import ModelRegistry

    for value, what in ((scored_days, "scored_days"), (retrain_every, "retrain_every")):
        if value < 1:
            raise ValueError(f"{what} must be at least 1 day, got {value}")
    use_case = load_use_case(settings.use_case)
    newest = use_case.day(newest)
    scored = newest.shift(1 - scored_days).range_to(newest)
    plan = season_plan(scored[0], newest, settings=settings, warmup_days=training_days)
    lake = open_lake(settings)
    report = SeedReport()
    log(plan.describe().replace("[season]", "[seed]"))

    def step(name: str, started: float) -> None:  # seconds per step, summed over its rounds
        report.seconds[name] = round(report.seconds.get(name, 0) + time.monotonic() - started, 1)

    # 1. Raw days: the plan's history, then the scored week.
    started = time.monotonic()
    raw = [*plan.raw_days, *scored]
    todo = [d for d in raw if any(read_manifest(lake, partition_prefix("raw", t, d.key)) is None for t in use_case.tables)]
    for i, day in enumerate(todo, 1):
        ingest_tables(day, settings, list(use_case.tables))
        log(f"[seed] ingested {day} ({i}/{len(todo)})")
    report.ingested = len(todo)
    step("ingest", started)

    # 2. Features of the feature days and the scored week; the newest day online.
    started = time.monotonic()
    from airloop.scoring import view_prefixes

    F.apply_definitions(settings)
    prefixes = view_prefixes(settings, use_case, lake=lake)  # where the registered views keep their rows
    todo = missing_feature_days(lake, use_case, [*plan.feature_days, *scored], prefixes)
    for i, day in enumerate(todo, 1):
        F.compute_features(day, settings=settings, lake=lake)
        log(f"[seed] features of {day} ({i}/{len(todo)})")
    report.features = len(todo)
    F.materialize(newest.shift(-1), newest, settings=settings, lake=lake)
    step("features", started)

    # 3 and 4. The weekly training replayed, each day scored with its champion and monitored.
    from airloop.monitoring import monitor_drift, monitor_performance, outcome_day
    from airloop.scoring import score_day

    config = MonitorConfig.from_env(use_case)
    store = MonitoringStore(settings.registry_url)
    monitored = {str(r["ds"]) for r in store.rows(kind="drift", start=scored[0].date, end=newest.date)}
    name = use_case.model.name
    reported = set(scored[-reported_days:]) if reported_days > 0 else set()
    clock = ReplayClock(scored[0].start)
    registry = ModelRegistry(settings.registry_url, clock=clock)
    windows_trained = {(v.window_start, v.window_end) for v in registry.versions(name) if v.status != "pending"}
    for offset in range(0, len(scored), retrain_every):
        week = scored[offset : offset + retrain_every]
        window = (week[0].shift(-training_days), week[0].shift(-1))
        if (window[0].date, window[1].date) not in windows_trained:
            started = time.monotonic()
            clock.set(window[1].end)  # train_model's run after the window's last day closed
            log(f"[seed] training on {window[0]} .. {window[1]} (the model serving from {week[0]})")
            outcome = _train_and_gate(settings, lake, registry, use_case, window)
            report.trainings.append(outcome)
            log(f"[seed] {outcome}")
            step("train", started)
        started = time.monotonic()
        for day in week:
            clock.set(day.cutoff)  # batch_predict's run for the day
            champion = registry.champion_at(name, day.cutoff)
            if champion is None:
                log(f"[seed] {day}: no champion yet, not scored")
                continue
            done = []
            if read_manifest(lake, predictions_prefix(day)) is None:
                score_day(day, settings=settings, lake=lake, registry=registry, use_case=use_case,
                          model_version=champion.version, run_id=f"seed/score/{day.key}")  # fmt: skip
                report.scored += 1
                done.append("scored")
            if str(day.key) not in monitored:
                render = day in reported
                monitor_drift(day, settings=settings, lake=lake, store=store, config=config, render=render)
                monitor_performance(outcome_day(day, config), settings=settings, lake=lake, store=store, config=config,
                                    measured_on=day, render=render)  # fmt: skip
                report.monitored += 1
                done.append("monitored")
            if done:
                log(f"[seed] {' and '.join(done)} {day} with v{champion.version}")
        step("score_monitor", started)
    champion = registry.champion(name)
    if champion is None:
        # The gate is not bypassed for a demo: Model versions shows the refused versions and why;
        # scoring waits for a champion (train_model, or a longer --training-days).
        report.refusal = report.trainings[-1] if report.trainings else "no training in this run"
        log("[seed] no champion, so nothing is scored or monitored; Airflow's train_model can promote one")
        return report
    report.champion = champion.version
    log(f"[seed] done: {report.ingested} days ingested, {report.features} feature days, {len(report.trainings)} trainings, "
        f"champion v{report.champion}, {report.scored} days scored, {report.monitored} monitored ({report.seconds})")  # fmt: skip
    return report


def _train_and_gate(settings, lake, registry, use_case, window) -> str:
    """Build the training set, train, gate against the champion (or the baseline before the
    first), register, promote or keep: train_model's tasks. Returns what happened."""
    from airloop.core.devices import choose_device
    from airloop.features import build_training_set
    from airloop.training import (
        apply_decision,
        evaluate_candidate,
        load_candidate,
        load_training_set,
        publish_candidate,
        publish_training_set,
        register_candidate,
        train_candidate,
        TrainingDataError,
    )

    spec = use_case.model
    training = build_training_set(window[0].date, window[1].date, settings=settings, lake=lake)
    prefix = publish_training_set(training, lake)["prefix"]
    training_set = load_training_set(lake, prefix)
    try:
        candidate = train_candidate(training_set, spec, device=choose_device("cpu", policy="fallback"))
    except TrainingDataError as exc:
        return f"training data refused: {exc}"
    summary = publish_candidate(candidate, training_set, lake, spec)
    stored = load_candidate(lake, summary["candidate_prefix"])
    gate = evaluate_candidate(stored, training_set, spec, registry=registry, lake=lake)
    run_id = f"seed/train/{window[1].key}"
    mv = register_candidate(stored, spec, registry=registry, lake=lake, run_id=run_id)
    entry = apply_decision(gate, mv, registry=registry, actor="make demo (seed)", run_id=run_id,
                           reason="demo seed: the weekly training replayed")  # fmt: skip
    if entry.action != "promote":
        return f"v{mv.version} refused: {gate.get('reason')}"
    return f"v{mv.version} promoted: {gate.get('reason')}"
