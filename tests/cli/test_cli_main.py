"""The ``airloop`` command as a user runs it: in a pipe, with a bad argument."""

from __future__ import annotations

import subprocess
import sys

from testkit import ROOT

AIRLOOP = [sys.executable, "-m", "airloop"]


def run_piped(command: list[str], reader: str) -> subprocess.CompletedProcess:
    """``command | reader`` through a real shell pipe; returns the writer's exit and stderr."""
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    head = subprocess.run(reader.split(), stdin=writer.stdout, capture_output=True, text=True)
    writer.stdout.close()
    err = writer.stderr.read().decode()
    return subprocess.CompletedProcess(command, writer.wait(timeout=60), head.stdout, err)


def test_a_closed_pipe_ends_quietly():
    # The contract prints about 50 lines; head keeps one and closes the pipe.
    done = run_piped([*AIRLOOP, "contract", "flights"], "head -n 1")
    assert done.stdout.startswith("flights:")
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode in (0, 141)  # 0 when everything fit in the pipe before head closed it


def test_a_closed_pipe_on_a_long_output_exits_141_quietly():
    # A command whose output outgrows the pipe buffer: print_json of a large value.
    script = (
        "import sys\n"
        "from airloop import cli\n"
        "from airloop.cli.output import print_json\n"
        "def big(args):\n"
        "    for i in range(200000):\n"
        "        print_json({'row': i})\n"
        "parser = cli.build_parser\n"
        "def build():\n"
        "    p = parser()\n"
        "    sub = [a for a in p._actions if a.dest == 'command'][0]\n"
        "    sub.add_parser('big').set_defaults(func=big)\n"
        "    return p\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(['big']))\n"
    )
    done = run_piped([sys.executable, "-c", script], "head -n 3")
    assert done.returncode == 141
    assert done.stderr == ""


def test_an_unknown_table_is_one_clear_line():
    done = subprocess.run([*AIRLOOP, "contract", "nonsense"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "no table 'nonsense'" in done.stderr and "Traceback" not in done.stderr
