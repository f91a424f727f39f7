"""Fixtures of the tests of every room (registered by tests/conftest.py): the store, job and
token tests run on every database of ``BACKENDS`` (``backend_on_each_db``: the in-process app on
each of them); ``worker_backend`` is the in-process app with its background job worker running;
``key`` and ``other_key`` sign the FIT tests' tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from access_desk.app import create_app
from access_desk.settings import Settings
from access_desk.store import Store
from simulator import Platform
from tests.conftest import Backend, Sleeps
from tests.support.stores import BACKENDS, KEY, Clock, fresh_database


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """An RSA key (one per test module) that signs tokens as Forge would."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    """Another RSA key (one per test module): a signer the app does not trust."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


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
def second(db_url: str, clock: Clock, store: Store) -> Iterator[Store]:
    """Another instance's (or worker process's) store on the same database as ``store``."""
    other = Store(db_url, KEY, clock=clock)
    try:
        yield other
    finally:
        other.close()


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
        app.extensions["access_desk"].close()  # before the database goes


@pytest.fixture()
def worker_backend(settings: Settings, platform: Platform, sleeps: Sleeps) -> Iterator[Backend]:
    """The in-process app with its background worker polling every 50 ms; the worker stops after
    the test."""
    app = create_app(
        replace(settings, background_worker=True, worker_poll_seconds=0.05), sleep=sleeps
    )
    try:
        yield Backend(app.test_client(), platform)
    finally:
        app.extensions["access_desk"].close()
