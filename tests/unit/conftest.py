"""Fixtures of the store, job and token tests: each runs on every database of ``BACKENDS``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from store import Store
from tests.stores import BACKENDS, KEY, Clock, fresh_database


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture()
def store(db_url: str, clock: Clock) -> Iterator[Store]:
    s = Store(db_url, KEY, clock=clock)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
