"""The library's layout: stages import only ``core`` and earlier stages, no import cycle, short files.

The checker is ``scripts/import_graph.py`` (what docs/ARCHITECTURE.md tells anyone to run); these
tests run it on the real tree and on planted violations, so a broken checker fails too.
"""

from __future__ import annotations

import runpy
import textwrap
from pathlib import Path

import pytest

from testkit import ROOT

LIBRARY = ROOT / "include" / "airloop"
graph_tool = runpy.run_path(str(ROOT / "scripts" / "import_graph.py"), run_name="import_graph")
MAX_LINES = 500


def test_library_keeps_its_layering_and_has_no_import_cycle():
    graph = graph_tool["read_graph"](LIBRARY)
    assert len(graph) > 30, "the checker found too few modules: is it reading the library?"
    assert graph_tool["violations"](graph) == []


def test_every_package_of_the_library_has_a_rank():
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(graph_tool["LAYERS"])


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "airloop"
    for name, body in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # a stage reaching forward, inside a function
            {"core/__init__.py": "", "features/__init__.py": "", "scoring/__init__.py": "",
             "features/compute.py": "def f():\n    from airloop.scoring import score\n", "scoring/score.py": ""},
            "features may not import the later stage scoring",
        ),
        (  # core importing a stage
            {"core/__init__.py": "", "core/dates.py": "from airloop.ingest import source\n",
             "ingest/__init__.py": "", "ingest/source.py": ""},
            "core may not import the later stage ingest",
        ),
        (  # a circle between two sibling modules, one side only under TYPE_CHECKING
            {"deploy/__init__.py": "", "deploy/a.py": "from airloop.deploy import b\n",
             "deploy/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from airloop.deploy.a import X\n"},
            "import cycle: airloop.deploy.a -> airloop.deploy.b",
        ),
        (  # a module importing its own package's __init__
            {"features/__init__.py": "from airloop.features.compute import f\n",
             "features/compute.py": "def f():\n    pass\n", "features/skew.py": "from airloop.features import f\n"},
            "airloop.features.skew imports its own package's __init__",
        ),
        (  # a package the layering does not know
            {"helpers/__init__.py": "", "helpers/misc.py": ""},
            "package 'helpers' has no place in LAYERS",
        ),
    ],
)
def test_checker_names_planted_violations(tmp_path, files, expected):
    found = graph_tool["violations"](graph_tool["read_graph"](_tree(tmp_path, files)))
    assert any(expected in line for line in found), found


def test_checker_accepts_a_clean_tree(tmp_path):
    root = _tree(tmp_path, {
        "core/__init__.py": "", "core/dates.py": "",
        "features/__init__.py": "from airloop.features.compute import f\n",
        "features/compute.py": "from airloop.core import dates\n\ndef f():\n    from airloop.features import layout\n",
        "features/layout.py": "from airloop.core.dates import x\n",
    })
    assert graph_tool["violations"](graph_tool["read_graph"](root)) == []


def test_checker_command_exits_non_zero_on_a_violation(tmp_path, capsys):
    root = _tree(tmp_path, {"core/__init__.py": "", "core/a.py": "from airloop.cli import main\n", "cli/__init__.py": ""})
    assert graph_tool["main"](["--root", str(root)]) == 1
    assert "core may not import the later stage cli" in capsys.readouterr().out
    assert graph_tool["main"]([]) == 0  # and the real tree passes


def test_modules_fit_in_a_readers_head():
    """No module over MAX_LINES lines unless its docstring's first lines say why it is one piece."""
    long = []
    for path in sorted(LIBRARY.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and "one piece" not in "\n".join(lines[:12]):
            long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
    assert long == []


STAGES = ("ingest", "features", "registry", "training", "scoring", "monitoring")
DATE_PARSERS = {"parse_ds", "day_window", "ds_range", "resolve_ds"}


def test_no_stage_parses_the_days_it_is_given():
    """Stages take a ``LogicalDay`` made at the boundary (operator, CLI, season); none re-parses one."""
    import ast

    calls = []
    for stage in STAGES:
        for path in sorted((LIBRARY / stage).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in DATE_PARSERS:
                        calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}()")
    assert calls == []


def test_the_architecture_doc_draws_the_real_package_graph():
    """Every package arrow of the code (transitive ones left out) is drawn in docs/ARCHITECTURE.md."""
    drawn = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    arrows = [line.strip() for line in graph_tool["mermaid"](graph_tool["read_graph"](LIBRARY)).splitlines()[1:]]
    assert arrows, "no package arrows found"
    assert [a for a in arrows if a not in drawn] == []
