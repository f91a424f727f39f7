"""``diagnose``: every check passing, and each one failing, through the HTTP edge against the
simulated platform (faults, switches, opaque tokens), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

import pytest

from access_desk.app import create_app
from access_desk.settings import Settings
from access_desk.store import Store
from simulator import Platform
from simulator.quota import Quota
from tests.conftest import Backend

NAMES = [
    "Forge invocation token",
    "User token",
    "System token",
    "Admin check",
    "Look up users (users-bulk)",
    "Check access (check-access-by-email)",
    "Invite (invite-by-email)",
    "Offline token",
    "Scheduled trigger",
    "Personal data report",
    "Quota",
    "Dormancy",
]


@pytest.fixture()
def backend(backend_on_each_db: Backend) -> Backend:
    """The in-process app on each database of ``tests.support.stores.BACKENDS``."""
    return backend_on_each_db


def store_of(backend: Backend) -> Store:
    found = backend.client.application.extensions["access_desk"].store
    assert isinstance(found, Store)
    return found


def iid(platform: Platform) -> str:
    return platform.installation.id


def checks(backend: Backend, **kwargs: Any) -> dict[str, dict[str, Any]]:
    response = backend.call("diagnose", **kwargs)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [c["name"] for c in body["checks"]] == NAMES
    ids = set(backend.platform.installation.site.users)
    for c in body["checks"]:
        assert {"name", "status", "detail", "summary"} <= set(c) <= {*c, "accounts"}
        assert set(c) - {"name", "status", "detail", "summary"} <= {"accounts"}
        plain_words(c["summary"], ids, c.get("accounts", []))
    return {c["name"]: c for c in body["checks"]}


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:")
JARGON = (
    "RS256",
    "exp claim",
    "context ARI",
    "scope",
    "x-forge",
    "manifest.yml",
    "ari:cloud",
    "JWT",
)


def plain_words(summary: str, ids: set[str], accounts: list[str]) -> None:
    """A summary a site admin reads: words, no ISO time, no engineer's term, no account id except
    the ones it lists in ``accounts`` (the panel shows those as names)."""
    assert summary and summary[-1] in ".)", summary
    assert not ISO_TIME.search(summary), summary
    assert not [j for j in JARGON if j.lower() in summary.lower()], summary
    assert {i for i in ids if i in summary} <= set(accounts), summary


def healthy(backend: Backend, platform: Platform, at: float | None = None) -> None:
    """A scheduled trigger and a personal data report, as the worker records them."""
    store = store_of(backend)
    backend.call("whoami")  # stores the installation
    store.note_scheduled_trigger(iid(platform), report_every_seconds=0)
    owner = store.claim_privacy_duty("test-worker", 60)
    assert owner == iid(platform)
    store.finish_privacy_duty(owner, "test-worker", housekept=True, reported=True)


def test_every_check_passes_on_a_healthy_installation(backend, platform):
    healthy(backend, platform)
    found = checks(backend)
    assert {n: c["status"] for n, c in found.items()} == dict.fromkeys(NAMES, "ok")
    inst = platform.installation
    assert inst.id in found["Forge invocation token"]["detail"]
    assert inst.cloud_id in found["Forge invocation token"]["detail"]
    assert "a JWT; its exp claim" in found["User token"]["detail"]
    assert "a JWT; its exp claim" in found["System token"]["detail"]
    admin = found["Admin check"]["detail"]
    assert "administer/application, use/application" in admin
    assert inst.site.admin_id in admin
    offline = found["Offline token"]["detail"]
    assert f"ari:cloud:confluence::site/{inst.cloud_id}" in offline
    assert "no webhook is set up yet" in offline
    assert "Confluence sent no rate-limit headers" in found["Quota"]["detail"]


def test_the_probes_are_minimal_and_invite_nobody(backend, platform):
    healthy(backend, platform)
    platform.clear_requests()
    checks(backend)
    site = platform.installation.site
    sent = {r.endpoint: r for r in platform.requests}
    assert sent["users-bulk"].body == {"accountIds": [site.admin_id]}
    assert sent["check-access"].body == {"emails": ["access-desk-diagnose@example.com"]}
    assert sent["invite"].body == {"emails": []} and sent["invite"].status == 400
    assert site.invited == {}
    assert [r.endpoint for r in platform.requests].count("invite") == 1


def test_points_are_shown_when_confluence_reports_them(backend, platform):
    healthy(backend, platform)
    platform.meter.configure(Quota(1000, 3600))
    found = checks(backend)
    users = found["Look up users (users-bulk)"]["detail"]
    assert "quota 'global-app-quota' (RateLimit) 1,000 points per 3600 s" in users
    assert "r not sent (under about 80% used)" in users and "burst limit" in users
    assert "1,000 points per 3600 s" in found["Check access (check-access-by-email)"]["detail"]
    assert found["Quota"]["status"] == "ok"
    assert "of 1,000 points left (estimated)" in found["Quota"]["detail"]
    assert "this installation spent" in found["Quota"]["detail"]
    platform.meter.configure(Quota(1000, 3600, spelling="beta"))
    found = checks(backend)  # which spelling the site sends is shown
    assert "(Beta-RateLimit)" in found["Look up users (users-bulk)"]["detail"]


def test_a_non_admin_is_refused_and_sees_the_operations_confluence_reported(backend, platform):
    user = platform.installation.site.user_ids[0]
    response = backend.call("diagnose", account=user)
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "not_allowed"
    assert "operations reported: use/application" in body["details"]["adminCheck"]
    summary = body["details"]["adminCheckSummary"]
    assert "not list you as a Confluence administrator" in summary
    plain_words(summary, set(platform.installation.site.users), [])


def test_an_admin_check_refused_for_scope_says_which_scope_to_grant(backend, platform):
    platform.faults.add("user-current", "scope", times=None)
    response = backend.call("diagnose")
    assert response.status_code == 403
    advice = response.get_json()["details"]["adminCheck"]
    assert "missing scope" in advice
    assert "Grant the app the read:content-details:confluence scope" in advice
    assert "forge deploy" in advice
    summary = response.get_json()["details"]["adminCheckSummary"]
    assert "lacks a permission it needs" in summary


def test_bad_input_is_refused(backend):
    response = backend.call("diagnose", {"verbose": True})
    assert response.status_code == 400
    assert "verbose" in response.get_json()["details"]


@pytest.mark.parametrize(
    ("endpoint", "name", "scope"),
    [
        ("users-bulk", "Look up users (users-bulk)", "read:user:confluence"),
        ("check-access", "Check access (check-access-by-email)", "read:configuration:confluence"),
        ("invite", "Invite (invite-by-email)", "read:configuration:confluence"),
    ],
)
def test_an_endpoint_without_its_scope_fails_with_the_scope_to_grant(
    backend, platform, endpoint, name, scope
):
    healthy(backend, platform)
    platform.faults.add(endpoint, "scope", times=None)
    found = checks(backend)
    assert found[name]["status"] == "fail"
    assert f"Grant the app the {scope} scope" in found[name]["detail"]
    assert "scope does not match" in found[name]["detail"]
    invite = "Invite (invite-by-email)"
    if endpoint == "check-access":  # the same scope: the invite probe's 400 proves nothing now
        assert found[invite]["status"] == "warn"
        assert "inviting is probably refused too" in found[invite]["detail"]
    others = [n for n in NAMES if n not in (name, invite)]
    assert all(found[n]["status"] == "ok" for n in others), found
    if endpoint != "check-access":
        assert found[invite]["status"] == ("fail" if endpoint == "invite" else "ok")


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        ("403", "fail", "forbade"),
        ("404", "fail", "404"),
        ("401", "fail", "refused the token"),
        ("500", "warn", "error (500"),
    ],
)
def test_an_endpoint_refusal_is_explained(backend, platform, kind, status, words):
    healthy(backend, platform)
    platform.faults.add("invite", kind, times=None)
    found = checks(backend)["Invite (invite-by-email)"]
    assert found["status"] == status
    assert words in found["detail"]


def test_a_disabled_email_api_fails_and_says_what_the_site_admin_can_do(backend, platform):
    healthy(backend, platform)
    platform.installation.site.api_disabled = True  # 503 without Retry-After
    found = checks(backend)
    for name in ("Check access (check-access-by-email)", "Invite (invite-by-email)"):
        assert found[name]["status"] == "fail"
        assert "disabled on this site (api_disabled)" in found[name]["detail"]
        assert "ask Atlassian support to enable it" in found[name]["detail"]


def test_a_503_with_retry_after_is_only_a_warning(backend, platform):
    healthy(backend, platform)
    platform.faults.add("check-access", "503", retry_after=30)
    found = checks(backend)["Check access (check-access-by-email)"]
    assert found["status"] == "warn"
    assert "unavailable for now" in found["detail"] and "api_disabled" not in found["detail"]


def test_a_slow_confluence_times_out_within_the_deadline(settings, platform, sleeps, db_url):
    fast = replace(settings, database_url=db_url, call_deadline_seconds=3.0)
    app = create_app(fast, sleep=sleeps)
    backend = Backend(app.test_client(), platform)
    try:
        healthy(backend, platform)
        platform.faults.add("users-bulk", "latency", delay=2.5)
        started = time.monotonic()
        found = checks(backend)
        took = time.monotonic() - started
    finally:
        app.extensions["access_desk"].close()
    assert found["Look up users (users-bulk)"]["status"] == "warn"
    assert "Timed out" in found["Look up users (users-bulk)"]["detail"]
    assert found["Check access (check-access-by-email)"]["status"] == "ok"
    assert took < 2.5  # answered before the slow call came back


def test_a_hold_is_honoured_and_shown(backend, platform):
    healthy(backend, platform)
    ledger = backend.client.application.extensions["access_desk"].ledger
    ledger.hold(platform.installation.api_base_url, 600)  # as a 429's Retry-After does
    platform.clear_requests()
    found = checks(backend)
    assert found["Quota"]["status"] == "warn"
    assert "wait until" in found["Quota"]["detail"]
    assert found["Look up users (users-bulk)"]["status"] == "warn"
    assert "Not tried" in found["Look up users (users-bulk)"]["detail"]
    assert not [r for r in platform.requests if r.endpoint in ("users-bulk", "invite")]


def test_near_the_limit_is_a_warning(backend, platform):
    healthy(backend, platform)
    found = checks(backend)
    assert found["Quota"]["status"] == "ok"
    platform.near_limit = True  # answers carry X-RateLimit-NearLimit: true
    found = checks(backend)
    assert found["Quota"]["status"] == "warn"
    assert "under 20%" in found["Quota"]["detail"]


# -- tokens -----------------------------------------------------------------------------------------


def call_without_system_token(backend: Backend, platform: Platform) -> dict[str, dict[str, str]]:
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id, system=False)
    response = backend.client.post("/resolvers/diagnose", json={}, headers=headers)
    assert response.status_code == 200
    return {c["name"]: c for c in response.get_json()["checks"]}


def test_no_system_token_at_all_fails(backend, platform):
    found = call_without_system_token(backend, platform)
    assert found["System token"]["status"] == "fail"
    assert "auth.appSystemToken" in found["System token"]["detail"]
    assert found["Offline token"]["status"] == "fail"
    assert "no system token is stored" in found["Offline token"]["detail"]


def test_a_stored_system_token_makes_a_missing_one_a_warning(backend, platform):
    backend.call("whoami")  # stores the system token
    found = call_without_system_token(backend, platform)
    assert found["System token"]["status"] == "warn"
    assert "The stored one (for background work) is valid until" in found["System token"]["detail"]
    assert found["Offline token"]["status"] == "ok"


def test_opaque_tokens_are_taken_as_valid_for_2_hours(backend, platform):
    platform.tokens.opaque = True
    healthy(backend, platform)
    found = checks(backend)
    assert found["User token"]["status"] == "ok"
    assert "not a JWT" in found["User token"]["detail"]
    assert "2 hours (Atlassian's documented minimum)" in found["System token"]["detail"]


def test_no_user_token_is_refused_with_the_reason(backend, platform):
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    del headers["x-forge-oauth-user"]
    response = backend.client.post("/resolvers/diagnose", json={}, headers=headers)
    assert response.status_code == 403
    assert "no user token" in response.get_json()["details"]["adminCheck"]


# -- the offline token ------------------------------------------------------------------------------


def test_the_offline_token_shows_the_form_that_worked(backend, platform):
    healthy(backend, platform)
    platform.context_ari = "workspace"
    found = checks(backend)["Offline token"]
    assert found["status"] == "ok"
    cloud = platform.installation.cloud_id
    assert (
        f"workspace context ARI form (ari:cloud:confluence:{cloud}:workspace/{cloud})"
        in (found["detail"])
    )


def test_the_offline_token_shows_the_gateways_error(backend, platform):
    healthy(backend, platform)
    platform.context_ari = "none"
    found = checks(backend)["Offline token"]
    assert found["status"] == "fail"
    assert "Could not load permissions for app user" in found["detail"]
    assert "site form" in found["detail"] and "workspace form" in found["detail"]
    health = store_of(backend).installation_health(iid(platform))
    assert health is not None and "Could not load permissions" in (health.offline_token_error or "")


def test_the_offline_token_is_for_the_webhook_admin(backend, platform):
    healthy(backend, platform)
    site = platform.installation.site
    backend.call("rotateWebhookSecret")
    found = checks(backend)["Offline token"]
    assert found["status"] == "ok"
    assert f"the webhook admin {site.admin_id}" in found["detail"]
    assert found["summary"] == f"Webhook jobs can act as {site.admin_id}."
    assert found["accounts"] == [site.admin_id]  # the panel shows the name there


def test_a_webhook_admin_who_is_no_longer_admin_is_a_warning(backend, platform):
    healthy(backend, platform)
    site = platform.installation.site
    backend.call("rotateWebhookSecret")
    old = site.admin_id
    site.admin_id = site.user_ids[0]
    found = checks(backend, account=site.user_ids[0])["Offline token"]
    assert found["status"] == "warn"
    assert f"{old} is no longer a Confluence administrator" in found["detail"]
    assert "rotate the webhook secret" in found["detail"]


def test_a_cached_offline_token_is_never_reported_as_freshly_minted(backend, platform):
    """Every diagnosis mints a new offline token: once the platform stops granting them, the row
    says so, although a token minted earlier is cached and still works."""
    healthy(backend, platform)
    site = platform.installation.site
    assert checks(backend)["Offline token"]["status"] == "ok"
    cached = store_of(backend).offline_token(iid(platform), site.admin_id)
    assert cached is not None and platform.tokens.lookup(cached[0]) is not None  # still valid
    platform.context_ari = "none"  # the gateway stops granting offline tokens
    platform.clear_requests()
    found = checks(backend)["Offline token"]
    assert found["status"] == "fail"
    assert "Could not load permissions for app user" in found["detail"]
    assert "minted" not in found["detail"]
    assert [r.endpoint for r in platform.requests].count("graphql") == 2  # both forms tried


def test_each_diagnosis_mints_its_own_offline_token(backend, platform):
    healthy(backend, platform)
    site = platform.installation.site
    store_of(backend).save_offline_token(
        iid(platform), site.admin_id, "stale-token", time.time() + 3600
    )
    found = checks(backend)["Offline token"]
    assert found["status"] == "ok" and "freshly minted" in found["detail"]
    cached = store_of(backend).offline_token(iid(platform), site.admin_id)
    assert cached is not None and cached[0] != "stale-token"


def test_offline_tokens_refused_without_impersonation_say_what_to_change(backend, platform):
    """The deployed manifest allows no impersonation: the gateway refuses the token, and the row
    names the manifest change (allowImpersonation on the scopes offline calls use)."""
    healthy(backend, platform)
    platform.impersonation = frozenset()
    found = checks(backend)["Offline token"]
    assert found["status"] == "fail"
    assert "not allowed to impersonate" in found["detail"]
    assert "allowImpersonation: true" in found["detail"]
    assert "read:configuration:confluence" in found["detail"]
    assert "read:content-details:confluence" in found["detail"]


def test_a_scope_without_impersonation_refuses_the_offline_call(backend, platform):
    """The manifest flags only the job scope: user/current with the offline token is refused
    (401 scope does not match), and the row names the change."""
    healthy(backend, platform)
    platform.impersonation = frozenset({"read:configuration:confluence"})
    found = checks(backend)["Offline token"]
    assert found["status"] == "fail"
    assert "scope does not match" in found["detail"]
    assert "allowImpersonation: true" in found["detail"]


# -- what the store knows ---------------------------------------------------------------------------


def earlier_store(settings: Settings, db_url: str, seconds_ago: float) -> Store:
    """The same database with a clock ``seconds_ago`` in the past (to date a trigger, a report)."""
    return Store(db_url, settings.secret_key, clock=lambda: time.time() - seconds_ago)


def test_no_scheduled_trigger_yet_is_a_warning(backend, platform):
    found = checks(backend)
    assert found["Scheduled trigger"]["status"] == "warn"
    assert "No scheduled trigger has arrived yet" in found["Scheduled trigger"]["detail"]
    assert found["Personal data report"]["status"] == "warn"
    assert "No personal data report yet" in found["Personal data report"]["detail"]


@pytest.mark.parametrize(
    ("hours", "status", "words"),
    [
        (0.1, "ok", "arrived at"),
        (3, "warn", "one is expected every hour"),
        (80, "fail", "No scheduled trigger for 3 days"),
    ],
)
def test_the_last_scheduled_trigger(backend, platform, settings, db_url, hours, status, words):
    backend.call("whoami")
    old = earlier_store(settings, db_url, hours * 3600)
    try:
        old.note_scheduled_trigger(iid(platform), report_every_seconds=10**9)
    finally:
        old.close()
    found = checks(backend)["Scheduled trigger"]
    assert found["status"] == status
    assert words in found["detail"]
    if status == "fail":
        assert "scheduled trigger in manifest.yml is deployed" in found["detail"]


def test_a_failed_personal_data_report_says_what_to_check(backend, platform):
    healthy(backend, platform)
    store = store_of(backend)
    store.note_scheduled_trigger(iid(platform), report_every_seconds=0)
    owner = store.claim_privacy_duty("w", 60)
    assert owner is not None
    store.finish_privacy_duty(
        owner, "w", housekept=False, reported=False, error="HTTP 401 from the reporting API"
    )
    found = checks(backend)["Personal data report"]
    assert found["status"] == "fail"
    assert "HTTP 401 from the reporting API" in found["detail"]
    assert "PERSONAL_DATA_URL" in found["detail"]


def test_an_old_personal_data_report_is_a_warning(backend, platform, settings, db_url):
    backend.call("whoami")
    old = earlier_store(settings, db_url, 20 * 86400)
    try:
        old.note_scheduled_trigger(iid(platform), report_every_seconds=0)
        owner = old.claim_privacy_duty("w", 60)
        assert owner is not None
        old.finish_privacy_duty(owner, "w", housekept=True, reported=True)
    finally:
        old.close()
    found = checks(backend)["Personal data report"]
    assert found["status"] == "warn"
    assert "20 days ago" in found["detail"]


def test_a_dormant_installation_fails_with_the_reason(backend, platform, settings, db_url):
    backend.call("whoami")  # remembered: the next calls within 5 minutes do not wake it
    old = earlier_store(settings, db_url, 100 * 3600)
    try:
        old.note_scheduled_trigger(iid(platform), report_every_seconds=10**9)
    finally:
        old.close()
    assert store_of(backend).mark_quiet_installations_dormant(72 * 3600) == [iid(platform)]
    found = checks(backend)["Dormancy"]
    assert found["status"] == "fail"
    assert "Forge sent no scheduled trigger for 72 hours" in found["detail"]
    assert "jobs are paused" in found["detail"]


def test_refused_background_calls_are_a_warning(backend, platform):
    backend.call("whoami")
    store = store_of(backend)
    admin = platform.installation.site.admin_id
    args = {"refusals_to_pause": 10, "span_seconds": 3600, "recent_seconds": 86400}
    for _ in range(3):
        store.note_account_answer(iid(platform), admin, refused=True, **args)
    found = checks(backend)["Dormancy"]
    assert found["status"] == "warn"
    assert "Background calls refused in a row by the site" in found["detail"]
    assert f"{admin}: 3 since" in found["detail"]
    store.note_account_answer(iid(platform), "557058:another-admin", refused=False, **args)
    for _ in range(7):  # paused: only that account's jobs wait, and the check says whose
        store.note_account_answer(iid(platform), admin, refused=True, **{**args, "span_seconds": 0})
    found = checks(backend)["Dormancy"]
    assert found["status"] == "warn" and f"The jobs acting as {admin}" in found["detail"]


def test_no_token_appears_in_the_answer(backend, platform):
    healthy(backend, platform)
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    response = backend.client.post("/resolvers/diagnose", json={}, headers=headers)
    text = response.get_data(as_text=True)
    assert headers["x-forge-oauth-user"] not in text
    assert headers["x-forge-oauth-system"] not in text
    cached = store_of(backend).offline_token(inst.id, inst.site.admin_id)
    assert cached is not None and cached[0] not in text
