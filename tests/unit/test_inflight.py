"""Calls in flight are bounded per installation and per user: over the bound, 429 ``busy`` at once."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import requests
from requests.adapters import HTTPAdapter
from werkzeug.serving import make_server

from app import create_app
from handlers.errors import Busy
from handlers.inflight import InFlight


def test_slots_per_installation_and_per_user():
    inflight = InFlight(per_installation=3, per_user=2)
    with inflight.slot("a", "u1"), inflight.slot("a", "u1"):
        with pytest.raises(Busy):
            with inflight.slot("a", "u1"):
                pass
        with inflight.slot("a", "u2"):
            with pytest.raises(Busy):
                with inflight.slot("a", "u3"):
                    pass
            with pytest.raises(Busy):
                with inflight.slot("a", None):
                    pass
            with inflight.slot("b", "u1"), inflight.slot("b", None):
                assert inflight.in_flight("b") == 2
        assert inflight.in_flight("a") == 2
    with pytest.raises(RuntimeError), inflight.slot("a", "u1"):
        raise RuntimeError("a failing call gives its slot back")
    assert inflight.in_flight("a") == 0 and inflight.in_flight("b") == 0
    with inflight.slot("a", "u1"), inflight.slot("a", "u1"):
        pass
    with pytest.raises(ValueError):
        InFlight(per_installation=0)


class HeldLookups(HTTPAdapter):
    """A transport whose users-bulk requests wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def send(self, request, *args, **kwargs):
        if "/users-bulk" in (request.url or ""):
            self.waiting.release()
            assert self.release.wait(30), "the test never released the lookups"
        return super().send(request, *args, **kwargs)


@pytest.fixture()
def bounded(settings, platform):
    """The backend on a loopback server (a thread per request) with bounds 2 per installation and 1
    per user, its users-bulk requests held until released."""
    adapter = HeldLookups()
    session = requests.Session()
    session.mount("http://", adapter)
    app = create_app(
        replace(settings, max_calls_per_installation=2, max_calls_per_user=1), session=session
    )
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", adapter
    finally:
        adapter.release.set()
        httpd.shutdown()
        httpd.server_close()
        session.close()


def test_slow_calls_of_one_tenant_leave_room_for_the_others(bounded, platform):
    url, adapter = bounded
    a, b = platform.installation, platform.add_installation()
    u1, u2, u3 = a.site.user_ids[:3]

    def call(inst, account, key, payload):
        headers = platform.invocation_headers(inst, account)
        return requests.post(f"{url}/resolvers/{key}", json=payload, headers=headers, timeout=30)

    answers: dict[str, requests.Response] = {}

    def slow(name, account):
        answers[name] = call(a, account, "lookupUsers", {"accountIds": a.site.user_ids[5:8]})

    first = threading.Thread(target=slow, args=("u1", u1))
    first.start()
    assert adapter.waiting.acquire(timeout=30)  # u1's lookup is in flight upstream
    again = call(a, u1, "lookupUsers", {"accountIds": a.site.user_ids[:2]})
    assert again.status_code == 429 and again.json()["error"] == "busy"
    assert again.headers["Retry-After"] == "1"
    second = threading.Thread(target=slow, args=("u2", u2))
    second.start()
    assert adapter.waiting.acquire(timeout=30)  # the installation's two slots are taken
    full = call(a, u3, "whoami", {})
    assert full.status_code == 429 and full.json()["error"] == "busy"
    other = call(b, b.site.admin_id, "whoami", {})  # another tenant is served meanwhile
    assert other.status_code == 200 and other.json()["isAdmin"] is True
    assert answers == {}  # ... while the slow lookups are still held
    adapter.release.set()
    first.join(30)
    second.join(30)
    assert answers["u1"].status_code == answers["u2"].status_code == 200
    assert len(answers["u1"].json()["users"]) == 3
    assert call(a, u1, "whoami", {}).status_code == 200  # the slots were given back
