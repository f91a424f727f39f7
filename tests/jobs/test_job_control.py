"""Cancelling and retrying jobs, and invitation follow-ups: jobs.JobRunner, worker.Worker and the store
against the simulated platform, on every database of ``tests.support.stores.BACKENDS``."""

from __future__ import annotations

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

HOUR = 3600.0
DAY = 24 * HOUR


@pytest.fixture()
def admin_client(platform: Platform, session: requests.Session) -> Callable[[], Client]:
    inst = platform.installation
    token = platform.user_token(inst, inst.site.admin_id)
    return lambda: client(platform, session, inst.api_base_url, token)


def make_worker(
    platform: Platform, store: Store, session: requests.Session, clock: Clock, **kw: Any
) -> Worker:
    def make_client(installation: Installation, token: str) -> Client:
        return client(platform, session, installation.api_base_url, token)

    store_installation(platform, store, clock() + 7 * DAY)
    tokens = OfflineTokens(session, platform.graphql_url, store, clock=clock)
    runner = JobRunner(store, chunk_size=kw.pop("chunk_size", 100))
    return Worker(store, runner, make_client, tokens, worker_id="bg", **kw)


def drain(worker: Worker, rounds: int = 200) -> None:
    for _ in range(rounds):
        if not worker.run_once():
            return
    raise AssertionError("the worker never ran out of work")


def run_to_end(runner: JobRunner, job: Job, make: Callable[[], Client]) -> Job:
    for _ in range(50):
        job = runner.advance(job.installation_id, job.id, make(), worker_id="w", budget_seconds=60)
        if not job.active:
            return job
    raise AssertionError("the job did not finish")


def items_of(store: Store, job: Job) -> list[tuple[str, str, str | None]]:
    loaded = store.job(job.installation_id, job.id)
    assert loaded is not None and loaded.items is not None
    return [(i.email, i.outcome, i.error) for i in loaded.items]


def requests_to(platform: Platform, endpoint: str) -> list[list[str]]:
    return [r.body["emails"] for r in platform.requests if r.endpoint == endpoint]


def new_emails(n: int, prefix: str = "hire") -> list[str]:
    return [f"{prefix}{i}@newcomers.example" for i in range(n)]


# -- cancelJob -------------------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_at_once(platform: Platform, store: Store) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=admin, emails=new_emails(3)
    )

    ended = JobRunner(store).cancel(iid, job.id, "admin-2", wait_seconds=5)

    assert ended.state == "failed" and ended.counts.cancelled == 3
    assert (ended.counts.failed, ended.counts.pending) == (0, 0)
    assert all(i[1:] == ("cancelled", None) for i in items_of(store, job))
    assert store.claim_job("bg", 60) is None  # nothing left to run
    entries, _ = store.list_audit(iid, 10)
    assert [(e.action, e.actor) for e in entries] == [("invite", admin), ("job.cancel", "admin-2")]
    assert entries[1].outcome == {"jobId": job.id}
    assert entries[0].outcome == {
        "jobId": job.id,
        "state": "failed",
        "error": "cancelled",
        "pending": 0,
        "invited": 0,
        "alreadyHasAccess": 0,
        "invalid": 0,
        "failed": 0,
        "cancelled": 3,
    }


def test_a_worker_stops_after_its_chunk_in_flight(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    emails = new_emails(350)
    job = store.create_job(iid, source="panel", dry_run=False, created_by=admin, emails=emails)
    runner = JobRunner(store)
    real = admin_client()
    answers: list[Job] = []

    class CancelledDuringSecondInvite:
        invites = 0

        def background(self) -> CancelledDuringSecondInvite:
            return self

        def check_access(self, chunk: Sequence[str]) -> AccessResult:
            return real.check_access(chunk)

        def invite(self, chunk: Sequence[str]) -> InviteResult:
            self.invites += 1
            if self.invites == 2:  # the admin presses Cancel while this chunk is in flight
                answers.append(runner.cancel(iid, job.id, admin, wait_seconds=0))
            return real.invite(chunk)

    after = runner.advance(
        iid, job.id, cast(Client, CancelledDuringSecondInvite()), worker_id="w", budget_seconds=60
    )

    assert answers[0].state == "running"  # the holder had not let go yet
    assert after.state == "failed" and after.lease_owner is None
    assert len(requests_to(platform, "invite")) == 2  # no chunk after the one in flight
    outcomes = Counter((o, e) for _, o, e in items_of(store, job))
    assert outcomes == {("invited", None): 200, ("cancelled", None): 150}
    assert store.claim_job("bg", 60) is None


def test_cancel_waits_for_the_holder_and_answers_the_ended_job(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=admin, emails=new_emails(250)
    )
    assert store.claim_job("holder", 60, installation_id=iid, job_id=job.id) is not None
    worker = JobRunner(store)

    def holder_steps(seconds: float) -> None:  # while cancel waits, the holder works and lets go
        store.release_job(job.id, "holder")

    answer = JobRunner(store, sleep=holder_steps).cancel(iid, job.id, admin, wait_seconds=5)

    assert answer.state == "failed" and answer.counts.cancelled == 250
    assert run_to_end(worker, answer, admin_client).state == "failed"
    assert requests_to(platform, "check-access") == []


def test_a_cancel_during_a_rate_limit_wait_ends_the_job_at_once(
    platform: Platform, store: Store, admin_client: Callable[[], Client], clock: Clock
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=admin, emails=new_emails(5)
    )
    platform.faults.add("invite", "429", times=1, retry_after=600)
    runner = JobRunner(store)
    waiting = runner.advance(iid, job.id, admin_client(), worker_id="w", budget_seconds=60)
    assert waiting.state == "running" and waiting.not_before == clock() + 600

    ended = runner.cancel(iid, job.id, admin, wait_seconds=5)

    assert ended.state == "failed" and ended.counts.cancelled == 5


def test_a_crashed_holders_job_ends_when_its_lease_runs_out(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=admin, emails=new_emails(4)
    )
    assert store.claim_job("crashed", 60, installation_id=iid, job_id=job.id) is not None

    answer = JobRunner(store, clock=clock, sleep=clock.advance).cancel(
        iid, job.id, admin, wait_seconds=2
    )
    assert answer.state == "running"  # the lease still holds

    worker = make_worker(platform, store, session, clock)
    assert worker.run_once() is False
    clock.advance(60)
    assert worker.run_once() is True
    ended = store.job(iid, job.id, items=False)
    assert ended is not None and ended.state == "failed" and ended.counts.cancelled == 4
    assert requests_to(platform, "check-access") == []


def test_cancelling_a_dry_run_keeps_what_it_checked(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=True, created_by=admin, emails=new_emails(150)
    )
    runner = JobRunner(store, chunk_size=100)
    real = admin_client()

    class CancelledDuringFirstCheck:
        def background(self) -> CancelledDuringFirstCheck:
            return self

        def check_access(self, chunk: Sequence[str]) -> AccessResult:
            runner.cancel(iid, job.id, admin, wait_seconds=0)
            return real.check_access(chunk)

    runner.advance(
        iid, job.id, cast(Client, CancelledDuringFirstCheck()), worker_id="w", budget_seconds=60
    )

    outcomes = Counter((o, e) for _, o, e in items_of(store, job))
    assert outcomes == {("pending", None): 100, ("cancelled", None): 50}


def test_cancelling_a_finished_job_changes_nothing(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=True, created_by=admin, emails=new_emails(2)
    )
    done = run_to_end(JobRunner(store), job, admin_client)
    before = store.list_audit(iid, 10)[0]

    again = JobRunner(store).cancel(iid, job.id, admin, wait_seconds=5)

    assert again == done and again.state == "done"
    assert store.list_audit(iid, 10)[0] == before


def test_cancelling_another_installations_job_is_not_found(
    platform: Platform, store: Store
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=admin, emails=new_emails(1)
    )
    with pytest.raises(JobNotFound):
        JobRunner(store).cancel(
            "ari:cloud:ecosystem::installation/other", job.id, admin, wait_seconds=1
        )
    kept = store.job(iid, job.id, items=False)
    assert kept is not None and kept.state == "queued"
    assert store.list_audit("ari:cloud:ecosystem::installation/other", 10)[0] == []


# -- retryJob --------------------------------------------------------------------------------------


def test_a_retry_job_holds_the_failed_items_and_is_linked_in_the_audit(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    emails = new_emails(3) + ["no.such.mailbox@example"]
    job = store.create_job(iid, source="webhook", dry_run=True, created_by=admin, emails=emails)
    platform.faults.add("check-access", "500", times=None)
    failed = run_to_end(JobRunner(store, give_up_seconds=0), job, admin_client)
    assert failed.counts.failed == 4
    platform.faults.clear()

    made = store.create_retry_job(iid, job.id, created_by="admin-2")

    assert made is not None and made.new and made.job is not None
    retry = made.job
    assert retry.id != job.id
    assert (retry.source, retry.dry_run, retry.created_by) == ("webhook", True, "admin-2")
    assert [i.email for i in retry.items or ()] == emails and retry.state == "queued"
    entries, _ = store.list_audit(iid, 10)
    assert entries[0].action == "job.retry" and entries[0].actor == "admin-2"
    assert entries[0].outcome == {"jobId": retry.id, "retryOf": job.id, "emails": 4}
    assert list(entries[0].subjects) == emails


def test_a_retry_takes_only_the_failed_and_cancelled_items(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    has = platform.installation.site.users_with_access_emails()[0]
    emails = [has, "not an email", *new_emails(3)]
    job = store.create_job(iid, source="panel", dry_run=False, created_by=admin, emails=emails)
    ticks = iter(range(0, 10_000, 10))  # every clock reading is 10 s later: one chunk per step
    runner = JobRunner(store, clock=lambda: float(next(ticks)), chunk_size=2)
    runner.advance(iid, job.id, admin_client(), worker_id="w", budget_seconds=15)
    ended = runner.cancel(iid, job.id, admin, wait_seconds=0)
    assert ended.state == "failed"

    made = store.create_retry_job(iid, job.id, created_by=admin)

    assert made is not None and made.job is not None
    assert [i.email for i in made.job.items or ()] == new_emails(3)
    assert store.create_retry_job(iid, "no-such-job", created_by=admin) is None


def test_nothing_to_retry(
    platform: Platform, store: Store, admin_client: Callable[[], Client]
) -> None:
    iid, admin = platform.installation.id, platform.installation.site.admin_id
    job = store.create_job(
        iid, source="panel", dry_run=True, created_by=admin, emails=new_emails(2)
    )
    run_to_end(JobRunner(store), job, admin_client)
    made = store.create_retry_job(iid, job.id, created_by=admin)
    assert made is not None and made.job is None and not made.new
    assert [j.id for j in store.list_jobs(iid, 10)[0]] == [job.id]
    assert store.job(iid, job.id).retried_as is None  # type: ignore[union-attr]


# -- follow-ups ------------------------------------------------------------------------------------


def test_an_invite_job_follows_up_after_an_hour_and_after_a_day(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    site.invite_delay = 10 * DAY  # nobody joins on their own
    has = site.users_with_access_emails()[0]
    emails = [has, *new_emails(230)]
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=site.admin_id, emails=emails
    )
    worker = make_worker(platform, store, session, clock)
    drain(worker)
    done = store.job(iid, job.id)
    assert done is not None and done.state == "done" and done.counts.invited == 230
    assert done.follow_up is None and "followUp" not in done.to_json()
    assert all("joined" not in item for item in done.to_json()["items"])
    platform.clear_requests()

    clock.advance(HOUR - 5)
    assert worker.run_once() is False  # not yet
    for email in new_emails(230)[:7]:
        site.grant(email)
    clock.advance(10)
    drain(worker)

    first = store.job(iid, job.id)
    assert first is not None and first.follow_up is not None
    assert first.to_json()["followUp"] == {"checkedAt": first.to_json()["updatedAt"], "joined": 7}
    items = {i["email"]: i for i in first.to_json()["items"]}
    assert "joined" not in items[has]  # only invitees are followed up
    assert [e for e in new_emails(230) if items[e]["joined"]] == new_emails(230)[:7]
    assert all(items[e]["joined"] is False for e in new_emails(230)[7:])
    checks = [r for r in platform.requests if r.endpoint == "check-access"]
    assert [len(r.body["emails"]) for r in checks] == [100, 100, 30]
    assert {r.account_id for r in checks} == {site.admin_id}
    listed = store.list_jobs(iid, 10)[0][0]
    assert listed.to_json(items=False)["followUp"]["joined"] == 7
    platform.clear_requests()

    for email in new_emails(230)[7:10]:
        site.grant(email)
    clock.advance(DAY - HOUR - 10)
    assert worker.run_once() is False
    clock.advance(20)
    drain(worker)

    second = store.job(iid, job.id)
    assert second is not None and second.follow_up is not None and second.follow_up.joined == 10
    checked = [e for emails_ in requests_to(platform, "check-access") for e in emails_]
    assert sorted(checked) == sorted(new_emails(230)[7:])  # who had joined is not asked again
    clock.advance(30 * DAY)
    assert worker.run_once() is False  # two follow-ups, no more


def test_follow_ups_come_when_the_store_is_told(
    platform: Platform, db_url: str, session: requests.Session, clock: Clock
) -> None:
    """``follow_up_after`` (FOLLOW_UP_DELAYS_SECONDS) replaces the hour and the day."""
    store = Store(db_url, KEY, clock=clock, follow_up_after=(5.0, 60.0))
    store.migrate()
    try:
        site = platform.installation.site
        iid = platform.installation.id
        site.invite_delay = 10 * DAY
        job = store.create_job(
            iid, source="panel", dry_run=False, created_by=site.admin_id, emails=new_emails(3)
        )
        worker = make_worker(platform, store, session, clock)
        drain(worker)
        site.grant(new_emails(3)[0])
        clock.advance(4)
        assert worker.run_once() is False
        clock.advance(2)
        drain(worker)
        first = store.job(iid, job.id)
        assert first is not None and first.follow_up is not None and first.follow_up.joined == 1
        site.grant(new_emails(3)[1])
        clock.advance(50)
        assert worker.run_once() is False
        clock.advance(10)
        drain(worker)
        second = store.job(iid, job.id)
        assert second is not None and second.follow_up is not None
        assert second.follow_up.joined == 2
        clock.advance(DAY)
        assert worker.run_once() is False
    finally:
        store.close()


def test_no_follow_up_for_a_dry_run_or_a_job_that_invited_nobody(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    store.create_job(
        iid, source="panel", dry_run=True, created_by=site.admin_id, emails=new_emails(3)
    )
    has = site.users_with_access_emails()[:2]
    store.create_job(iid, source="panel", dry_run=False, created_by=site.admin_id, emails=has)
    worker = make_worker(platform, store, session, clock)
    drain(worker)
    platform.clear_requests()
    clock.advance(2 * DAY)
    assert worker.run_once() is False
    assert platform.requests == []


def test_a_follow_up_resumes_after_a_crash_without_checking_anyone_twice(
    platform: Platform, store: Store, db_url: str, admin_client: Callable[[], Client], clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    site.invite_delay = 10 * DAY
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=site.admin_id, emails=new_emails(250)
    )
    run_to_end(JobRunner(store), job, admin_client)
    clock.advance(HOUR)
    platform.clear_requests()
    real = admin_client()

    class Crash(Exception):
        pass

    class CrashesOnSecondCheck:
        checks = 0

        def background(self) -> CrashesOnSecondCheck:
            return self

        def check_access(self, chunk: Sequence[str]) -> AccessResult:
            self.checks += 1
            if self.checks == 2:
                raise Crash()
            return real.check_access(chunk)

    class DeadStore(Store):
        def release_job(
            self,
            job_id: str,
            worker_id: str,
            *,
            not_before: float | None = None,
            wait_reason: str | None = None,
        ) -> bool:
            return False

    dead = DeadStore(db_url, KEY, clock=clock)
    try:
        with pytest.raises(Crash):
            JobRunner(dead).advance(
                iid, job.id, cast(Client, CrashesOnSecondCheck()), worker_id="A", budget_seconds=60
            )
    finally:
        dead.close()
    clock.advance(61)
    resumed = JobRunner(store).advance(
        iid, job.id, admin_client(), worker_id="B", budget_seconds=60
    )

    assert resumed.follow_up is not None and resumed.follow_up.joined == 0
    checked = [e for emails_ in requests_to(platform, "check-access") for e in emails_]
    assert Counter(checked) == Counter(new_emails(250))


def test_a_follow_up_waits_out_a_rate_limit(
    platform: Platform, store: Store, admin_client: Callable[[], Client], clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    job = store.create_job(
        iid, source="panel", dry_run=False, created_by=site.admin_id, emails=new_emails(3)
    )
    runner = JobRunner(store)
    run_to_end(runner, job, admin_client)
    clock.advance(HOUR)
    platform.faults.add("check-access", "429", times=1, retry_after=300)

    waiting = runner.advance(iid, job.id, admin_client(), worker_id="w", budget_seconds=60)

    assert waiting.follow_up is None and waiting.not_before == clock() + 300
    assert store.claim_job("w", 60) is None
    for email in new_emails(3):
        site.grant(email)
    clock.advance(300)
    checked = runner.advance(iid, job.id, admin_client(), worker_id="w", budget_seconds=60)
    assert checked.follow_up is not None and checked.follow_up.joined == 3


def test_a_follow_up_nobody_can_act_for_is_skipped_after_a_day(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    job = store.create_job(
        iid, source="webhook", dry_run=False, created_by=site.admin_id, emails=new_emails(2)
    )
    worker = make_worker(platform, store, session, clock, token_retry_seconds=600)
    drain(worker)
    platform.faults.add("graphql", "500", times=None)
    store.save_offline_token(iid, site.admin_id, "expired", clock() - 1)
    clock.advance(HOUR)
    assert worker.run_once() is True
    waiting = store.job(iid, job.id, items=False)
    assert waiting is not None and waiting.follow_up is None and waiting.not_before == clock() + 600
    clock.advance(DAY)
    drain(worker)  # the first follow-up is skipped, the second is due and waits
    after = store.job(iid, job.id, items=False)
    assert after is not None and after.follow_up is None and after.follow_up_due is not None
    clock.advance(DAY)
    drain(worker)
    gone = store.job(iid, job.id, items=False)
    assert gone is not None and gone.follow_up_due is None
    clock.advance(DAY)
    assert worker.run_once() is False


def test_a_follow_up_with_a_stale_token_mints_a_new_one_and_goes_on(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    site = platform.installation.site
    iid = platform.installation.id
    site.invite_delay = 10 * DAY
    job = store.create_job(
        iid, source="webhook", dry_run=False, created_by=site.admin_id, emails=new_emails(3)
    )
    worker = make_worker(platform, store, session, clock)
    drain(worker)
    store.save_offline_token(iid, site.admin_id, "usr.from-before-a-restart", clock() + DAY)
    clock.advance(HOUR)
    platform.clear_requests()

    drain(worker)

    checks = [r for r in platform.requests if r.endpoint == "check-access"]
    assert [(r.status, r.account_id) for r in checks] == [(401, None), (200, site.admin_id)]
    followed = store.job(iid, job.id)
    assert followed is not None and followed.follow_up is not None
    assert followed.follow_up.joined == 0
    assert [i.joined for i in followed.items or ()] == [False, False, False]
