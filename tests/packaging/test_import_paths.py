"""Imports resolve from the repository root as they are: no ``sys.path`` edits and no E402
exemptions (an import below code, papering over a path edit) outside the tests' configuration
(``conftest.py``). Benchmarks run as ``python -m bench.<name>``, ``./dev`` as ``python -m
scripts.dev``."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

THIS_FILE = Path(__file__).resolve()  # its examples below are not edits
ROOT = THIS_FILE.parents[2]
SKIPPED_DIRS = {".git", ".venv", ".cache", "node_modules", "var", "__pycache__"}
ALLOWED = {"conftest.py"}  # test configuration
PATH_EDIT = re.compile(r"sys\.path\.(insert|append)\b")
E402 = re.compile(r"noqa:[^\n]*\bE402\b")


def python_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts[:-1])
        if not parts & SKIPPED_DIRS and path.name not in ALLOWED and path != THIS_FILE:
            found.append(path)
    return found


def path_hacks(root: Path) -> list[str]:
    """``file:line: text`` of every ``sys.path`` edit and E402 exemption under ``root``."""
    hits = []
    for path in python_files(root):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PATH_EDIT.search(line) or E402.search(line):
                hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits


def ruff_e402_exemptions(root: Path) -> list[str]:
    """Where ``pyproject.toml``'s ruff configuration ignores E402 (globally or per file)."""
    lint = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["ruff"].get("lint", {})
    found = [f"ignore: {c}" for c in lint.get("ignore", []) if "E402".startswith(c)]
    for pattern, codes in lint.get("per-file-ignores", {}).items():
        found += [f"{pattern}: {c}" for c in codes if "E402".startswith(c)]
    return found


def imports_of_tests(root: Path, folder: str) -> list[str]:
    """``file: module`` for each import of ``tests`` (or a module in it) under ``root / folder``."""
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] == "tests"]
    return found


def test_no_sys_path_edits_or_e402_exemptions() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in python_files(ROOT)}
    assert {"bench/floor.py", "scripts/dev.py", "simulator/platform.py"} <= files
    assert path_hacks(ROOT) == []
    assert ruff_e402_exemptions(ROOT) == []


def test_the_check_finds_each_kind(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ruff.lint]\nignore = ["E402"]\n[tool.ruff.lint.per-file-ignores]\n"b/*" = ["E4"]\n'
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.py").write_text(
        "import sys\nsys.path.insert(0, '.')\nimport y  # noqa: E402\nsys.path.append('z')\n"
    )
    (tmp_path / "conftest.py").write_text("import sys\nsys.path.insert(0, '.')\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "site.py").write_text("import sys\nsys.path.append('.')\n")
    assert path_hacks(tmp_path) == [
        "b/x.py:2: sys.path.insert(0, '.')",
        "b/x.py:3: import y  # noqa: E402",
        "b/x.py:4: sys.path.append('z')",
    ]
    assert ruff_e402_exemptions(tmp_path) == ["ignore: E402", "b/*: E4"]


def test_the_benchmarks_import_the_product_and_the_simulator_never_the_tests() -> None:
    assert imports_of_tests(ROOT, "bench") == []
    assert imports_of_tests(ROOT, "scripts") == []
    assert imports_of_tests(ROOT, "tests") != []  # the check sees such imports


def test_a_benchmark_runs_as_a_module_from_the_repository_root() -> None:
    """As README.md says to run them: ``.venv/bin/python -m bench.<name>`` (a short run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-m", "bench.verify", "--requests", "100", "--distinct", "50"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "JWKS fetches            1" in run.stdout
