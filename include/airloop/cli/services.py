"""CLI commands of the services profile: pre-flight checks and database creation.

``scripts/services-up.sh`` runs ``airloop services check`` and ``airloop services
create-databases`` before it starts Airflow; both read the servers from the environment.
"""

from __future__ import annotations

import sys


def _load_profile() -> None:
    """Load the profile file into the environment (``airloop.core.config`` does it with the settings)."""
    from airloop.core.config import get_settings

    get_settings()


def cmd_check(args) -> int:
    _load_profile()
    from airloop.deploy.services import ServiceUnavailable, check_endpoints, check_s3, profile_endpoints, sqlite_settings

    leftovers = sqlite_settings()
    if leftovers:
        print(f"the services profile must not use SQLite, but these do: {sorted(leftovers)}", file=sys.stderr)
        return 1
    try:
        for line in check_endpoints(profile_endpoints(), timeout_s=args.timeout):
            print(f"[services] ok: {line}")
        if args.s3:
            from airloop.core.config import get_settings

            print(f"[services] ok: {check_s3(get_settings().s3_endpoint_url, timeout_s=args.timeout)}")
    except ServiceUnavailable as exc:
        for line in str(exc).splitlines():
            print(f"[services] {line}", file=sys.stderr)
        return 1
    return 0


def cmd_create_databases(args) -> int:
    _load_profile()
    from airloop.deploy.services import ensure_databases

    for line in ensure_databases():
        print(f"[services] {line}")
    return 0


def add_commands(subparsers) -> None:
    services = subparsers.add_parser("services", help="services profile: check servers, create databases")
    sub = services.add_subparsers(dest="services_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="reach every PostgreSQL/Redis server the profile names (bounded)")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per server (default 5)")
    check.add_argument("--s3", action="store_true", help="also reach AIRLOOP_S3_ENDPOINT_URL")
    check.set_defaults(func=cmd_check)
    create = sub.add_parser("create-databases", help="create the PostgreSQL databases the profile names")
    create.set_defaults(func=cmd_create_databases)
