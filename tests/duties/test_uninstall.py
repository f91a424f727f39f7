"""Forge's preUninstall trigger (``POST /forge/uninstall``, docs/contract.md §7) on SQLite and
PostgreSQL: only that trigger may call it; it answers at once, stops the installation (tokens and
webhook secret dropped: the webhook answers 404), cancels its queued and running jobs, queues the
erasure of its personal data (done by the worker once the jobs ended, keeping counts), is idempotent
under redelivery, and a later ``installed`` event starts the installation afresh."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from access_desk.duties.uninstall import Erasures
from access_desk.store import ERASED, Store
from simulator import Platform
from simulator.triggers import LIFECYCLE_TRIGGER, SCHEDULED_TRIGGER, UNINSTALL_TRIGGER
from tests.conftest import Backend


@pytest.fixture()
def backend(backend_on_each_db: Backend) -> Backend:
    return backend_on_each_db


def store_of(backend: Backend) -> Store:
    found = backend.client.application.extensions["access_desk"].store
    assert isinstance(found, Store)
    return found


def uninstall(backend: Backend, platform: Platform, **kwargs: Any) -> Any:
    headers = platform.trigger_headers(platform.installation, *UNINSTALL_TRIGGER, system=False)
    return backend.client.post("/forge/uninstall", json={"payload": {}}, headers=headers, **kwargs)


def deliver(backend: Backend, platform: Platform, secret: str, emails: list[str]) -> Any:
    body = json.dumps({"type": "access.invite", "data": {"emails": emails}})
    msg_id = f"msg_{time.monotonic_ns()}"
    now = time.time()
    signed = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, UTC), body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signed,
        "content-type": "application/json",
    }
    return backend.client.post(
        f"/webhooks/{platform.installation.uuid}", data=body, headers=headers
    )


def test_the_uninstall_trigger_stops_the_webhook_and_cancels_a_running_job(
    backend: Backend, platform: Platform
) -> None:
    store, iid = store_of(backend), platform.installation.id
    secret = backend.call("rotateWebhookSecret").get_json()["secret"]
    running = deliver(backend, platform, secret, ["one@new.example", "two@new.example"])
    queued = deliver(backend, platform, secret, ["three@new.example"])
    assert running.status_code == queued.status_code == 202
    claimed = store.claim_job("worker-elsewhere", 60, job_id=running.get_json()["jobId"])
    assert claimed is not None and claimed.state == "running"  # a worker holds it
    store.save_offline_token(iid, platform.installation.site.admin_id, "offline", time.time() + 60)

    answer = uninstall(backend, platform)

    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}
    refused = deliver(backend, platform, secret, ["four@new.example"])
    assert refused.status_code == 404 and refused.get_json()["error"] == "not_found"
    installation = store.installation(iid)
    assert installation is not None and installation.system_token is None
    assert installation.webhook_admin is None
    assert store.offline_token(iid, platform.installation.site.admin_id) is None
    assert not store.webhook_state(iid).configured
    ended = store.job(iid, queued.get_json()["jobId"], items=False)
    assert ended is not None and ended.state == "failed"  # nobody held it: ended at once
    held = store.job(iid, claimed.id, items=False)
    assert held is not None and held.state == "running"  # its chunk in flight goes on
    assert store.cancel_requested(iid, claimed.id)  # and the holder sees the cancel
    assert store.release_job(claimed.id, "worker-elsewhere")
    stopped = store.job(iid, claimed.id)
    assert stopped is not None and stopped.state == "failed"
    assert {i.outcome for i in stopped.items or ()} != {"pending"}
    entries = [e for e in store.list_audit(iid, 100)[0] if e.action == "app.uninstalled"]
    assert [(e.actor, e.outcome) for e in entries] == [("forge", {"jobsCancelled": 2})]


def test_a_redelivered_uninstall_changes_nothing_more(backend: Backend, platform: Platform) -> None:
    store, iid = store_of(backend), platform.installation.id
    backend.call("whoami")
    assert uninstall(backend, platform).status_code == 200
    assert uninstall(backend, platform).status_code == 200
    entries = [e for e in store.list_audit(iid, 100)[0] if e.action == "app.uninstalled"]
    assert len(entries) == 1
    assert store.is_uninstalled(iid)


def test_an_installation_never_stored_is_answered_too(backend: Backend, platform: Platform) -> None:
    assert uninstall(backend, platform).status_code == 200
    assert store_of(backend).installation(platform.installation.id) is None


@pytest.mark.parametrize("caller", ["a user's panel call", "another trigger"])
def test_only_the_pre_uninstall_trigger_may_call_it(
    backend: Backend, platform: Platform, caller: str
) -> None:
    store, inst = store_of(backend), platform.installation
    backend.call("whoami")
    if caller == "a user's panel call":
        headers = platform.invocation_headers(inst, inst.site.admin_id)
    else:
        headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER, system=False)
    answer = backend.client.post("/forge/uninstall", json={}, headers=headers)
    assert answer.status_code == 403 and answer.get_json()["error"] == "not_allowed"
    installation = store.installation(inst.id)
    assert installation is not None and installation.system_token is not None
    assert not store.is_uninstalled(inst.id)


def test_the_erasure_waits_for_a_running_job_then_keeps_only_counts(
    backend: Backend, platform: Platform
) -> None:
    store, iid = store_of(backend), platform.installation.id
    site = platform.installation.site
    done = backend.call("inviteEmails", {"emails": [site.emails[site.user_ids[0]]], "dryRun": True})
    job_id = done.get_json()["job"]["id"]
    backend.call("getJob", {"jobId": job_id})  # a panel job advances while polled: it finishes
    running = store.create_job(
        iid, source="panel", dry_run=False, created_by=site.admin_id, emails=["x@new.example"]
    )
    assert store.claim_job("worker-elsewhere", 60, job_id=running.id) is not None
    backend.call("lookupUsers", {"accountIds": site.user_ids[:3]})
    backend.call("rotateWebhookSecret")
    assert store.personal_data_accounts(iid)
    assert uninstall(backend, platform).status_code == 200

    erasures = Erasures(store, retry_seconds=0.0)
    assert erasures.run_due()  # a job is still held: put off
    assert store.personal_data_accounts(iid) != []
    store.release_job(running.id, "worker-elsewhere")  # its holder lets go: it ends
    assert erasures.run_due()
    assert not erasures.run_due()  # done once

    assert store.personal_data_accounts(iid) == []
    for job in store.list_jobs(iid, 50)[0]:
        kept = store.job(iid, job.id)
        assert kept is not None and kept.total == len(kept.items or ())  # counts stay
        assert all(i.email.startswith("redacted-") for i in kept.items or ())
    entries = store.list_audit(iid, 100)[0]
    assert entries and all(e.actor in ("forge", "privacy", ERASED) for e in entries)
    assert all(e.subjects == () for e in entries)
    assert store.cached_users(iid, site.admin_id, site.user_ids[:3], 3600) == {}


def test_a_later_installed_event_starts_the_installation_afresh(
    backend: Backend, platform: Platform
) -> None:
    store, inst = store_of(backend), platform.installation
    backend.call("rotateWebhookSecret")
    assert uninstall(backend, platform).status_code == 200
    backend.call("whoami")  # a stray call brings a system token: it is not stored
    installation = store.installation(inst.id)
    assert installation is not None and installation.system_token is None

    event = {"payload": {"id": inst.uuid, "installerAccountId": inst.site.admin_id}}
    headers = platform.trigger_headers(inst, *LIFECYCLE_TRIGGER)
    assert backend.client.post("/forge/lifecycle", json=event, headers=headers).status_code == 200

    assert not store.is_uninstalled(inst.id)
    installation = store.installation(inst.id)
    assert installation is not None and installation.system_token is not None
    secret = backend.call("rotateWebhookSecret").get_json()["secret"]
    assert deliver(backend, platform, secret, ["again@new.example"]).status_code == 202
