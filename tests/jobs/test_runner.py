"""jobs.runner.JobRunner and jobs.worker.Worker against the simulated platform with a real
confluence.client.Client."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
import requests

from access_desk.confluence.client import Client
from access_desk.confluence.results import AccessResult, InviteResult
from access_desk.forge.offline_tokens import OfflineTokens
from access_desk.jobs.runner import JobNotFound, JobRunner
from access_desk.jobs.worker import Worker
from access_desk.store import Store
from access_desk.store.records import Installation, Job
from simulator import Platform
from tests.support.simulated import client, store_installation
from tests.support.stores import KEY, Clock


@pytest.fixture()
def client_for(platform: Platform, session: requests.Session) -> Callable[[str], Client]:
    """A client acting as ``account_id`` with a token the simulator issued (no real sleeping)."""

    def make(account_id: str) -> Client:
        inst = platform.installation
        return client(platform, session, inst.api_base_url, platform.user_token(inst, account_id))

    return make


def mixed_emails(platform: Platform, new: int, invalid: int) -> tuple[list[str], dict[str, str]]:
    """Emails of site members (some with access, some without), new ones and malformed ones,
    shuffled deterministically; with the outcome each should end in (before invites)."""
    site = platform.installation.site
    expected: dict[str, str] = {}
    for email in site.emails.values():
        expected[email] = "alreadyHasAccess" if site.has_access(email) else "invite"
    for n in range(new):
        expected[f"New.Hire{n}@Example.com"] = "invite"
    for n in range(invalid):
        expected[f"not an email {n}"] = "invalid"
    emails = sorted(expected, key=lambda e: hash(e) % 7919)
    return emails, expected


def invited_emails(platform: Platform) -> list[str]:
    """Emails in the invite requests Confluence accepted."""
    return [
        e
        for r in platform.requests
        if r.endpoint == "invite" and r.status == 200
        for e in r.body["emails"]
    ]


def run_to_end(runner: JobRunner, job: Job, client_of: Callable[[], Client], **kw: Any) -> Job:
    for _ in range(50):
        job = runner.advance(job.installation_id, job.id, client_of(), budget_seconds=60, **kw)
        if job.state not in ("queued", "running"):
            return job
    raise AssertionError("the job did not finish")


# -- JobRunner -------------------------------------------------------------------------------------


def test_a_dry_run_checks_and_invites_nobody(
    platform: Platform, store: Store, client_for: Callable[[str], Client]
) -> None:
    admin = platform.installation.site.admin_id
    iid = platform.installation.id
    emails, expected = mixed_emails(platform, new=5, invalid=2)
    job = store.create_job(iid, source="panel", dry_run=True, created_by=admin, emails=emails)

    done = run_to_end(JobRunner(store), job, lambda: client_for(admin), worker_id="call-1")

    assert done.state == "done"
    assert invited_emails(platform) == []
    assert not any(r.endpoint == "invite" for r in platform.requests)
    loaded = store.job(iid, job.id)
    assert loaded is not None and loaded.items is not None
    for item in loaded.items:
        want = expected[item.email]
        assert item.outcome == ("pending" if want == "invite" else want)
        assert item.checked
    counts = loaded.to_json()["counts"]
    assert counts["pending"] == sum(1 for v in expected.values() if v == "invite")
    assert counts["invited"] == 0 and counts["invalid"] == 2
    entries, _ = store.list_audit(iid, 10)
    assert [(e.action, e.actor) for e in entries] == [("invite.dryRun", admin)]


def test_a_job_of_hundreds_ends_with_every_item_final(
    platform: Platform, store: Store, client_for: Callable[[str], Client]
) -> None:
    admin = platform.installation.site.admin_id
    iid = platform.installation.id
    emails, expected = mixed_emails(platform, new=330, invalid=25)
    assert len(emails) > 350
    job = store.create_job(iid, source="panel", dry_run=False, created_by=admin, emails=emails)
    done = run_to_end(JobRunner(store), job, lambda: client_for(admin), worker_id="w")
    loaded = store.job(iid, job.id)

    assert done.state == "done" and loaded is not None and loaded.items is not None
    want_invites = {e for e, v in expected.items() if v == "invite"}
    for item in loaded.items:
        assert item.outcome == ("invited" if item.email in want_invites else expected[item.email])
    assert Counter(invited_emails(platform)) == Counter(want_invites)  # each exactly once
    for record in platform.requests:
        if record.endpoint in ("check-access", "invite"):
            assert 1 <= len(record.body["emails"]) <= 100
            assert record.account_id == admin
    assert done.counts.pending == 0
    assert done.counts.invited == len(want_invites)
    assert done.counts.invalid == 25


def test_a_rate_limit_keeps_items_pending_and_the_job_resumes_later(
    platform: Platform, store: Store, client_for: Callable[[str], Client], clock: Clock
) -> None:
    admin = platform.installation.site.admin_id
    iid = platform.installation.id
    new = [f"hire{n}@example.com" for n in range(150)]
    job = store.create_job(iid, source="panel", dry_run=False, created_by=admin, emails=new)
    runner = JobRunner(store)
    platform.faults.add("invite", "429", times=1, retry_after=120)

    after = runner.advance(iid, job.id, client_for(admin), worker_id="w", budget_seconds=60)

    assert after.state == "running" and after.not_before == clock() + 120
    assert after.counts.pending == 150 and after.counts.invited == 0
    assert after.lease_owner is None
    loaded = store.job(iid, job.id)
    assert loaded is not None and loaded.items is not None
    assert all(i.outcome == "pending" and i.checked and i.error is None for i in loaded.items)

    same = runner.advance(iid, job.id, client_for(admin), worker_id="w", budget_seconds=60)
    assert same.counts == after.counts  # not before Retry-After has passed
    clock.advance(121)
    done = run_to_end(runner, same, lambda: client_for(admin), worker_id="w")
    assert done.state == "done" and done.counts.invited == 150
    assert Counter(invited_emails(platform)) == Counter(new)


def test_final_failures_fail_their_items(
    platform: Platform, store: Store, client_for: Callable[[str], Client]
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    outsider = site.external_ids[0]  # may not manage access: the API answers 404
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=outsider, emails=["a@example.com"]
    )
    done = run_to_end(JobRunner(store), job, lambda: client_for(outsider), worker_id="w")
    loaded = store.job(iid, job.id)
    assert done.state == "done" and loaded is not None and loaded.items is not None
    assert [(i.outcome, i.error) for i in loaded.items] == [("failed", "not_permitted")]


def test_a_step_starts_no_chunk_once_its_budget_is_used(
    platform: Platform, store: Store, client_for: Callable[[str], Client]
) -> None:
    admin = platform.installation.site.admin_id
    iid = platform.installation.id
    ticks = iter(range(0, 10_000, 10))  # every clock reading is 10 s later
    runner = JobRunner(store, clock=lambda: float(next(ticks)), chunk_size=50)
    job = store.create_job(
        iid,
        source="panel",
        dry_run=True,
        created_by=admin,
        emails=[f"x{n}@example.com" for n in range(500)],
    )
    after = runner.advance(iid, job.id, client_for(admin), worker_id="w", budget_seconds=45)
    checked = sum(1 for r in platform.requests if r.endpoint == "check-access")
    assert 1 <= checked < 10 and after.state == "running"
    runner.advance(iid, job.id, client_for(admin), worker_id="w", budget_seconds=45)
    loaded = store.job(iid, job.id)
    assert loaded is not None and loaded.items is not None
    done = sum(1 for i in loaded.items if i.checked)
    assert done == 2 * checked * 50  # the next step went on from there, same pace


class Crash(Exception):
    """The process dies here."""


class CrashingClient:
    """A client that dies before sending its ``crash_on``-th invite."""

    def __init__(self, real: Client, crash_on: int) -> None:
        self.real = real
        self.invites = 0
        self.crash_on = crash_on

    def background(self) -> CrashingClient:
        return self

    def check_access(self, emails: Sequence[str]) -> AccessResult:
        return self.real.check_access(emails)

    def invite(self, emails: Sequence[str]) -> InviteResult:
        self.invites += 1
        if self.invites == self.crash_on:
            raise Crash()
        return self.real.invite(emails)


class DeadStore(Store):
    """A crashed process never releases its lease."""

    def release_job(
        self,
        job_id: str,
        worker_id: str,
        *,
        not_before: float | None = None,
        wait_reason: str | None = None,
    ) -> bool:
        return False


def test_after_a_crash_another_worker_resumes_with_no_item_lost_or_invited_twice(
    platform: Platform, store: Store, db_url: str, client_for: Callable[[str], Client], clock: Clock
) -> None:
    admin = platform.installation.site.admin_id
    iid = platform.installation.id
    emails, expected = mixed_emails(platform, new=420, invalid=10)
    job = store.create_job(iid, source="panel", dry_run=False, created_by=admin, emails=emails)
    dead = DeadStore(db_url, KEY, clock=clock)
    crashing = CrashingClient(client_for(admin), crash_on=3)
    try:
        with pytest.raises(Crash):
            JobRunner(dead).advance(
                iid,
                job.id,
                cast(Client, crashing),
                worker_id="A",
                budget_seconds=60,
            )
    finally:
        dead.close()
    halfway = store.job(iid, job.id, items=False)
    assert halfway is not None and halfway.lease_owner == "A"
    assert halfway.counts.invited == 200  # two invite chunks committed before the crash

    runner = JobRunner(store, lease_seconds=60)
    assert runner.advance(iid, job.id, client_for(admin), worker_id="B", budget_seconds=60) == (
        halfway
    )  # A's lease still holds
    clock.advance(61)  # A's lease ran out; its third chunk stays claimed (A may have sent it) ...
    waiting = runner.advance(iid, job.id, client_for(admin), worker_id="B", budget_seconds=60)
    assert waiting.state == "running" and waiting.counts.pending == 100
    clock.advance(60)  # ... until its claim (2 x A's 60 s step) runs out: then B sends it
    done = run_to_end(runner, halfway, lambda: client_for(admin), worker_id="B")

    want_invites = {e for e, v in expected.items() if v == "invite"}
    assert done.state == "done" and done.counts.invited == len(want_invites)
    assert Counter(invited_emails(platform)) == Counter(want_invites)
    loaded = store.job(iid, job.id)
    assert loaded is not None and loaded.items is not None
    assert all(i.outcome != "pending" for i in loaded.items)


def test_a_worker_whose_lease_ran_out_mid_chunk_writes_nothing(
    platform: Platform, store: Store, client_for: Callable[[str], Client], clock: Clock
) -> None:
    admin = platform.installation.site.admin_id
    iid = platform.installation.id
    job = store.create_job(
        iid,
        source="panel",
        dry_run=True,
        created_by=admin,
        emails=[f"y{n}@example.com" for n in range(250)],
    )
    real = client_for(admin)

    class Slow:
        def background(self) -> Slow:
            return self

        def check_access(self, emails: Sequence[str]) -> AccessResult:
            clock.advance(61)  # the lease runs out while this chunk is in flight
            return real.check_access(emails)

    after = JobRunner(store, lease_seconds=60).advance(
        iid,
        job.id,
        cast(Client, Slow()),
        worker_id="A",
        budget_seconds=60,
    )
    assert after.counts.pending == 250
    loaded = store.job(iid, job.id)
    assert loaded is not None and loaded.items is not None
    assert not any(i.checked for i in loaded.items)
    done = run_to_end(JobRunner(store), after, lambda: client_for(admin), worker_id="B")
    assert done.state == "done" and done.counts.pending == 250


def test_unknown_job(store: Store, client_for: Callable[[str], Client]) -> None:
    with pytest.raises(JobNotFound):
        JobRunner(store).advance("inst", "nope", client_for("x"), worker_id="w", budget_seconds=5)


# -- Worker ----------------------------------------------------------------------------------------


def make_worker(
    platform: Platform, store: Store, session: requests.Session, clock: Clock, **kw: Any
) -> Worker:
    def make_client(installation: Installation, token: str) -> Client:
        return client(platform, session, installation.api_base_url, token)

    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    return Worker(store, JobRunner(store), make_client, tokens, worker_id="bg", **kw)


def install(platform: Platform, store: Store, clock: Clock, *, system_token: bool = True) -> None:
    store_installation(platform, store, clock() + 7200 if system_token else None)


def test_the_worker_acts_with_an_offline_token_of_the_jobs_creator(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    install(platform, store, clock)
    worker = make_worker(platform, store, session, clock)
    assert worker.run_once() is False
    new = [f"webhook.hire{n}@example.com" for n in range(120)]
    job = store.create_job(
        iid, source="webhook", dry_run=False, created_by=site.admin_id, emails=new
    )

    for _ in range(10):
        if not worker.run_once():
            break
    done = store.job(iid, job.id, items=False)
    assert done is not None and done.state == "done" and done.counts.invited == 120
    confluence = [r for r in platform.requests if r.endpoint in ("check-access", "invite")]
    assert confluence and {r.account_id for r in confluence} == {site.admin_id}
    assert [r.account_id for r in platform.requests if r.endpoint == "graphql"] == ["system"]
    entries, _ = store.list_audit(iid, 10)
    assert [(e.action, e.source, e.actor) for e in entries] == [
        ("invite", "webhook", site.admin_id)
    ]


def test_the_worker_waits_for_a_token_then_gives_up(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    install(platform, store, clock, system_token=False)
    worker = make_worker(platform, store, session, clock, token_retry_seconds=60)
    job = store.create_job(
        iid,
        source="webhook",
        dry_run=False,
        created_by=site.admin_id,
        emails=["a@example.com", "b@example.com"],
    )
    assert worker.run_once() is True
    waiting = store.job(iid, job.id, items=False)
    assert waiting is not None and waiting.state == "running" and waiting.counts.pending == 2
    assert waiting.not_before == clock() + 60 and waiting.lease_owner is None
    assert worker.run_once() is False
    clock.advance(24 * 3600)
    assert worker.run_once() is True
    failed = store.job(iid, job.id)
    assert failed is not None and failed.state == "failed" and failed.items is not None
    assert all(i.outcome == "failed" and "no_token" in (i.error or "") for i in failed.items)
    assert not any(r.endpoint in ("check-access", "invite") for r in platform.requests)


def test_a_webhook_job_without_an_admin_fails_at_once(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = platform.installation.id
    install(platform, store, clock)
    job = store.create_job(iid, source="webhook", dry_run=True, created_by=None, emails=["a@b.co"])
    assert make_worker(platform, store, session, clock).run_once()
    failed = store.job(iid, job.id, items=False)
    assert failed is not None and failed.state == "failed" and failed.counts.failed == 1
    entries, _ = store.list_audit(iid, 10)
    assert [(e.action, e.actor) for e in entries] == [("invite.dryRun", "webhook")]


def test_the_worker_thread_finishes_jobs_and_stops(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    install(platform, store, clock)
    finished = threading.Event()
    original = store.finish_job

    def finish_job(*args: Any, **kw: Any) -> bool:
        ok = original(*args, **kw)
        finished.set()
        return ok

    store.finish_job = finish_job  # type: ignore[method-assign]
    worker = make_worker(platform, store, session, clock, poll_seconds=0.05)
    job = store.create_job(
        iid,
        source="panel",
        dry_run=False,
        created_by=site.admin_id,
        emails=["thread.hire@example.com"],
    )
    worker.start()
    try:
        assert finished.wait(30)
    finally:
        worker.stop()
    done = store.job(iid, job.id, items=False)
    assert done is not None and done.state == "done" and done.counts.invited == 1


def test_a_stale_cached_token_is_dropped_and_minted_again_once(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    """After a ./dev restart the cached offline token is unknown to the platform: Confluence
    answers 401, the worker mints a new token and the job goes on in the same step."""
    site = platform.installation.site
    iid = platform.installation.id
    install(platform, store, clock)
    store.save_offline_token(iid, site.admin_id, "usr.from-before-a-restart", clock() + 3000)
    new = [f"stale.hire{n}@example.com" for n in range(3)]
    job = store.create_job(
        iid, source="webhook", dry_run=False, created_by=site.admin_id, emails=new
    )

    assert make_worker(platform, store, session, clock).run_once()
    done = store.job(iid, job.id)
    assert done is not None and done.state == "done" and done.counts.invited == 3
    assert done.items is not None and all(i.error is None for i in done.items)
    checks = [r for r in platform.requests if r.endpoint == "check-access"]
    assert [(r.status, r.account_id) for r in checks] == [(401, None), (200, site.admin_id)]
    assert [r.account_id for r in platform.requests if r.endpoint == "graphql"] == ["system"]
    cached = store.offline_token(iid, site.admin_id)
    assert cached is not None and cached[0] != "usr.from-before-a-restart"
    health = store.installation_health(iid)
    assert health is not None and health.accounts_refused == ()  # the success reset the count


def test_a_token_refused_again_after_renewal_fails_the_items(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    install(platform, store, clock)
    platform.faults.add("check-access", "401", times=None)
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=site.admin_id, emails=["a@example.com"]
    )
    assert make_worker(platform, store, session, clock).run_once()
    done = store.job(iid, job.id)
    assert done is not None and done.state == "done" and done.items is not None
    assert [(i.outcome, i.error) for i in done.items] == [("failed", "not_permitted")]
    assert len([r for r in platform.requests if r.endpoint == "check-access"]) == 2
    assert len([r for r in platform.requests if r.endpoint == "graphql"]) == 2  # mint + renew


def test_a_job_whose_tokens_are_refused_in_both_forms_fails_with_the_gateways_reason(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    platform.context_ari = "none"
    site = platform.installation.site
    iid = platform.installation.id
    install(platform, store, clock)
    worker = make_worker(platform, store, session, clock)
    job = store.create_job(
        iid, source="webhook", dry_run=False, created_by=site.admin_id, emails=["a@example.com"]
    )
    assert worker.run_once()
    clock.advance(24 * 3600)
    install(platform, store, clock)  # a scheduled trigger brought a fresh system token
    assert worker.run_once()
    failed = store.job(iid, job.id)
    assert failed is not None and failed.state == "failed" and failed.items is not None
    (item,) = failed.items
    assert item.error is not None and item.error.startswith("no_token: ")
    assert "site form: Could not load permissions for app user" in item.error
    assert "workspace form: Could not load permissions for app user" in item.error
    health = store.installation_health(iid)
    assert health is not None and health.offline_token_error == item.error.removeprefix(
        "no_token: "
    )
