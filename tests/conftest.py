"""Shared fixtures: the simulated platform on loopback, settings pointing at it, and the backend
(in-process for unit tests, a real gunicorn for e2e tests)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from access_desk.app import create_app
from access_desk.settings import Settings
from bench.common import LiveServer, backend_env, free_port, stop_server
from simulator import Platform

ROOT = Path(__file__).resolve().parents[1]
# The fixtures of the tests of every room (the store on every database, signing keys, ...).
pytest_plugins = ["tests.support.fixtures"]
APP_ID = "ari:cloud:ecosystem::app/6a3e6c5e-0d4b-4a8e-9d54-3b2c1f0e7a11"


@pytest.fixture(autouse=True)
def no_job_worker_outlives_its_test() -> Iterator[None]:
    """A background job worker left running by a test would keep polling a database that is gone
    (and log errors into later tests): every test that starts one stops it."""
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("worker-")]
    assert not alive, f"job worker threads still running: {alive}"


@pytest.fixture()
def platform() -> Iterator[Platform]:
    p = Platform(app_id=APP_ID, seed=True, invite_delay=0.05)
    server = p.serve("127.0.0.1", 0)
    try:
        yield p
    finally:
        server.stop()


@pytest.fixture()
def settings(platform: Platform, tmp_path: Path) -> Settings:
    return Settings(
        app_id=APP_ID,
        secret_key=Fernet.generate_key().decode(),
        jwks_url=platform.jwks_url,
        api_base_url_allowlist=(platform.allowlist_prefix,),
        graphql_url=platform.graphql_url,
        personal_data_url=platform.personal_data_url,
        database_url=f"sqlite:///{tmp_path / 'access-desk.sqlite3'}",
        background_worker=False,
        upstream_timeout_seconds=5.0,
        allow_http=True,  # the simulator on loopback speaks http
    )


class Sleeps(list[float]):
    """A ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


@dataclass
class Backend:
    """The app in-process; ``call`` sends a resolver call the way Forge would."""

    client: Any
    platform: Platform

    def call(
        self, key: str, payload: Any = None, *, account: str | None = None, installation: Any = None
    ) -> Any:
        inst = installation or self.platform.installation
        account = account or inst.site.admin_id
        headers = self.platform.invocation_headers(inst, account)
        return self.client.post(f"/resolvers/{key}", json=payload or {}, headers=headers)


class WrittenBackend(Backend):
    """A ``Backend`` whose app's batched writes (quota, lookup cache) have reached the store when
    each call returns, and whose next call reads the shared quota rows again: as with calls 0.1 s
    apart. For tests of what another process sees."""

    def call(
        self, key: str, payload: Any = None, *, account: str | None = None, installation: Any = None
    ) -> Any:
        response = super().call(key, payload, account=account, installation=installation)
        svc = self.client.application.extensions["access_desk"]
        assert svc.ledger.flush() and svc.lookups.flush()
        svc.ledger.forget()  # and its next call reads the shared rows again, as 0.1 s later
        return response


@pytest.fixture()
def backend(settings: Settings, platform: Platform, sleeps: Sleeps) -> Iterator[Backend]:
    app = create_app(settings, sleep=sleeps)
    yield Backend(app.test_client(), platform)
    app.extensions["access_desk"].close()  # what it keeps back is written before the files go


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, so no server outlives its test run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_gunicorn(
    env: dict[str, str],
    log: Path,
    *,
    workers: int = 2,
    port: int | None = None,
    extra: tuple[str, ...] = (),
) -> LiveServer:
    port = port or free_port()
    out = log.open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--timeout",
            "60",
            *extra,
            "access_desk.app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out.close()
            raise RuntimeError(f"gunicorn exited early:\n{log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                out.close()
                return LiveServer(url, proc, log)
        except requests.RequestException:
            time.sleep(0.1)
    os.killpg(proc.pid, 9)
    proc.wait()
    out.close()
    raise RuntimeError(f"gunicorn did not answer in time:\n{log.read_text()}")


@pytest.fixture()
def live_backend(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_gunicorn(backend_env(settings), tmp_path / "gunicorn.log")
    try:
        yield server
    finally:
        stop_server(server)
