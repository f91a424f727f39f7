"""Resolvers through the HTTP edge (in-process app) against the simulated platform."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from access_desk.app import create_app
from tests.conftest import Backend
from tests.support.stores import Clock


def test_whoami_for_admin_and_ordinary_user(backend, platform):
    site = platform.installation.site
    admin = backend.call("whoami").get_json()
    assert admin == {
        "accountId": site.admin_id,
        "isAdmin": True,
        "site": {
            "cloudId": platform.installation.cloud_id,
            "apiBaseUrl": platform.installation.api_base_url,
        },
    }
    user = backend.call("whoami", account=site.user_ids[0]).get_json()
    assert user["accountId"] == site.user_ids[0] and user["isAdmin"] is False


def test_lookup_normalises_and_accounts_for_every_id(backend, platform):
    site = platform.installation.site
    a, b = site.user_ids[:2]
    response = backend.call("lookupUsers", {"accountIds": [f"  {a} ", "", b, a, "ghost-id", " "]})
    assert response.status_code == 200
    body = response.get_json()
    assert [u["accountId"] for u in body["users"]] == [a, b]
    assert body["notFound"] == ["ghost-id"]
    assert body["failed"] == []
    assert set(body["users"][0]) >= {"displayName", "publicName", "email", "accountStatus"}


def test_lookup_chunk_that_fails_for_good_is_reported_and_the_rest_stands(backend, platform):
    ids = list(platform.installation.site.user_ids)[:10] + [f"missing-{i}" for i in range(490)]
    platform.faults.add("users-bulk", "500", times=1)
    body = backend.call("lookupUsers", {"accountIds": ids}).get_json()
    failed = {f["accountId"] for f in body["failed"]}
    found = {u["accountId"] for u in body["users"]}
    assert len(failed) == 250
    assert all(f["error"] == "upstream_error 500" for f in body["failed"])
    assert failed | found | set(body["notFound"]) == set(ids)
    assert not (failed & found) and not (failed & set(body["notFound"]))


def test_lookup_retries_after_429_and_honours_retry_after(backend, platform, sleeps):
    a = platform.installation.site.user_ids[0]
    platform.faults.add("users-bulk", "429", times=1, retry_after=3)
    body = backend.call("lookupUsers", {"accountIds": [a]}).get_json()
    assert [u["accountId"] for u in body["users"]] == [a]
    assert 3 in [round(s) for s in sleeps]


def test_lookup_long_retry_after_is_not_slept_past_the_deadline(backend, platform, sleeps):
    a = platform.installation.site.user_ids[0]
    platform.faults.add("users-bulk", "429", times=1, retry_after=1847)
    body = backend.call("lookupUsers", {"accountIds": [a]}).get_json()
    assert body["failed"] == [{"accountId": a, "error": "rate_limited", "retryAfter": 1847.0}]
    assert all(s < 1847 for s in sleeps)


def test_check_access_four_buckets(backend, platform):
    site = platform.installation.site
    has = site.users_with_access_emails()[0]
    new = site.sample_new_emails[0]
    payload = {"emails": [has.upper(), new, "not-an-email", has, new.upper()]}
    body = backend.call("checkAccess", payload).get_json()
    assert body == {
        "withoutAccess": [new],
        "withAccess": [has.upper()],
        "invalid": ["not-an-email"],
        "failed": [],
    }


def test_check_access_is_for_admins_only(backend, platform):
    user = platform.installation.site.user_ids[0]
    response = backend.call("checkAccess", {"emails": ["a@example.com"]}, account=user)
    assert response.status_code == 403
    assert response.get_json()["error"] == "not_allowed"


def test_admin_check_fails_closed_when_confluence_fails(backend, platform):
    platform.faults.add("user-current", "500", times=None)
    response = backend.call("checkAccess", {"emails": ["a@example.com"]})
    assert response.status_code == 403


def test_admin_answer_is_cached(backend, platform):
    backend.call("whoami")
    backend.call("whoami")
    calls = [r for r in platform.requests if r.endpoint == "user-current"]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("key", "payload", "field"),
    [
        ("lookupUsers", {}, "accountIds"),
        ("lookupUsers", {"accountIds": "abc"}, "accountIds"),
        ("lookupUsers", {"accountIds": []}, "accountIds"),
        ("lookupUsers", {"accountIds": [" ", ""]}, "accountIds"),
        ("lookupUsers", {"accountIds": ["a", 3, None]}, "accountIds[1]"),
        ("checkAccess", {"emails": [{"x": 1}]}, "emails[0]"),
        ("lookupUsers", {"accountIds": ["a"], "extra": 1}, "extra"),
        ("inviteEmails", {"emails": ["a@b.co"], "dryRun": "yes"}, "dryRun"),
        ("listJobs", {"limit": 0}, "limit"),
        ("listJobs", {"before": "not-a-cursor"}, "before"),
        ("listAudit", {"before": "bm90LWEtY3Vyc29y"}, "before"),
    ],
)
def test_bad_input_names_the_field(backend, key, payload, field):
    response = backend.call(key, payload)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_input"
    assert field in body["details"]


@pytest.mark.parametrize(
    "raw", [b"[1, 2]", b'"text"', b"{not json", b"null", b"[" * 100_000, b'{"a":' * 50_000]
)
def test_payload_must_be_a_json_object(backend, platform, raw):
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    response = backend.client.post(
        "/resolvers/lookupUsers", data=raw, headers=headers, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_input"


def test_more_than_10000_distinct_entries_is_413(backend):
    response = backend.call("lookupUsers", {"accountIds": [f"id-{i}" for i in range(10_001)]})
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_many"


def test_duplicates_do_not_count_towards_the_limit(backend, platform):
    ids = ["dup"] * 10_001
    body = backend.call("lookupUsers", {"accountIds": ids}).get_json()
    assert body["notFound"] == ["dup"]


def test_unknown_resolver_is_404(backend):
    response = backend.call("dropTables", {})
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"] == "unknown_resolver"
    assert body["message"] == "There is no resolver called 'dropTables'."
    assert "lookupUsers" in body["details"]["known"]


def test_healthz(backend):
    response = backend.client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_lone_surrogates_are_bad_input_not_a_crash(backend):
    response = backend.client.post(
        "/resolvers/checkAccess",
        data=b'{"emails": ["ok@example.com", "bad\\udfff@example.com"]}',
        headers=backend.platform.invocation_headers(
            backend.platform.installation, backend.platform.installation.site.admin_id
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.get_json()["details"] == {"emails[1]": "is not valid text"}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [("nul\x00@example.com", "is not valid text"), ("x" * 600 + "@example.com", "longer than 320")],
)
def test_entries_a_database_cannot_hold_are_bad_input(backend, entry, problem):
    response = backend.call("inviteEmails", {"emails": ["ok@example.com", entry]})
    assert response.status_code == 400
    assert problem in response.get_json()["details"]["emails[1]"]


def test_concurrent_first_calls_make_one_admin_check(settings, platform):
    from concurrent.futures import ThreadPoolExecutor

    roomy = replace(settings, threads=16, max_calls_per_installation=8, max_calls_per_user=8)
    app = create_app(roomy)
    backend = Backend(app.test_client(), platform)
    platform.faults.add("user-current", "latency", times=None, delay=0.2)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: backend.call("whoami").get_json(), range(8)))
    finally:
        app.extensions["access_desk"].close()
    assert all(a["isAdmin"] for a in answers)
    assert len([r for r in platform.requests if r.endpoint == "user-current"]) == 1


def test_metrics_label_made_up_methods_as_other(backend):
    assert backend.client.open("/nothing", method="ZZ0QQ").status_code == 405
    text = backend.client.get("/metrics").get_data(as_text=True)
    assert 'method="other"' in text and "ZZ0QQ" not in text


def test_http_errors_are_json_too(backend):
    wrong_method = backend.client.put("/resolvers/whoami")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"] == "method_not_allowed"
    missing = backend.client.get("/no-such-file.js")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    escape = backend.client.get("/..%2fapp.py")
    assert escape.status_code == 404


# -- the admin check: holds and the principal ------------------------------------------------------


@pytest.fixture()
def timed(settings, platform, sleeps):
    """The backend with a clock the test moves, monotonic and wall (the admin check's record, kept
    in the store, is fresh for ``ttl``: 60 s)."""
    clock = Clock(1_750_000_000.0)
    app = create_app(settings, sleep=sleeps, clock=clock, wall_clock=clock)
    yield Backend(app.test_client(), platform), clock
    app.extensions["access_desk"].close()


def admin_checks(platform):
    return len([r for r in platform.requests if r.endpoint == "user-current"])


def test_a_hold_does_not_lock_a_confirmed_admin_out_for_up_to_an_hour(timed, platform):
    backend, clock = timed
    site = platform.installation.site
    user = site.user_ids[0]
    assert backend.call("whoami").get_json()["isAdmin"] is True
    assert backend.call("whoami", account=user).get_json()["isAdmin"] is False
    clock.advance(600)  # both answers are past the 60 s cache
    platform.faults.add("user-current", "429", times=None, retry_after=3600)
    checks = admin_checks(platform)
    assert backend.call("listJobs").status_code == 200  # a "yes" 10 minutes old stands
    assert admin_checks(platform) == checks + 1  # the check was tried (and made the hold)
    assert backend.call("whoami").get_json()["isAdmin"] is True
    assert backend.call("listJobs", account=user).status_code == 403  # a "no" is never extended
    newcomer = site.user_ids[1]  # never confirmed: fails closed
    assert backend.call("whoami", account=newcomer).get_json()["isAdmin"] is False
    clock.advance(3000)  # 1 h after the admin was confirmed
    assert backend.call("listJobs").status_code == 403
    assert backend.call("whoami").get_json()["isAdmin"] is False


def test_only_a_hold_extends_a_confirmed_admin(timed, platform):
    backend, clock = timed
    assert backend.call("listJobs").status_code == 200
    clock.advance(61)
    platform.faults.add("user-current", "500", times=None)
    assert backend.call("listJobs").status_code == 403


def test_a_user_token_of_another_account_is_refused_and_nothing_cached(backend, platform):
    inst = platform.installation
    site = inst.site
    user = site.user_ids[0]
    headers = platform.invocation_headers(inst, user)
    headers["x-forge-oauth-user"] = platform.user_token(inst, site.admin_id)
    for key in ("whoami", "listJobs", "checkAccess"):
        payload = {"emails": ["a@example.com"]} if key == "checkAccess" else {}
        response = backend.client.post(f"/resolvers/{key}", json=payload, headers=headers)
        assert response.status_code == 403, key
        assert response.get_json()["error"] == "not_allowed"
    assert admin_checks(platform) == 3  # nothing was cached: each call asked again
    assert not [r for r in platform.requests if r.endpoint == "check-access"]
    assert backend.call("listJobs", account=user).status_code == 403
    assert backend.call("whoami", account=user).get_json()["isAdmin"] is False


# -- error answers stay small -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "count"),
    [
        ({"emails": [0] * 250_000}, 250_000),  # every entry not a string
        ({"emails": ["x" * 330] * 1_500}, 1_500),  # every entry too long
        (
            {f"{i:06d}" + "f" * 90_000: 1 for i in range(5)} | {"emails": ["a@b.co"]},
            5,
        ),  # long names
    ],
)
def test_error_details_are_bounded_for_a_500_kb_request(backend, payload, count):
    raw = json.dumps(payload, separators=(",", ":")).encode()
    assert 400_000 < len(raw) <= 500 * 1024
    inst = backend.platform.installation
    headers = backend.platform.invocation_headers(inst, inst.site.admin_id)
    response = backend.client.post(
        "/resolvers/inviteEmails", data=raw, headers=headers, content_type="application/json"
    )
    assert response.status_code == 400
    assert len(response.get_data()) < 64 * 1024
    body = response.get_json()
    assert body["error"] == "bad_input"
    details = body["details"]
    shown = {k: v for k, v in details.items() if k != "more"}
    assert len(shown) == min(count, 20)
    assert details.get("more", 0) == count - len(shown)
    assert all(len(k) <= 300 and len(str(v)) <= 300 for k, v in shown.items())


def test_long_names_in_messages_are_cut_short(backend):
    response = backend.call("n" * 100_000)
    assert response.status_code == 404
    assert len(response.get_data()) < 64 * 1024
    assert len(response.get_json()["message"]) <= 300
