"""Fault injection, latency, the near-limit header and the request log of the simulator."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from simulator import Platform

BULK = "/wiki/api/v2/users-bulk"
CHECK = "/wiki/api/v2/user/access/check-access-by-email"
INVITE = "/wiki/api/v2/user/access/invite-by-email"


@pytest.fixture()
def sim(platform: Platform) -> Platform:
    """The shared simulated platform (tests/conftest.py), served on 127.0.0.1."""
    return platform


def bulk(p: Platform, token: str | None = None) -> requests.Response:
    inst = p.installation
    token = token or p.user_token(inst, inst.site.admin_id)
    return requests.post(
        inst.api_base_url + BULK,
        json={"accountIds": [inst.site.admin_id]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def check(p: Platform) -> requests.Response:
    inst = p.installation
    return requests.post(
        inst.api_base_url + CHECK,
        json={"emails": ["a@example.com"]},
        timeout=5,
        headers={"Authorization": f"Bearer {p.user_token(inst, inst.site.admin_id)}"},
    )


def test_429_with_retry_after_carries_rate_limit_headers_then_recovers(sim: Platform) -> None:
    sim.faults.add("users-bulk", "429", times=2, retry_after=7)
    for _ in range(2):
        answer = bulk(sim)
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.headers["RateLimit-Reason"] == "confluence-quota-global-based"
        assert answer.headers["RateLimit"] == '"global-app-quota";r=0;t=7'
        assert answer.headers["X-RateLimit-Limit"] == "350"  # the burst limit is not spent
        assert answer.headers["X-RateLimit-Remaining"] == "349"
        datetime.fromisoformat(answer.headers["X-RateLimit-Reset"])
        assert answer.json()["errors"][0]["status"] == 429
    assert bulk(sim).status_code == 200


def test_a_burst_429_has_no_quota_reason(sim: Platform) -> None:
    sim.faults.add("users-bulk", "burst")
    answer = bulk(sim)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert "RateLimit-Reason" not in answer.headers and "RateLimit" not in answer.headers
    assert bulk(sim).status_code == 200


def test_429_without_retry_after_and_a_bare_one(sim: Platform) -> None:
    sim.faults.add("users-bulk", "429")
    bare = {
        h: ""
        for h in (
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "RateLimit-Reason",
        )
    }
    sim.faults.add("users-bulk", "429", headers=bare)
    first = bulk(sim)
    assert first.status_code == 429 and "Retry-After" not in first.headers
    assert "X-RateLimit-Reset" in first.headers
    second = bulk(sim)
    assert second.status_code == 429
    assert not {h.lower() for h in bare} & {h.lower() for h in second.headers}


def test_503_and_500_and_endpoint_matching(sim: Platform) -> None:
    sim.faults.add("check-access", "503", retry_after=3)
    sim.faults.add("users-bulk", "500")
    assert bulk(sim).status_code == 500
    unavailable = check(sim)
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "3"
    assert bulk(sim).status_code == 200 and check(sim).status_code == 200
    sim.faults.add("*", "503", times=None)
    assert bulk(sim).status_code == 503 and check(sim).status_code == 503
    assert sim.faults.clear() == 1
    assert bulk(sim).status_code == 200


def test_drop_closes_the_connection_without_an_answer(sim: Platform) -> None:
    sim.faults.add("users-bulk", "drop")
    with pytest.raises(requests.ConnectionError):
        bulk(sim)
    assert bulk(sim).status_code == 200
    assert [r.status for r in sim.requests] == [0, 200]


def test_latency_fault_and_platform_latency_delay_answers(sim: Platform) -> None:
    started = time.monotonic()
    assert bulk(sim).status_code == 200
    baseline = time.monotonic() - started
    sim.faults.add("users-bulk", "latency", delay=0.3)
    started = time.monotonic()
    assert bulk(sim).status_code == 200
    assert time.monotonic() - started >= 0.3
    sim.latency = 0.2
    started = time.monotonic()
    assert check(sim).status_code == 200
    assert time.monotonic() - started >= 0.2 > baseline
    sim.latency = 0.0


def test_near_limit_header_on_200_answers(sim: Platform) -> None:
    assert "X-RateLimit-NearLimit" not in bulk(sim).headers
    sim.near_limit = True
    assert bulk(sim).headers["X-RateLimit-NearLimit"] == "true"


def test_bad_faults_are_refused(sim: Platform) -> None:
    for endpoint, kind, times in (("nope", "429", 1), ("users-bulk", "418", 1), ("*", "500", 0)):
        with pytest.raises(ValueError):
            sim.faults.add(endpoint, kind, times=times)


def test_request_log_names_accounts_never_tokens(sim: Platform) -> None:
    inst = sim.installation
    user_token = sim.user_token(inst, inst.site.admin_id)
    bulk(sim, user_token)
    bulk(sim, sim.system_token(inst))
    bulk(sim, "unknown-token")
    requests.post(
        inst.api_base_url + INVITE,
        json={"emails": ["z@example.com"]},
        timeout=5,
        headers={"Authorization": f"Bearer {user_token}"},
    )
    log = sim.requests
    assert [(r.endpoint, r.account_id, r.status) for r in log] == [
        ("users-bulk", inst.site.admin_id, 200),
        ("users-bulk", "system", 200),
        ("users-bulk", None, 401),
        ("invite", inst.site.admin_id, 200),
    ]
    assert log[0].method == "POST" and log[0].path == f"/ex/confluence/{inst.cloud_id}{BULK}"
    assert log[0].body == {"accountIds": [inst.site.admin_id]} and log[0].at.tzinfo
    assert user_token not in repr(log)
    sim.clear_requests()
    assert sim.requests == []


def test_a_scope_fault_answers_as_the_api_gateway_does(sim: Platform) -> None:
    sim.faults.add("check-access", "scope", times=1)
    refused = check(sim)
    assert refused.status_code == 401
    assert refused.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
    assert bulk(sim).status_code == 200  # only the endpoint named
    assert check(sim).status_code == 200  # used up
