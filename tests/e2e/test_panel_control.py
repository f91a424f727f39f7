"""The panel's newer controls in Chromium: the invite flow's one primary action and fresh results,
job control (cancel, retry the failed, pace and time left, a flag when a job ends elsewhere), the
audit log's filters and CSV, and the webhook tab's state.

Resolvers a backend may not have yet (cancelJob, retryJob, webhookStatus, listAudit's filters,
rotateWebhookSecret's revokePrevious) are answered in the browser with the shapes the README gives
them; everything else goes to the real gunicorn. Each test runs at 1,024 px in light and 1,440 px in
dark, with axe-core on every screen.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.panel_helpers import FITS, Screens, downloaded_csv, open_panel, overflow
from tests.e2e.test_panel_flows import INVOKE, preview_two_new, resolver_call

pytestmark = pytest.mark.e2e

LOOKS = [(1024, "light"), (1440, "dark")]
LOOK_IDS = [f"{w}-{t}" for w, t in LOOKS]


def answer(body: Any, status: int = 200) -> dict[str, Any]:
    """The bridge's answer, as the host page relays the backend's."""
    return {"status": status, "headers": {}, "body": json.dumps(body)}


def bad_input(field: str) -> dict[str, Any]:
    return answer(
        {"error": "bad_input", "message": "Bad input.", "details": {field: "required"}}, 400
    )


def iso(delta: timedelta) -> str:
    return (datetime.now(tz=UTC) + delta).isoformat().replace("+00:00", "Z")


class Fake:
    """Answers chosen resolvers in the browser (handler(payload) -> bridge answer); the rest go to
    the backend. ``sent`` holds every (key, payload) the panel sent."""

    def __init__(self, page: Any, handlers: dict[str, Any]) -> None:
        self.handlers = handlers
        self.sent: list[tuple[str, Any]] = []
        page.route(INVOKE, self._route)

    def _route(self, route: Any) -> None:
        found = resolver_call(route.request)
        if found is None:
            route.continue_()
            return
        self.sent.append(found)
        key, payload = found
        if key in self.handlers:
            route.fulfill(json=self.handlers[key](payload or {}))
        else:
            route.continue_()

    def payloads(self, key: str) -> list[Any]:
        return [p for k, p in self.sent if k == key]


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_invite_has_one_primary_action_and_fresh_results(browser, host, platform, width, theme):
    page, panel = open_panel(browser, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-invite-{width}-{theme}")

    def with_cost(route: Any) -> None:  # jobs carry estimatedPoints (the quota issue)
        found = resolver_call(route.request)
        if not found or found[0] not in ("inviteEmails", "getJob"):
            route.continue_()
            return
        relayed = route.fetch().json()
        body = json.loads(relayed["body"])
        if "job" in body:
            body["job"]["estimatedPoints"] = 4
        route.fulfill(json={**relayed, "body": json.dumps(body)})

    try:
        page.route(INVOKE, with_cost)
        invite, confirm = preview_two_new(panel, platform)
        bar = invite.get_by_role("group", name="Invite 2 people?")
        expect(bar).to_contain_text("Costs about 4 Confluence points.")
        expect(invite.locator(".btn-primary:visible")).to_have_count(1)
        expect(invite.get_by_role("button", name="Preview invitations")).not_to_have_class(
            re.compile("btn-primary")
        )
        assert overflow(panel) == FITS
        shots.check("preview")

        # A list the form refuses: the old preview goes at once.
        area = invite.get_by_label("Emails to invite")
        area.fill("")
        invite.get_by_role("button", name="Preview invitations").click()
        expect(invite.locator(".field-error")).to_have_text("Enter at least one email.")
        expect(bar).to_have_count(0)
        expect(invite.get_by_role("heading", name="Preview")).to_have_count(0)
        expect(invite.get_by_role("button", name="Preview invitations")).to_have_class(
            re.compile("btn-primary")
        )

        # A list the backend refuses: the error replaces the old preview.
        page.unroute(INVOKE, with_cost)
        invite, confirm = preview_two_new(panel, platform)
        refuse = Fake(page, {"inviteEmails": lambda p: bad_input("emails[1]")})
        area.fill("one@example.com\ntwo@example.com")
        invite.get_by_role("button", name="Preview invitations").click()
        alert = invite.get_by_role("alert")
        expect(alert).to_contain_text("entry 2: required")
        expect(invite.get_by_role("group", name="Invite 2 people?")).to_have_count(0)
        shots.check("refused")
        page.unroute(INVOKE, refuse._route)

        # A finished invitation clears the form; one that ends on another tab raises a flag.
        invite, confirm = preview_two_new(panel, platform)
        platform.latency = 1.0
        confirm.click()
        expect(invite.get_by_role("progressbar", name="Invitation progress")).to_be_visible()
        panel.get_by_role("tab", name="Audit log").click()
        flag = panel.get_by_role("group", name="Invitations finished")
        expect(flag).to_contain_text("2 invited")
        assert overflow(panel) == FITS
        shots.check("flag")
        platform.latency = 0
        flag.get_by_role("button", name="View job").click()
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        expect(jobs.get_by_role("region", name="Job items").locator("tbody tr")).to_have_count(2)
        expect(jobs.locator("tr.row-open")).to_have_count(1)
        panel.get_by_role("tab", name="Invite").click()
        expect(invite.get_by_label("Emails to invite")).to_have_value("")
        expect(invite.get_by_role("heading", name="Invitations finished")).to_be_visible()
    finally:
        platform.latency = 0
        page.context.close()


def fake_jobs(admin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A running invitation that moves 5 items a poll, and a finished one with 2 failed items."""
    running = {
        "id": "job-running", "kind": "invite", "source": "webhook", "dryRun": False,
        "state": "running", "createdAt": iso(-timedelta(minutes=3)), "createdBy": admin,
        "updatedAt": iso(timedelta()), "total": 100, "estimatedPoints": 300,
        "notBefore": iso(timedelta(minutes=20)),
        "counts": {"pending": 90, "invited": 10, "alreadyHasAccess": 0, "invalid": 0, "failed": 0},
        "items": [],
    }  # fmt: skip
    over = {
        "id": "job-over", "kind": "invite", "source": "panel", "dryRun": False, "state": "done",
        "createdAt": iso(-timedelta(hours=1)), "createdBy": admin, "updatedAt": iso(-timedelta(hours=1)),
        "total": 5, "estimatedPoints": 10, "notBefore": None,
        "counts": {"pending": 0, "invited": 3, "alreadyHasAccess": 0, "invalid": 0, "failed": 2},
        "items": [
            {"email": f"p{i}@example.com", "outcome": "invited"} for i in range(3)
        ] + [{"email": f"f{i}@example.com", "outcome": "failed", "error": "timeout"} for i in range(2)],
    }  # fmt: skip
    return running, over


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_jobs_can_be_cancelled_retried_and_show_their_pace(browser, host, platform, width, theme):
    admin = platform.installation.site.admin_id
    running, over = fake_jobs(admin)
    jobs_by_id = {j["id"]: j for j in (running, over)}
    order = [running, over]

    def get_job(p: dict[str, Any]) -> dict[str, Any]:
        job = jobs_by_id[p["jobId"]]
        if job["state"] == "running":
            c = job["counts"]
            step = min(5, c["pending"])
            c["pending"] -= step
            c["invited"] += step
        return answer({"job": job})

    def cancel(p: dict[str, Any]) -> dict[str, Any]:
        if "jobId" not in p:
            return bad_input("jobId")
        job = jobs_by_id[p["jobId"]]
        c = job["counts"]
        c["failed"], c["pending"] = c["pending"], 0
        job["state"] = "failed"
        return answer({"job": job})

    def retry(p: dict[str, Any]) -> dict[str, Any]:
        if "jobId" not in p:
            return bad_input("jobId")
        again = {
            **over,
            "id": "job-again",
            "state": "queued",
            "total": 2,
            "createdAt": iso(timedelta()),
        }
        again["counts"] = {
            "pending": 2,
            "invited": 0,
            "alreadyHasAccess": 0,
            "invalid": 0,
            "failed": 0,
        }
        again["items"] = [{"email": f"f{i}@example.com", "outcome": "pending"} for i in range(2)]
        jobs_by_id["job-again"] = again
        order.insert(0, again)
        return answer({"job": again})

    def list_jobs(p: dict[str, Any]) -> dict[str, Any]:
        return answer(
            {"jobs": [{k: v for k, v in j.items() if k != "items"} for j in order], "next": None}
        )

    page, panel = open_panel(browser, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-jobs-{width}-{theme}")
    fake = Fake(
        page, {"listJobs": list_jobs, "getJob": get_job, "cancelJob": cancel, "retryJob": retry}
    )
    try:
        panel.get_by_role("tab", name="Jobs").click()
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        table = jobs.get_by_role("region", name="Jobs")
        expect(table.locator("tbody tr")).to_have_count(2)
        expect(table.locator("tbody tr").first).to_contain_text("In progress")
        table.locator("tbody tr").first.locator("td").nth(3).click()  # anywhere on the row
        expect(table.locator("tr.row-open")).to_have_count(1)
        pace = jobs.locator(".job-detail .progress-hint")
        expect(pace).to_contain_text("Waiting for Confluence until")
        expect(pace).to_contain_text(
            re.compile(r"\d+ a minute · (about .+|less than a minute) left")
        )
        expect(pace).to_contain_text("about 300 Confluence points")
        assert overflow(panel) == FITS
        shots.check("running")

        jobs.get_by_role("button", name="Cancel job").click()
        expect(panel.get_by_role("group", name="Job cancelled")).to_be_visible()
        assert {"jobId": "job-running"} in fake.payloads("cancelJob")
        expect(jobs.get_by_role("button", name="Cancel job")).to_have_count(0)
        expect(jobs.locator(".job-detail")).to_contain_text("Stopped")

        table.get_by_role("button", name=re.compile("^Open job: Invitation of 5 people")).click()
        retry_button = jobs.get_by_role("button", name="Retry 2 failed items")
        shots.check("over")
        retry_button.click()
        assert {"jobId": "job-over"} in fake.payloads("retryJob")
        expect(table.locator("tbody tr")).to_have_count(3)
        expect(jobs.locator(".job-detail h3")).to_contain_text("Invitation of 2 people")
        expect(panel.get_by_role("group", name="Retry started")).to_be_visible()
        shots.check("retried")
    finally:
        page.context.close()


def test_job_controls_stay_hidden_on_a_backend_without_them(browser, host, platform, live_backend):
    from tests.e2e.test_panel_flows import admin_call

    email = list(platform.installation.site.sample_new_emails)[0]
    admin_call(
        platform, live_backend.url, "inviteEmails", {"emails": [email, "bad"], "dryRun": True}
    )
    page, panel = open_panel(browser, host)
    try:
        panel.get_by_role("tab", name="Jobs").click()
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        jobs.get_by_role("button", name=re.compile("^Open job: Preview")).click()
        expect(jobs.get_by_role("region", name="Job items")).to_be_visible()
        expect(jobs.locator("#job-cancel, #job-retry")).to_have_count(0)
        expect(jobs.get_by_role("alert")).to_have_count(0)
    finally:
        page.context.close()


AUDIT = [
    {"at": iso(-timedelta(minutes=5)), "actor": "ACTOR", "action": "invite", "source": "panel",
     "subjects": ["a@example.com", "b@example.com"],
     "outcome": {"jobId": "job-1", "state": "done", "pending": 0, "invited": 236,
                 "alreadyHasAccess": 0, "invalid": 4, "failed": 0}},
    {"at": iso(-timedelta(days=2)), "actor": "webhook", "action": "webhook.delivery",
     "source": "webhook", "subjects": ["c@example.com"],
     "outcome": {"jobId": "job-2", "webhookId": "msg_1", "emails": 1}},
]  # fmt: skip


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_audit_filters_are_sent_and_the_csv_holds_the_filtered_range(
    browser, host, platform, width, theme
):
    site = platform.installation.site
    entries = [
        {**e, "actor": site.admin_id if e["actor"] == "ACTOR" else e["actor"]} for e in AUDIT
    ]

    def list_audit(p: dict[str, Any]) -> dict[str, Any]:
        shown = [e for e in entries if not p.get("action") or e["action"] == p["action"]]
        return answer({"entries": shown, "next": None})

    page, panel = open_panel(browser, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-audit-{width}-{theme}")
    fake = Fake(page, {"listAudit": list_audit})
    try:
        panel.get_by_role("tab", name="Audit log").click()
        audit = panel.get_by_role("tabpanel", name="Audit log")
        rows = audit.get_by_role("region", name="Audit log").locator("tbody tr")
        name = site.users[site.admin_id]["displayName"]
        expect(rows.first).to_contain_text(f"{name} invited 240 people: 236 invited, 4 invalid.")
        expect(rows.nth(1)).to_contain_text("A webhook sent a webhook to invite 1 person.")
        filters = audit.get_by_role("search", name="Filter the audit log")
        expect(filters).to_be_visible()
        filters.get_by_label("What").select_option(label="Invitations")
        expect(rows).to_have_count(1)
        assert fake.payloads("listAudit")[-1] == {"limit": 100, "action": "invite"}
        filters.get_by_label("Who").select_option(label=name)
        filters.get_by_label("Email or account id").fill("a@example.com")
        filters.get_by_label("From").fill("2026-01-01")
        filters.get_by_label("To").fill("2026-01-31")
        filters.get_by_role("button", name="Apply filters").click()
        expect(rows).to_have_count(1)
        sent = fake.payloads("listAudit")[-1]
        assert {k: sent[k] for k in ("action", "actor", "subject")} == {
            "action": "invite", "actor": site.admin_id, "subject": "a@example.com",
        }  # fmt: skip
        assert sent["since"] < sent["until"]
        assert re.match(r"^2025-12-3\dT|^2026-01-01T", sent["since"]), sent
        assert overflow(panel) == FITS
        shots.check("filtered")

        csv_rows = downloaded_csv(
            page,
            audit.get_by_role(
                "button", name="Download CSV of the audit entries shown by the filters"
            ),
        )
        last = fake.payloads("listAudit")[-1]
        assert (
            last["limit"] == 500
            and last["action"] == "invite"
            and last["subject"] == "a@example.com"
        )
        assert [r[2] for r in csv_rows[1:]] == ["invite"]
        assert csv_rows[1][6] == f"{name} invited 240 people: 236 invited, 4 invalid."
        expect(panel.get_by_role("group", name="Downloaded audit-filtered.csv")).to_be_visible()

        # View job goes to the job.
        audit.get_by_role("button", name=re.compile("^View job: invited 240")).click()
        expect(panel.get_by_role("tab", name="Jobs")).to_have_attribute("aria-selected", "true")
    finally:
        page.context.close()


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_webhook_tab_shows_its_state_and_can_revoke_the_old_secret(
    browser, host, platform, width, theme
):
    admin = platform.installation.site.admin_id
    name = platform.installation.site.users[admin]["displayName"]
    state: dict[str, Any] = {
        "url": "https://access-desk.example.com/webhooks/abc",
        "configured": False,
        "recentDeliveries": [],
    }

    def rotate(p: dict[str, Any]) -> dict[str, Any]:
        state.update(configured=True, rotatedAt=iso(timedelta()), actingAs=admin)
        if state.get("rotations"):
            state["previousValidUntil"] = (
                None if p.get("revokePrevious") else iso(timedelta(hours=24))
            )
        state["rotations"] = state.get("rotations", 0) + 1
        return answer({"url": state["url"], "secret": "whsec_" + "A" * 44})

    page, panel = open_panel(browser, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-webhook-{width}-{theme}")
    fake = Fake(page, {"webhookStatus": lambda p: answer(state), "rotateWebhookSecret": rotate})
    try:
        panel.get_by_role("tab", name="Webhook").click()
        hook = panel.get_by_role("tabpanel", name="Webhook")
        # First setup: the URL already shows, the action is "Create secret".
        expect(hook.get_by_role("textbox", name="Webhook URL")).to_have_value(state["url"])
        expect(hook.locator("dl.facts")).to_contain_text("Not set")
        expect(hook.get_by_role("heading", name="No deliveries yet")).to_be_visible()
        expect(hook.locator("pre").first).to_contain_text(state["url"])
        expect(hook.locator("pre").first).to_contain_text('"dryRun":true')
        expect(hook.get_by_role("button", name=re.compile("^Rotate"))).to_have_count(0)
        assert overflow(panel) == FITS
        shots.check("first")
        hook.get_by_role("button", name="Create secret…").click()
        expect(hook.get_by_role("checkbox")).to_have_count(0)  # nothing to revoke yet
        hook.get_by_role("button", name="Create secret", exact=True).click()
        expect(hook.get_by_role("textbox", name="Signing secret")).to_have_value(
            re.compile("^whsec_")
        )
        expect(hook.locator("dl.facts")).to_contain_text(f"by {name}")
        assert fake.payloads("rotateWebhookSecret") == [{}]

        # A rotation keeps the old secret 24 h; "Revoke it now…" ends it.
        state["recentDeliveries"] = [
            {"at": iso(-timedelta(minutes=2)), "webhookId": "msg_1", "status": "accepted", "jobId": "j1"},
            {"at": iso(-timedelta(minutes=1)), "webhookId": "msg_1", "status": "replayed", "jobId": "j1"},
        ]  # fmt: skip
        hook.get_by_role("button", name="Rotate secret…").click()
        hook.get_by_role("button", name="Rotate secret", exact=True).click()
        expect(hook.locator("dl.facts")).to_contain_text("Still works until")
        deliveries = hook.get_by_role("region", name="Recent deliveries")
        expect(deliveries.locator("tbody tr")).to_have_count(2)
        expect(deliveries).to_contain_text("Repeat, ignored")
        shots.check("rotated")
        hook.get_by_role("button", name="Revoke it now…").click()
        box = hook.get_by_role("checkbox", name=re.compile("^Revoke the current secret now"))
        expect(box).to_be_checked()
        shots.check("revoke-confirm")
        hook.get_by_role("button", name="Rotate secret", exact=True).click()
        expect(hook.locator(".msg-success")).to_contain_text("The previous secret no longer works.")
        assert fake.payloads("rotateWebhookSecret")[-1] == {"revokePrevious": True}
        expect(hook.get_by_role("button", name="Revoke it now…")).to_have_count(0)
    finally:
        page.context.close()
