"""The admin check record as the edge reads it for every call (``AdminCache.known``): a known
answer is kept in the process for a second, never past the record's ``ADMIN_CACHE_SECONDS``.
(The check itself, its claim and its failures: tests/resolvers/test_resolvers.py.)"""

from __future__ import annotations

from access_desk.store import Store
from resolvers.admins import AdminCache
from tests.support.stores import Clock


def recorded(store: Store, is_admin: bool) -> None:
    """The record as a check in some process left it."""
    assert store.claim_admin_check("inst", "alice", store.now() + 10)
    store.record_admin_check("inst", "alice", is_admin, hold_until=0.0)


def test_a_known_answer_is_kept_for_a_second_not_past_its_record(
    store: Store, clock: Clock
) -> None:
    admins = AdminCache(store, ttl=60.0, memo_seconds=3600.0)
    assert admins.known("inst", "alice") is None  # nothing recorded: not kept either
    recorded(store, True)
    assert admins.known("inst", "alice") is True
    clock.now += 1
    recorded(store, False)  # another process re-checked
    assert admins.known("inst", "alice") is True  # this process: the record it read
    assert AdminCache(store, ttl=60.0, memo_seconds=0.0).known("inst", "alice") is False
    clock.now += 60  # the record this process keeps is due again: never answered past it
    assert admins.known("inst", "alice") is None
