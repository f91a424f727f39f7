"""Shared rate-limit state between instances: two in-process apps (``create_app`` twice on one
database, as two servers would be) against the simulated platform, on SQLite and, when
``TEST_POSTGRES_URL`` is set, on PostgreSQL (a fresh database per test).

- A 429 with ``Retry-After`` seen by instance A holds instance B's calls for the same site: B waits
  the rest of the hold before its first request (its injected sleep records the wait, and no
  request of B's reaches Confluence before it), or fails at once when the hold outlasts the call.
- Another installation (another site) is not held.
- ``X-RateLimit-NearLimit: true`` seen by A makes B run its chunks one at a time; a normal answer
  lifts it again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from access_desk.app import create_app
from tests.conftest import Backend, WrittenBackend
from tests.support.stores import fresh_database

BACKENDS: list[Any] = ["sqlite"]
if os.environ.get("TEST_POSTGRES_URL"):
    BACKENDS.append(pytest.param("postgres", marks=pytest.mark.postgres))

LATENCY = 0.2  # seconds every simulated request takes in the near-limit tests


@dataclass
class Instance:
    """One in-process app whose ``sleep`` records (seconds, users-bulk requests seen so far)."""

    backend: Backend
    app: Any
    sleeps: list[tuple[float, int]] = field(default_factory=list)

    def call(self, key: str, payload: Any, installation: Any = None) -> Any:
        response = self.backend.call(key, payload, installation=installation)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def waits(self) -> list[float]:
        return [seconds for seconds, _ in self.sleeps]


def lookups(platform: Any) -> list[Any]:
    return [r for r in platform.requests if r.endpoint == "users-bulk"]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture()
def instances(settings, platform, db_url) -> Iterator[tuple[Instance, Instance]]:
    made: list[Instance] = []
    for _ in range(2):
        recorded: list[tuple[float, int]] = []

        def sleep(seconds: float, recorded: list[tuple[float, int]] = recorded) -> None:
            recorded.append((seconds, len(lookups(platform))))

        # no lookup cache here: these tests are about what reaches Confluence
        app = create_app(
            replace(settings, database_url=db_url, lookup_cache_seconds=0.0), sleep=sleep
        )
        made.append(Instance(WrittenBackend(app.test_client(), platform), app, recorded))
    try:
        yield made[0], made[1]
    finally:
        for instance in made:
            instance.app.extensions["access_desk"].close()


def test_a_retry_after_seen_by_one_instance_holds_the_other(instances, platform):
    a, b = instances
    user = platform.installation.site.user_ids[0]
    platform.faults.add("users-bulk", "429", times=1, retry_after=5)
    assert [u["accountId"] for u in a.call("lookupUsers", {"accountIds": [user]})["users"]] == [
        user
    ]
    assert 5 in [round(s) for s in a.waits()]
    before = len(lookups(platform))

    found = b.call("lookupUsers", {"accountIds": [user]})
    assert [u["accountId"] for u in found["users"]] == [user] and found["failed"] == []
    assert len(b.sleeps) == 1, b.sleeps
    waited, requests_then = b.sleeps[0]
    assert 3.0 < waited <= 5.0, "B did not wait the rest of A's hold"
    assert requests_then == before, "B called Confluence before waiting"
    assert len(lookups(platform)) == before + 1 and lookups(platform)[-1].status == 200


def test_a_hold_seen_after_the_read_cache_expires(instances, platform):
    """B had read the (empty) shared state just before; once its short cache expires it obeys."""
    a, b = instances
    user = platform.installation.site.user_ids[0]
    b.call("lookupUsers", {"accountIds": [user]})
    platform.faults.add("users-bulk", "429", times=1, retry_after=30)
    a.call("lookupUsers", {"accountIds": [user]})
    before = len(lookups(platform))
    time.sleep(0.6)  # SharedLedger caches its reads for 0.5 s
    found = b.call("lookupUsers", {"accountIds": [user]})
    # 30 s is longer than the call's deadline (20 s): failed at once, nothing sent.
    assert found["users"] == []
    assert found["failed"][0]["accountId"] == user
    assert found["failed"][0]["error"] == "rate_limited"
    assert 25 < found["failed"][0]["retryAfter"] <= 30
    assert len(lookups(platform)) == before
    assert b.sleeps == []


def test_a_long_hold_fails_the_other_instance_at_once_without_a_request(instances, platform):
    a, b = instances
    user = platform.installation.site.user_ids[0]
    platform.faults.add("users-bulk", "429", times=1, retry_after=1847)
    first = a.call("lookupUsers", {"accountIds": [user]})
    assert first["failed"] == [{"accountId": user, "error": "rate_limited", "retryAfter": 1847.0}]
    before = len(lookups(platform))

    ids = platform.installation.site.user_ids[:3] + ["nobody"]
    held = b.call("lookupUsers", {"accountIds": ids})
    assert [f["accountId"] for f in held["failed"]] == ids
    assert all(f["error"] == "rate_limited" for f in held["failed"])
    assert all(1800 < f["retryAfter"] <= 1847 for f in held["failed"])
    assert len(lookups(platform)) == before and b.sleeps == []


def test_another_installation_is_not_held_by_a_site_pool(instances, platform):
    a, b = instances
    other = platform.add_installation()
    user = platform.installation.site.user_ids[0]
    tenant = {"RateLimit-Reason": "confluence-quota-tenant-based"}
    platform.faults.add("users-bulk", "429", times=1, retry_after=1847, headers=tenant)
    a.call("lookupUsers", {"accountIds": [user]})
    before = len(lookups(platform))

    theirs = other.site.user_ids[:2]
    for instance in (a, b):
        found = instance.call("lookupUsers", {"accountIds": theirs}, installation=other)
        assert [u["accountId"] for u in found["users"]] == theirs and found["failed"] == []
    assert b.sleeps == []
    sent = lookups(platform)[before:]
    assert len(sent) == 2 and all(r.installation_id == other.id for r in sent)
    # ...while the first installation is still held, on both instances.
    for instance in (a, b):
        assert instance.call("lookupUsers", {"accountIds": [user]})["users"] == []
    assert len(lookups(platform)) == before + 2


def max_in_flight(records: list[Any], latency: float) -> int:
    """Most requests in flight at once, from their end times (each took at least ``latency``)."""
    ends = sorted(r.at.timestamp() for r in records)
    slack = latency / 3  # handler overhead beyond the latency
    return max(sum(1 for other in ends if end - latency + slack < other <= end) for end in ends)


def test_near_limit_makes_the_other_instance_run_one_chunk_at_a_time(instances, platform):
    a, b = instances
    site = platform.installation.site
    ids = site.user_ids[:5] + [f"ghost-{i}" for i in range(995)]  # four chunks of 250
    platform.latency = LATENCY

    # Control: with no near-limit signal, B runs its chunks concurrently.
    before = len(lookups(platform))
    b.call("lookupUsers", {"accountIds": ids})
    assert max_in_flight(lookups(platform)[before:], LATENCY) > 1

    platform.near_limit = True
    a.call("lookupUsers", {"accountIds": site.user_ids[:1]})  # A sees the header; state is shared
    platform.near_limit = False  # B's answers no longer carry it, but B must start near the limit
    time.sleep(0.6)  # let B's cached read of the shared state expire
    before = len(lookups(platform))
    found = b.call("lookupUsers", {"accountIds": ids})
    sent = lookups(platform)[before:]
    assert len(sent) == 4 and len(found["users"]) == 5 and len(found["notFound"]) == 995
    assert max_in_flight(sent[:2], LATENCY) == 1, "the first chunks overlapped near the limit"

    # The normal answers B got lift the flag: the next call is concurrent again.
    before = len(lookups(platform))
    b.call("lookupUsers", {"accountIds": ids})
    assert max_in_flight(lookups(platform)[before:], LATENCY) > 1


def test_near_limit_holds_while_the_header_keeps_coming(instances, platform):
    a, b = instances
    ids = [f"ghost-{i}" for i in range(1000)]
    platform.latency = LATENCY
    platform.near_limit = True
    a.call("lookupUsers", {"accountIds": ["ghost"]})
    before = len(lookups(platform))
    found = b.call("lookupUsers", {"accountIds": ids})
    assert found["notFound"] == ids
    sent = lookups(platform)[before:]
    assert len(sent) == 4 and max_in_flight(sent, LATENCY) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"RateLimit-Reason": "confluence-quota-global-based"},
        {"Beta-RateLimit-Policy": '"global-app-quota";q=65000;w=3600'},
        {},  # nothing said: the app's pool, Confluence's default
    ],
)
def test_an_app_pool_hold_learnt_by_one_instance_holds_every_installation_on_the_other(
    instances, platform, headers
):
    a, b = instances
    other = platform.add_installation()
    user = platform.installation.site.user_ids[0]
    platform.faults.add("users-bulk", "429", times=1, retry_after=1847, headers=headers)
    a.call("lookupUsers", {"accountIds": [user]})
    before = len(lookups(platform))

    theirs = other.site.user_ids[:2]
    held = b.call("lookupUsers", {"accountIds": theirs}, installation=other)
    assert held["users"] == [] and [f["accountId"] for f in held["failed"]] == theirs
    assert all(
        f["error"] == "rate_limited" and 1800 < f["retryAfter"] <= 1847 for f in held["failed"]
    )
    assert len(lookups(platform)) == before and b.sleeps == []
