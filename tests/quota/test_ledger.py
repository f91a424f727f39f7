"""Confluence's points quota (docs/contract.md §6), rule by rule, on SQLite and, when
``TEST_POSTGRES_URL`` is set, on PostgreSQL. "Two instances" are two ``Store`` objects (or two
in-process apps) on one database, as two servers would be.

- one ledger fed by the quota headers as Confluence sends them (RFC 9651 entries; the
  ``X-RateLimit-*`` burst headers are never the quota), app or site pool;
- windows end at the clock's multiples of ``w`` unless ``t`` says otherwise; holds last until
  ``Retry-After``, else ``t``, else the window's end, at most an hour; a burst 429 pauses one site;
- estimates while Confluence says no ``r``, learned costs, and a call sent whenever its pool is not
  known spent (the reserve still keeps background work off the last 20%);
- fair shares between installations and users, borrowing never into the last quarter;
- the admin check's shared record, offline token mints counted app-wide;
- fairness of job claims, the lookup cache, and what the ``quota`` resolver shows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from access_desk import metrics
from access_desk.app import create_app
from access_desk.confluence.client import Client
from access_desk.forge.offline_tokens import OfflineTokenError, OfflineTokens
from access_desk.jobs.runner import JobRunner
from access_desk.quota.costs import invite_job_points, lookup_points, points
from access_desk.quota.ledger import EVEN_SHARES, NOBODY, Ledger, MemoryLedger, Payer, SharedLedger
from access_desk.quota.mints import Mints
from access_desk.quota.pools import APP, Pool, spend_rows
from access_desk.quota.shares import Shares
from access_desk.store import Store
from access_desk.store.tables import lookup_cache
from simulator.platform import Platform
from simulator.quota import Meter, Quota
from tests.conftest import Backend, WrittenBackend
from tests.support.stores import Clock

SITE = "https://api.example.test/ex/confluence/site-1"
OTHER = "https://api.example.test/ex/confluence/site-2"
HOUR = 3600.0


def quota(
    *, r: int | None = None, t: int | None = 600, q: int = 1000, w: int = 3600, name: str = "global"
) -> dict[str, str]:
    """The quota headers of one answer (``r`` only when given, as Confluence does past 80%)."""
    policy = f'"{name}-app-quota"'
    state = policy + (f";r={r}" if r is not None else "") + (f";t={t}" if t is not None else "")
    return {
        "RateLimit-Policy": f"{policy};q={q};w={w}",
        "RateLimit": state,
        "X-RateLimit-Limit": "350",
        "X-RateLimit-Remaining": "349",
    }


def ledgers(
    one: Store, two: Store, clock: Clock, shares: Shares = EVEN_SHARES
) -> tuple[Ledger, Ledger]:
    return (
        Ledger(one, clock=clock, cache_seconds=0.0, shares=shares),
        Ledger(two, clock=clock, cache_seconds=0.0, shares=shares),
    )


def sent(
    ledger: Ledger,
    site: str,
    operation: str,
    objects: int,
    headers: dict[str, str],
    *,
    background: bool = False,
    payer: Payer = NOBODY,
    status: int = 200,
    answered: int | None = None,
) -> float:
    """Admit a request and settle it with ``headers``; the wait (0.0: it went)."""
    admission = ledger.admit(site, operation, objects, background=background, payer=payer)
    if admission.wait == 0:
        ledger.settle(site, admission, status, headers, objects if answered is None else answered)
    return admission.wait


# -- one ledger, windows and holds ----------------------------------------------------------------


def test_the_quota_is_read_by_policy_and_the_burst_headers_are_not_the_pool(
    store: Store, second: Store, clock: Clock
) -> None:
    clock.now = 100 * HOUR + 1200  # 20 minutes into a clock hour
    a, b = ledgers(store, second, clock)
    assert b.view(SITE).scope is None  # nulls before any answer
    a.observe(SITE, 200, {"X-RateLimit-Limit": "350", "X-RateLimit-Remaining": "349"})
    assert b.view(SITE).limit is None  # the burst limit says nothing of the quota
    a.observe(SITE, 200, quota(t=None))
    seen = b.view(OTHER)  # another site draws on the same (app) pool
    assert (seen.scope, seen.limit, seen.remaining, seen.estimated) == (APP, 1000, 1000, True)
    assert seen.reset_at == 101 * HOUR  # no t: the window ends at the top of the clock hour
    a.observe(SITE, 200, quota(r=150, t=900))  # t says otherwise; r: Confluence's own word
    seen = b.view(OTHER)
    assert (seen.remaining, seen.estimated, seen.reset_at) == (150, False, clock() + 900)
    assert b.is_near_limit(OTHER)


def test_a_tenant_policy_gives_the_site_its_own_pool(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(OTHER, 200, quota(q=800))
    ledger.observe(SITE, 200, {**quota(q=500, w=60, name="tenant"), "Beta-RateLimit": "x"})
    view = ledger.view(SITE)
    assert (view.scope, view.limit, view.remaining) == ("site", 500, 500)
    assert (ledger.view(OTHER).scope, ledger.view(OTHER).limit) == (APP, 800)


def test_a_window_that_has_ended_is_full_again(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 200, quota(r=100, t=30))
    assert ledger.view(SITE).remaining == 100
    clock.advance(31)
    view = ledger.view(SITE)
    assert (view.remaining, view.estimated) == (1000, True)
    assert view.reset_at == (clock() // HOUR + 1) * HOUR  # the next window ends on the clock


@pytest.mark.parametrize(
    ("extra", "held_sites"),
    [
        ({"RateLimit-Reason": "confluence-quota-global-based"}, {SITE, OTHER}),
        ({"X-Beta-RateLimit-Reason": "conf-global-based"}, {SITE, OTHER}),
        ({"RateLimit": '"global-app-quota";r=0;t=120'}, {SITE, OTHER}),
        ({"RateLimit-Reason": "confluence-quota-tenant-based"}, {SITE}),
    ],
)
def test_a_quota_429_learnt_by_one_instance_holds_its_pool_on_the_other(
    store: Store, second: Store, clock: Clock, extra: dict[str, str], held_sites: set[str]
) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 429, {"Retry-After": "120", **extra})
    for site in (SITE, OTHER):
        assert b.wait_seconds(site) == (120.0 if site in held_sites else 0.0), site
    clock.advance(120)
    assert b.wait_seconds(SITE) == 0.0


def test_a_hold_lasts_until_retry_after_else_t_else_the_window_and_never_past_an_hour(
    store: Store, second: Store, clock: Clock
) -> None:
    clock.now = 100 * HOUR + 3000
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 429, {"RateLimit": '"global-app-quota";r=0;t=300'})  # no Retry-After: t
    assert b.wait_seconds(OTHER) == 300
    clock.advance(300)
    a.observe(SITE, 429, {"RateLimit-Reason": "confluence-quota-global-based"})  # no t either
    assert b.wait_seconds(OTHER) == pytest.approx(300)  # the window's end, on the clock
    a.observe(
        SITE, 429, {"RateLimit-Reason": "confluence-quota-global-based", "Retry-After": "86400"}
    )
    assert b.wait_seconds(SITE) == HOUR
    a.observe(SITE, 429, {"RateLimit-Reason": "confluence-quota-global-based", "Retry-After": "5"})
    assert b.wait_seconds(SITE) == HOUR  # holds only extend


def test_out_of_range_values_hold_nothing_and_never_raise(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 429, {"Retry-After": "1e999", "X-RateLimit-Reset": "1e999"})
    assert ledger.wait_seconds(SITE) <= 1.0 and ledger.wait_seconds(OTHER) == 0.0
    ledger.observe(
        SITE, 200, {"RateLimit": '"global-app-quota";r=-5;t=1e999', "RateLimit-Policy": "\x00"}
    )
    assert ledger.view(OTHER).limit is None and ledger.wait_seconds(OTHER) == 0.0


def test_a_burst_429_pauses_only_its_site(store: Store, second: Store, clock: Clock) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 200, quota())
    a.observe(
        SITE, 429, {"X-RateLimit-Limit": "350", "X-RateLimit-Remaining": "0", "Retry-After": "1"}
    )
    assert b.wait_seconds(SITE) == 1.0 and b.wait_seconds(OTHER) == 0.0
    assert b.view(OTHER).held_until is None and b.view(OTHER).remaining == 1000


def test_a_503_retry_after_holds_only_its_site(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 503, {"Retry-After": "30"})
    assert ledger.wait_seconds(SITE) == 30.0 and ledger.wait_seconds(OTHER) == 0.0


# -- estimates, learning, never stalling ----------------------------------------------------------


def test_what_is_left_is_estimated_from_what_this_app_was_charged(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 200, quota())
    sent(a, SITE, "check_access", 100, quota())  # estimated 201 points
    assert b.view(OTHER).remaining == 1000 - 201 and b.view(OTHER).estimated
    sent(b, OTHER, "users_bulk", 250, quota(), answered=10)  # it found 10 users: 21 points
    assert a.view(SITE).remaining == 1000 - 201 - 21
    for _ in range(4):
        sent(a, SITE, "check_access", 100, quota())  # no r yet: Confluence says over ~20% left
    assert a.view(SITE).remaining == 200  # the estimate never goes below what Confluence says
    sent(a, SITE, "check_access", 100, quota(r=180))
    assert (a.view(SITE).remaining, a.view(SITE).estimated) == (180, False)


def test_each_operations_cost_is_learnt_from_how_r_moves_and_shared(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    assert a.estimate("check_access", 100) == 201  # the starting estimate: an identity read
    r = 900
    for emails in (100, 40, 100, 7, 60):
        r -= 1 + emails  # Confluence charges 1 + 1 per email
        sent(a, SITE, "check_access", emails, quota(r=r))
    r -= 1
    sent(a, SITE, "invite", 100, quota(r=r))  # a write: the base only
    assert b.estimate("check_access", 100) == 101  # learnt by one instance, used by the other
    assert b.learned_operations() == {"check_access"}
    sent(a, SITE, "check_access", 100, quota())  # an answer without r, then another operation:
    sent(a, SITE, "invite", 1, quota(r=r - 500))  # a fall of r two operations share is skipped
    assert b.estimate("check_access", 100) == 101 and b.estimate("invite", 1) == 1


def test_silence_bounds_the_estimated_spend_and_the_shares_and_lowers_the_open_costs(
    store: Store, second: Store, clock: Clock
) -> None:
    """Without r Confluence says under ~80% is used: estimates beyond are high."""
    a, b = ledgers(store, second, clock)
    payer, other = Payer("inst-a", "u-1"), Payer("inst-b", "u-2")
    a.observe(SITE, 200, quota())
    for who in (payer, other):  # 501 points each by the starting estimate (2 a user)
        assert sent(a, SITE, "users_bulk", 250, quota(), payer=who) == 0.0
    # the next answer is silent: what was answered before its request went (the two lookups,
    # 500 users) fits 80% of the pool, so 2 + 500 * per <= 800
    sent(a, SITE, "user_current", 1, quota())  # 3 points: its price is the table's own
    view = b.view(OTHER, "inst-a")
    assert (view.remaining, view.estimated) == (200, True)
    assert view.spent == round(501 * 800 / 1002)  # the shares' spend is bounded alike
    assert b.costs()["users_bulk"][1] == pytest.approx(798 / 500)
    assert b.estimate("users_bulk", 250) == 400 and b.learned_operations() == {"users_bulk"}
    assert b.estimate("check_access", 100) == 201 and b.estimate("user_current", 1) == 3
    clock.advance(HOUR)  # a new window: the caps stay; r, once it moves, teaches the real cost
    r = 900
    a.observe(SITE, 200, quota(r=r))
    for users in (250, 40, 100):
        r -= 1 + 2 * users
        sent(b, SITE, "users_bulk", 250, quota(r=r), answered=users)
    assert a.estimate("users_bulk", 250) == 501 and a.learned_operations() == {"users_bulk"}


def test_a_silent_answer_bounds_only_what_was_answered_before_its_request_went(
    store: Store, clock: Clock
) -> None:
    """Five checks in flight together, each really 201 points: Confluence may answer them all
    before charging the others, silent, though together they pass 80%."""
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 200, quota())
    payer = Payer("inst-a", "u-1")
    flying = [ledger.admit(SITE, "check_access", 100, background=False) for _ in range(4)]
    flying.append(ledger.admit(SITE, "check_access", 100, background=False, payer=payer))
    for admission in flying:
        assert admission.wait == 0.0
        ledger.settle(SITE, admission, 200, quota(), 100)
    assert ledger.estimate("check_access", 100) == 201 and ledger.learned_operations() == set()
    assert ledger.view(SITE, "inst-a").spent == 201  # nothing shown over-estimated
    sent(ledger, SITE, "invite", 1, {})  # an answer without quota headers says nothing
    assert ledger.estimate("check_access", 100) == 201
    sent(ledger, SITE, "invite", 1, quota())  # sent after those answers: they were charged first
    assert ledger.estimate("check_access", 100) < 201
    spent = ledger.view(SITE, "inst-a").spent
    assert spent is not None and spent < 201


def test_an_answer_read_after_the_window_turned_says_nothing_of_the_new_window(
    store: Store, second: Store, clock: Clock
) -> None:
    """Confluence's t is whole seconds: half a second before the hour it says t=1."""
    clock.now = 100 * HOUR - 30
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 200, quota(r=150, t=30))
    assert b.view(OTHER).reset_at == 100 * HOUR
    clock.now = 100 * HOUR - 0.5
    admission = a.admit(SITE, "check_access", 10, background=False)
    a.observe(SITE, 200, quota(r=140, t=1))
    assert b.view(OTHER).reset_at == 100 * HOUR  # the clock's end, not half a second past it
    clock.now = 100 * HOUR + 0.2  # this answer left Confluence before the hour, read after it
    a.settle(SITE, admission, 200, quota(r=119, t=1), 10)
    view = b.view(OTHER)
    assert (view.remaining, view.estimated, view.reset_at) == (1000, True, 101 * HOUR)
    a.observe(SITE, 200, quota(t=3600))  # the new window's own answer
    assert (b.view(OTHER).remaining, b.view(OTHER).reset_at) == (1000, 101 * HOUR)


def test_a_call_the_pool_can_pay_for_is_sent_whatever_its_estimate(
    store: Store, clock: Clock
) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 200, quota(q=10, w=8, r=3, t=5))
    assert ledger.estimate("users_bulk", 250) == 501  # far more than the 3 points left
    assert sent(ledger, SITE, "users_bulk", 250, quota(q=10, w=8, r=2, t=5), answered=0) == 0.0
    ledger.observe(SITE, 200, quota(q=10, w=8, r=0, t=5))  # known spent: nothing goes
    assert ledger.admit(SITE, "invite", 1, background=False).wait == 5.0


def test_background_work_keeps_the_reserve_and_waits_for_the_window(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 200, quota(t=300))
    for ledger in (a, b, a):  # 201 points each, estimated: 397 left
        assert sent(ledger, OTHER, "check_access", 100, quota(t=300), background=True) == 0.0
    refused = b.admit(SITE, "check_access", 100, background=True)  # it would leave 196
    assert (refused.wait, refused.why) == (300, "reserve")  # the window's end
    assert a.admit(SITE, "check_access", 100, background=False).wait == 0.0  # the panel may
    for _ in range(3):  # the estimates were high (Confluence charged 1 + 1 per email)
        sent(a, SITE, "check_access", 100, quota(t=300))
    assert a.view(SITE).remaining == 200  # no r said: over ~20% is left, whatever we estimate
    assert sent(b, SITE, "check_access", 100, quota(r=190, t=290), background=True) == 0.0
    assert b.admit(SITE, "check_access", 100, background=True).wait == 290  # r said: 190 left
    assert a.admit(SITE, "check_access", 100, background=False).wait == 0.0  # the panel may
    a.observe(SITE, 200, {**quota(t=280), "X-RateLimit-NearLimit": "true"})
    assert a.admit(SITE, "invite", 1, background=True).why == "reserve"
    clock.advance(290)
    assert b.admit(SITE, "check_access", 100, background=True).wait == 0.0


# -- fair shares ------------------------------------------------------------------------------------


def test_an_installation_over_its_share_may_borrow_but_never_the_last_quarter(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    noisy, mine = Payer("inst-noisy", "u-1"), Payer("inst-quiet", "u-9")
    a.observe(SITE, 200, quota(t=900))
    spent = 0
    while True:  # one user of one installation, 101 points a request
        admission = a.admit(SITE, "check_access", 50, background=False, payer=noisy)
        if admission.wait:
            break
        a.settle(SITE, admission, 200, quota(t=900), 50)
        spent += 101
    assert admission.why == "share" and admission.wait == 900  # it waits for the next window
    assert spent == 707  # its user's share was 250; it borrowed down to the last quarter (250)
    view = b.view(OTHER, "inst-noisy")
    assert (view.spent, view.share) == (707, 500) and view.remaining == 293
    assert b.admit(OTHER, "check_access", 50, background=False, payer=mine).wait == 0.0
    other_user = Payer("inst-noisy", "u-2")  # the noisy installation's other users wait too
    assert b.admit(OTHER, "invite", 1, background=False, payer=other_user).why == "share"


# -- the storage ------------------------------------------------------------------------------------


def test_quota_rows_change_atomically_on_every_instance(store: Store, second: Store) -> None:
    def add(target: Store) -> None:
        for _ in range(25):
            target.change_pool(APP, lambda p: replace(p, spent=p.spent + 1))

    threads = [threading.Thread(target=add, args=(s,)) for s in (store, second, store, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = second.quota_pools([APP])[APP]
    assert (row.spent, row.version) == (100.0, 100)
    assert store.change_pool(APP, lambda p: None) == row  # no change: nothing written
    store.add_spends(spend_rows(APP, 1, "inst", "u", 5.0))
    second.add_spends(spend_rows(APP, 1, "inst", "v", 2.5))
    assert store.spend_of(APP, 1, "inst", "u") == (7.5, 5.0)
    assert store.spend_of(APP, 1, "other", "u") == (0.0, 0.0)
    second.drop_spend_before(APP, 2)
    assert store.spend_of(APP, 1, "inst", "u") == (0.0, 0.0)
    assert [p.key for p in store.all_quota_pools()] == []
    store.change_pool(APP, lambda p: replace(p, limit=10))
    assert [p.key for p in store.all_quota_pools()] == [APP]
    assert isinstance(store.quota_pools([APP])[APP], Pool)


# -- offline token mints -----------------------------------------------------------------------------


def test_offline_token_mints_are_counted_app_wide_on_every_instance(
    store: Store, second: Store, clock: Clock
) -> None:
    clock.now = 1000 * 60.0 + 15
    a, b = Mints(store, clock=clock), Mints(second, clock=clock)
    assert [mints.take(limit=4) for mints in (a, b, a, b)] == [0.0] * 4
    assert b.take(limit=4) == 45.0 and a.take(limit=4) == 45.0  # to the next minute
    clock.advance(45)
    assert a.take(limit=4) == 0.0
    b.hold(30)  # the gateway answered 429
    assert a.take(limit=4) == 30.0


# -- fairness ----------------------------------------------------------------------------------


def test_claims_go_to_the_installation_served_longest_ago(store: Store, clock: Clock) -> None:
    big = store.create_job(
        "inst-a", source="panel", dry_run=False, created_by="u", emails=["a@x.io"]
    )
    clock.advance(1)
    small = store.create_job(
        "inst-b", source="panel", dry_run=False, created_by="u", emails=["b@x.io"]
    )
    first = store.claim_job("w", 60)
    assert first is not None and first.id == big.id  # nobody served yet: oldest first
    assert store.waiting_elsewhere("inst-a") and not store.waiting_elsewhere("inst-b")
    store.release_job(big.id, "w")
    clock.advance(1)
    second_claim = store.claim_job("w", 60)
    assert second_claim is not None and second_claim.id == small.id  # inst-b's turn
    store.release_job(small.id, "w")
    clock.advance(1)
    third = store.claim_job("w", 60)
    assert third is not None and third.id == big.id


# -- the lookup cache (store) ------------------------------------------------------------------


def test_the_lookup_cache_is_per_caller_and_shared_by_instances(
    store: Store, second: Store, clock: Clock
) -> None:
    user = {"accountId": "u-1", "displayName": "One"}
    store.cache_users("inst", "alice", [user], ["ghost"], 300)
    assert second.cached_users("inst", "alice", ["u-1", "ghost", "u-2"], 300) == {
        "u-1": user,
        "ghost": None,
    }
    assert second.cached_users("inst", "bob", ["u-1"], 300) == {}  # never another's answer
    assert second.cached_users("other", "alice", ["u-1"], 300) == {}
    assert second.cached_users("inst", "alice", ["u-1"], 0) == {}  # off
    clock.advance(301)
    assert second.cached_users("inst", "alice", ["u-1"], 300) == {}


def test_the_lookup_cache_reads_the_same_whether_the_caller_has_few_or_many_fresh_rows(
    store: Store, clock: Clock
) -> None:
    store.cache_users("inst", "alice", [{"accountId": "old"}], [], 300)
    clock.advance(200)
    store.cache_users("inst", "alice", [{"accountId": f"u-{i}"} for i in range(3)], ["gone"], 300)
    store.cache_users("inst", "bob", [{"accountId": "u-9"}], [], 300)
    clock.advance(150)  # "old" is now 350 s old: expired, not counted among alice's fresh rows
    wanted = {"u-1": {"accountId": "u-1"}, "gone": None}
    assert store.cached_users("inst", "alice", ["u-1", "gone", "old", "u-9"], 300) == wanted
    assert store.cached_users("inst", "alice", ["u-1", "gone"], 300) == wanted  # fewer than hers
    assert store.cached_users("inst", "alice", ["u-1", "u-1", "gone"], 300) == wanted
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    many = [f"id-{i}" for i in range(1200)]
    assert store.cached_users("inst", "carol", many, 300) == {}
    assert len(statements) == 1  # none fresh (a cold cache): one indexed query, not 3 batches
    statements.clear()
    assert store.cached_users("inst", "alice", [*many, "u-2"], 300) == {"u-2": {"accountId": "u-2"}}
    assert len(statements) == 2  # her fresh ids, then only the overlap


def test_expired_lookup_rows_are_swept_at_most_once_a_minute(store: Store, clock: Clock) -> None:
    def rows() -> int:
        with store.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(lookup_cache))
            return int(count.scalar_one())

    store.cache_users("inst", "alice", [{"accountId": "u-1"}], [], 300)  # t=0, sweeps
    clock.advance(290)
    store.cache_users("inst", "alice", [{"accountId": "u-2"}], [], 300)  # t=290, sweeps
    clock.advance(20)  # t=310: u-1 expired
    store.cache_users("inst", "alice", [{"accountId": "u-3"}], [], 300)
    assert rows() == 3  # the last sweep was 20 s ago: u-1 stays, but is never read
    assert store.cached_users("inst", "alice", ["u-1", "u-3"], 300) == {"u-3": {"accountId": "u-3"}}
    clock.advance(40)  # t=350: a minute since the last sweep
    store.cache_users("inst", "alice", [{"accountId": "u-4"}], [], 300)
    assert rows() == 3  # u-1 swept
    clock.advance(10)  # t=360
    store.cache_users("inst", "bob", [], [], 5)  # max_age under a minute: due after 5 s
    assert rows() == 0  # everything older than 5 s swept, though there was nothing to write


def test_erasing_a_closed_account_clears_its_cached_user_objects(store: Store) -> None:
    store.cache_users("inst", "alice", [{"accountId": "closed-1"}, {"accountId": "u-2"}], [], 300)
    store.cache_users("inst", "closed-1", [{"accountId": "u-2"}], [], 300)
    store.cache_users("other", "alice", [{"accountId": "closed-1"}], [], 300)
    assert store.erase_accounts("inst", ["closed-1"]) == 1
    assert store.cached_users("inst", "alice", ["closed-1", "u-2"], 300) == {
        "u-2": {"accountId": "u-2"}
    }
    assert store.cached_users("inst", "closed-1", ["u-2"], 300) == {}  # as the caller too
    assert store.cached_users("other", "alice", ["closed-1"], 300) != {}  # another installation


# -- cost model ----------------------------------------------------------------------------------


def test_the_cost_model_starts_from_the_documented_reading() -> None:
    assert points("users_bulk", 250) == 501 and points("invite", 100) == 1
    assert points("check_access", 100) == 201 and points("user_current", 1) == 3
    assert lookup_points(10_000) == 20_040
    assert invite_job_points(10_000, dry_run=False) == 20_200
    assert invite_job_points(10_000, dry_run=True) == 20_100
    assert invite_job_points(250, dry_run=False, settled=150) == 3 + 500 + 1
    learned = {"check_access": (1.0, 1.0), "users_bulk": (1.0, 0.0)}
    assert (
        lookup_points(10_000, learned) == 40
        and invite_job_points(100, dry_run=True, costs=learned) == 101
    )


# -- through the app, against the metered simulator ---------------------------------------------


@pytest.fixture()
def metered(platform: Platform) -> Platform:
    platform.meter.configure(Quota(1000, 3600, "app"))
    return platform


@pytest.fixture()
def pair(settings: Any, metered: Platform, db_url: str) -> Iterator[tuple[Backend, Backend]]:
    apps = [create_app(replace(settings, database_url=db_url), sleep=lambda s: None) for _ in "ab"]
    try:
        yield (
            WrittenBackend(apps[0].test_client(), metered),
            WrittenBackend(apps[1].test_client(), metered),
        )
    finally:
        for app in apps:
            app.extensions["access_desk"].close()


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def requests_to(platform: Platform, endpoint: str) -> int:
    return sum(1 for r in platform.requests if r.endpoint == endpoint)


def test_the_quota_resolver_shows_q_as_the_limit_and_what_is_estimated(
    pair: tuple[Backend, Backend], metered: Platform
) -> None:
    a, b = pair
    metered.meter.configure(None)  # Confluence says nothing of its quota: nulls
    empty = ok(a.call("quota"))
    assert {k: empty[k] for k in ("scope", "limit", "remaining", "resetAt", "heldUntil")} == {
        "scope": None,
        "limit": None,
        "remaining": None,
        "resetAt": None,
        "heldUntil": None,
    }
    metered.meter.configure(Quota(1000, 3600, "app"))
    ok(a.call("lookupUsers", {"accountIds": metered.installation.site.user_ids[:3]}))
    shown = ok(b.call("quota"))
    pool = metered.meter.snapshot()["pools"][0]
    assert shown["scope"] == "app" and shown["limit"] == 1000  # q, not the burst limit (350)
    assert shown["remaining"] == pool["remaining"] == 993 and shown["remainingEstimated"] is True
    reset = datetime.fromisoformat(pool["reset"]).timestamp()
    assert abs(datetime.fromisoformat(shown["resetAt"]).timestamp() - reset) < 1.0
    assert shown["heldUntil"] is None and shown["nearLimit"] is False
    assert (shown["spent"], shown["share"]) == (7, 500)  # this installation's own, this window
    assert shown["costs"]["invite"] == {"base": 1.0, "perObject": 0.0, "learned": False}
    user = metered.installation.site.user_ids[0]
    refused = a.call("quota", account=user)
    assert refused.status_code == 403 and refused.get_json()["error"] == "not_allowed"


def test_a_burst_429_on_one_site_does_not_hold_another_installation(
    pair: tuple[Backend, Backend], metered: Platform
) -> None:
    a, b = pair
    other = metered.add_installation()
    mine = metered.installation.site.user_ids[:2]
    metered.faults.add("users-bulk", "burst", times=1)
    found = ok(a.call("lookupUsers", {"accountIds": mine}))
    assert [u["accountId"] for u in found["users"]] == mine and found["failed"] == []  # retried
    theirs = other.site.user_ids[:2]
    got = ok(b.call("lookupUsers", {"accountIds": theirs}, installation=other))
    assert [u["accountId"] for u in got["users"]] == theirs and got["failed"] == []
    assert [r.status for r in metered.requests if r.endpoint == "users-bulk"] == [429, 200, 200]


def test_a_1200_email_job_on_a_10_point_pool_finishes_with_at_most_one_429(
    platform: Platform, store: Store, clock: Clock
) -> None:
    """Each request costs 1 point (a POST charged as a write) on 10 points per 8 s: the job's
    estimates (201 points for a check of 100 emails) are far off, yet it never stalls."""
    platform.meter = Meter(Quota(10, 8, costs="writes"), clock)
    inst, admin = platform.installation, platform.installation.site.admin_id
    emails = [f"new.person{n}@example.com" for n in range(1200)]
    job = store.create_job(inst.id, source="panel", dry_run=False, created_by=admin, emails=emails)
    ledger = SharedLedger(store, clock=clock, cache_seconds=0.0)
    runner = JobRunner(store, clock)
    with requests.Session() as session:
        for _ in range(300):
            client = Client(
                session,
                inst.api_base_url,
                platform.user_token(inst, admin),
                allowlist=(platform.allowlist_prefix,),
                sleep=clock.advance,
                clock=clock,
                ledger=ledger,
            )
            after = runner.advance(inst.id, job.id, client, worker_id="w", budget_seconds=15)
            if after.state != "running" and after.state != "queued":
                break
            clock.now = max(clock() + 0.5, after.not_before or 0.0)
    assert after.state == "done" and after.counts.invited == 1200
    assert platform.meter.snapshot()["total"]["refused"] <= 1
    assert ledger.view(inst.api_base_url).limit == 10  # it paced itself against q, not the burst
    assert requests_to(platform, "check-access") == 12 and requests_to(platform, "invite") == 12


def test_a_pool_charging_the_base_point_is_not_held_back_by_per_object_estimates(
    platform: Platform, store: Store, clock: Clock
) -> None:
    """An app pool of 1,000 points per 60 s that charges every POST the base point only
    (``costs="writes"``), estimated at 2 points per user or email (501 a lookup of 250 users, 201
    a check of 100 emails). Two customers' admins look up 250 of their users and four others
    each invite 1,200 new people: 100 points in all, so the real pool lets everything finish in
    the window it starts in. The estimates pass 80% of the pool while Confluence stays silent (no
    r: under ~80% is used), so they are high: the spend is bounded, the fair shares are not held
    by phantom spend, the costs are learnt downward, and everything is done in the first window
    (on the old ledger the jobs ended in the 15th window and the admin's second lookup was
    refused). In the next window a lone customer's job runs at the learnt costs and ends in that
    window (on the old ledger: in its 4th)."""
    clock.now = 29_200_000 * 60.0  # a window starts
    platform.meter = Meter(Quota(1000, 60, costs="writes"), clock)
    installations = [platform.installation] + [platform.add_installation() for _ in range(4)]
    platform.seed_users = 500
    lookers = [platform.add_installation() for _ in range(2)]
    ledger = SharedLedger(store, clock=clock, cache_seconds=0.0)
    runner = JobRunner(store, clock)
    with requests.Session() as session:

        def client(inst: Any) -> Client:  # as the worker's and the panel's: the admin pays
            admin = inst.site.admin_id
            return Client(
                session,
                inst.api_base_url,
                platform.user_token(inst, admin),
                allowlist=(platform.allowlist_prefix,),
                sleep=clock.advance,
                clock=clock,
                ledger=ledger,
            ).paying(Payer(inst.id, admin))

        def run_jobs(customers: list[Any]) -> float:
            """Each customer's 1,200-email job, run as the worker does; when the last is done."""
            jobs = {
                inst.id: store.create_job(
                    inst.id,
                    source="panel",
                    dry_run=False,
                    created_by=inst.site.admin_id,
                    emails=[f"new.person{clock()}.{n}.{k}@example.com" for k in range(1200)],
                ).id
                for n, inst in enumerate(customers)
            }
            not_before = dict.fromkeys(jobs, 0.0)
            running = set(jobs)
            deadline = clock() + 20 * 60
            while running and clock() < deadline:
                for inst in customers:
                    if inst.id not in running or not_before[inst.id] > clock():
                        continue
                    job = runner.advance(
                        inst.id,
                        jobs[inst.id],
                        client(inst),
                        worker_id="w",
                        budget_seconds=15,
                        fair=True,
                    )
                    if job.state not in ("queued", "running"):
                        assert job.state == "done" and job.counts.invited == 1200
                        running.discard(inst.id)
                    not_before[inst.id] = job.not_before or 0.0
                clock.advance(0.5)
            assert not running
            return clock()

        window_end = clock() + 60
        for looker in lookers:
            looked = client(looker).lookup_users(looker.site.user_ids[:250])
            assert len(looked.users) == 250 and looked.failed == []
        assert run_jobs(installations[:4]) < window_end  # done in the window they started in
        again = client(lookers[0]).lookup_users(lookers[0].site.user_ids[250:500])
        assert len(again.users) == 250 and again.failed == []  # not held back by phantom spend
        assert clock() < window_end
        snapshot = platform.meter.snapshot()["total"]
        assert snapshot == {"points": 99, "requests": 99, "refused": 0}
        assert {"check_access", "users_bulk"} <= ledger.learned_operations()
        assert ledger.estimate("check_access", 100) <= 21  # learnt down from 201
        view = ledger.view(lookers[0].api_base_url, lookers[0].id)
        assert view.remaining is not None and view.remaining >= 200  # silence: over ~20% is left
        clock.now = window_end  # the next window: a lone customer's job, at the learnt costs
        assert run_jobs(installations[4:]) < window_end + 60


def test_a_lookup_the_pool_can_pay_for_is_never_refused_locally(
    settings: Any, platform: Platform, clock: Clock
) -> None:
    """15,000 of 65,000 points left, a 10,000-id lookup estimated at 20,040 (most ids unknown:
    it really costs about 120), a burst limit of 20 a second: every id is answered."""
    platform.meter = Meter(Quota(65000, 3600, burst=20), clock)
    platform.meter.spend(platform.installation.cloud_id, 50_000)
    app = create_app(replace(settings, lookup_cache_seconds=0.0), sleep=clock.advance)
    backend = Backend(app.test_client(), platform)
    site = platform.installation.site
    ids = (site.user_ids + [f"unknown-{n}" for n in range(10_000)])[:10_000]
    try:
        found = ok(backend.call("lookupUsers", {"accountIds": ids}))
    finally:
        app.extensions["access_desk"].close()
    assert found["failed"] == [] and len(found["users"]) == len(site.user_ids)
    assert len(found["notFound"]) == 10_000 - len(site.user_ids)
    assert platform.meter.snapshot()["burstRefused"] >= 1  # the burst limit was met, and retried


def test_an_ordinary_users_600_refused_diagnose_calls_make_at_most_a_couple_of_checks(
    backend: Backend, platform: Platform
) -> None:
    user = platform.installation.site.user_ids[0]
    for _ in range(600):
        response = backend.call("diagnose", account=user)
        assert response.status_code == 403
    assert "operations reported: use/application" in response.get_json()["details"]["adminCheck"]
    assert requests_to(platform, "user-current") <= 2


def test_one_installations_heavy_lookups_leave_other_customers_their_share(
    settings: Any, metered: Platform, db_url: str
) -> None:
    noisy, quiet = metered.installation, metered.add_installation()
    apps = [
        create_app(
            replace(settings, database_url=db_url, lookup_cache_seconds=0.0), sleep=lambda s: None
        )
        for _ in "ab"
    ]
    try:
        backends = [Backend(app.test_client(), metered) for app in apps]
        refused = 0
        for n in range(60):  # five of the noisy installation's users, on both instances
            who = noisy.site.user_ids[n % 5]
            ids = noisy.site.user_ids[(n * 7) % 30 :][:10]
            found = ok(backends[n % 2].call("lookupUsers", {"accountIds": ids}, account=who))
            refused += len(found["failed"])
            assert all(
                f["error"] == "rate_limited" and f["retryAfter"] > 0 for f in found["failed"]
            )
        assert refused > 0  # it was stopped before it spent everyone's pool
        left = metered.meter.snapshot()["pools"][0]["remaining"]
        assert left >= 1000 * 0.25  # the last quarter stays for the others
        for backend in backends:  # ...and another customer is served
            got = ok(
                backend.call(
                    "lookupUsers", {"accountIds": quiet.site.user_ids[:10]}, installation=quiet
                )
            )
            assert got["failed"] == [] and len(got["users"]) == 10
        assert metered.meter.snapshot()["total"]["refused"] == 0  # no 429 from Confluence
    finally:
        for app in apps:
            app.extensions["access_desk"].close()


def test_held_panel_calls_are_not_sent_and_list_retry_after(
    pair: tuple[Backend, Backend], metered: Platform
) -> None:
    a, b = pair
    site = metered.installation.site
    other = metered.add_installation()
    metered.meter.spend(site.cloud_id, 1000)  # the app's other customers spent the pool
    held = ok(a.call("lookupUsers", {"accountIds": site.user_ids[:2]}))  # learns: 429
    assert [f["error"] for f in held["failed"]] == ["rate_limited"] * 2
    before = len(metered.requests)
    theirs = ok(b.call("lookupUsers", {"accountIds": other.site.user_ids[:2]}, installation=other))
    assert theirs["users"] == [] and all(0 < f["retryAfter"] <= 3600 for f in theirs["failed"])
    assert [r for r in metered.requests[before:] if r.endpoint == "users-bulk"] == []
    text = b.client.get("/metrics").get_data(as_text=True)
    assert 'access_desk_quota_held_seconds{pool="app"}' in text
    assert 'access_desk_quota_remaining_points{pool="app"} 0.0' in text  # Confluence said r=0
    assert metrics.RATE_LIMITED._value.get() >= 1


def test_lookups_are_answered_from_the_callers_cache_on_every_instance(
    pair: tuple[Backend, Backend], metered: Platform
) -> None:
    a, b = pair
    site = metered.installation.site
    ids = site.user_ids[:4] + ["ghost-1"]
    first = ok(a.call("lookupUsers", {"accountIds": ids}))
    spent = metered.meter.spent_by(metered.installation.id)
    lookups = requests_to(metered, "users-bulk")
    again = ok(b.call("lookupUsers", {"accountIds": list(reversed(ids))}))
    assert requests_to(metered, "users-bulk") == lookups  # no upstream call, no points
    assert metered.meter.spent_by(metered.installation.id) == spent
    assert [u["accountId"] for u in again["users"]] == list(reversed(site.user_ids[:4]))
    assert again["notFound"] == ["ghost-1"] and again["users"][-1] == first["users"][0]
    other = ok(b.call("lookupUsers", {"accountIds": ids}, account=site.user_ids[5]))
    assert requests_to(metered, "users-bulk") == lookups + 1  # another caller asks Confluence
    assert len(other["users"]) == 4


def test_the_lookup_cache_can_be_turned_off(settings: Any, metered: Platform) -> None:
    app = create_app(replace(settings, lookup_cache_seconds=0.0), sleep=lambda s: None)
    backend = Backend(app.test_client(), metered)
    ids = metered.installation.site.user_ids[:2]
    try:
        for _ in range(2):
            ok(backend.call("lookupUsers", {"accountIds": ids}))
    finally:
        app.extensions["access_desk"].close()
    assert requests_to(metered, "users-bulk") == 2


def test_offline_token_mints_past_the_limit_wait_and_say_why(
    platform: Platform, store: Store, clock: Clock
) -> None:
    inst = platform.installation
    store.upsert_installation(
        inst.id,
        cloud_id=inst.cloud_id,
        api_base_url=inst.api_base_url,
        system_token=platform.system_token(inst),
        system_token_expires_at=clock() + 3600,
    )
    installation = store.installation(inst.id)
    assert installation is not None
    with requests.Session() as session:
        mints = Mints(store, clock=clock)
        tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock, mints=mints)
        platform.mints.limit = 1
        assert tokens.token_for(installation, inst.site.admin_id)  # the first mint goes
        store.drop_offline_token(inst.id, inst.site.admin_id)
        with pytest.raises(OfflineTokenError, match="HTTP 429"):  # Forge refuses the second
            tokens.token_for(installation, inst.site.admin_id)
        with pytest.raises(OfflineTokenError, match="mints a minute is reached"):
            tokens.token_for(installation, inst.site.admin_id)  # held: not even tried
    assert platform.mints.refused == 1


def test_a_job_paces_itself_keeps_the_reserve_and_waits_for_the_reset(
    pair: tuple[Backend, Backend], metered: Platform
) -> None:
    a, b = pair
    emails = [f"pace{n}@example.com" for n in range(600)]
    job = ok(a.call("inviteEmails", {"emails": emails, "dryRun": True}))["job"]
    assert job["estimatedPoints"] == invite_job_points(600, dry_run=True) == 1206
    assert job["notBefore"] is None
    after = ok(b.call("getJob", {"jobId": job["id"]}))["job"]
    snapshot = metered.meter.snapshot()
    assert snapshot["total"]["refused"] == 0  # no 429 was needed to learn the window's end
    # it spent what was left above the last 20%, which stayed for the panel
    assert 200 <= snapshot["pools"][0]["remaining"] < 200 + points("check_access", 100)
    assert after["state"] == "running" and after["counts"]["pending"] == 600
    assert 0 < requests_to(metered, "check-access") < 6
    reset = datetime.fromisoformat(snapshot["pools"][0]["reset"]).timestamp()
    assert abs(datetime.fromisoformat(after["notBefore"]).timestamp() - reset) < 1.0
    checks = requests_to(metered, "check-access")
    again = ok(a.call("getJob", {"jobId": job["id"]}))["job"]  # still waiting: nothing is sent
    assert again["counts"] == after["counts"] and requests_to(metered, "check-access") == checks
    # ...while a panel call may still spend the reserve
    found = ok(b.call("lookupUsers", {"accountIds": metered.installation.site.user_ids[:5]}))
    assert len(found["users"]) == 5 and found["failed"] == []


def test_a_workers_step_ends_after_a_chunk_when_another_installation_waits(
    metered: Platform, store: Store
) -> None:
    metered.meter.configure(None)
    first, other = metered.installation, metered.add_installation()
    session = requests.Session()
    admin = first.site.admin_id
    big = store.create_job(
        first.id,
        source="panel",
        dry_run=True,
        created_by=admin,
        emails=[f"big{n}@example.com" for n in range(300)],
    )
    client = Client(
        session,
        first.api_base_url,
        metered.user_token(first, admin),
        allowlist=(metered.allowlist_prefix,),
        sleep=lambda seconds: None,
        ledger=MemoryLedger(),
    )
    runner = JobRunner(store)
    runner.advance(first.id, big.id, client, worker_id="w", budget_seconds=60, fair=True)
    assert requests_to(metered, "check-access") == 3  # nobody else waits: the whole step
    bigger = store.create_job(
        first.id,
        source="panel",
        dry_run=True,
        created_by=admin,
        emails=[f"more{n}@example.com" for n in range(300)],
    )
    store.create_job(
        other.id,
        source="panel",
        dry_run=True,
        created_by=other.site.admin_id,
        emails=["small@example.com"],
    )
    runner.advance(first.id, bigger.id, client, worker_id="w", budget_seconds=60, fair=True)
    assert requests_to(metered, "check-access") == 4  # one chunk, then the other's turn
    session.close()
