"""CLI commands of the ingestion stage: load the source, ingest a day, inspect partitions."""

from __future__ import annotations


def _settings():
    from airloop.core.config import get_settings

    return get_settings()


def cmd_load_source(args) -> int:
    from airloop.cli.output import print_json
    from airloop.ingest.source import SourceDatabase
    from airloop.core.usecase import load_use_case

    settings = _settings()
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    if args.if_missing and all(source.has_table(t) for t in load_use_case(settings.use_case).tables):
        print(f"source already loaded at {source.safe_url}")
        return 0
    print_json({"source": source.safe_url, "rows": source.load(load_use_case(settings.use_case))})
    return 0


def cmd_ingest(args) -> int:
    """Ingest each day like the DAG does: all tables of a day together, or none of them.

    Days before the source are skipped with a message. Returns 1 when a day was not published:
    no data yet (past the source's end), a contract failure (columns, volume) or the quality gate;
    the message says why, and the day's published partitions are left as they were.
    """
    import sys

    from airloop.cli.output import print_json
    from airloop.core.usecase import load_use_case
    from airloop.ingest import ContractError, NoDataYet, OutsideSourceCoverage, QualityGateError, ingest_tables

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    first, last = use_case.day(args.start), use_case.day(args.end or args.start)
    failed = 0
    for day in first.range_to(last):
        try:
            summaries, _ = ingest_tables(day, settings, args.table)
        except OutsideSourceCoverage as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        except NoDataYet as exc:
            print(f"not ingested, {exc}", file=sys.stderr)
            failed += 1
            continue
        except QualityGateError as exc:
            print(f"quality gate failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        except ContractError as exc:
            print(f"contract failed ({type(exc).__name__}): {exc}", file=sys.stderr)
            failed += 1
            continue
        for summary in summaries.values():
            print_json(summary.as_dict())
    return 1 if failed else 0


def cmd_calibrate_volume(args) -> int:
    """Replay the volume rule over the whole source and print the ratios and the band they call for."""
    from airloop.cli.output import print_json
    from airloop.core.usecase import load_use_case
    from airloop.ingest import VolumePolicy, calibrate, suggest_band
    from airloop.ingest.source import SourceDatabase

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    source = SourceDatabase(settings.source_url, replay_offset_days=settings.replay_offset_days)
    policy = VolumePolicy.from_settings(settings)
    tables = args.table or list(use_case.tables)
    results = {t: calibrate(t, source.daily_rows(use_case.table(t), use_case.timezone), policy) for t in tables}
    low, high = suggest_band([r for c in results.values() for r in c.ratios], headroom=args.headroom, step=args.step)
    shift = settings.replay_offset_days

    def row(check) -> dict:
        from datetime import timedelta

        return {"day": str(check.day), "source_day": str(check.day - timedelta(days=shift)), "weekday": f"{check.day:%a}",
                "rows": check.rows, "median": check.median, "ratio": round(check.ratio, 4)}  # fmt: skip

    report = {"policy": {"weeks": policy.weeks, "min_history": policy.min_history},
              "configured_band": [policy.low, policy.high], "suggested_band": [low, high],
              "headroom": args.headroom, "tables": {}}  # fmt: skip
    for table, cal in results.items():
        lowest, highest = cal.extremes(args.show)
        report["tables"][table] = {
            "days": len(cal.checks), "checked": len(cal.ratios),
            "quantiles": {k: round(v, 4) for k, v in cal.quantiles().items()},
            "lowest": [row(c) for c in lowest], "highest": [row(c) for c in highest],
            "fail_under_configured_band": [row(c) for c in cal.failures(policy)],
        }  # fmt: skip
    if args.json:
        print_json(report)
    else:
        print(f"volume rule: same weekday over {policy.weeks} weeks, at least {policy.min_history} known")
        for table, t in report["tables"].items():
            print(f"\n{table}: {t['checked']} of {t['days']} days checked; ratio to the trailing median "
                  + ", ".join(f"{k} {v:.3f}" for k, v in t["quantiles"].items()))  # fmt: skip
            for label in ("lowest", "highest"):
                print(f"  {label}:")
                for r in t[label]:
                    print(f"    {r['day']} ({r['weekday']}, source {r['source_day']}) {r['rows']:>6} rows / median {r['median']:g} = {r['ratio']:.3f}")
            print(f"  failing under the configured band {policy.band()}: {len(t['fail_under_configured_band'])}")
        print(f"\nsuggested band (headroom {args.headroom:.0%}, rounded outward to {args.step:g}): [{low:g}, {high:g}]")
        print(f"configured band: {policy.band()} (AIRLOOP_VOLUME_BAND_LOW/HIGH)")
    failing = sum(len(t["fail_under_configured_band"]) for t in report["tables"].values())
    return 1 if failing else 0


def cmd_ingest_status(args) -> int:
    """Say whether a day's published tables belong together; ``--repair`` rolls interrupted commits forward."""
    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.ingest import day_status, recover_day

    settings = _settings()
    use_case = load_use_case(settings.use_case)
    day, lake = use_case.day(args.ds), open_lake(settings)
    tables = list(use_case.tables)
    if args.repair:
        for commit_id in recover_day(lake, day.key):
            print(f"rolled commit {commit_id} of {day.key} forward")
    problems = day_status(lake, day.key, tables)
    for problem in problems:
        print(f"inconsistent: {problem}")
    if not problems:
        print(f"{day.key}: consistent ({', '.join(tables)})")
    return 1 if problems else 0


def cmd_partitions(args) -> int:
    from airloop.core.storage import list_partitions, open_lake, read_manifest

    lake = open_lake(_settings())
    prefixes = list_partitions(lake, args.zone)
    if not prefixes:
        print(f"no published partitions under {lake.uri(args.zone)}")
        return 0
    print(f"{'partition':48} {'rows':>8} {'quarantined':>11}  files")
    for prefix in prefixes:
        manifest = read_manifest(lake, prefix) or {}
        quarantined = manifest.get("quarantined_rows", "")
        files = ", ".join(f["name"] for f in manifest.get("files", []))
        print(f"{prefix:48} {manifest.get('rows', ''):>8} {quarantined:>11}  {files}")
    return 0


def cmd_manifest(args) -> int:
    from airloop.cli.output import print_json
    from airloop.core.storage import open_lake, require_manifest

    print_json(require_manifest(open_lake(_settings()), args.prefix.rstrip("/")))
    return 0


def cmd_quarantine(args) -> int:
    import pandas as pd

    from airloop.core.storage import open_lake
    from airloop.core.usecase import load_use_case
    from airloop.ingest import read_quarantine

    settings = _settings()
    frame = read_quarantine(open_lake(settings), args.table, load_use_case(settings.use_case).day(args.ds))
    if frame.empty:
        print(f"no quarantined {args.table} rows for {args.ds}")
        return 0
    with pd.option_context("display.max_columns", 30, "display.width", 200, "display.max_colwidth", 80):
        print(frame.head(args.limit).to_string(index=False))
    print(f"\n{len(frame)} quarantined rows")
    return 0


def cmd_contract(args) -> int:
    from airloop.core.usecase import load_use_case

    table = load_use_case(_settings().use_case).table(args.table)
    print(f"{table.name}: {table.description}\nkey: {', '.join(table.key)}\n")
    for col in table.columns:
        rules = []
        if col.min_value is not None or col.max_value is not None:
            rules.append(f"range [{col.min_value}, {col.max_value}]")
        if col.allowed:
            rules.append(f"one of {list(col.allowed)}")
        if col.pattern:
            rules.append(f"matches /{col.pattern}/")
        rules.append("nullable" if col.nullable else "required")
        print(f"  {col.name:16} {col.dtype:9} {'; '.join(rules):60} {col.description}")
    return 0


def cmd_setup(args) -> int:
    from airloop.deploy.setup import run_setup

    run_setup(_settings(), skip_pools=args.skip_pools)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("setup", help="one-off set-up: folders, source data, bucket, pools, stores")
    p.add_argument("--skip-pools", action="store_true", help="do not touch Airflow pools")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("load-source", help="load the upstream data into the source database")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the tables exist")
    p.set_defaults(func=cmd_load_source)

    p = sub.add_parser("ingest", help="ingest days outside Airflow (same code as the DAG)")
    p.add_argument("start", help="first day YYYY-MM-DD")
    p.add_argument("end", nargs="?", help="last day (inclusive)")
    p.add_argument("--table", action="append", default=None, help="table (repeatable); default all")
    p.set_defaults(func=lambda a: cmd_ingest(_with_tables(a)))

    p = sub.add_parser("calibrate-volume", help="ratio of every source day to its trailing same-weekday median, and the band")
    p.add_argument("--table", action="append", default=None, help="table (repeatable); default all")
    p.add_argument("--headroom", type=float, default=0.1, help="widen the observed extremes by this share (0.1)")
    p.add_argument("--step", type=float, default=0.05, help="round the band outward to this step (0.05)")
    p.add_argument("--show", type=int, default=5, help="how many lowest and highest days to list")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_calibrate_volume)

    p = sub.add_parser("ingest-status", help="whether a day's published tables belong to one commit")
    p.add_argument("ds", help="day YYYY-MM-DD")
    p.add_argument("--repair", action="store_true", help="roll interrupted commits of the day forward first")
    p.set_defaults(func=cmd_ingest_status)

    p = sub.add_parser("partitions", help="list published partitions with their manifests")
    p.add_argument("zone", help="zone prefix, e.g. raw/flights or quarantine/weather")
    p.set_defaults(func=cmd_partitions)

    p = sub.add_parser("manifest", help="print one partition's manifest")
    p.add_argument("prefix", help="e.g. raw/flights/ds=2026-03-02")
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("quarantine", help="show quarantined rows with their reasons")
    p.add_argument("table")
    p.add_argument("ds")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("contract", help="print a table's data contract")
    p.add_argument("table")
    p.set_defaults(func=cmd_contract)


def _with_tables(args):
    if not args.table:
        from airloop.core.usecase import load_use_case

        args.table = list(load_use_case(_settings().use_case).tables)
    return args
