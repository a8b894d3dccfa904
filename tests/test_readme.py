"""The README, checked: every command, path and setting it names is run or resolved by a test.

* Every line of every ```bash block is a *command*. Each gets static checks: a ``make`` target
  exists and dry-runs (``make -n``), an ``airloop`` command line parses with the real CLI parser,
  an ``airflow`` command's subcommand exists and knows every ``--option`` used, a script it names
  exists, every repository path it names exists, an exported ``AIRLOOP_*`` variable is read by
  the code. Then it is *run* for real (``bash -c``, from the repository root) against a small
  prepared installation (the source database, two ingested days) in a temporary data dir,
  unless the README marks its block with ``<!-- doctest: skip (reason) -->`` (starts a server,
  needs a running Airflow, runs for minutes): then it is skipped with that reason, after the
  static checks. A ```text block marked ``<!-- doctest: output -->`` must be exactly what the
  command block before it prints.
* Every ```python block runs in a fresh interpreter in the same installation.
* Inline code: every ``airloop ...`` command parses; every call ``airloop.<module>.<function>(...)``
  names a function whose required arguments the example gives; every repository path exists;
  every ``AIRLOOP_*`` variable is read somewhere in the code.

New blocks need nothing: an unmarked command of a kind a test cannot run (``make``, ``airflow``)
is checked statically and skipped with a reason that says to mark it. ``pytest -rs
tests/test_readme.py`` lists what was run and what was skipped, and why;
:func:`test_readme_report` prints the counts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
MARKER = re.compile(r"^<!--\s*doctest:\s*(skip|output)\s*(?:\((.*)\))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
ENV_VAR = re.compile(r"\bAIRLOOP_[A-Z0-9_]*[A-Z0-9]\b")
# Where a setting may be read: the code and the files that configure it.
CODE_DIRS = ("include", "plugins", "dags", "scripts", "profiles", "config", "docker", "feature_repo")
CODE_FILES = ("Makefile", "airflow.cfg")
# Commands a test cannot run whatever the README says: they are checked statically only.
STATIC_ONLY = {"make": "a make target (checked with make -n)", "airflow": "the Airflow CLI against a live installation"}


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    marker: str | None  # "skip" / "output" / None
    reason: str


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    block: Block

    @property
    def tokens(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def read_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` (also indented ones, in list items) with the doctest marker
    (if any) just before each."""
    import textwrap

    blocks, lines = [], text.splitlines()
    marker, reason, i = None, "", 0
    while i < len(lines):
        line = lines[i]
        found = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if found:
            marker, reason = found.group(1), (found.group(2) or "").strip()
        elif fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
            body = textwrap.dedent("\n".join(lines[i + 1 : end]))
            blocks.append(Block(fence.group(2), i + 1, body, marker, reason))
            marker, reason, i = None, "", end
        elif line.strip():
            marker, reason = None, ""
        i += 1
    return blocks


def block_commands(block: Block) -> list[Command]:
    """The command lines of a shell block (``\\`` continuations joined, comment lines dropped)."""
    out, pending, start = [], "", 0
    for offset, raw in enumerate(block.text.splitlines(), start=1):
        if not pending:
            start = block.line + offset
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        out.append(Command(start, pending + stripped, block))
        pending = ""
    return out


BLOCKS = read_blocks(README.read_text())
COMMANDS = [c for b in BLOCKS if b.lang in ("bash", "sh", "shell", "console") for c in block_commands(b)]
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]


def _id(command: Command) -> str:
    return f"L{command.line}:{command.text[:50]}"


# --- what the code reads, which paths the repository has --------------------------------------


@lru_cache(maxsize=1)
def code_text() -> str:
    parts = []
    for name in CODE_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".sh", ".env", ".yaml", ".yml", ".cfg", ".toml", "") and "__pycache__" not in path.parts:
                parts.append(path.read_text(errors="replace"))
    parts += [(ROOT / f).read_text() for f in CODE_FILES if (ROOT / f).exists()]
    return "\n".join(parts)


@lru_cache(maxsize=1)
def top_level_names() -> frozenset[str]:
    """Top-level entries of the repository as git tracks them (``data/`` or ``logs/`` are made at run time)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return frozenset(line.split("/", 1)[0] for line in listed.splitlines() if "/" in line)


def repo_paths(text: str) -> list[str]:
    """Tokens of ``text`` that name a file or folder inside the repository (``scripts/demo.sh``)."""
    out = []
    for token in re.findall(r"[\w.\-]+(?:/[\w.\-]+)+/?", text):
        token = token.rstrip(".")
        if token.split("/", 1)[0] in top_level_names() and not token.startswith(("http", "raw/", "features/")):
            out.append(token)
    return out


def missing_paths(text: str) -> list[str]:
    return sorted({p for p in repo_paths(text) if not (ROOT / p).exists()})


@lru_cache(maxsize=1)
def variable_patterns() -> list[re.Pattern]:
    """Families of settings the code documents with a placeholder (``AIRLOOP_<CLASS>_POOL``)."""
    found = set(re.findall(r"AIRLOOP_[A-Z0-9_]*<[A-Z]+>[A-Z0-9_<>]*", code_text()))
    return [re.compile(re.sub(r"<[A-Z]+>", "[A-Z0-9]+", p) + "$") for p in found]


def unread_variables(text: str) -> list[str]:
    """``AIRLOOP_*`` names in ``text`` that the code neither reads by name nor documents as a family."""
    return sorted({
        v for v in ENV_VAR.findall(text)
        if v not in code_text() and not any(p.match(v) for p in variable_patterns())
    })  # fmt: skip


# --- static checks per kind of command ---------------------------------------------------------


def check_airloop(args: list[str]) -> str | None:
    """None when ``airloop ARGS`` parses with the real CLI parser, else argparse's message."""
    import contextlib
    import io

    from airloop.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(args)
    except SystemExit as exc:
        return None if exc.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


def check_make(tokens: list[str]) -> str | None:
    targets = [t for t in tokens[1:] if "=" not in t and not t.startswith("-")]
    variables = [t for t in tokens[1:] if "=" in t]
    done = subprocess.run(["make", "-n", *targets, *variables], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else f"make -n {' '.join(targets)}: {done.stderr.strip()[-300:]}"


@lru_cache(maxsize=None)
def airflow_help(subcommand: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run([str(VENV_BIN / "airflow"), *subcommand, "--help"], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def check_airflow(tokens: list[str]) -> str | None:
    subcommand = tuple(t for t in tokens[1:4] if not t.startswith("-") and re.fullmatch(r"[a-z][a-z-]*", t))
    # Take the words up to the first argument: the subcommand path ("backfill create").
    path: list[str] = []
    for word in subcommand:
        code, _ = airflow_help((*path, word))
        if code != 0:
            break
        path.append(word)
    if not path:
        return f"airflow has no subcommand {subcommand[:1]}"
    _, text = airflow_help(tuple(path))
    unknown = [t.split("=")[0] for t in tokens if t.startswith("--") and t.split("=")[0] not in text]
    return f"airflow {' '.join(path)} has no option {unknown}" if unknown else None


def static_problems(command: Command) -> list[str]:
    tokens = command.tokens
    problems = []
    if not tokens:
        return problems
    program = Path(tokens[0]).name
    if program == "make":
        problems.append(check_make(tokens))
    elif program == "airloop":
        problems.append(check_airloop(tokens[1:]))
        if tokens[0] != "airloop" and not (ROOT / tokens[0]).exists() and not Path(tokens[0]).is_absolute():
            problems.append(f"{tokens[0]} does not exist (make venv creates it)")
    elif program == "airflow":
        problems.append(check_airflow(tokens))
    elif program in ("bash", "sh", "python", "python3") and len(tokens) > 1 and not tokens[1].startswith("-"):
        problems.append(None if (ROOT / tokens[1]).exists() else f"{tokens[1]} does not exist")
    elif program == "export":
        problems += [f"{v} is not read by the code" for v in unread_variables(command.text)]
    problems += [f"path {p} does not exist" for p in missing_paths(command.text)]
    problems += [f"{v} is not read by the code" for v in unread_variables(command.text) if program != "export"]
    return [p for p in problems if p]


# --- a small installation the commands run against ---------------------------------------------


@pytest.fixture(scope="module")
def installation(tmp_path_factory, loaded_source):
    """The source database (shared by the session), the days the README's examples name ingested
    into a temporary lake, features for the Python example; the environment a README command runs in."""
    data_dir = tmp_path_factory.mktemp("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOOP_", "AIRFLOW__"))}
    env.update({
        "AIRLOOP_DATA_DIR": str(data_dir), "AIRLOOP_SOURCE_URL": loaded_source, "AIRFLOW_HOME": str(data_dir / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })  # fmt: skip
    # The days the README's examples name; the Python example's window (at the data's first
    # day, so its features need no earlier raw history), as the README says to prepare it.
    for args in (["ingest", "2026-02-09", "2026-02-10"], ["ingest", "2025-12-30", "2026-01-01"], ["features", "apply"],
                 ["features", "compute", "2025-12-30", "2025-12-31"]):  # fmt: skip
        done = subprocess.run([str(VENV_BIN / "airloop"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, f"airloop {' '.join(args)}: {done.stderr[-2000:]}"
    return env


def run(text: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", text], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def expected_output(command: Command) -> str | None:
    """The text of the ```text block marked ``doctest: output`` right after the command's block."""
    index = BLOCKS.index(command.block)
    following = BLOCKS[index + 1] if index + 1 < len(BLOCKS) else None
    if following is not None and following.marker == "output":
        return following.text
    return None


# --- the tests ---------------------------------------------------------------------------------


def test_readme_has_commands_and_the_parser_reads_markers():
    assert len(COMMANDS) >= 10, "the README lost its command blocks, or this test no longer reads them"
    sample = "x\n<!-- doctest: skip (starts a server) -->\n\n```bash\nmake demo \\\n  X=1\n# note\nls\n```\n"
    (block,) = read_blocks(sample)
    assert (block.marker, block.reason, block.line) == ("skip", "starts a server", 4)
    assert [(c.line, c.text) for c in block_commands(block)] == [(5, "make demo X=1"), (8, "ls")]
    (unmarked,) = read_blocks("<!-- doctest: skip (x) -->\ntext between\n```bash\nls\n```\n")
    assert unmarked.marker is None  # a marker only counts right before its block


def test_static_checks_catch_what_does_not_exist():
    """The checks can fail: a made-up target, option, subcommand, path and variable are caught."""
    block = Block("bash", 1, "", None, "")
    assert static_problems(Command(1, "make no-such-target", block))
    assert static_problems(Command(1, ".venv/bin/airloop season 2026-01-01 --no-such-flag", block))
    assert static_problems(Command(1, ".venv/bin/airloop no-such-command", block))
    assert static_problems(Command(1, "bash scripts/no-such-script.sh", block))
    assert static_problems(Command(1, "export AIRLOOP_NO_SUCH_SETTING=1", block))
    assert static_problems(Command(1, "airflow backfill create --no-such-option 1", block))
    assert not static_problems(Command(1, "airflow backfill create --dag-id x --from-date 2026-01-01", block))


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_readme_command(command: Command, request):
    problems = static_problems(command)
    assert not problems, f"README line {command.line}: {command.text}\n" + "\n".join(problems)
    if command.block.marker == "skip":
        pytest.skip(f"marked in the README: {command.block.reason or 'no reason given'}")
    program = Path(command.tokens[0]).name if command.tokens else ""
    if program in STATIC_ONLY:
        pytest.skip(f"{STATIC_ONLY[program]}: checked, not run; mark its block <!-- doctest: skip (why) -->")
    if program == "export":
        return  # the variable is read by the code (checked above); nothing to run
    env = request.getfixturevalue("installation")
    done = run(command.text, env)
    assert done.returncode == 0, f"README line {command.line}: {command.text}\nexit {done.returncode}\n{done.stderr[-3000:]}"
    expected = expected_output(command)
    if expected is not None and len(block_commands(command.block)) == 1:
        assert done.stdout.strip() == expected.strip(), f"README line {command.line}: the output shown is not what it prints"


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: f"L{b.line}")
def test_readme_python_block(block: Block, installation):
    if block.marker == "skip":
        pytest.skip(f"marked in the README: {block.reason}")
    done = subprocess.run([sys.executable, "-c", block.text], cwd=ROOT, env=installation, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"README line {block.line}: the Python example fails\n{done.stderr[-3000:]}"


def _inline_spans() -> list[str]:
    text = README.read_text()
    without_blocks = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", without_blocks)


def test_readme_inline_airloop_commands_parse():
    failures = []
    for span in _inline_spans():
        if not span.startswith(("airloop ", ".venv/bin/airloop ")) or "|" in span or "..." in span:
            continue
        args = shlex.split(span.replace("[", " ").replace("]", " "))[1:]
        args = [("2026-03-02" if a.isupper() and a.isalpha() else a) for a in args]  # placeholders: FROM TO, D
        if all(re.fullmatch(r"[a-z][a-z-]*", a) for a in args):  # a command named, not called: it exists
            args = [*args, "--help"]
        problem = check_airloop(args)
        if problem:
            failures.append(f"`{span}`: {problem}")
    assert not failures, "\n".join(failures)


def test_readme_inline_python_calls_give_the_required_arguments():
    """``airloop.features.build_training_set(start, end)`` must be callable as written: every
    required parameter given (positionally or by keyword)."""
    import importlib
    import inspect

    failures, checked = [], 0
    for span in _inline_spans():
        call = re.fullmatch(r"(airloop(?:\.\w+)+)\((.*)\)", span.strip())
        if not call:
            continue
        module_name, _, name = call.group(1).rpartition(".")
        try:
            function = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            failures.append(f"`{span}`: {exc}")
            continue
        arguments = [a.strip() for a in call.group(2).split(",") if a.strip()]
        positional = [a for a in arguments if "=" not in a]
        keywords = {a.split("=")[0].strip(): None for a in arguments if "=" in a}
        try:
            inspect.signature(function).bind(*positional, **keywords)
        except TypeError as exc:
            failures.append(f"`{span}`: {exc}")
        checked += 1
    assert not failures, "\n".join(failures)
    assert checked >= 1, "no inline call found: the check reads nothing"


def test_readme_paths_exist_and_variables_are_read():
    text = README.read_text()
    assert missing_paths(text) == []
    assert unread_variables(text) == []


def test_readme_feature_lookback_matches_the_use_case():
    """The README quotes the raw history the features read; it is the use case's number."""
    from airloop.core.usecase import load_use_case
    from airloop.loop import raw_lookback_days

    lookback = raw_lookback_days(load_use_case("airloop.usecases.flights:USE_CASE"))
    quoted = set(re.findall(r"read (?:the )?(\d+) days of raw history|the raw days F-(\d+) \.\. F", README.read_text()))
    numbers = {int(n) for pair in quoted for n in pair if n}
    assert numbers == {lookback}, f"README quotes {sorted(numbers)} days of raw lookback; the features read {lookback}"


def test_readme_report(capsys):
    """How many README commands this file runs, checks only, and skips (with the reasons)."""
    marked = [c for c in COMMANDS if c.block.marker == "skip"]
    static = [c for c in COMMANDS if c.block.marker != "skip" and c.tokens and Path(c.tokens[0]).name in STATIC_ONLY]
    ran = [c for c in COMMANDS if c not in marked and c not in static]
    with capsys.disabled():
        print(f"\nREADME: {len(COMMANDS)} commands in {len({c.block for c in COMMANDS})} blocks: {len(ran)} run, "
              f"{len(marked)} skipped as marked, {len(static)} unmarked and checked only; "
              f"{len(PYTHON_BLOCKS)} Python blocks")  # fmt: skip
        for c in marked:
            print(f"  skipped L{c.line} {c.text[:60]!r}: {c.block.reason}")
        for c in static:
            print(f"  unmarked L{c.line} {c.text[:60]!r}: {STATIC_ONLY[Path(c.tokens[0]).name]}")
    assert len(ran) + len(marked) + len(static) == len(COMMANDS)
