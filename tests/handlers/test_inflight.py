"""Calls in flight are bounded per installation (a slot kept for admins' short calls), per user and,
for slow calls, per process, all derived from the process's threads: over a bound, 429 ``busy`` at
once (issue 16, item 1)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from werkzeug.serving import BaseWSGIServer

from access_desk.app import create_app
from access_desk.call_limits import Limits, limits_problems
from access_desk.settings import Settings
from bench.common import backend_env
from handlers.errors import Busy
from handlers.inflight import InFlight
from simulator import Platform


def test_limits_are_derived_from_the_threads() -> None:
    assert Limits.derive(8) == Limits(threads=8, per_installation=4, per_user=2, reserve=1, slow=6)
    assert Limits.derive(4) == Limits(threads=4, per_installation=2, per_user=2, reserve=1, slow=2)
    assert Limits.derive(1) == Limits(threads=1, per_installation=1, per_user=1, reserve=0, slow=1)
    assert Limits.derive(16).slow == 12 and Limits.derive(16).per_installation == 8
    assert Limits.derive(8, 6, 5).per_user == 5
    assert limits_problems(8, 7, None) == [] and len(limits_problems(8, 8, None)) == 1
    with pytest.raises(ValueError):
        Limits(threads=4, per_installation=1, per_user=1, reserve=1, slow=1)


def test_slots_per_installation_user_reserve_and_slow_calls() -> None:
    inflight = InFlight(Limits.derive(8))  # 4 per installation (1 kept), 2 per user, 6 slow
    with inflight.slot("a", "u1", slow=True), inflight.slot("a", "u1", slow=True):
        with pytest.raises(Busy, match="You have"):
            inflight.slot("a", "u1").__enter__()
        with inflight.slot("a", "u2", slow=True):  # the ordinary slots are full now
            with pytest.raises(Busy, match="this site"):
                inflight.slot("a", "u3", slow=True).__enter__()
            with pytest.raises(Busy, match="this site"):  # a known non-admin's short call
                inflight.slot("a", "u3", admin=False).__enter__()
            with inflight.slot("a", "admin", admin=True):  # the kept slot
                with pytest.raises(Busy, match="this site"):
                    inflight.slot("a", "admin2", admin=True).__enter__()
                assert inflight.in_flight("a") == 4
            with inflight.slot("b", "u1", slow=True), inflight.slot("b", "u2", slow=True):
                with inflight.slot("c", "u1", slow=True):
                    with pytest.raises(Busy, match="slow calls"):  # 6 slow calls in the process
                        inflight.slot("d", "u1", slow=True).__enter__()
                    with inflight.slot("d", "u1"):  # ... while short calls are served
                        pass
    with pytest.raises(RuntimeError), inflight.slot("a", "u1", slow=True):
        raise RuntimeError("a failing call gives its slot back")
    assert inflight.in_flight("a") == 0
    for _ in range(6):  # every slow slot was given back
        inflight.slot("x", None, slow=True).__enter__()


class HeldLookups(HTTPAdapter):
    """A transport whose users-bulk requests wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if "/users-bulk" in (request.url or ""):
            self.waiting.release()
            assert self.release.wait(60), "the test never released the lookups"
        return super().send(request, *args, **kwargs)


class PooledServer(BaseWSGIServer):
    """A WSGI server on loopback with a fixed pool of threads, as a gunicorn gthread worker has: a
    request waits for a free thread."""

    def __init__(self, app: Any, threads: int) -> None:
        super().__init__("127.0.0.1", 0, app)
        self.pool = ThreadPoolExecutor(threads)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._handle, request, client_address)

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


@pytest.fixture()
def pooled(settings: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[str, HeldLookups]]:
    """The backend with the settings a process of ``request.param`` threads starts with (from its
    environment, as under gunicorn), served by that many threads, users-bulk requests held."""
    threads = int(request.param)
    adapter = HeldLookups()
    session = requests.Session()
    session.mount("http://", adapter)
    env = backend_env(settings, GUNICORN_THREADS=str(threads), BACKGROUND_WORKER="0")
    app = create_app(Settings.from_env(env), session=session)
    server = PooledServer(app, threads)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", adapter
    finally:
        adapter.release.set()
        server.shutdown()
        server.pool.shutdown(wait=True)
        server.server_close()
        session.close()
        app.extensions["access_desk"].close()


class Calls:
    """Resolver calls sent in threads; each answer is kept under its name as it arrives."""

    def __init__(self, url: str, platform: Platform) -> None:
        self.url, self.platform = url, platform
        self.answers: dict[str, requests.Response] = {}
        self.order: list[str] = []
        self.arrived = threading.Condition()
        self.threads: list[threading.Thread] = []

    def send(self, name: str, inst: Any, account: str, key: str, payload: Any) -> None:
        def run() -> None:
            headers = self.platform.invocation_headers(inst, account)
            answer = requests.post(
                f"{self.url}/resolvers/{key}", json=payload, headers=headers, timeout=90
            )
            with self.arrived:
                self.answers[name] = answer
                self.order.append(name)
                self.arrived.notify_all()

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()

    def wait_for(self, *names: str, timeout: float = 15.0) -> bool:
        """Whether every named call was answered within ``timeout`` seconds."""
        with self.arrived:
            return self.arrived.wait_for(lambda: all(n in self.answers for n in names), timeout)

    def settle(self, adapter: HeldLookups, names: list[str]) -> list[str]:
        """Wait until each named lookup is answered at once or held upstream; the held ones."""
        held = 0
        for _ in range(200):
            with self.arrived:
                answered = [n for n in names if n in self.answers]
            if held + len(answered) >= len(names):
                return [n for n in names if n not in answered]
            if adapter.waiting.acquire(timeout=0.1):
                held += 1
        raise AssertionError("the lookups neither answered nor reached Confluence")

    def join(self) -> None:
        for thread in self.threads:
            thread.join(90)


@pytest.mark.parametrize("pooled", [8], indirect=True)
def test_two_ordinary_users_no_longer_lock_their_admin_out(
    pooled: tuple[str, HeldLookups], platform: Platform
) -> None:
    """Issue 16, item 1: two ordinary users of one installation (3 + 1 slow lookups) made its admin
    get 429 busy. The installation's last slot is kept for short calls, a user holds at most 2."""
    url, adapter = pooled
    inst = platform.installation
    u1, u2, u3 = inst.site.user_ids[1:4]
    ids = {"accountIds": inst.site.user_ids[5:8]}
    calls = Calls(url, platform)
    for name, user in (("u1a", u1), ("u1b", u1), ("u1c", u1), ("u2", u2)):
        calls.send(name, inst, user, "lookupUsers", ids)
    held = calls.settle(adapter, ["u1a", "u1b", "u1c", "u2"])
    try:
        calls.send("admin", inst, inst.site.admin_id, "whoami", {})
        assert calls.wait_for("admin"), "the admin's whoami waited for the slow lookups"
        assert calls.answers["admin"].status_code == 200
        assert calls.answers["admin"].json()["isAdmin"] is True
        assert len(held) == 3  # u1's third lookup was refused: 2 per user
        refused = [calls.answers[n] for n in ("u1a", "u1b", "u1c") if n not in held]
        assert [r.json()["error"] for r in refused] == ["busy"]
        calls.send("u3", inst, u3, "lookupUsers", ids)  # another slow call: the site is full
        assert calls.wait_for("u3") and calls.answers["u3"].status_code == 429
        assert all(n not in calls.answers for n in held)  # the lookups are still held
    finally:
        adapter.release.set()
        calls.join()
    assert all(calls.answers[n].status_code == 200 for n in held)


@pytest.mark.parametrize("pooled", [4], indirect=True)
def test_two_installations_slow_calls_leave_threads_for_a_third(
    pooled: tuple[str, HeldLookups], platform: Platform
) -> None:
    """Issue 16, item 1: two installations' slow calls delayed a third installation's whoami (a
    process of ./dev's 4 threads). Now slow calls hold at most 2 of them and 1 per installation."""
    url, adapter = pooled
    a, b, c = platform.installation, platform.add_installation(), platform.add_installation()
    calls = Calls(url, platform)
    names = []
    for inst in (a, b):
        for n, user in enumerate(inst.site.user_ids[1:3]):
            names.append(f"{inst.cloud_id}-{n}")
            ids = {"accountIds": inst.site.user_ids[4:6]}
            calls.send(names[-1], inst, user, "lookupUsers", ids)
    held = calls.settle(adapter, names)
    try:
        calls.send("c", c, c.site.admin_id, "whoami", {})
        assert calls.wait_for("c"), "the third installation's whoami waited for a thread"
        assert calls.answers["c"].status_code == 200
        assert len(held) == 2  # one per installation; the others answered 429 busy at once
        calls.send("c-slow", c, c.site.user_ids[1], "lookupUsers", {"accountIds": ["x"]})
        assert calls.wait_for("c-slow") and calls.answers["c-slow"].status_code == 429
        assert "slow calls" in calls.answers["c-slow"].json()["message"]
        assert all(n not in calls.answers for n in held)
    finally:
        adapter.release.set()
        calls.join()
    assert sorted(calls.answers[n].status_code for n in names) == [200, 200, 429, 429]
