"""cancelJob, retryJob, webhookStatus and listAudit's filters through the HTTP edge (in-process app)
against the simulated platform."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook


def store_of(backend):
    return backend.client.application.extensions["access_desk"].store


def new_emails(n, prefix="hire"):
    return [f"{prefix}{i}@newcomers.example" for i in range(n)]


def queue(backend, emails, dry_run=False):
    response = backend.call("inviteEmails", {"emails": emails, "dryRun": dry_run})
    assert response.status_code == 200
    return response.get_json()["job"]


def finish(backend, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = backend.call("getJob", {"jobId": job_id}).get_json()["job"]
        if job["state"] in ("done", "failed"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


# -- cancelJob -------------------------------------------------------------------------------------


def test_cancel_a_queued_job(backend, platform):
    job = queue(backend, new_emails(3))
    response = backend.call("cancelJob", {"jobId": job["id"]})
    assert response.status_code == 200
    cancelled = response.get_json()["job"]
    assert cancelled["state"] == "failed" and cancelled["id"] == job["id"]
    assert cancelled["counts"]["cancelled"] == 3 and cancelled["counts"]["pending"] == 0
    assert cancelled["counts"]["failed"] == 0
    assert cancelled["items"] == [{"email": e, "outcome": "cancelled"} for e in new_emails(3)]
    assert not [r for r in platform.requests if r.endpoint in ("check-access", "invite")]
    entries = backend.call("listAudit", {"action": "job.cancel"}).get_json()["entries"]
    assert [(e["actor"], e["outcome"]) for e in entries] == [
        (platform.installation.site.admin_id, {"jobId": job["id"]})
    ]
    again = backend.call("cancelJob", {"jobId": job["id"]}).get_json()["job"]
    assert again == cancelled  # a finished job is answered as it is
    entries = backend.call("listAudit", {"action": "job.cancel"}).get_json()["entries"]
    assert len(entries) == 1


def test_cancel_a_running_job_stops_after_its_chunk_in_flight(worker_backend, platform):
    backend = worker_backend
    platform.faults.add("invite", "latency", times=None, delay=0.3)
    job = queue(backend, new_emails(600))
    store = store_of(backend)
    iid = platform.installation.id
    deadline = time.monotonic() + 30
    while store.job(iid, job["id"], items=False).counts.invited < 100:
        assert time.monotonic() < deadline, "the worker did not invite"
        time.sleep(0.02)

    cancelled = backend.call("cancelJob", {"jobId": job["id"]}).get_json()["job"]

    assert cancelled["state"] == "failed"
    invited = cancelled["counts"]["invited"]
    assert 100 <= invited < 600 and invited % 100 == 0
    assert cancelled["counts"]["cancelled"] == 600 - invited and cancelled["counts"]["failed"] == 0
    assert {i["outcome"] for i in cancelled["items"]} == {"invited", "cancelled"}
    sent = [r for r in platform.requests if r.endpoint == "invite"]
    time.sleep(0.5)
    assert [r for r in platform.requests if r.endpoint == "invite"] == sent
    assert sum(len(r.body["emails"]) for r in sent) == invited


def test_cancel_errors(backend, platform):
    job = queue(backend, new_emails(1))
    other = platform.add_installation()
    response = backend.call(
        "cancelJob", {"jobId": job["id"]}, account=other.site.admin_id, installation=other
    )
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    user = platform.installation.site.user_ids[0]
    response = backend.call("cancelJob", {"jobId": job["id"]}, account=user)
    assert response.status_code == 403 and response.get_json()["error"] == "not_allowed"
    assert backend.call("cancelJob", {"jobId": "nope"}).status_code == 404
    for payload, field in [({}, "jobId"), ({"jobId": 7}, "jobId"), ({"jobId": "x", "y": 1}, "y")]:
        response = backend.call("cancelJob", payload)
        assert response.status_code == 400 and field in response.get_json()["details"]
    kept = store_of(backend).job(platform.installation.id, job["id"], items=False)
    assert kept.state == "queued"
    assert backend.call("listAudit", {"action": "job.cancel"}).get_json()["entries"] == []


# -- retryJob --------------------------------------------------------------------------------------


def test_retry_the_failed_items(backend, platform):
    has = platform.installation.site.users_with_access_emails()[0]
    platform.faults.add("invite", "500", times=None)
    job = finish(backend, queue(backend, [has, *new_emails(3)])["id"])
    assert job["state"] == "done" and job["counts"]["failed"] == 3
    platform.faults.clear()

    response = backend.call("retryJob", {"jobId": job["id"]})

    assert response.status_code == 200
    retry = response.get_json()["job"]
    assert retry["id"] != job["id"] and retry["state"] == "queued"
    assert (retry["source"], retry["dryRun"], retry["total"]) == ("panel", False, 3)
    assert [i["email"] for i in retry["items"]] == new_emails(3)
    done = finish(backend, retry["id"])
    assert done["counts"]["invited"] == 3
    entries = backend.call("listAudit", {"action": "job.retry"}).get_json()["entries"]
    assert entries[0]["outcome"] == {"jobId": retry["id"], "retryOf": job["id"], "emails": 3}


def test_retry_refuses_a_job_with_nothing_failed_or_still_running(backend, platform):
    done = finish(backend, queue(backend, new_emails(2), dry_run=True)["id"])
    response = backend.call("retryJob", {"jobId": done["id"]})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_input" and body["details"] == {"jobId": "no failed items"}
    assert "nothing to retry" in body["message"]
    running = queue(backend, new_emails(2))
    response = backend.call("retryJob", {"jobId": running["id"]})
    assert response.status_code == 400 and response.get_json()["details"] == {
        "jobId": "still running"
    }
    other = platform.add_installation()
    response = backend.call(
        "retryJob", {"jobId": done["id"]}, account=other.site.admin_id, installation=other
    )
    assert response.status_code == 404
    assert len(backend.call("listJobs", {}).get_json()["jobs"]) == 2


# -- webhookStatus ---------------------------------------------------------------------------------


def signed(secret, body, msg_id):
    at = datetime.now(tz=UTC)
    data = json.dumps(body)
    return data, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, data),
        "content-type": "application/json",
    }


def test_webhook_status_before_and_after_rotations(backend, platform):
    admin = platform.installation.site.admin_id
    before = backend.call("webhookStatus", {}).get_json()
    assert before == {
        "url": f"http://localhost/webhooks/{platform.installation.uuid}",
        "configured": False,
        "rotatedAt": None,
        "actingAs": None,
        "previousValidUntil": None,
        "recentDeliveries": [],
        "recentRefusals": [],
    }
    rotated = backend.call("rotateWebhookSecret", {}).get_json()
    first = backend.call("webhookStatus", {}).get_json()
    assert first["url"] == rotated["url"] and first["configured"] is True
    assert first["actingAs"] == admin and first["previousValidUntil"] is None
    at = datetime.fromisoformat(first["rotatedAt"])
    assert abs(at.timestamp() - time.time()) < 60
    backend.call("rotateWebhookSecret", {})
    second = backend.call("webhookStatus", {}).get_json()
    until = datetime.fromisoformat(second["previousValidUntil"])
    assert until - datetime.fromisoformat(second["rotatedAt"]) == timedelta(hours=24)
    assert "whsec_" not in json.dumps(second) and rotated["secret"] not in json.dumps(second)


def test_webhook_status_lists_recent_deliveries_and_replays(backend, platform):
    rotated = backend.call("rotateWebhookSecret", {}).get_json()
    path = "/webhooks/" + rotated["url"].rsplit("/webhooks/", 1)[1]
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"], "dryRun": True}}
    jobs = []
    for n in range(22):
        data, headers = signed(rotated["secret"], body, f"msg_{n}")
        answer = backend.client.post(path, data=data, headers=headers)
        assert answer.status_code == 202
        jobs.append(answer.get_json()["jobId"])
    data, headers = signed(rotated["secret"], body, "msg_3")
    assert backend.client.post(path, data=data, headers=headers).get_json()["jobId"] == jobs[3]

    deliveries = backend.call("webhookStatus", {}).get_json()["recentDeliveries"]

    assert len(deliveries) == 20
    assert [(d["webhookId"], d["status"], d["jobId"]) for d in deliveries[:3]] == [
        ("msg_3", "replayed", jobs[3]),
        ("msg_21", "accepted", jobs[21]),
        ("msg_20", "accepted", jobs[20]),
    ]
    assert [d["webhookId"] for d in deliveries[1:]] == [f"msg_{n}" for n in range(21, 2, -1)]
    assert [d["at"] for d in deliveries] == sorted((d["at"] for d in deliveries), reverse=True)
    other = platform.add_installation()
    theirs = backend.call("webhookStatus", {}, account=other.site.admin_id, installation=other)
    assert theirs.get_json()["recentDeliveries"] == []


def test_webhook_status_is_for_admins(backend, platform):
    user = platform.installation.site.user_ids[0]
    response = backend.call("webhookStatus", {}, account=user)
    assert response.status_code == 403
    response = backend.call("webhookStatus", {"x": 1})
    assert response.status_code == 400 and response.get_json()["details"] == {"x": "unknown field"}


# -- listAudit filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": 3}, "action"),
        ({"actor": ["a"]}, "actor"),
        ({"subject": {"x": 1}}, "subject"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": 1750000000}, "since"),
        ({"until": "2026-11-29T25:00:00Z"}, "until"),
        ({"since": "9999-12-31T23:59:59+00:00" + "0" * 70}, "since"),
        ({"since": "2026-11-30", "until": "2026-11-29"}, "until"),
        ({"subject": "x" * 400}, "subject"),
        ({"action": "invite", "verb": "x"}, "verb"),
    ],
)
def test_bad_audit_filters_name_the_field(backend, payload, field):
    response = backend.call("listAudit", payload)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_input" and field in body["details"]


def test_audit_filters_through_the_api(backend, platform):
    admin = platform.installation.site.admin_id
    first = queue(backend, ["Some.One@Example.com", "b@example.com"], dry_run=True)
    finish(backend, first["id"])
    second = queue(backend, ["c@example.com"])
    backend.call("cancelJob", {"jobId": second["id"]})
    backend.call("rotateWebhookSecret", {})

    def actions(**filters):
        body = backend.call("listAudit", filters).get_json()
        return [e["action"] for e in body["entries"]]

    assert actions() == ["webhook.rotateSecret", "invite", "job.cancel", "invite.dryRun"]
    assert actions(subject="some.one@EXAMPLE.com") == ["invite.dryRun"]
    assert actions(subject="c@example.com", action="invite") == ["invite"]
    assert actions(actor=admin, action="job.cancel") == ["job.cancel"]
    assert actions(actor="someone-else") == []
    assert actions(since="2000-01-01", until="2999-12-31T00:00:00Z") == actions()
    assert actions(until="2000-01-01") == []
    assert actions(action=" ", subject="") == actions()  # blank filters are no filters
