"""The simulator's imports flow one way: its state (site, tokens, quota, faults, journal, ...) <-
the HTTP modules (blueprints) <- the WSGI app <- the platform that serves it, ``__main__`` and the
package's face (``simulator/__init__.py``). The graph is read from the source (``ast``): imports at
module level, under ``if TYPE_CHECKING:`` and inside functions all count."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "simulator"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Each module of ``package`` (under ``root``) by its dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (under ``root``) -> the modules of ``package`` it imports.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``
    (its ``__init__``); relative imports are resolved."""
    files = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    keep = len(parts) - node.level + (1 if is_package else 0)
                    base = ".".join([*parts[:keep], *([base] if base else [])])
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_simulator_has_no_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert "simulator.site" in graph and "simulator.wsgi" in graph  # the graph was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in simulator/: " + " -> ".join(cycle or [])


def test_the_state_imports_no_http_module() -> None:
    """The modules that hold state import neither Flask nor any module that does."""
    graph = import_graph(ROOT, PACKAGE)
    files = module_files(ROOT, PACKAGE)
    http = {m for m, path in files.items() if "from flask import" in path.read_text()}
    state = {
        "simulator.state",
        "simulator.site",
        "simulator.tokens",
        "simulator.quota",
        "simulator.faults",
        "simulator.journal",
        "simulator.people",
        "simulator.forge",
        "simulator.manifest",
        "simulator.mints",
        "simulator.account_reports",
    }
    assert state <= set(graph)
    assert "simulator.wsgi" in http and "simulator.confluence" in http

    def reached(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    leaks = {m: sorted(reached(m) & http) for m in sorted(state) if reached(m) & http}
    assert not leaks, f"state modules reaching HTTP modules: {leaks}"
    assert not state & http


def test_the_checks_see_a_cycle_and_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.b\n"
    )
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("from .sub import d\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "d.py").write_text("from .. import a\nimport os\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.sub.d"},
        "pkg.sub": set(),
        "pkg.sub.d": {"pkg.a"},
    }
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d", "pkg.a"]
    (pkg / "sub" / "d.py").write_text("import os\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None
