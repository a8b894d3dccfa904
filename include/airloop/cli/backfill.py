"""``airloop backfill DAG FROM TO``: a backfill through the scheduler, with its progress.

``airloop backfill pause ID`` / ``resume ID`` / ``watch ID`` act on an existing one
(see :mod:`airloop.loop.backfill`). Needs a running Airflow (the api-server's REST API).
"""

from __future__ import annotations

ACTIONS = ("pause", "resume", "watch")


def cmd_backfill(args) -> int:
    import time

    from airloop.loop import backfill as bf
    from airloop.loop.season import AirflowClient

    if args.target not in ACTIONS and args.start is not None and args.end is not None:
        bf.check_range(args.start, args.end)  # a bad range is refused before Airflow is asked
    if args.target in ACTIONS:
        if args.start is None or args.end is not None:
            raise bf.BackfillError(f"usage: airloop backfill {args.target} BACKFILL_ID")
        backfill_id = _id(args.start)
    client = AirflowClient(base_url=args.airflow_url)
    if args.target in ACTIONS:
        if args.target == "pause":
            bf.pause(client, backfill_id)
            print(f"backfill {backfill_id} paused: running runs finish, no new one starts; "
                  f"`airloop backfill resume {backfill_id}` goes on with the days not done")  # fmt: skip
            return 0
        if args.target == "resume":
            bf.resume(client, backfill_id)
            print(f"backfill {backfill_id} resumed")
        record = client.api("GET", f"/api/v2/backfills/{backfill_id}")
        keys = bf.plan(client, record["dag_id"], record["from_date"][:10], record["to_date"][:10], reprocess="completed",
                       conf=record.get("dag_run_conf"))  # fmt: skip
        return _watch(client, bf.Progress(backfill_id, record["dag_id"], keys), args)

    if args.start is None or args.end is None:
        raise bf.BackfillError("usage: airloop backfill DAG FROM TO (or pause|resume|watch BACKFILL_ID)")
    keys = bf.plan(client, args.target, args.start, args.end, reprocess=args.reprocess)
    if not keys:
        print(f"nothing to run: every day of {args.start}..{args.end} of {args.target} is already done "
              f"(--reprocess failed reruns failed days, --reprocess completed every day)")  # fmt: skip
        return 0
    print(f"{args.target}: {len(keys)} days to run, {keys[0]} .. {keys[-1]} (max {args.max_active_runs} at a time)")
    if args.dry_run:
        return 0
    record = bf.start(client, args.target, args.start, args.end, reprocess=args.reprocess, max_active_runs=args.max_active_runs)
    backfill_id = int(record["id"])
    print(f"backfill {backfill_id} created; Ctrl-C stops watching, not the backfill "
          f"(`airloop backfill pause {backfill_id}`, `resume {backfill_id}`, `watch {backfill_id}`)")  # fmt: skip
    time.sleep(1)  # the scheduler creates the runs on its next loop
    return _watch(client, bf.Progress(backfill_id, args.target, keys), args)


def _watch(client, progress, args) -> int:
    import time

    from airloop.loop import backfill as bf

    if args.no_watch:
        return 0
    try:
        bf.watch(client, progress, clock=time.monotonic, sleep=time.sleep, poll_s=args.poll)
    except KeyboardInterrupt:
        print(f"\nstopped watching; backfill {progress.backfill_id} goes on (`airloop backfill watch {progress.backfill_id}`)")
        return 130
    print(progress.summary())
    return 1 if progress.failed else 0


def _id(value: str) -> int:
    from airloop.loop.backfill import BackfillError

    try:
        return int(value)
    except ValueError:
        raise BackfillError(f"a backfill id is a number (see the Airflow UI or `airloop backfill DAG ...`), got {value!r}") from None


def add_commands(sub) -> None:
    p = sub.add_parser(
        "backfill",
        help="backfill a DAG through the scheduler with progress (days done, rate, time left, failures); pause/resume",
        description="Create an Airflow backfill of DAG over FROM..TO (dates as `airflow backfill create` takes them) "
        "and watch it: one progress line when something changes, one summary at the end. Days already done are "
        "skipped unless --reprocess says otherwise, so running it again resumes a stopped backfill.",
    )
    p.add_argument("target", metavar="DAG", help="the DAG id, or pause | resume | watch")
    p.add_argument("start", metavar="FROM", nargs="?", help="first date YYYY-MM-DD (or the backfill id)")
    p.add_argument("end", metavar="TO", nargs="?", help="last date YYYY-MM-DD")
    p.add_argument("--reprocess", choices=("none", "failed", "completed"), default="none",
                   help="days already run: skip them (none, default), rerun failed ones, or rerun all (completed)")  # fmt: skip
    p.add_argument("--max-active-runs", type=int, default=4, help="runs at a time (default 4: two cores)")
    p.add_argument("--dry-run", action="store_true", help="say which days would run, create nothing")
    p.add_argument("--no-watch", action="store_true", help="create it and return")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between progress checks")
    p.add_argument("--airflow-url", help="api-server URL (default AIRLOOP_AIRFLOW_URL or http://localhost:8080)")
    p.set_defaults(func=cmd_backfill)
