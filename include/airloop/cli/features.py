"""CLI commands of the features stage: ``airloop features list|apply|compute|materialize|skew-check|env``."""

from __future__ import annotations


def _settings():
    from airloop.core.config import get_settings

    return get_settings()


def cmd_list(args) -> int:
    """Print the feature service's model inputs: request-time columns, then Feast features by view."""
    from airloop import features as F

    from airloop.features.registered_layout import recorded_layout

    settings = _settings()
    name = args.service or F.default_feature_service(settings)
    # The registered layout (milliseconds, no Feast import) when it is recorded and current;
    # else the repo's definitions, which needs Feast (several seconds).
    layout = recorded_layout(settings, name)
    origin = "as registered"
    if layout is None:
        layout = F.service_layout_from_definitions(F.load_definitions(settings), name)
        origin = "from feature_repo/definitions.py"
    spec = F.load_feature_use_case(settings).features
    print(f"feature service {name} (version {layout.digest()[:12]}, {origin}): "
          f"{len(spec.request_columns) + len(layout.feature_names)} model inputs")  # fmt: skip
    print(f"  request-time (from the row): {', '.join(spec.request_columns)}")
    for view in layout.views:
        ttl = f"ttl {view.ttl}" if view.ttl else "no ttl"
        print(f"  {view.name} [{', '.join(view.join_keys)}; {ttl}; {view.lake_prefix}]")
        for feature, dtype in zip(view.features, view.dtypes):
            print(f"    {feature:30} {dtype}")
    return 0


def cmd_apply(args) -> int:
    from airloop.features import apply_definitions

    print(apply_definitions(_settings()))
    return 0


def cmd_compute(args) -> int:
    from airloop.cli.output import print_json
    from airloop.features import compute_features, load_feature_use_case

    settings = _settings()
    use_case = load_feature_use_case(settings)
    rows = {}
    for day in use_case.day(args.start).range_to(use_case.day(args.end or args.start)):
        manifests = compute_features(day, settings=settings, views=args.view or None)
        rows[day.key] = {view: m["rows"] for view, m in manifests.items()}
    print_json(rows)
    return 0


def cmd_materialize(args) -> int:
    from airloop.cli.output import print_json
    from airloop.features import load_feature_use_case, materialize

    settings = _settings()
    use_case = load_feature_use_case(settings)
    start, end = use_case.day(args.start), use_case.day(args.end or args.start)
    results = materialize(start, end, settings=settings, views=args.view or None)
    print_json([r.as_dict() for r in results])
    return 0


def cmd_skew_check(args) -> int:
    """Compare online and offline values for a sample of day ``ds``'s event rows; 1 when they differ."""
    import pandas as pd

    from airloop.cli.output import print_json
    from airloop.core.storage import open_lake
    from airloop.features import (
        entity_rows,
        feature_store,
        load_feature_use_case,
        read_events,
        service_layout,
        skew_check,
    )

    settings = _settings()
    use_case = load_feature_use_case(settings)
    day = use_case.day(args.ds)
    store = feature_store(settings)
    spec = use_case.features
    layout = service_layout(store, args.service or spec.feature_service)
    events = read_events([day.date], table=spec.event_table, lake=open_lake(settings))
    sample = entity_rows(events, settings=settings)[layout.join_keys].drop_duplicates()
    sample = sample.sample(min(args.sample, len(sample)), random_state=args.seed) if len(sample) else sample
    report = skew_check(pd.DataFrame(sample).reset_index(drop=True), day, settings=settings, feature_service=layout.name, store=store)
    print_json(report.as_dict())
    return 0 if report.ok else 1


def cmd_training_set(args) -> int:
    """Build the point-in-time training set of days ``[start, end]`` and write it to ``--out``.

    The same function the ``train_model`` DAG calls. Parquet unless the path ends in ``.csv``;
    written to a temporary file beside the target, then renamed (no half-written file).
    """
    import os
    from pathlib import Path

    from airloop.cli.output import print_json
    from airloop.features import build_training_set, load_feature_use_case

    settings = _settings()
    use_case = load_feature_use_case(settings)
    first, last = use_case.day(args.start), use_case.day(args.end)
    if last < first:
        raise ValueError(f"the window ends ({last}) before it starts ({first})")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists: pass --force to replace it")
    training_set = build_training_set(first.date, last.date, settings=settings, feature_service=args.service)
    frame = training_set.frame
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    if out.suffix.lower() == ".csv":
        frame.to_csv(partial, index=False)
    else:
        frame.to_parquet(partial, index=False)
    os.replace(partial, out)
    label = frame[training_set.label_column]
    print_json({
        "path": str(out),
        "rows": len(frame),
        "positive_share": round(float(label.mean()), 6) if len(frame) else None,
        "window": [first.key, last.key],
        "feature_service": training_set.feature_service,
        "feature_columns": len(training_set.feature_columns),
        "label_column": training_set.label_column,
        "fingerprint": training_set.fingerprint,
    })  # fmt: skip
    return 0


def cmd_env(args) -> int:
    """Print the values of the ${VAR}s in feature_store.yaml, as shell exports (for the feast CLI)."""
    from airloop.features import feast_environment

    for name, value in sorted(feast_environment(_settings()).items()):
        print(f"export {name}={value!r}" if value else f"export {name}=")
    return 0


def add_commands(sub) -> None:
    features = sub.add_parser("features", help="Feast features: list, apply, compute, materialize, skew check")
    fsub = features.add_subparsers(dest="features_command", required=True, metavar="ACTION")

    p = fsub.add_parser("list", help="the feature service's model inputs")
    p.add_argument("--service", help="feature service (default: the use case's)")
    p.set_defaults(func=cmd_list)

    p = fsub.add_parser("apply", help="apply feature_repo/ when its definitions changed")
    p.set_defaults(func=cmd_apply)

    p = fsub.add_parser("compute", help="compute feature partitions from the raw zone (same code as the DAG)")
    p.add_argument("start", help="first day YYYY-MM-DD")
    p.add_argument("end", nargs="?", help="last day (inclusive)")
    p.add_argument("--view", action="append", help="feature view (repeatable); default all")
    p.set_defaults(func=cmd_compute)

    p = fsub.add_parser("materialize", help="load feature partitions into the online store")
    p.add_argument("start", help="first day YYYY-MM-DD")
    p.add_argument("end", nargs="?", help="last day (inclusive)")
    p.add_argument("--view", action="append", help="feature view (repeatable); default all")
    p.set_defaults(func=cmd_materialize)

    p = fsub.add_parser("skew-check", help="online == offline for a sample of a day's entities (materialized through that day)")
    p.add_argument("ds", help="the last materialized day YYYY-MM-DD")
    p.add_argument("--sample", type=int, default=200, help="entity rows to compare")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--service", help="feature service (default: the use case's)")
    p.set_defaults(func=cmd_skew_check)

    p = sub.add_parser("training-set", help="build a point-in-time training set for a window of days and write it to a file")
    p.add_argument("start", help="first day YYYY-MM-DD")
    p.add_argument("end", help="last day YYYY-MM-DD (inclusive)")
    p.add_argument("--out", required=True, help="output file: Parquet, or CSV when it ends in .csv")
    p.add_argument("--service", help="feature service (default: the use case's)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_training_set)

    p = fsub.add_parser("env", help="print the Feast settings as shell exports (for the feast CLI)")
    p.set_defaults(func=cmd_env)
