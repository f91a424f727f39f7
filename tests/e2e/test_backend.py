"""The real server: gunicorn 'access_desk.app:create_app()' against the simulated platform on loopback."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from bench.common import backend_env, stop_server
from tests.conftest import start_gunicorn

pytestmark = pytest.mark.e2e


def call(server_url, platform, key, payload, account=None, inst=None):
    inst = inst or platform.installation
    headers = platform.invocation_headers(inst, account or inst.site.admin_id)
    return requests.post(f"{server_url}/resolvers/{key}", json=payload, headers=headers, timeout=30)


def wait_job(server_url, platform, job_id, *, until=("done", "failed"), timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = call(server_url, platform, "getJob", {"jobId": job_id}).json()["job"]
        if job["state"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job not finished: {job['state']} {job['counts']}")


def test_resolvers_webhooks_and_no_secret_in_the_output(live_backend, platform):
    url = live_backend.url
    site = platform.installation.site
    tokens: list[str] = []

    def traced(key, payload, account=None):
        inst = platform.installation
        headers = platform.invocation_headers(inst, account or site.admin_id)
        tokens.extend(v.removeprefix("Bearer ") for k, v in headers.items() if "b3" not in k)
        return requests.post(f"{url}/resolvers/{key}", json=payload, headers=headers, timeout=30)

    who = traced("whoami", {}).json()
    assert who["isAdmin"] is True and who["accountId"] == site.admin_id
    found = traced("lookupUsers", {"accountIds": site.user_ids[:5] + ["nobody"]}).json()
    assert len(found["users"]) == 5 and found["notFound"] == ["nobody"]
    assert (
        traced("checkAccess", {"emails": ["a@b.co"]}, account=site.user_ids[0]).status_code == 403
    )

    rotated = traced("rotateWebhookSecret", {}).json()
    secret = rotated["secret"]
    body = json.dumps({"type": "access.invite", "data": {"emails": ["w1@newcomers.example"]}})
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": "msg_e2e_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_e2e_1", now, body),
        "content-type": "application/json",
    }
    hook_url = url + "/webhooks/" + rotated["url"].rsplit("/", 1)[1]
    answer = requests.post(hook_url, data=body, headers=headers, timeout=30)
    assert answer.status_code == 202
    job = wait_job(url, platform, answer.json()["jobId"])
    assert job["state"] == "done" and job["counts"]["invited"] == 1
    offline = [r for r in platform.requests if r.endpoint == "invite"]
    assert offline and offline[0].account_id == site.admin_id

    bad = requests.post(hook_url, data=body, headers={**headers, "webhook-id": "x"}, timeout=30)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_signature"

    metrics = requests.get(url + "/metrics", timeout=30).text
    assert "access_desk_requests_total" in metrics
    assert "access_desk_upstream_calls_total" in metrics
    assert 'access_desk_job_seconds_count{state="done"}' in metrics
    assert 'access_desk_jobs{state="done"}' in metrics

    output = live_backend.output()
    assert "request" in output
    for secret_value in [*tokens, secret, secret.removeprefix("whsec_")]:
        assert secret_value not in output


def test_job_survives_sigkill_and_finishes_after_restart(platform, settings, tmp_path):
    env = backend_env(
        settings, JOB_LEASE_SECONDS="3", JOB_STEP_SECONDS="1", WORKER_POLL_SECONDS="0.2"
    )
    log = tmp_path / "gunicorn.log"
    new = [f"survivor{i}@newcomers.example" for i in range(1000)]
    platform.faults.add("invite", "latency", times=None, delay=0.5)
    server = start_gunicorn(env, log, workers=2)
    try:
        # Only the background worker advances the job here (getJob would advance it too).
        created = call(server.url, platform, "inviteEmails", {"emails": new}).json()["job"]
        deadline = time.monotonic() + 60
        while len([r for r in platform.requests if r.endpoint == "invite"]) < 2:
            assert time.monotonic() < deadline, "no invites were sent"
            time.sleep(0.05)
    finally:
        stop_server(server, signal.SIGKILL)
    sent_before_restart = len([r for r in platform.requests if r.endpoint == "invite"])
    assert sent_before_restart < 10, "the job finished before the kill"
    server = start_gunicorn(env, log, workers=2)
    try:
        job = wait_job(server.url, platform, created["id"], timeout=120)
    finally:
        stop_server(server)
    assert job["state"] == "done"
    assert job["counts"] == {
        "pending": 0,
        "invited": 1000,
        "alreadyHasAccess": 0,
        "invalid": 0,
        "failed": 0,
        "cancelled": 0,
    }
    invited = {e for r in platform.requests if r.endpoint == "invite" for e in r.body["emails"]}
    assert invited == set(new)


def test_one_tenants_slow_lookups_leave_threads_for_another_tenant(platform, settings, tmp_path):
    """gunicorn with 4 threads (``--threads``, passed on to the app by gunicorn.conf.py): 2 calls in
    flight per installation, one of them kept for short calls, so twelve slow lookups from one
    tenant take one thread (eleven are answered 429 busy at once) and another tenant's whoami is
    answered while it is still running."""
    env = backend_env(settings, BACKGROUND_WORKER="false")
    server = start_gunicorn(env, tmp_path / "gunicorn.log", workers=1)
    a, b = platform.installation, platform.add_installation()
    slow = platform.faults.add("users-bulk", "latency", times=1000, delay=4.0)
    done: list[tuple[str, int]] = []
    lock = threading.Lock()

    def lookup(n):
        user = a.site.user_ids[n % 3]
        answer = call(server.url, platform, "lookupUsers", {"accountIds": [user]}, user, a)
        with lock:
            done.append((f"a{n}", answer.status_code))
        if answer.status_code == 429:
            assert answer.json()["error"] == "busy" and answer.headers["Retry-After"] == "1"

    try:
        threads = [threading.Thread(target=lookup, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while slow.times > 999:  # a lookup has reached Confluence
            assert time.monotonic() < deadline, "no lookup reached Confluence"
            time.sleep(0.02)
        who = call(server.url, platform, "whoami", {}, b.site.admin_id, b)
        with lock:
            done.append(("b", who.status_code))
        for thread in threads:
            thread.join(60)
    finally:
        stop_server(server)
    assert who.status_code == 200 and who.json()["isAdmin"] is True
    order = [name for name, status in done if status == 200]
    assert order.index("b") == 0, f"another tenant waited behind the slow lookups: {done}"
    statuses = Counter(status for name, status in done if name != "b")
    assert statuses == {200: 1, 429: 11}
