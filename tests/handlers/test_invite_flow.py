"""Invite jobs, Forge triggers and webhooks through the HTTP edge, against the simulated platform."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from access_desk.store import tables
from handlers.webhooks import verified
from simulator.triggers import LIFECYCLE_TRIGGER, SCHEDULED_TRIGGER


def wait_for_job(backend, job_id, *, account=None, installation=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = backend.call("getJob", {"jobId": job_id}, account=account, installation=installation)
        job = job.get_json()["job"]
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def mixed_emails(platform, n_new=150):
    site = platform.installation.site
    with_access = site.users_with_access_emails()[:20]
    new = [f"person{i}@newcomers.example" for i in range(n_new)]
    invalid = ["no-at-sign", "two@@example.com", "spaces in@example.com"]
    return with_access, new, invalid


def test_dry_run_sends_no_invites(backend, platform):
    with_access, new, invalid = mixed_emails(platform, 30)
    job = backend.call("inviteEmails", {"emails": with_access + new + invalid, "dryRun": True})
    assert job.status_code == 200
    job = wait_for_job(backend, job.get_json()["job"]["id"])
    assert job["state"] == "done" and job["dryRun"] is True
    assert job["counts"] == {
        "pending": 30,
        "invited": 0,
        "alreadyHasAccess": len(with_access),
        "invalid": 3,
        "failed": 0,
        "cancelled": 0,
    }
    assert not [r for r in platform.requests if r.endpoint == "invite"]
    assert not platform.installation.site.invited


def test_real_job_of_several_hundred_mixed_emails(backend, platform):
    with_access, new, invalid = mixed_emails(platform, 330)
    emails = with_access + new + invalid
    created = backend.call("inviteEmails", {"emails": emails}).get_json()["job"]
    assert created["state"] == "queued" and created["total"] == len(emails)
    assert (
        created["source"] == "panel" and created["createdBy"] == platform.installation.site.admin_id
    )
    job = wait_for_job(backend, created["id"])
    outcomes = {item["email"]: item["outcome"] for item in job["items"]}
    assert all(outcomes[e] == "invited" for e in new)
    assert all(outcomes[e] == "alreadyHasAccess" for e in with_access)
    assert all(outcomes[e] == "invalid" for e in invalid)
    invited = [e for r in platform.requests if r.endpoint == "invite" for e in r.body["emails"]]
    assert sorted(invited) == sorted(new)
    assert all(len(r.body["emails"]) <= 100 for r in platform.requests if r.endpoint == "invite")
    audit = backend.call("listAudit", {}).get_json()["entries"]
    assert audit[0]["action"] == "invite" and audit[0]["source"] == "panel"


def test_job_resolvers_are_for_admins_only(backend, platform):
    user = platform.installation.site.user_ids[0]
    for key, payload in [
        ("inviteEmails", {"emails": ["a@example.com"]}),
        ("getJob", {"jobId": "x"}),
        ("listJobs", {}),
        ("listAudit", {}),
        ("rotateWebhookSecret", {}),
    ]:
        response = backend.call(key, payload, account=user)
        assert response.status_code == 403, key
        assert response.get_json()["error"] == "not_allowed"


def test_another_installation_sees_404_and_nothing_of_ours(backend, platform):
    job_id = backend.call("inviteEmails", {"emails": ["x@example.com"], "dryRun": True})
    job_id = job_id.get_json()["job"]["id"]
    backend.call("rotateWebhookSecret", {})
    other = platform.add_installation()
    admin_b = other.site.admin_id
    response = backend.call("getJob", {"jobId": job_id}, account=admin_b, installation=other)
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert backend.call("listJobs", {}, account=admin_b, installation=other).get_json() == {
        "jobs": [],
        "next": None,
    }
    entries = backend.call("listAudit", {}, account=admin_b, installation=other).get_json()
    assert entries["entries"] == []


def test_list_jobs_pages_newest_first(backend):
    ids = [
        backend.call("inviteEmails", {"emails": [f"p{i}@example.com"], "dryRun": True}).get_json()[
            "job"
        ]["id"]
        for i in range(5)
    ]
    first = backend.call("listJobs", {"limit": 2}).get_json()
    second = backend.call("listJobs", {"limit": 2, "before": first["next"]}).get_json()
    third = backend.call("listJobs", {"limit": 2, "before": second["next"]}).get_json()
    seen = [j["id"] for page in (first, second, third) for j in page["jobs"]]
    assert seen == list(reversed(ids))
    assert third["next"] is None
    assert "items" not in first["jobs"][0]


# -- Forge triggers ------------------------------------------------------------------------------


TRIGGERS = {"/forge/lifecycle": LIFECYCLE_TRIGGER, "/forge/scheduled": SCHEDULED_TRIGGER}


def trigger(backend, platform, path, body, installation=None):
    inst = installation or platform.installation
    headers = platform.trigger_headers(inst, *TRIGGERS[path])
    return backend.client.post(path, json=body, headers=headers)


@pytest.mark.parametrize("wrapped", [False, True])
def test_lifecycle_stores_the_installation_idempotently(backend, platform, wrapped):
    inst = platform.installation
    event = {
        "eventType": "avi:forge:installed:app",
        "id": inst.uuid,
        "installerAccountId": inst.site.admin_id,
    }
    body = {"payload": event} if wrapped else event
    assert trigger(backend, platform, "/forge/lifecycle", body).status_code == 200
    retry = {"retryContext": {"retryCount": 1, "retryReason": "TIMEOUT"}}
    redelivery = {"payload": {**event, **retry}} if wrapped else {**event, **retry}
    for _ in range(2):
        response = trigger(backend, platform, "/forge/lifecycle", redelivery)
        assert response.status_code == 200
    store = backend.client.application.extensions["access_desk"].store
    stored = store.installation(inst.id)
    assert stored.api_base_url == inst.api_base_url and stored.cloud_id == inst.cloud_id
    assert stored.system_token
    entries = backend.call("listAudit", {}).get_json()["entries"]
    assert [e["action"] for e in entries].count("app.installed") == 1


@pytest.mark.parametrize(
    "raw",
    [b"[1, 2]", b'"installed"', b"{not json", b"[" * 100_000, b""],
)
def test_lifecycle_answers_200_whatever_the_body(backend, platform, raw):
    inst = platform.installation
    headers = platform.trigger_headers(inst, *LIFECYCLE_TRIGGER)
    response = backend.client.post(
        "/forge/lifecycle", data=raw, headers=headers, content_type="application/json"
    )
    assert response.status_code == 200
    store = backend.client.application.extensions["access_desk"].store
    assert store.installation(inst.id) is not None


def test_lifecycle_audits_forge_as_the_actor_and_the_installer_as_its_subject(backend, platform):
    installer = platform.installation.site.user_ids[0]
    events = [
        {"eventType": "avi:forge:installed:app", "installerAccountId": installer},
        {"eventType": "avi:forge:upgraded:app", "upgraderAccountId": installer},
        {"eventType": "avi:forge:installed:app", "installerAccountId": "x" * 300},
        {"eventType": "avi:forge:installed:app", "installerAccountId": "a b<script>"},
    ]
    for event in events:
        assert trigger(backend, platform, "/forge/lifecycle", event).status_code == 200
    entries = backend.call("listAudit", {}).get_json()["entries"]
    assert [(e["action"], e["actor"], e["subjects"]) for e in reversed(entries)] == [
        ("app.installed", "forge", [installer]),
        ("app.upgraded", "forge", [installer]),
        ("app.installed", "forge", []),
        ("app.installed", "forge", []),
    ]


def audit_rows(backend):
    store = backend.client.application.extensions["access_desk"].store
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(tables.audit)).scalar()


@pytest.mark.parametrize("path", ["/forge/lifecycle", "/forge/scheduled"])
def test_trigger_routes_refuse_a_users_call_and_write_nothing(backend, platform, path):
    inst = platform.installation
    event = {"eventType": "avi:forge:installed:app", "installerAccountId": "712020:forged"}
    ui_call = platform.invocation_headers(inst, inst.site.user_ids[0])
    admin_call = platform.invocation_headers(inst, inst.site.admin_id)
    other_route = TRIGGERS["/forge/scheduled" if path == "/forge/lifecycle" else "/forge/lifecycle"]
    wrong_module = platform.trigger_headers(inst, *other_route)
    no_module = platform.trigger_headers(inst, *TRIGGERS[path])
    no_module["authorization"] = "Bearer " + platform.mint_fit(
        inst, claims={"app": {"module": None}}
    )
    principal_on_trigger = platform.trigger_headers(inst, *TRIGGERS[path])
    principal_on_trigger["authorization"] = "Bearer " + platform.mint_fit(
        inst,
        module_key=TRIGGERS[path][0],
        module_type=TRIGGERS[path][1],
        claims={"principal": inst.site.admin_id},
    )
    for headers in (ui_call, admin_call, wrong_module, no_module, principal_on_trigger):
        response = backend.client.post(path, json={"payload": event}, headers=headers)
        assert response.status_code == 403
        assert response.get_json()["error"] == "not_allowed"
    store = backend.client.application.extensions["access_desk"].store
    assert store.installation(inst.id) is None
    assert audit_rows(backend) == 0
    assert trigger(backend, platform, path, {"payload": event}).status_code == 200
    assert store.installation(inst.id) is not None


@pytest.mark.parametrize(
    ("path", "endpoint_key"),
    [("/forge/lifecycle", "access-desk-lifecycle"), ("/forge/scheduled", "access-desk-scheduled")],
)
def test_a_trigger_fit_naming_its_endpoint_module_is_accepted_too(
    backend, platform, path, endpoint_key
):
    # Atlassian's docs leave open whether a trigger's FIT names the trigger or its endpoint
    # module; both are this route's own, any other module (the UI endpoint) is refused.
    inst = platform.installation
    headers = platform.trigger_headers(inst, endpoint_key, "core:endpoint")
    assert backend.client.post(path, json={}, headers=headers).status_code == 200
    ui_endpoint = platform.trigger_headers(inst, "access-desk-ui", "core:endpoint")
    refused = backend.client.post(path, json={}, headers=ui_endpoint)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "not_allowed"


def test_lifecycle_names_the_event_from_its_account_field_when_no_event_type(backend, platform):
    installer, upgrader = "712020:installer", "712020:upgrader"
    assert (
        trigger(
            backend, platform, "/forge/lifecycle", {"installerAccountId": installer}
        ).status_code
        == 200
    )
    upgrade = {"payload": {"upgraderAccountId": upgrader}}
    assert trigger(backend, platform, "/forge/lifecycle", upgrade).status_code == 200
    store = backend.client.application.extensions["access_desk"].store
    entries = store.list_audit(platform.installation.id, limit=10)[0]
    assert [(e.action, list(e.subjects)) for e in reversed(entries)] == [
        ("app.installed", [installer]),
        ("app.upgraded", [upgrader]),
    ]


def test_scheduled_trigger_takes_the_tenant_from_the_token_only(backend, platform):
    other = platform.add_installation()
    body = {"installationId": other.id, "apiBaseUrl": "https://evil.example/"}
    assert trigger(backend, platform, "/forge/scheduled", body).status_code == 200
    store = backend.client.application.extensions["access_desk"].store
    assert store.installation(platform.installation.id) is not None
    assert store.installation(other.id) is None


def test_triggers_need_a_valid_fit(backend):
    for path in ("/forge/lifecycle", "/forge/scheduled"):
        response = backend.client.post(path, json={})
        assert response.status_code == 401
        assert response.get_json()["error"] == "invalid_token"


# -- webhooks ------------------------------------------------------------------------------------


def signed(secret, body, *, msg_id=None, at=None):
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(tz=UTC)
    data = json.dumps(body)
    signature = Webhook(secret).sign(msg_id, at, data)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return data, headers


def rotate(backend):
    answer = backend.call("rotateWebhookSecret", {}).get_json()
    assert answer["secret"].startswith("whsec_")
    return answer["url"], answer["secret"]


def path_of(url):
    return "/webhooks/" + url.rsplit("/webhooks/", 1)[1]


def test_webhook_queues_a_job_once_per_webhook_id(backend, platform):
    url, secret = rotate(backend)
    assert url.startswith("http") and platform.installation.uuid in url
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"], "dryRun": True}}
    data, headers = signed(secret, body, msg_id="msg_replayed")
    first = backend.client.post(path_of(url), data=data, headers=headers)
    assert first.status_code == 202
    again = backend.client.post(path_of(url), data=data, headers=headers)
    assert again.status_code == 202 and again.get_json() == first.get_json()
    jobs = backend.call("listJobs", {}).get_json()["jobs"]
    assert [j["id"] for j in jobs] == [first.get_json()["jobId"]]
    assert jobs[0]["source"] == "webhook"
    assert jobs[0]["createdBy"] == platform.installation.site.admin_id


def test_every_bad_signature_gets_the_same_401(backend, platform):
    url, secret = rotate(backend)
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"]}}
    data, good = signed(secret, body)
    stale_data, stale = signed(secret, body, at=datetime.now(tz=UTC) - timedelta(minutes=6))
    future_data, future = signed(secret, body, at=datetime.now(tz=UTC) + timedelta(minutes=6))
    _, wrong_key = signed("whsec_" + "QUJD" * 8, body)
    other = platform.add_installation()
    cases = {
        "missing signature": (data, {k: v for k, v in good.items() if k != "webhook-signature"}),
        "missing id": (data, {k: v for k, v in good.items() if k != "webhook-id"}),
        "malformed signature": (data, {**good, "webhook-signature": "v1,not base64!"}),
        "garbage signature header": (data, {**good, "webhook-signature": "nonsense"}),
        "wrong key": (data, wrong_key),
        "tampered body": (data.replace("newcomers", "evil"), good),
        "stale": (stale_data, stale),
        "from the future": (future_data, future),
        "non-numeric timestamp": (data, {**good, "webhook-timestamp": "soon"}),
        "unicode digit timestamp": (data, {**good, "webhook-timestamp": "\u00b2"}),
        "400-digit timestamp": (data, {**good, "webhook-timestamp": "9" * 400}),
        "5000-digit timestamp": (data, {**good, "webhook-timestamp": "9" * 5000}),
        "id over 255 characters": (data, {**good, "webhook-id": "m" * 300}),
    }
    answers = set()
    for name, (payload, headers) in cases.items():
        response = backend.client.post(path_of(url), data=payload, headers=headers)
        assert response.status_code == 401, name
        answers.add(response.get_data())
    for path in (f"/webhooks/{uuid.uuid4()}", f"/webhooks/{other.uuid}"):
        response = backend.client.post(path, data=data, headers=good)
        assert response.status_code == 401
        answers.add(response.get_data())
    assert len(answers) == 1
    assert json.loads(answers.pop())["error"] == "invalid_signature"
    assert backend.call("listJobs", {}).get_json()["jobs"] == []


def test_a_webhook_id_is_printable_ascii_even_when_validly_signed():
    secret = "whsec_" + "QUJD" * 8
    at = datetime.now(tz=UTC)
    for msg_id, expected in (("msg_1", True), ("msg\x00x", False), ("msg x", False)):
        signature = Webhook(secret).sign(msg_id, at, "{}")
        ok = verified([secret], msg_id, str(int(at.timestamp())), signature, b"{}", now=time.time())
        assert ok is expected, msg_id


def test_several_signatures_and_the_previous_secret_during_rotation(backend):
    url, old = rotate(backend)
    _, new = rotate(backend)
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"], "dryRun": True}}
    data, headers = signed(old, body)
    assert backend.client.post(path_of(url), data=data, headers=headers).status_code == 202
    data, headers = signed(new, body)
    _, wrong = signed("whsec_" + "QUJD" * 8, body, msg_id=headers["webhook-id"])
    headers["webhook-signature"] = wrong["webhook-signature"] + " " + headers["webhook-signature"]
    assert backend.client.post(path_of(url), data=data, headers=headers).status_code == 202


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "access.remove", "data": {"emails": ["a@b.co"]}}, 400),
        ({"type": "access.invite", "data": {"emails": []}}, 400),
        ({"type": "access.invite", "data": {"emails": "a@b.co"}}, 400),
        ({"type": "access.invite"}, 400),
        ([1, 2, 3], 400),
    ],
)
def test_valid_signature_but_bad_body(backend, body, status):
    url, secret = rotate(backend)
    data, headers = signed(secret, body)
    response = backend.client.post(path_of(url), data=data, headers=headers)
    assert response.status_code == status
    assert response.get_json()["error"] == "bad_input"


def test_valid_signature_but_deeply_nested_json_is_400(backend):
    url, secret = rotate(backend)
    data = "[" * 100_000
    msg_id, at = "msg_deep", datetime.now(tz=UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, data),
    }
    response = backend.client.post(path_of(url), data=data, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_input"
    assert backend.call("listJobs", {}).get_json()["jobs"] == []


def test_webhook_body_over_1_mib_is_413(backend):
    url, secret = rotate(backend)
    body = {"type": "access.invite", "data": {"emails": ["x" * 1024] * 1100}}
    data, headers = signed(secret, body)
    response = backend.client.post(path_of(url), data=data, headers=headers)
    assert response.status_code == 413


def test_webhook_job_runs_as_the_admin_with_an_offline_token(worker_backend, platform):
    backend = worker_backend
    trigger(backend, platform, "/forge/lifecycle", {"eventType": "avi:forge:installed:app"})
    url, secret = rotate(backend)
    new = ["hire.one@newcomers.example", "hire.two@newcomers.example"]
    body = {"type": "access.invite", "data": {"emails": new}}
    data, headers = signed(secret, body)
    platform.clear_requests()
    job_id = backend.client.post(path_of(url), data=data, headers=headers).get_json()["jobId"]
    deadline = time.monotonic() + 30
    store = backend.client.application.extensions["access_desk"].store
    while store.job(platform.installation.id, job_id, items=False).state != "done":
        assert time.monotonic() < deadline, "webhook job did not finish"
        time.sleep(0.05)
    admin = platform.installation.site.admin_id
    graphql = [r for r in platform.requests if r.endpoint == "graphql"]
    assert graphql and graphql[0].account_id == "system"
    confluence = [r for r in platform.requests if r.endpoint in ("check-access", "invite")]
    assert {r.endpoint for r in confluence} == {"check-access", "invite"}
    assert {r.account_id for r in confluence} == {admin}
    job = backend.call("getJob", {"jobId": job_id}).get_json()["job"]
    assert job["counts"]["invited"] == 2 and job["source"] == "webhook"


def test_get_job_does_not_lend_the_callers_token_to_a_webhook_job(backend, platform):
    url, secret = rotate(backend)
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"]}}
    data, headers = signed(secret, body)
    job_id = backend.client.post(path_of(url), data=data, headers=headers).get_json()["jobId"]
    platform.clear_requests()
    job = backend.call("getJob", {"jobId": job_id}).get_json()["job"]
    assert job["state"] == "queued"
    assert not [r for r in platform.requests if r.endpoint in ("check-access", "invite")]


# -- case-insensitive means ASCII letters only ------------------------------------------------------

LOOKALIKES = [
    "Straße@Example.com",
    "strasse@example.com",
    "STRASSE@EXAMPLE.COM",  # the same as the one before: dropped
    "straße@example.com",  # the same as the first: dropped
    "\u212aelvin@example.com",  # KELVIN SIGN, not K
    "kelvin@example.com",
    "Kelvin@example.com",  # dropped
    "\u0130stanbul@example.com",  # dotted capital I: not i
    "istanbul@example.com",
]
DISTINCT = [LOOKALIKES[i] for i in (0, 1, 4, 5, 7, 8)]


def test_emails_are_deduplicated_ignoring_ascii_case_only(backend_on_each_db, platform):
    backend = backend_on_each_db
    job = backend.call("inviteEmails", {"emails": LOOKALIKES, "dryRun": True}).get_json()["job"]
    assert [item["email"] for item in job["items"]] == DISTINCT
    checked = backend.call("checkAccess", {"emails": LOOKALIKES}).get_json()
    assert sorted(sum((checked[k] for k in ("withoutAccess", "withAccess", "invalid")), [])) == (
        sorted(DISTINCT)
    )
    url, secret = rotate(backend)
    body = {"type": "access.invite", "data": {"emails": LOOKALIKES, "dryRun": True}}
    data, headers = signed(secret, body)
    job_id = backend.client.post(path_of(url), data=data, headers=headers).get_json()["jobId"]
    stored = backend.call("getJob", {"jobId": job_id}).get_json()["job"]
    assert [item["email"] for item in stored["items"]] == DISTINCT


# -- revoking a leaked secret, odd input on both databases ------------------------------------------


def test_a_revoking_rotation_ends_the_previous_secret_at_once(backend_on_each_db, platform):
    backend = backend_on_each_db
    url, leaked = rotate(backend)
    _, kept = rotate(backend)  # the default keeps the previous secret for 24 h
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"], "dryRun": True}}
    for secret in (leaked, kept):
        data, headers = signed(secret, body)
        assert backend.client.post(path_of(url), data=data, headers=headers).status_code == 202
    answer = backend.call("rotateWebhookSecret", {"revokePrevious": True}).get_json()
    new = answer["secret"]
    for secret, status in ((kept, 401), (leaked, 401), (new, 202)):
        data, headers = signed(secret, body)
        response = backend.client.post(path_of(url), data=data, headers=headers)
        assert response.status_code == status, secret
    entries = backend.call("listAudit", {}).get_json()["entries"]
    rotations = [e["outcome"] for e in entries if e["action"] == "webhook.rotateSecret"]
    assert rotations == [
        {"revokedPrevious": True},
        {"revokedPrevious": False},
        {"revokedPrevious": False},
    ]


@pytest.mark.parametrize(
    "payload", [{"revokePrevious": "yes"}, {"revokePrevious": 1}, {"revoke": True}]
)
def test_rotation_payload_is_checked(backend, payload):
    response = backend.call("rotateWebhookSecret", payload)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_input"
    store = backend.client.application.extensions["access_desk"].store
    assert store.webhook_secrets(backend.platform.installation.id) == []


def test_nul_in_a_webhook_path_is_the_usual_401(backend_on_each_db, caplog):
    backend = backend_on_each_db
    url, secret = rotate(backend)
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"]}}
    data, headers = signed(secret, body)
    uuid_part = path_of(url).rsplit("/", 1)[1]
    for path in ("/webhooks/%00", f"/webhooks/{uuid_part}%00", f"/webhooks/%00{uuid_part}"):
        response = backend.client.post(path, data=data, headers=headers)
        assert response.status_code == 401, path
        assert response.get_json()["error"] == "invalid_signature"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]


@pytest.mark.parametrize(
    "body",
    [
        {"payload": {"eventType": "avi:forge:installed:app", "installerAccountId": "a\x00b"}},
        {"eventType": "avi:forge:installed:\x00app", "installerAccountId": "\x00"},
        {"payload": {"eventType": "avi:forge:upgraded:app", "upgraderAccountId": "\x00" * 200}},
        {"payload": {"eventType": "avi:forge:installed:app", "id": "\x00", "app": {"\x00": 1}}},
        {"\x00": "\x00", "retryContext": {"retryReason": "\x00"}},
    ],
)
def test_nul_anywhere_in_a_lifecycle_body_is_still_200(backend_on_each_db, platform, body, caplog):
    backend = backend_on_each_db
    response = trigger(backend, platform, "/forge/lifecycle", body)
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
    entries = backend.call("listAudit", {}).get_json()["entries"]
    assert all(e["actor"] == "forge" and "\x00" not in json.dumps(e) for e in entries)


def refusal_medians(backend, platform, rounds=400):
    """Median seconds of a refused delivery to a known installation (two stored secrets, a system
    token) and to an unknown one, measured in alternating pairs so both see the same noise."""
    backend.call("whoami")  # stores the installation with its system token
    url, _ = rotate(backend)
    rotate(backend)
    body = {"type": "access.invite", "data": {"emails": ["a@newcomers.example"]}}
    data, headers = signed("whsec_" + "QUJD" * 8, body)
    paths = {"known": path_of(url), "unknown": f"/webhooks/{uuid.uuid4()}"}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for n in range(rounds):
        for name in ("known", "unknown") if n % 2 else ("unknown", "known"):
            began = time.perf_counter()
            # buffered: each answer is closed, as a server closes it once sent
            response = backend.client.post(paths[name], data=data, headers=headers, buffered=True)
            times[name].append(time.perf_counter() - began)
            assert response.status_code == 401
    return statistics.median(times["known"]), statistics.median(times["unknown"])


def test_refusals_take_as_long_for_known_and_unknown_installations(backend_on_each_db, platform):
    known, unknown = refusal_medians(backend_on_each_db, platform)
    assert 0.9 < known / unknown < 1.1, (known, unknown)
