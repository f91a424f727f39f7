"""The backend of the panel's third round (issue 19 items 2, 3, 5, 8, 11; issue 16 item 4), through
the HTTP edge (the in-process app) and the store, on every database of ``tests.support.stores.BACKENDS``:

- ``retryJob`` makes one retry job, whatever the number of calls at once, and never queues an
  address an active job of the installation holds;
- a cancelled item is its own outcome and count, and migration 0009 turns the old form into it;
- ``listAudit``'s ``subject`` finds every address a job touched; ``source`` filters; a webhook
  delivery is one entry;
- refused webhook deliveries are kept (bounded) for known installations only, and the answer does
  not change; ``sendTestWebhook`` goes through the real route;
- a job says how many items are checked and why it waits.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any, cast

import requests
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from access_desk.store import Store, tables
from access_desk.store.deliveries import KEPT_REFUSALS
from handlers.refusals import RefusalNotes
from simulator import Platform
from tests.conftest import Backend
from tests.support.simulated import client
from tests.support.stores import KEY, Clock

A = "ari:cloud:ecosystem::installation/aaaaaaaa-0000-4000-8000-000000000001"


def store_of(backend: Backend) -> Store:
    found = backend.client.application.extensions["access_desk"].store
    assert isinstance(found, Store)
    return found


def new_emails(n: int, prefix: str = "hire") -> list[str]:
    return [f"{prefix}{i}@newcomers.example" for i in range(n)]


def queue(backend: Backend, emails: list[str], dry_run: bool = False) -> dict[str, Any]:
    response = backend.call("inviteEmails", {"emails": emails, "dryRun": dry_run})
    assert response.status_code == 200, response.get_json()
    job: dict[str, Any] = response.get_json()["job"]
    return job


def finish(backend: Backend, job_id: str, rounds: int = 200) -> dict[str, Any]:
    for _ in range(rounds):
        job: dict[str, Any] = backend.call("getJob", {"jobId": job_id}).get_json()["job"]
        if job["state"] in ("done", "failed"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


def advance(backend: Backend, platform: Platform, job_id: str) -> dict[str, Any]:
    """Run a job to its end as its admin, as the background worker would (webhook jobs advance
    only there)."""
    services = backend.client.application.extensions["access_desk"]
    inst = platform.installation
    with requests.Session() as session:
        acting = client(
            platform, session, inst.api_base_url, platform.user_token(inst, inst.site.admin_id)
        )
        for _ in range(50):
            job = services.runner.advance(
                inst.id, job_id, acting, worker_id="bg", budget_seconds=30
            )
            if not job.active:
                return dict(job.to_json(items=False))
    raise AssertionError(f"job {job_id} did not finish")


def invites_of(platform: Platform, since: int = 0) -> list[str]:
    return [
        e for r in platform.requests[since:] if r.endpoint == "invite" for e in r.body["emails"]
    ]


# -- retryJob: one retry job (issue 16 item 4) -----------------------------------------------------


def test_concurrent_and_repeated_retries_make_one_job_and_one_invitation_each(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    platform.faults.add("invite", "500", times=None)
    emails = new_emails(5)
    failed = finish(backend, queue(backend, emails)["id"])
    assert failed["counts"]["failed"] == 5
    platform.faults.clear()
    sent_before = len(platform.requests)
    app = backend.client.application
    start = threading.Barrier(3)
    answers: list[Any] = []

    def retry() -> None:
        client = app.test_client()
        headers = platform.invocation_headers(
            platform.installation, platform.installation.site.admin_id
        )
        start.wait()
        for _ in range(100):  # as the panel does, a 429 busy (one user's bound) is asked again
            answer = client.post(
                "/resolvers/retryJob", json={"jobId": failed["id"]}, headers=headers
            )
            if answer.status_code != 429:
                break
            time.sleep(0.02)
        answers.append(answer)

    threads = [threading.Thread(target=retry) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    answers.append(backend.call("retryJob", {"jobId": failed["id"]}))

    assert [a.status_code for a in answers] == [200] * 4, [a.get_json() for a in answers]
    made = {a.get_json()["job"]["id"] for a in answers}
    assert len(made) == 1
    jobs = backend.call("listJobs", {}).get_json()["jobs"]
    assert len(jobs) == 2
    assert next(j for j in jobs if j["id"] == failed["id"])["retriedAs"] in made
    done = finish(backend, made.pop())
    assert done["counts"]["invited"] == 5
    assert sorted(invites_of(platform, sent_before)) == sorted(emails)  # once each
    retries = backend.call("listAudit", {"action": "job.retry"}).get_json()["entries"]
    assert len(retries) == 1


def test_a_retry_leaves_out_addresses_an_active_job_holds(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    platform.faults.add("invite", "500", times=None)
    emails = new_emails(3)
    failed = finish(backend, queue(backend, emails)["id"])
    platform.faults.clear()
    running = queue(backend, [emails[0].upper(), "other@newcomers.example"])  # queued: active

    answer = backend.call("retryJob", {"jobId": failed["id"]})

    retry = answer.get_json()["job"]
    assert [i["email"] for i in retry["items"]] == emails[1:]
    entry = backend.call("listAudit", {"action": "job.retry"}).get_json()["entries"][0]
    assert entry["outcome"] == {
        "jobId": retry["id"],
        "retryOf": failed["id"],
        "emails": 2,
        "inOtherJobs": 1,
    }
    # Every address left is in an active job: nothing is made, and the job can be retried later.
    other = finish(backend, queue(backend, ["x@newcomers.example"])["id"])
    assert other["counts"]["invited"] == 1
    platform.faults.add("invite", "500", times=None)
    lone = finish(backend, queue(backend, ["lone@newcomers.example"])["id"])
    platform.faults.clear()
    queue(backend, ["lone@newcomers.example"])
    refused = backend.call("retryJob", {"jobId": lone["id"]})
    assert refused.status_code == 400
    assert refused.get_json()["details"] == {"jobId": "already in a running job"}
    assert backend.call("getJob", {"jobId": running["id"]}).status_code == 200
    loaded = store_of(backend).job(platform.installation.id, lone["id"], items=False)
    assert loaded is not None and loaded.retried_as is None


# -- cancelled: its own outcome (issue 19 item 3) ---------------------------------------------------


def test_a_cancelled_job_counts_cancelled_and_its_audit_says_so(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    job = queue(backend, new_emails(4))

    cancelled = backend.call("cancelJob", {"jobId": job["id"]}).get_json()["job"]

    assert cancelled["state"] == "failed"
    assert (cancelled["counts"]["cancelled"], cancelled["counts"]["failed"]) == (4, 0)
    assert {i["outcome"] for i in cancelled["items"]} == {"cancelled"}
    assert all("error" not in i for i in cancelled["items"])
    end = backend.call("listAudit", {"action": "invite"}).get_json()["entries"][0]
    assert (end["outcome"]["cancelled"], end["outcome"]["failed"]) == (4, 0)
    retry = backend.call("retryJob", {"jobId": job["id"]}).get_json()["job"]
    assert retry["total"] == 4  # "Invite the 4 not sent"


def test_migration_0009_turns_cancelled_failures_into_cancelled(db_url: str, clock: Clock) -> None:
    s = Store(db_url, KEY, clock=clock)
    emails = [f"p{n}@example.com" for n in range(121)]
    try:
        s.migrate("0005")
        with s.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (id, installation_id, kind, source, dry_run, state, "
                    "created_at, created_by, updated_at, total, pending, invited, "
                    "already_has_access, invalid, failed, error) VALUES ('j1', :a, 'invite', "
                    "'panel', false, 'failed', 1, 'admin', 2, 121, 0, 100, 0, 0, 21, 'cancelled')"
                ),
                {"a": A},
            )
            for n, email in enumerate(emails):
                outcome, error = ("invited", None) if n < 100 else ("failed", "cancelled")
                if n == 100:
                    error = "rejected: no"  # a real failure stays one
                conn.execute(
                    sa.text(
                        "INSERT INTO job_items (job_id, position, email, outcome, error, checked) "
                        "VALUES ('j1', :n, :e, :o, :err, true)"
                    ),
                    {"n": n, "e": email, "o": outcome, "err": error},
                )
            conn.execute(
                sa.insert(tables.audit).values(
                    installation_id=A,
                    at=2,
                    actor="admin",
                    action="invite",
                    source="panel",
                    subjects=emails[:100],
                    outcome={
                        "jobId": "j1",
                        "state": "failed",
                        "invited": 100,
                        "failed": 21,
                        "error": "cancelled",
                    },  # fmt: skip
                )
            )
        s.migrate()
        job = s.job(A, "j1")
        assert job is not None and job.items is not None
        assert (job.counts.failed, job.counts.cancelled, job.checked) == (1, 20, 121)
        assert [i.outcome for i in job.items[100:]] == ["failed"] + ["cancelled"] * 20
        assert job.items[101].error is None
        found, _ = s.list_audit(A, 10, subject="P120@example.com")
        assert len(found) == 1
        assert isinstance(found[0].outcome, dict)
        assert (found[0].outcome["failed"], found[0].outcome["cancelled"]) == (1, 20)
    finally:
        s.close()


# -- audit: every address, one entry per delivery, source (issue 19 items 2 and 11) ----------------


def test_a_job_of_121_is_found_by_its_last_address(store: Store) -> None:
    emails = [f"new.hire{n}@example.com" for n in range(121)]
    job = store.create_job(A, source="panel", dry_run=False, created_by="admin", emails=emails)
    assert store.claim_job("w", 60) is not None
    assert store.finish_job(A, job.id, "w", state="failed", error="boom")
    store.release_job(job.id, "w")
    made = store.create_retry_job(A, job.id, created_by="admin")
    assert made is not None and made.job is not None

    found, _ = store.list_audit(A, 10, subject="New.Hire120@example.com")

    assert [e.action for e in found] == ["job.retry", "invite"]
    assert all(len(e.subjects) == 100 for e in found)  # shown: the first 100
    assert store.list_audit(A, 10, subject="new.hire120@example.com", source="webhook")[0] == []


def signed(
    secret: str, body: dict[str, Any], msg_id: str, at: datetime | None = None
) -> tuple[str, dict[str, str]]:
    at = at or datetime.now(tz=UTC)
    data = json.dumps(body)
    return data, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, data),
        "content-type": "application/json",
    }


def test_a_webhook_delivery_is_one_audit_entry_by_the_webhook(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    rotated = backend.call("rotateWebhookSecret", {}).get_json()
    path = "/webhooks/" + platform.installation.uuid
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"], "dryRun": True}}
    data, headers = signed(rotated["secret"], body, "msg_one")
    job_id = backend.client.post(path, data=data, headers=headers).get_json()["jobId"]
    backend.client.post(path, data=data, headers=headers)  # a repeat: nothing new
    advance(backend, platform, job_id)

    entries = backend.call("listAudit", {"source": "webhook"}).get_json()["entries"]

    assert [(e["action"], e["actor"]) for e in entries] == [
        ("invite.dryRun", platform.installation.site.admin_id)
    ]
    assert entries[0]["outcome"]["webhookId"] == "msg_one"
    assert entries[0]["outcome"]["jobId"] == job_id
    everything = backend.call("listAudit", {}).get_json()["entries"]
    assert [e["action"] for e in everything] == ["invite.dryRun", "webhook.rotateSecret"]
    assert backend.call("listAudit", {"source": "forge"}).get_json()["entries"] == []


# -- webhook refusals and the test delivery (issue 19 item 8) --------------------------------------


def test_refused_deliveries_are_kept_for_known_installations_only(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    rotated = backend.call("rotateWebhookSecret", {}).get_json()
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"]}}
    known = "/webhooks/" + platform.installation.uuid
    unknown = "/webhooks/00000000-0000-4000-8000-000000000000"
    wrong = "whsec_" + "A" * 43 + "="
    data, bad = signed(wrong, body, "msg_bad_sig")
    stale_at = datetime.fromtimestamp(datetime.now(tz=UTC).timestamp() - 3600, tz=UTC)
    _, stale = signed(rotated["secret"], body, "msg_stale", stale_at)

    def post(path: str, **kw: Any) -> Any:  # buffered: the answer is closed, as a server does
        return backend.client.post(path, buffered=True, **kw)

    answers = [
        post(known, data=data, headers=bad),
        post(known, data=data, headers=stale),
        post(known, data=data, headers={"content-type": "application/json"}),
        post(unknown, data=data, headers=bad),
    ]
    backend.client.application.extensions["access_desk"].refusals.flush()  # written off the path
    assert {(a.status_code, a.get_data(as_text=True)) for a in answers} == {
        (answers[0].status_code, answers[0].get_data(as_text=True))
    }
    assert answers[0].status_code == 401

    refusals = backend.call("webhookStatus", {}).get_json()["recentRefusals"]

    assert [(r["reason"], r["webhookId"]) for r in refusals] == [
        ("missing_headers", None),
        ("stale_timestamp", "msg_stale"),
        ("bad_signature", "msg_bad_sig"),
    ]
    assert "whsec_" not in json.dumps(refusals) and "access.invite" not in json.dumps(refusals)
    with store_of(backend).engine.connect() as conn:
        kept = conn.execute(sa.select(tables.webhook_refusals.c.installation_id)).scalars().all()
    assert set(kept) == {platform.installation.id}  # the unknown installation left nothing
    other = platform.add_installation()
    theirs = backend.call("webhookStatus", {}, account=other.site.admin_id, installation=other)
    assert theirs.get_json()["recentRefusals"] == []


def test_a_flood_of_refusals_keeps_the_last_few(store: Store, clock: Clock) -> None:
    for n in range(KEPT_REFUSALS + 5):
        assert store.record_refusal(A, "bad_signature", f"msg_{n}")
        clock.advance(2)
    kept = store.recent_refusals(A, 100)
    assert len(kept) == KEPT_REFUSALS
    assert kept[0].webhook_id == f"msg_{KEPT_REFUSALS + 4}" and kept[-1].webhook_id == "msg_5"
    # A flood: all kept refusals came in the last minute, so more are not written.
    for n in range(KEPT_REFUSALS):
        store.record_refusal(A, "bad_signature", f"burst_{n}")
    assert not store.record_refusal(A, "bad_signature", "one_too_many")
    assert len(store.recent_refusals(A, 100)) == KEPT_REFUSALS
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.count()).select_from(tables.webhook_refusals)
        ).scalar()
    assert rows == KEPT_REFUSALS


class SlowStore:
    """A store whose writes of refusals wait until ``gate`` opens."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.kept: list[str | None] = []

    def record_refusal(self, installation_id: str, reason: str, webhook_id: str | None) -> bool:
        self.gate.wait(5)
        self.kept.append(webhook_id)
        return True


def test_refusals_are_written_off_the_request_path_and_a_flood_is_dropped() -> None:
    slow = SlowStore()
    notes = RefusalNotes(cast(Store, slow), capacity=2, delay_seconds=0, idle_seconds=0.05)
    for n in range(6):
        notes.note(A, "bad_signature", f"m{n}")  # returns at once: the store is not waited for
    assert slow.kept == []
    slow.gate.set()
    notes.flush()
    # The queue holds 2 (and the thread a batch it took): the rest of the flood was dropped.
    assert slow.kept == [f"m{n}" for n in range(len(slow.kept))] and 2 <= len(slow.kept) <= 4
    deadline = time.monotonic() + 5
    while any(t.name == "refusals" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the refusals thread did not end when idle"
        time.sleep(0.02)
    notes.note(A, "stale_timestamp", "later")  # a new thread for the next refusal
    notes.flush()
    assert slow.kept[-1] == "later"


def test_a_flood_of_refusals_costs_the_store_nothing_past_the_kept_ones() -> None:
    slow = SlowStore()
    slow.gate.set()
    now = [100.0]
    notes = RefusalNotes(
        cast(Store, slow), delay_seconds=0, idle_seconds=0.05, clock=lambda: now[0]
    )
    for n in range(KEPT_REFUSALS + 10):
        notes.note(A, "bad_signature", f"a{n}")
        now[0] += 0.5
    notes.note("other-installation", "bad_signature", "b0")  # another installation is not held
    notes.flush()
    assert slow.kept[:KEPT_REFUSALS] == [f"a{n}" for n in range(KEPT_REFUSALS)]
    assert slow.kept[KEPT_REFUSALS:] == ["b0"]
    now[0] += 60  # a minute later, refusals are kept again
    notes.note(A, "bad_signature", "later")
    notes.flush()
    assert slow.kept[-1] == "later"


def test_send_test_webhook_signs_and_sends_through_the_real_route(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    before = backend.call("sendTestWebhook", {})
    assert before.status_code == 400 and before.get_json()["details"] == {"secret": "not set"}
    user = platform.installation.site.user_ids[0]
    assert backend.call("sendTestWebhook", {}, account=user).status_code == 403
    assert backend.call("sendTestWebhook", {"url": "http://evil.example/"}).status_code == 400
    backend.call("rotateWebhookSecret", {})

    answer = backend.call("sendTestWebhook", {}).get_json()

    assert answer["status"] == 202 and answer["email"] == "access-desk-webhook-test@example.com"
    assert answer["url"].endswith("/webhooks/" + platform.installation.uuid)
    job = advance(backend, platform, answer["answer"]["jobId"])
    assert (job["source"], job["dryRun"], job["total"]) == ("webhook", True, 1)
    assert not platform.installation.site.invited
    status = backend.call("webhookStatus", {}).get_json()
    assert status["recentDeliveries"][0]["webhookId"] == answer["webhookId"]
    assert status["recentRefusals"] == []
    test_entry = backend.call("listAudit", {"action": "webhook.test"}).get_json()["entries"][0]
    assert test_entry["actor"] == platform.installation.site.admin_id
    assert test_entry["outcome"]["jobId"] == job["id"]


# -- progress: checked and why a job waits (issue 19 item 5) ---------------------------------------


def test_a_job_counts_its_checked_items(store: Store) -> None:
    emails = new_emails(250)
    job = store.create_job(A, source="panel", dry_run=True, created_by="admin", emails=emails)
    assert store.claim_job("w", 60) is not None
    outcomes: dict[str, tuple[str, str | None]] = {e: ("pending", None) for e in emails[:90]}
    outcomes.update({e: ("invalid", None) for e in emails[90:100]})
    assert store.record_outcomes(A, job.id, "w", outcomes, checked=True)
    loaded = store.job(A, job.id, items=False)
    assert loaded is not None and loaded.checked == 100
    assert loaded.to_json(items=False)["checked"] == 100


def test_a_waiting_job_says_why(backend_on_each_db: Backend, platform: Platform) -> None:
    backend = backend_on_each_db
    platform.faults.add("check-access", "429", times=1, retry_after=600)
    job = queue(backend, new_emails(250), dry_run=True)
    assert (job["checked"], job["waitReason"]) == (0, None)

    waiting = backend.call("getJob", {"jobId": job["id"]}).get_json()["job"]

    assert waiting["state"] == "running" and waiting["checked"] == 0
    assert waiting["notBefore"] is not None and waiting["waitReason"] == "rate_limited"
