"""Which of ./test's heavy helpers a selection of tests needs: a pytest plugin for ``./test``'s
fast path (``./test tests/forge/`` or ``./test tests/quota/test_ledger.py``: tests are by room).

``./test`` with arguments first collects them once (``--collect-only``, with this plugin and a
stand-in ``TEST_POSTGRES_URL`` so that tests parametrized over PostgreSQL are collected) and starts
only what the collected tests need, from their markers and fixtures:

- ``postgres``: a test marked ``postgres`` (``tests.support.stores.BACKENDS``) or using ``shared_db``;
- ``chromium``: a test using the ``browser`` fixture (tests/e2e/conftest.py);
- ``node``: a browser test (axe-core) or a test marked ``node`` (the manifest validator, the
  @forge/bridge build).

The names go one per line to the file named by ``ACCESS_DESK_NEEDS_FILE``. Without arguments
``./test`` starts everything, as CI does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def needs_of(item: pytest.Item) -> set[str]:
    fixtures = set(getattr(item, "fixturenames", ()))
    found: set[str] = set()
    if item.get_closest_marker("postgres") or "shared_db" in fixtures:
        found.add("postgres")
    if "browser" in fixtures:
        found |= {"chromium", "node"}
    if item.get_closest_marker("node"):
        found.add("node")
    return found


def pytest_collection_finish(session: pytest.Session) -> None:
    target = os.environ.get("ACCESS_DESK_NEEDS_FILE")
    if not target:
        return
    needs: set[str] = set()
    for item in session.items:
        needs |= needs_of(item)
    Path(target).write_text("".join(f"{n}\n" for n in sorted(needs)))
