"""CLI commands of the scoring stage: score days, show a prediction partition, trace one prediction."""

from __future__ import annotations


def _settings():
    from airloop.core.config import get_settings

    return get_settings()


def _use_case(settings):
    """The settings' use case: its ``day(value)`` parses a command line's ``YYYY-MM-DD`` (the boundary)."""
    from airloop.core.usecase import load_use_case

    return load_use_case(settings.use_case)


def cmd_score(args) -> int:
    from airloop.cli.output import print_json
    from airloop.scoring import score_day

    settings = _settings()
    use_case = _use_case(settings)
    first, last = use_case.day(args.start), use_case.day(args.end or args.start)
    for day in first.range_to(last):
        result = score_day(
            day, settings=settings, model_version=args.model_version, chunk_rows=args.chunk_rows, use_case=use_case
        )
        print_json(result.as_dict())
    return 0


def cmd_show(args) -> int:
    import pandas as pd

    from airloop.scoring import prediction_prefix, read_predictions
    from airloop.core.storage import open_lake, require_manifest

    settings = _settings()
    day = _use_case(settings).day(args.ds)
    lake = open_lake(settings)
    prefix = prediction_prefix(day)
    manifest = require_manifest(lake, prefix)
    model = manifest["model"]
    window = model["training_window"]
    print(f"{lake.uri(prefix)}")
    print(f"  rows                  {manifest['rows']}  ({manifest['rows_missing_features']} with missing features)")
    print(f"  prediction time       {manifest['prediction_time']}")
    print(f"  model                 {model['name']} v{model['version']}  sha256 {model['sha256'][:16]}...")
    print(f"  training window       {window['start']} .. {window['end']}")
    print(f"  feature service       {manifest['feature_service']}")
    score = manifest["score"]
    print(f"  score                 mean {score['mean']}  min {score['min']}  max {score['max']}")
    schedule = manifest["inputs"]["schedule"]
    print(f"  schedule              {schedule['rows_read']} rows read, {schedule['rows_rejected']} rejected")
    for entry in manifest["inputs"]["partitions"]:
        print(f"  input                 {entry['partition']}")
    frame = read_predictions(lake, day)
    if args.sort:
        frame = frame.sort_values("score", ascending=False)
    with pd.option_context("display.max_columns", 20, "display.width", 200):
        print()
        print(frame.head(args.limit).to_string(index=False))
    return 0


def cmd_trace(args) -> int:
    from airloop.cli.output import print_json
    from airloop.scoring import trace_prediction
    from airloop.core.storage import open_lake

    match = {k: v for k, v in {"carrier": args.carrier, "flight": args.flight, "origin": args.origin, "dest": args.dest}.items() if v}
    settings = _settings()
    traced = trace_prediction(open_lake(settings), _use_case(settings).day(args.ds), **match)
    if not traced["matches"]:
        print(f"no prediction of {args.ds} matches {match}")
        return 1
    print_json(traced)
    return 0


def cmd_runs(args) -> int:
    from airloop.scoring import ScoringRuns

    settings = _settings()
    day = _use_case(settings).day(args.ds) if args.ds else None
    rows = ScoringRuns(settings.registry_url).list(day, limit=args.limit)
    if not rows:
        print("no scoring runs recorded")
        return 0
    print(f"{'started_at':26} {'ds':10} {'status':8} {'model':>5} {'rows':>8} {'missing':>7} {'seconds':>8}  run_id")
    for r in rows:
        version = f"v{r['model_version']}" if r["model_version"] else "-"
        seconds = f"{r['duration_s']:.2f}" if r["duration_s"] is not None else "-"
        print(
            f"{str(r['started_at'])[:26]:26} {r['ds']:10} {r['status']:8} {version:>5} {r['rows'] or 0:>8} "
            f"{r['rows_missing_features'] or 0:>7} {seconds:>8}  {r['run_id']}"
            + (f"\n    {r['error']}" if r["error"] else "")
        )
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("score", help="score days outside Airflow (same code as the batch_predict DAG)")
    p.add_argument("start", help="first day YYYY-MM-DD")
    p.add_argument("end", nargs="?", help="last day (inclusive)")
    p.add_argument("--model-version", type=int, help="pin a registry version (default: champion serving then)")
    p.add_argument("--chunk-rows", type=int, help="rows per scoring chunk")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("predictions", help="inspect prediction partitions")
    psub = p.add_subparsers(dest="predictions_command", required=True, metavar="ACTION")
    show = psub.add_parser("show", help="a partition's manifest summary and its first rows")
    show.add_argument("ds")
    show.add_argument("--limit", type=int, default=20)
    show.add_argument("--sort", action="store_true", help="highest scores first")
    show.set_defaults(func=cmd_show)
    trace = psub.add_parser("trace", help="one prediction: its inputs, model version, training window, input partitions")
    trace.add_argument("ds")
    trace.add_argument("--carrier", required=True)
    trace.add_argument("--flight", required=True, type=int)
    trace.add_argument("--origin")
    trace.add_argument("--dest")
    trace.set_defaults(func=cmd_trace)

    p = sub.add_parser("scoring-runs", help="scoring attempts (duration, model, status) from the registry DB")
    p.add_argument("--ds")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(func=cmd_runs)
