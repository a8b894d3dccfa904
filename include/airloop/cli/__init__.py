"""``airloop``: inspect and drive what the pipeline makes, outside Airflow.

Each lifecycle stage adds its commands from its own module in this package (see COMMAND_MODULES), so
this file only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "airloop.cli.ingest",
    "airloop.cli.features",
    "airloop.cli.services",
    "airloop.cli.predict",
    "airloop.cli.registry",
    "airloop.cli.monitor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airloop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # one clear line for the user, not a traceback
        if getattr(args, "debug", False) or __import__("os").environ.get("AIRLOOP_DEBUG"):
            raise
        print(f"airloop {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
