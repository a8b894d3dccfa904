"""CLI commands of the model registry: list versions, show one, the champion, history, rollback.

``airloop models`` / ``airloop model 3`` / ``airloop champion [--at ISO]`` /
``airloop model-history`` / ``airloop rollback previous --reason "..."``. The model defaults
to the use case's; ``--model`` picks another. Rollback goes through the same registry function
as the ``rollback_model`` DAG and is recorded in the history with ``--by`` (default: $USER).
"""

from __future__ import annotations

import os


def _context(args):
    from airloop.core.config import get_settings
    from airloop.registry import open_registry
    from airloop.core.usecase import load_use_case

    settings = get_settings()
    name = args.model
    if not name:
        spec = load_use_case(settings.use_case).model
        if spec is None:
            raise ValueError("the use case defines no model; pass --model")
        name = spec.name
    return settings, open_registry(settings), name


def _metric(mv, key: str) -> str:
    value = (mv.metrics or {}).get(key)
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def cmd_models(args) -> int:
    _, registry, name = _context(args)
    versions = registry.versions(name)
    if not versions:
        print(f"no versions of {name} in {registry.safe_url}")
        return 0
    print(f"{'ver':>4} {'status':9} {'window':23} {'rows':>7} {'roc_auc':>8} {'base':>7} {'brier':>7} {'device':6} {'created (UTC)':19}  code")
    for mv in versions:
        base = (mv.metrics or {}).get("baseline", {}).get("roc_auc")
        base_text = "-" if base is None else f"{base:.4f}"
        print(
            f"{mv.version:>4} {mv.status:9} {mv.window_start} .. {mv.window_end} {mv.training_rows:>7} "
            f"{_metric(mv, 'roc_auc'):>8} {base_text:>7} {_metric(mv, 'brier'):>7} "
            f"{mv.device:6} {mv.created_at:%Y-%m-%d %H:%M:%S}  {mv.code_version}"
        )
    return 0


def cmd_model(args) -> int:
    from airloop.cli.output import print_json

    _, registry, name = _context(args)
    print_json(registry.get(name, args.version).as_dict())
    return 0


def cmd_champion(args) -> int:
    from datetime import datetime, timezone

    from airloop.cli.output import print_json

    _, registry, name = _context(args)
    if args.at:
        instant = datetime.fromisoformat(args.at)
        instant = instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)
        mv = registry.champion_at(name, instant)
    else:
        mv = registry.champion(name)
    if mv is None:
        print(f"{name} has no champion{' at ' + args.at if args.at else ''}")
        return 1
    print_json(mv.as_dict() if args.json else {k: getattr(mv, k) for k in ("model_name", "version", "status", "window_start", "window_end", "device", "artifact_uri", "sha256")})
    return 0


def cmd_history(args) -> int:
    _, registry, name = _context(args)
    entries = registry.history(name)
    if not entries:
        print(f"no promotion history for {name}")
        return 0
    for e in entries:
        change = f"v{e.from_version or '-'} -> v{e.to_version}" if e.action != "refuse" else f"kept v{e.to_version or '-'}, refused v{e.candidate_version}"
        print(f"{e.at:%Y-%m-%d %H:%M:%S}Z {e.action:8} {change:28} by {e.actor}: {e.reason}")
    return 0


def cmd_rollback(args) -> int:
    settings, registry, name = _context(args)
    from airloop.core.storage import open_lake

    entry = registry.rollback(
        name, args.to, reason=args.reason, actor=args.by or f"{os.environ.get('USER', 'unknown')} via cli",
        lake=open_lake(settings),
    )  # fmt: skip
    print(f"{name}: champion v{entry.from_version} -> v{entry.to_version} ({args.reason})")
    return 0


def add_commands(sub) -> None:
    def model_arg(p):
        p.add_argument("--model", help="registry model name (default: the use case's)")

    p = sub.add_parser("models", help="list a model's registered versions")
    model_arg(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("model", help="show one registered version (all recorded fields)")
    p.add_argument("version", type=int)
    model_arg(p)
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("champion", help="the champion now, or at an instant (--at)")
    p.add_argument("--at", help="ISO instant, e.g. 2026-03-02T07:00:00+00:00 (UTC when no offset)")
    p.add_argument("--json", action="store_true", help="every field")
    model_arg(p)
    p.set_defaults(func=cmd_champion)

    p = sub.add_parser("model-history", help="promotions, refusals and rollbacks, oldest first")
    model_arg(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("rollback", help="make an earlier version the champion again")
    p.add_argument("to", help="'previous' or a version number")
    p.add_argument("--reason", required=True, help="why (recorded in the history)")
    p.add_argument("--by", help="who (default: $USER via cli)")
    model_arg(p)
    p.set_defaults(func=cmd_rollback)
