"""Dormant installations (quiet for 72 hours, or their site refuses every background call) and paused
accounts (Confluence refuses the worker's calls made as them: only their jobs wait); waking up."""

from __future__ import annotations

from typing import Any

import requests

from access_desk.confluence.client import Client
from access_desk.duties.dormancy import QUIET_SECONDS, REFUSAL_SPAN_SECONDS, Sweeper
from access_desk.forge.offline_tokens import OfflineTokens
from access_desk.jobs.runner import JobRunner
from access_desk.jobs.worker import Worker
from access_desk.store import Store
from access_desk.store.records import PAUSED_REASON, Installation
from simulator import Platform
from simulator.triggers import SCHEDULED_TRIGGER
from tests.conftest import Backend
from tests.support.simulated import client, store_installation
from tests.support.stores import Clock

REFUSALS = 10  # dormancy: refused background calls in a row that pause an account


def install(platform: Platform, store: Store, clock: Clock) -> str:
    return store_installation(platform, store, clock() + 10 * 24 * 3600)


def worker(platform: Platform, store: Store, session: requests.Session, clock: Clock) -> Worker:
    def make_client(installation: Installation, token: str) -> Client:
        return client(platform, session, installation.api_base_url, token, max_retries=0)

    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    return Worker(store, JobRunner(store), make_client, tokens, worker_id="bg")


def job(platform: Platform, store: Store, n: int = 1, prefix: str = "hire") -> str:
    emails = [f"{prefix}{i}@example.com" for i in range(n)]
    admin = platform.installation.site.admin_id
    created = store.create_job(
        platform.installation.id, source="webhook", dry_run=True, created_by=admin, emails=emails
    )
    return created.id


def test_no_scheduled_trigger_for_72_hours_makes_an_installation_dormant(
    platform: Platform, store: Store, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    other = "ari:cloud:ecosystem::installation/other"
    store.upsert_installation(other, cloud_id="c2", api_base_url="https://x/ex/confluence/c2")
    sweeper = Sweeper(store, every_seconds=0, clock=clock)
    store.note_scheduled_trigger(iid, report_every_seconds=7 * 86400)
    clock.advance(QUIET_SECONDS - 1)
    store.note_scheduled_trigger(other, report_every_seconds=7 * 86400)
    sweeper.chore()
    assert store.count_dormant_installations() == 0
    clock.advance(2)
    sweeper.chore()
    assert store.count_dormant_installations() == 1
    health = store.installation_health(iid)
    assert health is not None and health.dormant and health.dormant_reason == "quiet"
    assert (
        health.dormant_since == clock() and health.last_scheduled_at == clock() - QUIET_SECONDS - 1
    )
    assert store.installation_health(other).dormant is False  # type: ignore[union-attr]

    assert store.resume_installation(iid) is True
    assert store.resume_installation(iid) is False
    sweeper.chore()  # woken by an invocation: quiet again only 72 h after that
    assert store.count_dormant_installations() == 0
    clock.advance(QUIET_SECONDS + 1)
    store.note_scheduled_trigger(other, report_every_seconds=7 * 86400)
    sweeper.chore()
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == []  # already marked
    assert store.count_dormant_installations() == 1


def test_the_sweeper_runs_at_most_every_few_minutes(store: Store, clock: Clock) -> None:
    calls: list[float] = []

    class Counting(Store):
        def mark_quiet_installations_dormant(self, quiet_seconds: float) -> list[str]:
            calls.append(quiet_seconds)
            return []

    counting: Any = Counting.__new__(Counting)
    sweeper = Sweeper(counting, every_seconds=300, clock=clock)
    for _ in range(3):
        assert sweeper.chore() is False
    clock.advance(300)
    sweeper.chore()
    assert calls == [QUIET_SECONDS, QUIET_SECONDS]


def test_a_dormant_installations_jobs_are_not_claimed_until_it_wakes(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    first = job(platform, store)
    clock.advance(QUIET_SECONDS + 1)
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == [iid]
    background = worker(platform, store, session, clock)
    assert background.run_once() is False
    assert store.claim_job("other", 60) is None
    assert platform.requests == []  # no token minted, no quota spent
    paused = store.job(iid, first, items=False)
    assert paused is not None and paused.state == "queued"
    # a panel's getJob may still advance its own job (the caller is there, with a token)
    assert store.claim_job("panel", 60, installation_id=iid, job_id=first) is not None
    store.release_job(first, "panel")

    store.resume_installation(iid)
    assert background.run_once() is True
    done = store.job(iid, first, items=False)
    assert done is not None and done.state == "done"


def test_a_site_refusing_every_call_for_an_hour_makes_the_installation_dormant(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    admin = platform.installation.site.admin_id
    background = worker(platform, store, session, clock)
    platform.faults.add("check-access", "403", times=None)
    big = job(platform, store, n=100 * REFUSALS, prefix="big")
    assert background.run_once()
    [refused] = store.installation_health(iid).accounts_refused  # type: ignore[union-attr]
    assert (refused.account_id, refused.refusals, refused.paused_since) == (admin, REFUSALS, None)
    assert not store.installation_health(iid).dormant  # type: ignore[union-attr]
    finished = store.job(iid, big, items=False)  # refused ten times, but all within a moment
    assert finished is not None and finished.counts.failed == 100 * REFUSALS

    clock.advance(REFUSAL_SPAN_SECONDS)
    job(platform, store, prefix="second")
    assert background.run_once()
    health = store.installation_health(iid)  # its only acting account is paused: the site
    assert health is not None and health.dormant and health.dormant_reason == "refused"
    assert [(a.refusals, a.paused_since) for a in health.accounts_refused] == [
        (REFUSALS + 1, clock())
    ]

    third = job(platform, store, prefix="third")
    checks = len([r for r in platform.requests if r.endpoint == "check-access"])
    assert background.run_once() is False  # paused: nothing spent
    assert len([r for r in platform.requests if r.endpoint == "check-access"]) == checks
    paused = store.job(iid, third, items=False)
    assert paused is not None and paused.to_json(items=False)["paused"]["reason"] == PAUSED_REASON

    store.resume_installation(iid)  # woken, but the site still refuses: one probe, asleep again
    for _ in range(5):
        if not background.run_once():
            break
    assert store.installation_health(iid).dormant is True  # type: ignore[union-attr]
    assert len([r for r in platform.requests if r.endpoint == "check-access"]) == checks + 1

    platform.faults.clear()
    store.resume_installation(iid)
    fourth = job(platform, store, prefix="fourth")
    for _ in range(5):
        if not background.run_once():
            break
    assert store.job(iid, fourth, items=False).state == "done"  # type: ignore[union-attr]
    health = store.installation_health(iid)
    assert health is not None and not health.dormant and health.accounts_refused == ()
    done = store.job(iid, third, items=False)
    assert done is not None and done.state == "done" and done.to_json(items=False)["paused"] is None


def test_one_accounts_refusals_pause_only_the_jobs_acting_as_it(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    """Issue 16, item 7: a webhook admin who lost access (made an external collaborator: every
    call as them is refused) paused every job of the installation. Now only theirs wait, and the
    job says why; another admin's jobs go on and the installation stays awake."""
    iid = install(platform, store, clock)
    site = platform.installation.site
    admin, webhook_admin = site.admin_id, site.user_ids[3]
    background = worker(platform, store, session, clock)
    hooked = store.create_job(
        iid,
        source="webhook",
        dry_run=True,
        created_by=webhook_admin,
        emails=[f"hooked{i}@example.com" for i in range(100 * REFUSALS)],
    )
    site.external_ids.append(webhook_admin)  # Confluence now refuses everything as them
    assert background.run_once()  # ten refused chunks, within a moment
    clock.advance(REFUSAL_SPAN_SECONDS)
    late = store.create_job(
        iid, source="webhook", dry_run=True, created_by=webhook_admin, emails=["late@example.com"]
    )
    assert background.run_once()  # the eleventh, an hour after the first
    mine = store.create_job(
        iid, source="panel", dry_run=True, created_by=admin, emails=["mine@example.com"]
    )
    assert background.run_once() is True  # the other admin's job is still claimed ...
    done = store.job(iid, mine.id, items=False)
    assert done is not None and done.state == "done"
    assert not store.installation_health(iid).dormant  # type: ignore[union-attr]
    waiting = store.create_job(
        iid, source="webhook", dry_run=True, created_by=webhook_admin, emails=["w@example.com"]
    )
    assert background.run_once() is False  # ... while theirs waits, spending nothing
    shown = store.job(iid, waiting.id, items=False)
    assert shown is not None and shown.state == "queued"
    paused = shown.to_json(items=False)["paused"]
    assert paused is not None and "refused the background calls" in paused["reason"]
    assert store.job(iid, hooked.id, items=False).state == "done"  # type: ignore[union-attr]
    assert store.job(iid, late.id, items=False).counts.failed == 1  # type: ignore[union-attr]
    listed = {j.id: j.to_json(items=False)["paused"] for j in store.list_jobs(iid, 10)[0]}
    assert listed[waiting.id] == paused and listed[mine.id] is None


def test_a_panels_own_refused_poll_does_not_count(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    """Issue 16, item 7: nine refused background chunks, an hour, then one refused chunk of the
    admin's own getJob poll tipped the installation dormant. Only the worker's calls count."""
    iid = install(platform, store, clock)
    admin = platform.installation.site.admin_id
    background = worker(platform, store, session, clock)
    platform.faults.add("check-access", "403", times=None)
    job(platform, store, n=100 * (REFUSALS - 1), prefix="nine")
    assert background.run_once()  # nine refused chunks
    clock.advance(REFUSAL_SPAN_SECONDS)
    polled = store.create_job(
        iid, source="panel", dry_run=True, created_by=admin, emails=["poll@example.com"]
    )
    inst = platform.installation
    own = client(platform, session, inst.api_base_url, platform.user_token(inst, admin))
    JobRunner(store).advance(iid, polled.id, own, worker_id="call-1", budget_seconds=5)  # getJob
    assert not store.installation_health(iid).dormant  # type: ignore[union-attr]
    platform.faults.clear()
    later = job(platform, store, prefix="later")
    assert background.run_once()  # the worker still claims the installation's jobs
    assert store.job(iid, later, items=False).state == "done"  # type: ignore[union-attr]


def test_answers_in_between_reset_the_count(store: Store, clock: Clock) -> None:
    iid = "ari:cloud:ecosystem::installation/a"
    store.upsert_installation(iid, cloud_id="c", api_base_url="https://x/ex/confluence/c")
    args: dict[str, Any] = {"refusals_to_pause": 3, "span_seconds": 60, "recent_seconds": 3600}
    for _ in range(5):
        assert store.note_account_answer(iid, "u1", refused=True, **args) == (False, False)
        clock.advance(20)
        assert store.note_account_answer(iid, "u1", refused=True, **args) == (False, False)
        clock.advance(20)
        store.note_account_answer(iid, "u1", refused=False, **args)
    assert store.installation_health(iid).accounts_refused == ()  # type: ignore[union-attr]
    store.note_account_answer(iid, "u2", refused=False, **args)  # another account answered
    for step in (0, 30, 29):  # three refusals, but over 59 s only
        clock.advance(step)
        assert store.note_account_answer(iid, "u1", refused=True, **args) == (False, False)
    clock.advance(1)
    assert store.note_account_answer(iid, "u1", refused=True, **args) == (True, False)
    assert store.note_account_answer(iid, "u1", refused=True, **args) == (False, False)
    clock.advance(3600)  # u2's last answer is an hour old: pausing u1 again leaves no one awake
    store.resume_installation(iid)
    assert store.note_account_answer(iid, "u1", refused=True, **args) == (True, True)
    health = store.installation_health(iid)
    assert health is not None and health.dormant_reason == "refused"


def test_a_verified_invocation_wakes_the_installation_and_metrics_count_dormant_ones(
    backend: Backend, platform: Platform
) -> None:
    app: Any = backend.client.application
    store: Store = app.extensions["access_desk"].store
    inst = platform.installation
    headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER)
    assert backend.client.post("/forge/scheduled", json={}, headers=headers).status_code == 200
    assert store.mark_quiet_installations_dormant(-60) == [inst.id]  # as if 72 h had passed
    text = backend.client.get("/metrics").get_data(as_text=True)
    assert "access_desk_dormant_installations 1.0" in text

    forged = dict(headers, authorization="Bearer not-a-fit")
    assert backend.client.post("/forge/scheduled", json={}, headers=forged).status_code == 401
    assert store.installation_health(inst.id).dormant is True  # type: ignore[union-attr]

    assert backend.call("whoami").status_code == 200
    health = store.installation_health(inst.id)
    assert health is not None and not health.dormant and health.resumed_at is not None
    assert "access_desk_dormant_installations 0.0" in backend.client.get("/metrics").get_data(
        as_text=True
    )
    store.mark_quiet_installations_dormant(-60)
    headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER)
    assert backend.client.post("/forge/scheduled", json={}, headers=headers).status_code == 200
    assert store.installation_health(inst.id).dormant is False  # type: ignore[union-attr]
