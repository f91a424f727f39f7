"""The lookup cache's writes in batches (``store.batched_lookups``), on SQLite and, when
``TEST_POSTGRES_URL`` is set, on PostgreSQL; "another process" is another ``Store`` on the same
database.

- What a process keeps back it serves at once; another process reads it once written.
- A flush writes every caller's answers, each within its room; a later answer for an id stands.
- A refused caller's answers, kept back or written, are gone and are not written afterwards.
- A write the database refuses is logged and dropped: the cache is only a cache.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from access_desk.store import Store, lookups
from access_desk.store.batched_lookups import BatchedLookups
from access_desk.store.tables import lookup_cache
from tests.support.stores import Clock

TTL = 300.0


def user(account_id: str) -> dict[str, Any]:
    return {"accountId": account_id, "displayName": account_id.title()}


def test_kept_answers_are_served_at_once_and_seen_elsewhere_once_written(
    store: Store, second: Store, clock: Clock
) -> None:
    kept = BatchedLookups(store, background=False)
    kept.cache_users("inst", "alice", [user("u-1")], ["ghost"], TTL)
    asked = ["u-1", "ghost", "u-2"]
    assert kept.cached_users("inst", "alice", asked, TTL) == {"u-1": user("u-1"), "ghost": None}
    assert kept.cached_users("inst", "bob", asked, TTL) == {}  # never another caller's
    assert second.cached_users("inst", "alice", asked, TTL) == {}  # not written yet
    assert kept.has_kept() and kept.flush() and not kept.has_kept()
    assert second.cached_users("inst", "alice", asked, TTL) == {"u-1": user("u-1"), "ghost": None}
    clock.now += TTL + 1
    kept.cache_users("inst", "alice", [user("u-3")], [], TTL)
    assert kept.cached_users("inst", "alice", ["u-1", "u-3"], TTL) == {"u-3": user("u-3")}


def test_a_flush_writes_every_caller_within_its_room(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookups, "CALLER_USERS", 3)
    kept = BatchedLookups(store, background=False)
    kept.cache_users("inst", "alice", [user("u-1"), user("u-2")], [], TTL)
    kept.cache_users("inst", "alice", [user("u-3"), user("u-4")], ["u-1"], TTL)  # u-1: gone now
    kept.cache_users("inst", "bob", [user("u-1")], [], TTL)
    kept.cache_users("other", "alice", [user("u-9")], [], TTL)
    assert kept.flush()
    alice = store.cached_users("inst", "alice", ["u-1", "u-2", "u-3", "u-4"], TTL)
    assert alice == {"u-1": None, "u-2": user("u-2"), "u-3": user("u-3"), "u-4": user("u-4")}
    assert store.cached_users("inst", "bob", ["u-1"], TTL) == {"u-1": user("u-1")}
    assert store.cached_users("other", "alice", ["u-9"], TTL) == {"u-9": user("u-9")}
    kept.cache_users("inst", "alice", [user("u-5")], [], TTL)  # her room (3) is full
    assert kept.flush()
    assert store.cached_users("inst", "alice", ["u-5"], TTL) == {}


def test_a_refused_callers_answers_are_dropped_kept_or_written(store: Store) -> None:
    kept = BatchedLookups(store, background=False)
    kept.cache_users("inst", "alice", [user("u-1")], [], TTL)
    assert kept.flush()
    kept.cache_users("inst", "alice", [user("u-2")], [], TTL)
    kept.cache_users("inst", "bob", [user("u-2")], [], TTL)
    assert kept.drop_cached_lookups("inst", "alice") == 1  # the written row
    assert kept.cached_users("inst", "alice", ["u-1", "u-2"], TTL) == {}
    assert kept.flush()
    assert store.cached_users("inst", "alice", ["u-1", "u-2"], TTL) == {}  # nothing came back
    assert store.cached_users("inst", "bob", ["u-2"], TTL) == {"u-2": user("u-2")}


def test_a_refused_write_is_logged_and_dropped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    kept = BatchedLookups(store, background=False)
    kept.cache_users("inst", "alice", [user("u-1")], [], TTL)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {lookup_cache.name}"))
    assert not kept.flush()
    assert not kept.has_kept()  # dropped, not retried for ever
    assert "lookup cache write failed" in caplog.text


def test_answers_kept_for_an_installation_uninstalled_before_they_are_written_are_dropped(
    store: Store,
) -> None:
    """An uninstall's erasure may run before a process writes what it kept back: nothing of an
    uninstalled installation is written, so nothing comes back after the erasure."""
    for installation in ("inst", "other"):
        store.upsert_installation(
            installation,
            cloud_id=f"c-{installation}",
            api_base_url="https://x.example/ex/confluence/x",
        )
    kept = BatchedLookups(store, background=False)
    kept.cache_users("inst", "alice", [user("u-1")], ["ghost"], TTL)
    kept.cache_users("other", "alice", [user("u-1")], [], TTL)
    assert store.uninstall("inst") == 0
    store.erase_installation("inst")
    assert kept.flush()
    assert store.personal_data_accounts("inst") == []
    assert store.cached_users("inst", "alice", ["u-1", "ghost"], TTL) == {}
    assert store.cached_users("other", "alice", ["u-1"], TTL) == {"u-1": user("u-1")}
    assert store.reinstall("inst")  # installed again: its answers are written again
    kept.cache_users("inst", "alice", [user("u-1")], [], TTL)
    assert kept.flush()
    assert store.cached_users("inst", "alice", ["u-1"], TTL) == {"u-1": user("u-1")}


def fresh_rows(store: Store, caller: str) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    lookup_cache.c.caller == caller, lookup_cache.c.cached_at > store.now() - TTL
                )
            ).scalar_one()
        )


def users(start: int, count: int) -> list[dict[str, Any]]:
    return [user(f"u-{n}") for n in range(start, start + count)]


def test_a_callers_bound_holds_between_full_counts_whoever_writes(
    store: Store, second: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store counts a caller's rows in full once a minute and in between adds what was
    written since, by any process, answers kept back for a while included: the caller never
    has more than ``CALLER_USERS`` fresh rows."""
    monkeypatch.setattr(lookups, "CALLER_USERS", 10)
    kept = BatchedLookups(second, background=False)
    kept.cache_users("inst", "alice", users(0, 4), [], TTL)  # answered now, written later
    clock.advance(1)
    store.cache_users("inst", "alice", users(4, 4), [], TTL)  # counted in full: 0; 4 written
    assert kept.flush()  # rows from before that count land after it: 8
    clock.advance(1)
    store.cache_users("inst", "alice", users(8, 5), [], TTL)  # its count, and 8 since: 2 fit
    assert fresh_rows(store, "alice") == 10
    clock.advance(1)
    store.cache_users("inst", "alice", users(10, 5), [], TTL)  # full: nothing written
    second.cache_users("inst", "alice", users(15, 5), [], TTL)
    assert fresh_rows(store, "alice") == 10

    assert store.drop_cached_lookups("inst", "alice") == 10  # room only comes back...
    clock.advance(60)  # ... by the next full count, at most a minute later
    store.cache_users("inst", "alice", users(20, 12), [], TTL)
    assert fresh_rows(store, "alice") == 10
    store.cache_users("inst", "bob", users(0, 3), [], TTL)  # another caller: a room of its own
    assert fresh_rows(store, "bob") == 3
