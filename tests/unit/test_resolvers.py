"""Resolvers through the HTTP edge (in-process app) against the simulated platform."""

from __future__ import annotations

import pytest


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


def test_concurrent_first_calls_make_one_admin_check(backend, platform):
    from concurrent.futures import ThreadPoolExecutor

    platform.faults.add("user-current", "latency", times=None, delay=0.2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: backend.call("whoami").get_json(), range(8)))
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
