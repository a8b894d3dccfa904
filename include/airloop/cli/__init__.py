"""``airloop``: inspect and drive what the pipeline makes, outside Airflow.

Each lifecycle stage adds its commands from its own module in this package (see COMMAND_MODULES), so
this file only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = [
    "airloop.cli.ingest",
    "airloop.cli.features",
    "airloop.cli.services",
    "airloop.cli.predict",
    "airloop.cli.registry",
    "airloop.cli.monitor",
    "airloop.cli.lineage",
    "airloop.cli.backtest",
    "airloop.cli.backfill",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airloop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


# What a command that lost its reader exits with: 128 + SIGPIPE, as `yes | head` does in a shell.
CLOSED_PIPE_EXIT = 141


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, inside the handler, not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`airloop ... | head`): stop quietly. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not raise and print a traceback after all.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE_EXIT
    except Exception as exc:  # one clear line for the user, not a traceback
        if getattr(args, "debug", False) or os.environ.get("AIRLOOP_DEBUG"):
            raise
        from airloop.core.redaction import redact_text

        print(f"airloop {args.command}: {type(exc).__name__}: {redact_text(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
