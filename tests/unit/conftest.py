"""Fixtures of the store, job and token tests: each runs on every database of ``BACKENDS``
(``backend_on_each_db``: the in-process app on each of them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from app import create_app
from settings import Settings
from simulator import Platform
from store import Store
from tests.conftest import Backend, Sleeps
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


@pytest.fixture()
def backend_on_each_db(
    settings: Settings, platform: Platform, sleeps: Sleeps, db_url: str
) -> Iterator[Backend]:
    app = create_app(replace(settings, database_url=db_url), sleep=sleeps)
    try:
        yield Backend(app.test_client(), platform)
    finally:
        app.extensions["access_desk"].store.close()
