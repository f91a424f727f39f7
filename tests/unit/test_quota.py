"""Confluence's points quota (docs/contract.md §6), rule by rule, on SQLite and, when
``TEST_POSTGRES_URL`` is set, on PostgreSQL. "Two instances" are two ``Store`` objects (or two
in-process apps) on one database, as two servers would be.

- one ledger fed by every answer's headers (any may be missing), app or site pool;
- holds: a 429 until its ``Retry-After`` (at most 1 h) or ``Reset``, an app pool's for every site,
  a site pool's for that site only; ``Remaining: 0`` until ``Reset``; held calls are not sent;
- pacing and reserve: background work never spends the last 20% nor while near the limit, waits for
  the reset (the job's ``notBefore``) without a 429; panel calls may use the reserve;
- fairness: the installation served longest ago is claimed first, and a worker's step ends after a
  chunk when another installation's job waits;
- cache: per (installation, caller), shared by instances, never across callers, off at 0, erased
  with a closed account;
- visible: the ``quota`` resolver, a job's ``estimatedPoints`` and ``notBefore``, the metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import sqlalchemy as sa

import metrics
from app import create_app
from confluence import Client
from costs import invite_job_points, lookup_points, points
from jobs import JobRunner
from quota_pools import APP
from ratelimit import Ledger, MemoryGate
from ratelimit_headers import MAX_RETRY_AFTER
from simulator.platform import Platform
from simulator.quota import Quota
from store import Store
from tables import lookup_cache
from tests.conftest import Backend
from tests.stores import KEY, Clock

SITE = "https://api.example.test/ex/confluence/site-1"
OTHER = "https://api.example.test/ex/confluence/site-2"


def reset_header(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def headers(
    clock: Clock, *, remaining: int, limit: int = 1000, extra: dict[str, str] | None = None
) -> dict[str, str]:
    found = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": reset_header(clock() + 600),
        "Beta-RateLimit-Policy": f'"global-app-quota";q={limit};w=3600',
    }
    found.update(extra or {})
    return {k: v for k, v in found.items() if v != ""}


@pytest.fixture()
def second(db_url: str, clock: Clock, store: Store) -> Iterator[Store]:
    """Another instance's store on the same database."""
    other = Store(db_url, KEY, clock=clock)
    try:
        yield other
    finally:
        other.close()


def ledgers(one: Store, two: Store, clock: Clock) -> tuple[Ledger, Ledger]:
    return Ledger(one, clock=clock, cache_seconds=0.0), Ledger(two, clock=clock, cache_seconds=0.0)


# -- one ledger --------------------------------------------------------------------------------


def test_every_answer_feeds_one_ledger_shared_by_instances(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    assert b.view(SITE).scope is None  # nulls before any answer
    a.observe(SITE, 200, headers(clock, remaining=900))
    seen = b.view(OTHER)  # another site draws on the same (app) pool
    assert (seen.scope, seen.limit, seen.remaining) == (APP, 1000, 900)
    assert seen.reset_at == pytest.approx(clock() + 600, abs=1) and seen.held_until is None
    assert not seen.near_limit
    a.observe(SITE, 200, headers(clock, remaining=150, extra={"X-RateLimit-NearLimit": "true"}))
    assert b.view(OTHER).remaining == 150 and b.view(OTHER).near_limit
    assert b.is_near_limit(OTHER)


def test_any_header_may_be_missing(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 200, {})  # nothing said: nothing known
    assert ledger.view(SITE).limit is None and ledger.view(SITE).remaining is None
    ledger.observe(SITE, 200, {"X-RateLimit-Remaining": "700"})
    assert (ledger.view(SITE).scope, ledger.view(SITE).remaining) == (APP, 700)
    assert ledger.view(SITE).limit is None
    ledger.observe(SITE, 200, {"Beta-RateLimit-Policy": '"global-app-quota";q=65000;w=3600'})
    view = ledger.view(SITE)
    assert (view.limit, view.remaining, view.reset_at) == (65000, 700, None)


def test_a_tenant_policy_gives_the_site_its_own_pool(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(OTHER, 200, headers(clock, remaining=800))
    tenant = '"tenant-app-quota";q=500;w=60'
    ledger.observe(
        SITE, 200, headers(clock, remaining=40, limit=500, extra={"Beta-RateLimit-Policy": tenant})
    )
    assert (ledger.view(SITE).scope, ledger.view(SITE).limit, ledger.view(SITE).remaining) == (
        "site",
        500,
        40,
    )
    assert (ledger.view(OTHER).scope, ledger.view(OTHER).remaining) == (APP, 800)


def test_a_window_that_has_ended_counts_as_full_again(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 200, headers(clock, remaining=100))
    clock.advance(601)
    assert ledger.view(SITE).remaining == 1000 and ledger.view(SITE).reset_at is None
    assert ledger.admit(SITE, 201, background=True) == 0.0  # the new window's points
    assert ledger.view(SITE).remaining == 799


# -- holds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "held_sites"),
    [
        ({"RateLimit-Reason": "confluence-quota-global-based"}, {SITE, OTHER}),
        ({}, {SITE, OTHER}),  # the app's pool by default
        (
            {
                "RateLimit-Reason": "confluence-quota-tenant-based",
                "Beta-RateLimit-Policy": '"tenant-app-quota";q=1000;w=3600',
            },
            {SITE},
        ),
    ],
)
def test_a_429_learnt_by_one_instance_holds_its_pool_on_the_other(
    store: Store, second: Store, clock: Clock, extra: dict[str, str], held_sites: set[str]
) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 429, {**headers(clock, remaining=3), "Retry-After": "120", **extra})
    for site in (SITE, OTHER):
        assert b.wait_seconds(site) == (120.0 if site in held_sites else 0.0), site
    clock.advance(120)
    assert b.wait_seconds(SITE) == 0.0


def test_a_429_without_retry_after_holds_until_reset_and_never_past_an_hour(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 429, {"X-RateLimit-Reset": reset_header(clock() + 300)})
    assert b.wait_seconds(OTHER) == pytest.approx(300, abs=1)
    a.observe(SITE, 429, {"Retry-After": "86400"})
    assert b.wait_seconds(SITE) == MAX_RETRY_AFTER
    a.observe(SITE, 429, {"Retry-After": "5"})  # holds only extend
    assert b.wait_seconds(SITE) == MAX_RETRY_AFTER


def test_a_spent_pool_holds_until_its_reset(store: Store, second: Store, clock: Clock) -> None:
    a, b = ledgers(store, second, clock)
    a.observe(SITE, 200, headers(clock, remaining=0))
    assert b.wait_seconds(OTHER) == pytest.approx(600, abs=1)
    assert b.view(OTHER).held_until == pytest.approx(clock() + 600, abs=1)


def test_a_503_retry_after_holds_only_its_site(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    ledger.observe(SITE, 503, {"Retry-After": "30"})
    assert ledger.wait_seconds(SITE) == 30.0 and ledger.wait_seconds(OTHER) == 0.0


# -- pacing and reserve ------------------------------------------------------------------------


def test_background_work_never_spends_the_reserve_and_waits_for_the_reset(
    store: Store, second: Store, clock: Clock
) -> None:
    a, b = ledgers(store, second, clock)
    assert a.admit(SITE, 201, background=True) == 0.0  # nothing known yet: the answer tells
    a.observe(SITE, 200, headers(clock, remaining=700))
    taken = 0
    for ledger in (a, b, a, b, a):  # two instances drawing on one pool
        if ledger.admit(OTHER, 201, background=True) == 0.0:
            taken += 1
    assert taken == 2 and b.view(SITE).remaining == 298  # 298 - 201 would leave under 200
    wait = b.admit(SITE, 201, background=True)
    assert wait == pytest.approx(600, abs=1)  # until the window resets: a job's notBefore
    assert a.admit(SITE, 201, background=False) == 0.0  # a panel call may use the reserve
    assert a.view(SITE).remaining == 97
    clock.advance(601)
    assert b.admit(SITE, 201, background=True) == 0.0


def test_background_work_waits_while_the_pool_is_near_its_limit(store: Store, clock: Clock) -> None:
    ledger = Ledger(store, clock=clock, cache_seconds=0.0)
    near = {"X-RateLimit-NearLimit": "true"}
    ledger.observe(SITE, 200, headers(clock, remaining=900, extra=near))
    assert ledger.admit(SITE, 10, background=True) == pytest.approx(600, abs=1)
    assert ledger.admit(SITE, 10, background=False) == 0.0


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


# -- cost model --------------------------------------------------------------------------------


def test_the_cost_model() -> None:
    assert points("users_bulk", 250) == 501 and points("invite", 100) == 1
    assert points("check_access", 100) == 201 and points("user_current", 1) == 3
    assert lookup_points(10_000) == 20_040
    assert invite_job_points(10_000, dry_run=False) == 20_200
    assert invite_job_points(10_000, dry_run=True) == 20_100
    assert invite_job_points(250, dry_run=False, settled=150) == 3 + 500 + 1


# -- through the app, against the metered simulator ---------------------------------------------


@pytest.fixture()
def metered(platform: Platform) -> Platform:
    platform.meter.configure(Quota(1000, 3600, "app"))
    return platform


@pytest.fixture()
def pair(settings: Any, metered: Platform, db_url: str) -> Iterator[tuple[Backend, Backend]]:
    apps = [create_app(replace(settings, database_url=db_url), sleep=lambda s: None) for _ in "ab"]
    try:
        yield Backend(apps[0].test_client(), metered), Backend(apps[1].test_client(), metered)
    finally:
        for app in apps:
            app.extensions["access_desk"].store.close()


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def requests_to(platform: Platform, endpoint: str) -> int:
    return sum(1 for r in platform.requests if r.endpoint == endpoint)


def test_the_quota_resolver_shows_the_pool(
    pair: tuple[Backend, Backend], metered: Platform
) -> None:
    a, b = pair
    metered.meter.configure(None)  # Confluence says nothing of its quota: nulls
    assert ok(a.call("quota")) == {
        "scope": None,
        "limit": None,
        "remaining": None,
        "resetAt": None,
        "heldUntil": None,
        "nearLimit": False,
    }
    metered.meter.configure(Quota(1000, 3600, "app"))
    ok(a.call("lookupUsers", {"accountIds": metered.installation.site.user_ids[:3]}))
    shown = ok(b.call("quota"))
    pool = metered.meter.snapshot()["pools"][0]
    assert shown["scope"] == "app" and shown["limit"] == 1000
    assert shown["remaining"] == pool["remaining"] and shown["resetAt"] == pool["reset"].replace(
        "Z", ".000Z"
    )
    assert shown["heldUntil"] is None and shown["nearLimit"] is False
    user = metered.installation.site.user_ids[0]
    refused = a.call("quota", account=user)
    assert refused.status_code == 403 and refused.get_json()["error"] == "not_allowed"


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
    for _ in range(2):
        ok(backend.call("lookupUsers", {"accountIds": ids}))
    assert requests_to(metered, "users-bulk") == 2


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
    assert 'access_desk_quota_limit_points{pool="app"} 1000.0' in text
    assert metrics.RATE_LIMITED._value.get() >= 1


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
        gate=MemoryGate(),
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
