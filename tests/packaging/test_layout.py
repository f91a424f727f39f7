"""The layout: one import root (``access_desk``) beside the design's top-level folders, imports that
flow one way (the composition root ``access_desk.app`` -> ``handlers`` -> ``resolvers`` -> the rest
of ``access_desk``), no import cycle, and no product module that imports the simulator, the tests,
the benchmarks or the scripts. Read from the source (``ast``): every import counts, at module level
or inside a function."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import ROOT

PRODUCT = ("access_desk", "handlers", "resolvers")
FOLDERS = {"access_desk", "handlers", "resolvers", "simulator", "tests", "bench", "scripts"}
NEVER = {"simulator", "tests", "bench", "scripts"}


def modules(root: Path, tops: Iterable[str] = PRODUCT) -> dict[str, Path]:
    """Dotted name -> file of every module under ``tops`` (migration scripts are not modules)."""
    found: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            if "versions" in path.parts or "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the product it imports."""
    found = modules(root)
    return {name: (imported(path) & set(found)) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_root_holds_one_import_package_beside_the_designs_folders() -> None:
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["gunicorn.conf.py"]  # a config file
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert "access_desk" in packages and packages <= FOLDERS
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py-modules" not in setuptools
    assert {name.split(".")[0] for name in setuptools["packages"]} == set(PRODUCT)


def test_imports_flow_one_way_and_never_reach_the_simulator_or_the_tests() -> None:
    for name, path in modules(ROOT).items():
        tops = {module.split(".")[0] for module in imported(path)}
        assert not tops & NEVER, f"{name} imports {tops & NEVER}"
        if name.startswith("access_desk") and name != "access_desk.app":
            assert not tops & {"flask", "handlers", "resolvers"}, f"{name} imports {tops}"
        if name.startswith("resolvers"):
            assert "handlers" not in tops and "flask" not in tops, name


def test_the_product_has_no_import_cycle() -> None:
    edges = graph(ROOT)
    assert {"access_desk.app", "handlers.resolvers", "access_desk.confluence.client"} <= set(edges)
    assert cycles(edges) == []


def test_the_cycle_check_finds_one(tmp_path: Path) -> None:
    for name, body in {
        "access_desk/__init__.py": "",
        "access_desk/a.py": "from access_desk.b import thing\n",
        "access_desk/b.py": "def thing() -> None:\n    from access_desk import a\n",
        "access_desk/c.py": "import access_desk.a\n",
        "handlers/__init__.py": "",
        "resolvers/__init__.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    assert cycles(graph(tmp_path)) == [["access_desk.a", "access_desk.b"]]
