"""``./test`` with arguments sets up only what the selected tests need (tests/needs.py decides from
their markers and fixtures): a unit test file runs without PostgreSQL, Chromium or the npm tools
(and so without the panel's type check, tsc, which comes with them); a test on PostgreSQL gets the
private cluster. ``./test`` with no argument sets up everything, as CI (``.ci/run``) runs it (and
runs the tests on every core); a selection runs in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
HELPERS = ("TEST_POSTGRES_URL", "ACCESS_DESK_CHROMIUM", "ACCESS_DESK_NODE_MODULES")
PROBE = """
import os

import pytest

MARKS = {marks}


@pytest.mark.parametrize("mark", MARKS)
def test_prints_what_was_set_up(mark):
    print("SET UP", sorted(k for k in {helpers} if os.environ.get(k)))
"""


def needs(*args: str) -> list[str]:
    """What ./test would set up for ``args``: its collection probe, as the script runs it."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"needs-{os.getpid()}"
    env = {
        **os.environ,
        "ACCESS_DESK_NEEDS_FILE": str(out),
        "TEST_POSTGRES_URL": "postgresql+psycopg://probe@127.0.0.1:1/probe",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tests.needs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    try:
        return out.read_text().split()
    finally:
        out.unlink()


def test_each_selection_needs_what_its_tests_use() -> None:
    assert needs("tests/test_entries.py", "-k", "table") == []
    assert needs("tests/forge/test_manifest.py") == ["node"]  # @forge/manifest's validator
    assert needs("tests/store/test_store.py", "tests/e2e/test_panel_diagnose.py") == [
        "chromium",  # a browser
        "node",  # axe-core
        "postgres",  # the store's tests run on PostgreSQL too
    ]


def test_a_unit_test_file_runs_without_the_heavy_helpers(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE.format(marks=["plain"], helpers=HELPERS))
    env = {k: v for k, v in os.environ.items() if k not in HELPERS}
    run = subprocess.run(
        ["./test", str(probe), "-q", "-s", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "==> these tests need: no PostgreSQL, Chromium or npm tools" in run.stderr
    assert "SET UP []" in run.stdout  # no cluster started, no browser or npm tools looked for
    assert "==> pytest\n" in run.stderr  # a selection runs in one process (-s shows its output)
    assert "==> mypy" in run.stderr and "==> ruff check" in run.stderr  # the checks still run
    assert "==> tsc skipped" in run.stderr  # it comes with the npm tools, not set up here
