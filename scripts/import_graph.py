"""The import graph of the ``airloop`` library, and the layering rule it must keep.

    python scripts/import_graph.py            # check: exit 1 naming every violation
    python scripts/import_graph.py --mermaid  # the package graph as a Mermaid diagram

The rule (docs/ARCHITECTURE.md): packages are ranked in the order of the lifecycle; a module may
import its own package and packages of a lower rank, never a higher one; no module imports itself
back through a chain of others (no cycle), counting imports inside functions and under
``TYPE_CHECKING`` too; inside a package, modules import their siblings by module path, never
through the package's ``__init__`` (that is what made features <-> registered_layout a circle).
Standard library only: it reads the source with ``ast`` and imports nothing it checks.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = "airloop"

# Lower rank first: a package may import only packages above it in this list (and itself).
LAYERS = (
    "core",
    "usecases",
    "ingest",
    "features",
    "registry",
    "training",
    "scoring",
    "monitoring",
    "lineage",
    "loop",
    "backtest",
    "deploy",
    "cli",
)
# The top-level modules of the library itself (``airloop/__init__``, ``__main__``) may import anything.
TOP = "<top>"


def module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else TOP


def read_graph(package_root: Path) -> dict[str, set[str]]:
    """``module -> modules it imports`` for every module of the library (library edges only)."""
    files = {module_name(p, package_root): p for p in sorted(package_root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base != LIBRARY and not base.startswith(LIBRARY + "."):
                    continue
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in files else base)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name == LIBRARY or a.name.startswith(LIBRARY + "."))
        edges.discard(module)
        graph[module] = {e for e in edges if e in files}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every broken rule, one line each (empty: the layering holds)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    found = []
    for module, targets in sorted(graph.items()):
        package = package_of(module)
        if package != TOP and package not in rank:
            found.append(f"{module}: package {package!r} has no place in LAYERS")
            continue
        for target in sorted(targets):
            other = package_of(target)
            if package == TOP or other == TOP and target == LIBRARY:
                continue
            if other == TOP:
                found.append(f"{module} imports {target}: a top-level module of the library")
            elif other == package and target == f"{LIBRARY}.{package}" and not module.endswith(".__main__"):
                found.append(f"{module} imports its own package's __init__ ({target}); import the sibling module")
            elif other != package and rank.get(other, -1) > rank[package]:
                found.append(f"{module} imports {target}: {package} may not import the later stage {other}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(1000, 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            a, b = package_of(module), package_of(target)
            if a != b and TOP not in (a, b):
                edges[a].add(b)
    return edges


def mermaid(graph: dict[str, set[str]]) -> str:
    """The package graph, each package pointing at what it imports (transitive edges left out)."""
    edges = package_edges(graph)

    def reachable(start: str, skip: str) -> set[str]:
        seen, todo = set(), [n for n in edges.get(start, ()) if n != skip]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(edges.get(n, ()))
        return seen

    lines = ["flowchart BT"]
    for package in LAYERS:
        for target in sorted(edges.get(package, ()), key=LAYERS.index):
            if target not in reachable(package, skip=target):  # drop edges implied by a longer path
                lines.append(f"    {package} --> {target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT / "include" / LIBRARY, help="the library's package folder")
    parser.add_argument("--mermaid", action="store_true", help="print the package graph as a Mermaid diagram")
    parser.add_argument("--json", action="store_true", help="print the module graph as JSON")
    args = parser.parse_args(argv)
    graph = read_graph(args.root)
    if args.mermaid:
        print(mermaid(graph))
        return 0
    if args.json:
        print(json.dumps({k: sorted(v) for k, v in sorted(graph.items())}, indent=2))
        return 0
    found = violations(graph)
    for line in found:
        print(line)
    arrows = sum(len(v) for v in graph.values())
    print(f"{len(graph)} modules, {arrows} import arrows, {len(found)} violation(s)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
