"""CLI commands of the monitoring stage: run the checks of a day, show the trend, the season."""

from __future__ import annotations


def _settings():
    from airloop.core.config import get_settings

    return get_settings()


def cmd_monitor(args) -> int:
    """Drift + performance checks for each day (same code as the DAG); the policy's verdict is
    printed, not acted on: only the ``monitor_model`` DAG emits the drift asset.

    ``airloop monitor calibrate FROM TO`` calibrates the drift policy instead (:func:`cmd_calibrate`)."""
    if args.start == "calibrate":
        return cmd_calibrate(args)
    if args.until or args.out or args.inputs:
        print("error: a third date, --out and --inputs belong to `airloop monitor calibrate FROM TO`", file=__import__("sys").stderr)
        return 2
    from airloop.cli.output import print_json
    from airloop.core.storage import PartitionNotFound, open_lake
    from airloop.core.usecase import load_use_case
    from airloop.monitoring import (
        DriftPolicy,
        evidence_from_rows,
        load_calibration,
        MonitorConfig,
        MonitoringStore,
        monitor_drift,
        monitor_performance,
        outcome_day,
    )

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    config = MonitorConfig.from_env(use_case)
    lake, store = open_lake(settings), MonitoringStore(settings.registry_url)
    policy = DriftPolicy.from_env(load_calibration(lake))
    for day in use_case.day(args.start).range_to(use_case.day(args.end or args.start)):
        try:
            drift = monitor_drift(day, settings=settings, lake=lake, store=store, config=config).summary()
        except PartitionNotFound:
            drift = {"ds": day.key, "status": "skipped", "message": f"{day.key} was not scored"}
        evaluated = outcome_day(day, config)
        performance = monitor_performance(evaluated, settings=settings, lake=lake, store=store, config=config,
                                          measured_on=day).summary()  # fmt: skip
        decision = policy.decide(day, evidence_from_rows(store.rows(end=day.date)), store.fired_days())
        print_json({"ds": day.key, "drift": drift, "performance": performance,
                    "policy": {"would_fire": decision.fire, "reason": decision.reason}})  # fmt: skip
    return 0


def cmd_calibrate(args) -> int:
    """Measure the drift policy's thresholds on the days FROM..TO (a period the model served well)
    and write them where monitoring reads them (the lake's ``monitoring/calibration.json``, or
    ``--out``). Same days in, same bytes out."""
    import sys

    from airloop.cli.output import print_json
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.monitoring import MonitorInputError, save_calibration
    from airloop.monitoring.calibrate_lake import calibrate_range

    if not args.end or not args.until:
        print("usage: airloop monitor calibrate FROM TO [--out PATH] [--inputs FILE]", file=sys.stderr)
        return 2
    settings = _settings()
    use_case = load_use_case(settings.use_case)
    lake = open_lake(settings)
    inputs = None
    if args.inputs:
        inputs = _read_inputs(args.inputs)
        if inputs is None:
            return 2
    try:
        calibration = calibrate_range(settings, use_case.day(args.end), use_case.day(args.until), lake=lake, inputs=inputs)
    except MonitorInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        from pathlib import Path

        Path(args.out).write_bytes(calibration.to_json())
        where = args.out
    else:
        where = save_calibration(lake, calibration)
    roles = {r: sorted(c for c, e in calibration.columns.items() if e["role"] == r) for r in ("policy", "context")}
    print_json({"written": where, "source": calibration.source, "auc_tolerance": calibration.auc_tolerance,
                "auc": calibration.auc, "policy_columns": {c: round(calibration.columns[c]["threshold"], 4) for c in roles["policy"]},
                "context_columns": roles["context"]})  # fmt: skip
    return 0


def _read_inputs(path: str):
    import sys

    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.endswith(".csv") else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        print(f"error: --inputs {path}: cannot read it as Parquet or CSV ({exc})", file=sys.stderr)
        return None
    if "ds" not in frame.columns:
        for candidate in ("event_timestamp", "sched_dep_ts"):
            if candidate in frame.columns:
                frame["ds"] = pd.to_datetime(frame[candidate]).dt.strftime("%Y-%m-%d")
                break
        else:
            print(f"error: --inputs {path}: no ds, event_timestamp or sched_dep_ts column to tell the days apart", file=sys.stderr)
            return None
    return frame


def cmd_monitoring(args) -> int:
    from airloop.core.usecase import load_use_case
    from airloop.monitoring import MonitoringStore

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    start = use_case.day(args.start).date if args.start else None
    end = use_case.day(args.end).date if args.end else None
    store = MonitoringStore(settings.registry_url)
    rows = store.rows(start=start, end=end)
    if not rows:
        print("no monitoring results yet (run the monitor_model DAG or `airloop monitor DS`)")
        return 0
    by_day: dict[str, dict] = {}
    for row in rows:
        by_day.setdefault(row["ds"], {})[row["kind"]] = row
    fired = {e["ds"] for e in store.drift_events()}
    # drift: Evidently's share of drifted columns; signal: what the policy counts (calibrated PSI);
    # AUC / drop: the day alone; 7d AUC / bound: the rolling window and its bounded drop (counted).
    print(f"{'date':10}  {'drift':>5}  {'signal':>6}  {'AUC':>5}  {'drop':>6}  {'7d AUC':>6}  {'bound':>6}  notes")
    for ds, kinds in sorted(by_day.items()):
        drift, perf = kinds.get("drift") or {}, kinds.get("performance") or {}
        share = f"{drift['drift_share']:.2f}" if drift.get("drift_share") is not None else "-"
        auc = f"{perf['auc']:.3f}" if perf.get("auc") is not None else "-"
        drop = f"{perf['auc_drop']:+.3f}" if perf.get("auc_drop") is not None else "-"
        signal = f"{drift['drift_signal']:.2f}" if drift.get("drift_signal") is not None else "-"
        window = f"{perf['window_auc']:.3f}" if perf.get("window_auc") is not None else "-"
        bound = f"{perf['auc_drop_bound']:+.3f}" if perf.get("auc_drop_bound") is not None else "-"
        notes = []
        if drift.get("drifted_column_names"):
            notes.append("drifted: " + ", ".join(drift["drifted_column_names"]))
        if drift.get("drift_signal_columns"):
            notes.append("counted by the policy: " + ", ".join(drift["drift_signal_columns"]))
        for row in (drift, perf):
            if row and row.get("status") != "ok":
                notes.append(f"{row['kind']} {row['status']}: {row['message']}")
        if ds in fired:
            notes.append("DRIFT EVENT (retraining)")
        print(f"{ds:10}  {share:>5}  {signal:>6}  {auc:>5}  {drop:>6}  {window:>6}  {bound:>6}  {'; '.join(notes)}")
    return 0


def cmd_drift_events(args) -> int:
    from airloop.cli.output import print_json
    from airloop.monitoring import MonitoringStore

    print_json(MonitoringStore(_settings().registry_url).drift_events())
    return 0


def cmd_season_summary(args) -> int:
    from airloop.loop import format_summary, summarize

    print(format_summary(summarize(args.start, args.end, settings=_settings())))
    return 0


def _airflow_up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def cmd_season(args) -> int:
    """Run the loop through the scheduler (starting ``airflow standalone`` when none answers)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from airloop.core.config import env_str
    from airloop.loop import AirflowClient, format_summary, run_season, season_plan, WarmupError

    try:  # before Airflow starts: a range the data cannot serve is refused at once
        plan = season_plan(args.start, args.end, settings=_settings(), warmup_days=args.warmup_days)
    except WarmupError as exc:
        print(f"airloop season: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(plan.describe())
        return 0
    url = (args.airflow_url or env_str("AIRLOOP_AIRFLOW_URL", "http://localhost:8080")).rstrip("/")
    started = None
    if not _airflow_up(url):
        log_path = Path(os.environ.get("AIRFLOW_HOME", ".")) / "logs" / "season-airflow.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"[season] no Airflow at {url}: starting airflow standalone (log: {log_path})", flush=True)
        airflow = str(Path(sys.executable).parent / "airflow")
        import secrets

        env = dict(os.environ)
        # One signing secret for every component: without it each one makes its own and the
        # api-server rejects the tasks' tokens ("Signature verification failed").
        env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
        env.setdefault("AIRFLOW__API__SECRET_KEY", secrets.token_urlsafe(32))
        with open(log_path, "ab") as log:
            started = subprocess.Popen([airflow, "standalone"], stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=env)  # fmt: skip
        deadline = time.monotonic() + 300
        while not _airflow_up(url):
            if started.poll() is not None or time.monotonic() > deadline:
                print(f"[season] Airflow did not start; see {log_path}", file=sys.stderr)
                return 1
            time.sleep(3)
        time.sleep(20)  # let the dag-processor parse the DAGs
    try:
        summary = run_season(args.start, args.end, settings=_settings(), client=AirflowClient(url),
                             warmup_days=args.warmup_days, log=lambda m: print(m, flush=True))  # fmt: skip
        print()
        print(format_summary(summary))
    finally:
        if started is not None:
            os.killpg(started.pid, signal.SIGTERM)
            started.wait(timeout=60)
    return 0


def cmd_seed(args) -> int:
    """Seed the history a fresh installation's first DAG runs need (``make demo`` runs it)."""
    import sys
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from airloop.core.usecase import load_use_case
    from airloop.loop import WarmupError
    from airloop.loop.seed import seed_history

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    # The boundary reads the wall clock once: the newest closed day of the business calendar.
    newest = args.newest or use_case.day(datetime.now(ZoneInfo(use_case.timezone)).date()).shift(-1)
    try:
        seed_history(settings, newest=newest, training_days=args.training_days, scored_days=args.scored_days,
                     retrain_every=args.retrain_every, log=lambda m: print(m, flush=True))  # fmt: skip
    except WarmupError as exc:
        print(f"airloop seed: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_replay_offset(args) -> int:
    """The replay offset under which yesterday has data and the seed's history before it."""
    import sys
    from datetime import date, datetime, timedelta
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from airloop.core.usecase import load_use_case
    from airloop.loop import WarmupError, replay_offset_for
    from airloop.loop.season import data_range

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    # The boundary reads the wall clock once, unless a day is given.
    today = date.fromisoformat(args.today) if args.today else datetime.now(ZoneInfo(use_case.timezone)).date()
    yesterday = today - timedelta(days=1)
    first, last = data_range(settings, use_case)
    if last is None:
        print("airloop replay-offset: the source is not loaded here (airloop load-source)", file=sys.stderr)
        return 2
    try:
        offset = replay_offset_for(yesterday, offset=settings.replay_offset_days, data_first=first, data_last=last,
                                   history_days=args.training_days + args.scored_days - 1)  # fmt: skip
    except WarmupError as exc:
        print(f"airloop replay-offset: {exc}", file=sys.stderr)
        return 2
    delta = timedelta(days=offset - settings.replay_offset_days)
    print(f"yesterday {yesterday} replays the source's day {yesterday - timedelta(days=offset)}; "
          f"the data then covers {first + delta} .. {last + delta}", file=sys.stderr)
    line = f"AIRLOOP_REPLAY_OFFSET_DAYS={offset}"
    if args.write:
        Path(args.write).write_text(f"# written by `airloop replay-offset` on {today}: keep it while this lake is used\n{line}\n")
    print(line)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("monitor", help="run the drift and performance checks of days outside Airflow; "
                       "`monitor calibrate FROM TO` calibrates the drift policy")  # fmt: skip
    p.add_argument("start", help="first day YYYY-MM-DD, or `calibrate`")
    p.add_argument("end", nargs="?", help="last day (inclusive); after `calibrate`: FROM")
    p.add_argument("until", nargs="?", help="after `calibrate`: TO (inclusive)")
    p.add_argument("--out", help="calibrate: write the JSON here instead of the lake's monitoring/calibration.json")
    p.add_argument("--inputs", help="calibrate: model inputs (Parquet/CSV, e.g. from `airloop training-set`) instead of the scored days")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("monitoring", help="drift share, AUC and drift events per day")
    p.add_argument("--start", help="first day YYYY-MM-DD")
    p.add_argument("--end", help="last day YYYY-MM-DD")
    p.set_defaults(func=cmd_monitoring)

    p = sub.add_parser("drift-events", help="days the drift policy fired, with evidence and training window")
    p.set_defaults(func=cmd_drift_events)

    p = sub.add_parser("season", help="run the whole loop through the scheduler over a replayed range, then summarize")
    p.add_argument("start", help="first scored day YYYY-MM-DD")
    p.add_argument("end", help="last scored day (inclusive)")
    p.add_argument("--warmup-days", type=int, default=28,
                   help="days before START the first model trains on (raw history and features before them are derived)")
    p.add_argument("--dry-run", action="store_true", help="print what the warm-up will backfill and stop")
    p.add_argument("--airflow-url", help="api-server URL (default AIRLOOP_AIRFLOW_URL or http://localhost:8080)")
    p.set_defaults(func=cmd_season)

    p = sub.add_parser("seed", help="seed the history the DAGs need (raw lookback, features, a champion, a scored week)")
    p.add_argument("--newest", help="the newest day to seed (default: yesterday, New York time)")
    p.add_argument("--training-days", type=int, default=28, help="days each training reads (the days before it)")
    p.add_argument("--scored-days", type=int, default=28, help="days scored and monitored, ending with --newest")
    p.add_argument("--retrain-every", type=int, default=7, help="days between the replayed trainings (train_model is weekly)")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("replay-offset", help="the replay offset under which yesterday has data and the seed's history "
                       "(make demo runs it once per checkout)")  # fmt: skip
    p.add_argument("--today", help="the day to plan for (default: today, in the use case's time zone)")
    p.add_argument("--training-days", type=int, default=28, help="days each seed training reads")
    p.add_argument("--scored-days", type=int, default=28, help="days the seed scores")
    p.add_argument("--write", metavar="FILE", help="also write AIRLOOP_REPLAY_OFFSET_DAYS=N to FILE")
    p.set_defaults(func=cmd_replay_offset)

    p = sub.add_parser("season-summary", help="what the loop did over a range of days")
    p.add_argument("start")
    p.add_argument("end")
    p.set_defaults(func=cmd_season_summary)
