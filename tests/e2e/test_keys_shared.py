"""Forge's key set shared through the store, under gunicorn, on SQLite and PostgreSQL: a worker
that replaces another (gunicorn's max_requests) and a server restarted while Forge's CDN hangs both
verify FITs signed with a key seen before, without asking the CDN."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from access_desk.settings import Settings
from bench.common import LiveServer, backend_env, stop_server
from simulator import Platform
from tests.conftest import start_gunicorn
from tests.support.jwks import HangingJWKS
from tests.support.stores import BACKENDS, fresh_database

pytestmark = pytest.mark.e2e


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture()
def cdn(platform: Platform) -> Iterator[HangingJWKS]:
    """Forge's CDN serving the simulated Forge's keys: it answers the first fetch, then hangs."""
    kid, key = platform.keys.current
    server = HangingJWKS({kid: key}, hold_seconds=30)
    with server.running():
        yield server


def whoami(server: LiveServer, platform: Platform) -> requests.Response:
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    return requests.post(f"{server.url}/resolvers/whoami", json={}, headers=headers, timeout=30)


def env_for(settings: Settings, database: str, cdn: HangingJWKS) -> dict[str, str]:
    return backend_env(
        replace(settings, database_url=database, jwks_url=cdn.url), BACKGROUND_WORKER="false"
    )


def test_a_second_worker_verifies_a_known_key_while_the_cdn_hangs(
    platform: Platform, settings: Settings, database: str, cdn: HangingJWKS, tmp_path: Path
) -> None:
    log = tmp_path / "gunicorn.log"
    # One worker that is replaced after two requests: the health check and the first call.
    server = start_gunicorn(
        env_for(settings, database, cdn),
        log,
        workers=1,
        extra=("--max-requests", "2", "--max-requests-jitter", "0"),
    )
    try:
        assert whoami(server, platform).status_code == 200  # the first worker fetches the keys
        assert cdn.requests == 1
        answer = whoami(server, platform)  # the second worker; the CDN now hangs
    finally:
        stop_server(server)
    assert "Autorestarting worker" in log.read_text()
    assert answer.status_code == 200, answer.text
    assert cdn.requests == 1  # the second worker never asked the CDN


def test_a_restart_during_a_cdn_outage_verifies_fits(
    platform: Platform, settings: Settings, database: str, cdn: HangingJWKS, tmp_path: Path
) -> None:
    env = env_for(settings, database, cdn)
    server = start_gunicorn(env, tmp_path / "first.log", workers=1)
    try:
        assert whoami(server, platform).status_code == 200
    finally:
        stop_server(server)
    assert cdn.requests == 1
    server = start_gunicorn(env, tmp_path / "second.log", workers=2)  # the CDN hangs from now on
    try:
        answers = [whoami(server, platform) for _ in range(4)]
    finally:
        stop_server(server)
    assert [a.status_code for a in answers] == [200] * 4, answers[0].text
    assert cdn.requests == 1
