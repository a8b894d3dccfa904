"""``airloop backtest FROM TO --policy NAME [--policy ...] --workspace DIR``: replay a range for
each retraining policy (see :mod:`airloop.backtest`) and print the per-policy table."""

from __future__ import annotations


def cmd_backtest(args) -> int:
    import json
    from pathlib import Path

    from airloop.backtest import POLICY_NAMES, format_summary, make_policy, run_backtest
    from airloop.core.config import get_settings
    from airloop.core.usecase import load_use_case

    settings = get_settings()
    use_case = load_use_case(settings.use_case)
    start, end = use_case.day(args.start), use_case.day(args.end)
    policies = [make_policy(name) for name in (args.policy or POLICY_NAMES)]
    overrides = {}
    if args.rounds is not None:
        if args.rounds < 1:
            raise ValueError(f"--rounds must be at least 1, got {args.rounds}")
        overrides["num_boost_round"] = args.rounds
    workspace = Path(args.workspace) if args.workspace else settings.data_dir / "backtest" / f"{start.key}_{end.key}"
    initial = use_case.day(args.initial_start) if args.initial_start else None
    result = run_backtest(start, end, policies=policies, workspace=workspace, settings=settings, initial_start=initial,
                          train_overrides=overrides)  # fmt: skip
    print(format_summary(result.report))
    print(f"\nwrote {result.workspace.root / 'backtest.json'}, backtest.csv and backtest.html")
    if args.timings:
        per_day = {k: round(v / max(result.days, 1), 3) for k, v in sorted(result.timings.items())}
        print(json.dumps({"seconds_per_replayed_day": per_day, "counts": result.counts}, indent=1))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "backtest",
        help="replay a range through the loop for each retraining policy; report realized AUC, trainings, drift firings",
        description="Replay FROM..TO day by day (score, monitor, decide, train behind the gate) on a replayed clock, "
        "in its own workspace (never the live registry). Resumable: rerun the same command after a kill.",
    )
    p.add_argument("start", metavar="FROM", help="first replayed day, YYYY-MM-DD (replayed calendar)")
    p.add_argument("end", metavar="TO", help="last replayed day, YYYY-MM-DD")
    p.add_argument("--policy", action="append", metavar="NAME",
                   help="frozen, scheduled[:N], drift, scheduled+drift[:N]; repeat for several (default: all four)")  # fmt: skip
    p.add_argument("--workspace", metavar="DIR", help="the backtest's folder (default: DATA_DIR/backtest/FROM_TO)")
    p.add_argument("--initial-start", metavar="DAY", help="first day of the initial training window (default: the history's first day)")
    p.add_argument("--rounds", type=int, help="XGBoost rounds of every training (default: the model's own)")
    p.add_argument("--timings", action="store_true", help="also print wall seconds per stage per replayed day")
    p.set_defaults(func=cmd_backtest)
