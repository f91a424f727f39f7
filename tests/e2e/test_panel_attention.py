"""The panel's third round (issue 19 items 2, 3, 5, 8, 9, 11, 12) as a site admin meets it, in
Chromium against the real backend and the simulated platform:

- long work says something: a preview counts what it has checked and says why it waits (the
  quota), and can be cancelled; an invitation can be cancelled on the Invite tab;
- cancelled is its own outcome: the lozenge, counts, progress ("N of M processed, K cancelled"),
  the audit sentence, and "Invite the K not sent" as the next action;
- what needs attention comes first: problems first, empty columns and zero cards hidden, the same
  summary cards on every tool;
- the audit log finds the 121st invitee, marks the match, filters by the webhook, Forge and date
  presets, one entry per webhook delivery, a CSV with names and one address per row;
- webhook setup: first-time wording, "Copy secret"/"Done" beside a new secret, refused deliveries
  listed with why, a "Send test delivery" through the real endpoint.

One page load per test; each screen is looked at (axe-core, nothing overflowing sideways, a
screenshot) at 1,024 px light and 1,440 px dark by resizing that page and switching its theme.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from access_desk.settings import Settings
from access_desk.store import Store
from bench.common import LiveServer, backend_env, stop_server
from tests.conftest import start_gunicorn
from tests.e2e.panel_helpers import (
    FITS,
    HOST_NAV,
    ROOT,
    VIEWPORT,
    Screens,
    deliver,
    dismiss_flags,
    downloaded_csv,
    open_panel,
    overflow,
    paste,
    wait_refused,
)
from tests.e2e.test_backend import wait_job
from tests.e2e.test_panel_control import Sent
from tests.e2e.test_panel_flows import admin_call

pytestmark = pytest.mark.e2e

LOOKS = [(1024, "light"), (1440, "dark")]


@pytest.fixture()
def live_backend(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """The real backend; the background worker looks for work every half second."""
    server = start_gunicorn(
        backend_env(settings, WORKER_POLL_SECONDS="0.5"), tmp_path / "gunicorn.log"
    )
    try:
        yield server
    finally:
        stop_server(server)


def size(page: Any, panel: Any, width: int, theme: str) -> None:
    """The panel's frame ``width`` px wide, in the host's ``theme``."""
    viewport = {**VIEWPORT, "width": width + HOST_NAV}
    page.set_viewport_size(viewport)
    inner = panel.locator("html").evaluate("() => window.innerWidth")
    if inner != width:  # the host page's scrollbar takes from the frame
        page.set_viewport_size({**viewport, "width": viewport["width"] + width - inner})
    page.select_option("#host-theme", theme)
    expect(panel.locator(f"html[data-color-mode={theme}]")).to_have_count(1)


def look(page: Any, panel: Any, shots: Screens, name: str, *, top: bool = False) -> None:
    """The screen as it is at each of LOOKS: nothing overflows sideways, axe finds no serious or
    critical violation, a screenshot (with ``top``: the window's height from the top, as the docs
    show it); then back at the first look."""
    for width, theme in LOOKS:
        size(page, panel, width, theme)
        assert overflow(panel) == FITS, (name, width, theme)
        shots.check(f"{name}-{width}-{theme}", top=top)
    size(page, panel, *LOOKS[0])


def test_long_work_says_something_and_cancelled_is_its_own_outcome(
    new_context, host, platform, live_backend, settings
):
    url = live_backend.url
    site = platform.installation.site
    member = site.users_with_access_emails()[0]
    page, panel = open_panel(new_context, host, panel_width=LOOKS[0][0], theme=LOOKS[0][1])
    shots = Screens(page, "attention-invite")
    sent = Sent(page)
    try:
        # Look up: the same summary cards as every tool, no zero card, the not found first.
        lookup = panel.get_by_role("tabpanel", name="Look up users")
        lookup.get_by_label("Account ids").fill(f"{site.admin_id}\nno-such-account-1")
        lookup.get_by_role("button", name="Look up").click()
        cards = lookup.get_by_role("list", name="Counts")
        expect(cards).to_have_text("1Found1Not found")
        headings = lookup.locator(".result-block h3")
        expect(headings).to_have_text(["Not found (1)", "Found (1)"])

        # Check access: problems first, no empty Detail column, no zero card.
        panel.get_by_role("tab", name="Check access").click()
        access = panel.get_by_role("tabpanel", name="Check access")
        access.get_by_label("Emails").fill(f"new.person@newcomers.example\n{member}\nnot-an-email")
        access.get_by_role("button", name="Check access").click()
        expect(access.get_by_role("list", name="Counts")).to_have_text(
            "1No access1Has access1Invalid email"
        )
        results = access.get_by_role("region", name="Access check results")
        expect(results.locator("tbody tr").first).to_contain_text("not-an-email")
        expect(results.locator("thead th:visible")).to_have_text(["Email", "Result"])

        # A preview that runs counts what it checked; then problems first, zero cards hidden.
        panel.get_by_role("tab", name="Invite").click()
        invite = panel.get_by_role("tabpanel", name="Invite")
        bar = invite.get_by_role("progressbar", name="Preview progress")
        new = [f"cancel.me{i:03d}@newcomers.example" for i in range(400)]
        platform.latency = 1.0  # a second a Confluence call: the preview takes a few polls
        paste(invite.get_by_label("Emails to invite"), "\n".join([*new, member, "not-an-email"]))
        invite.get_by_role("button", name="Preview invitations").click()
        expect(bar).to_have_attribute(
            "aria-valuetext", re.compile(r"^Checked [\d,]+ of 402 emails$")
        )
        expect(invite.get_by_role("heading", name="Would be invited (400)")).to_be_visible()
        expect(invite.locator(".result-block h4")).to_have_text(
            ["Skipped (2)", "Would be invited (400)"]
        )
        expect(invite.get_by_role("list", name="Counts")).to_have_text(
            "400Would be invited1Invalid email1Has access"
        )
        skipped = invite.get_by_role("region", name="Skipped", exact=True)
        expect(skipped.locator("tbody tr").first).to_contain_text("not-an-email")
        expect(skipped.locator("thead th:visible")).to_have_text(["Email", "Why"])

        # The invitation, cancelled on the Invite tab after its first invitations.
        invite.get_by_role("button", name="Invite 400 people").click()
        progress = invite.get_by_role("progressbar", name="Invitation progress")
        expect(progress).to_have_attribute(
            "aria-valuenow", re.compile(r"^[1-9]\d*$"), timeout=60_000
        )
        expect(invite.locator(".progress-text")).to_contain_text(re.compile(r"[1-9]\d* invited"))
        invite.get_by_role("button", name="Cancel invitations").click()
        expect(invite.get_by_role("heading", name="Invitations cancelled")).to_be_visible()
        platform.latency = 0
        job_id = next(p for k, p in sent.calls if k == "cancelJob")["jobId"]
        job = wait_job(url, platform, job_id)
        invited, cancelled = job["counts"]["invited"], job["counts"]["cancelled"]
        assert invited % 100 == 0 and invited + cancelled == 400 and cancelled > 0
        expect(progress).to_have_attribute(
            "aria-valuetext", f"{invited} of 400 processed, {cancelled} cancelled"
        )
        expect(progress).to_have_attribute("aria-valuenow", str(invited))
        expect(invite.locator(".msg-info")).to_contain_text(
            f"{invited} invited before the cancel; {cancelled} not sent."
        )
        expect(invite.get_by_role("list", name="Counts")).to_contain_text(f"{cancelled}Cancelled")
        outcomes = invite.get_by_role("region", name="Invitation outcomes")
        expect(outcomes.locator("tbody tr").first.locator(".lozenge")).to_have_text("Cancelled")
        again = invite.get_by_role("button", name=f"Invite the {cancelled} people not sent")
        expect(again).to_have_class(re.compile("btn-primary"))
        expect(invite.locator(".btn-primary:visible")).to_have_count(1)
        dismiss_flags(page)
        look(page, panel, shots, "cancelled")

        # The job reads Cancelled (not a red Stopped) and offers the same next action.
        invite.get_by_role("button", name="View in Jobs").click()
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        detail = jobs.locator(".job-detail")
        expect(detail.locator(".field-hint .lozenge")).to_have_text("Cancelled")
        expect(detail.locator(".lozenge-removed")).to_have_count(0)
        expect(
            jobs.get_by_role("button", name=f"Invite the {cancelled} people not sent")
        ).to_be_visible()
        expect(jobs.get_by_role("region", name="Jobs").locator("tr.row-open")).to_contain_text(
            f"{invited} invited · {cancelled} cancelled"
        )
        look(page, panel, shots, "job-cancelled")

        # The audit sentence says what was not sent.
        panel.get_by_role("tab", name="Audit log").click()
        audit = panel.get_by_role("tabpanel", name="Audit log")
        expect(audit.get_by_role("region", name="Audit log")).to_contain_text(
            f"invited 400 people: {invited} invited, {cancelled} not sent (cancelled)."
        )

        # The next action: those not sent are invited by the job's one retry.
        panel.get_by_role("tab", name="Invite").click()
        again.click()
        expect(invite.get_by_role("heading", name="Invitations finished")).to_be_visible(
            timeout=60_000
        )
        expect(invite.locator(".msg-success")).to_contain_text(f"Done: {cancelled} invited.")
        expect(invite.get_by_role("button", name="View in Jobs")).to_be_visible()
        assert [p for k, p in sent.calls if k == "retryJob"] == [{"jobId": job_id}]
        dismiss_flags(page)
        look(page, panel, shots, "finished")

        # Last (the site stays held): a preview held by the quota says why and how far it got, and
        # can be cancelled.
        platform.faults.add("check-access", "429", times=1, retry_after=900)
        paste(
            invite.get_by_label("Emails to invite"),
            "\n".join(f"held{i}@newcomers.example" for i in range(250)),
        )
        invite.get_by_role("button", name="Preview invitations").click()
        expect(bar).to_have_attribute("aria-valuetext", "Checked 0 of 250 emails")
        hint = invite.locator(".progress-hint")
        expect(hint).to_contain_text(
            re.compile(r"Waiting for Confluence's points quota, which resumes (in \d+ s|at \d)")
        )
        look(page, panel, shots, "preview-waiting")
        invite.get_by_role("button", name="Cancel preview").click()
        expect(invite.locator(".msg-info")).to_contain_text("Preview cancelled")
        # (Not through the API: the site is held, so another worker could not confirm the admin.)
        store = Store(settings.database_url, settings.secret_key)
        try:
            deadline = time.monotonic() + 15
            while True:
                cancels = [p["jobId"] for k, p in sent.calls if k == "cancelJob"]
                ended = store.job(platform.installation.id, cancels[-1], items=False)
                if cancels[-1] != job_id and ended is not None and not ended.active:
                    break
                assert time.monotonic() < deadline, "the held preview was not cancelled"
                page.wait_for_timeout(100)
            assert (ended.state, ended.counts.cancelled) == ("failed", 250)
        finally:
            store.close()
    finally:
        platform.latency = 0


def test_the_audit_log_finds_every_invitee_and_every_actor(
    new_context, host, platform, live_backend, settings
):
    url = live_backend.url
    site = platform.installation.site
    name = site.users[site.admin_id]["displayName"]
    hires = [f"new.hire{i:03d}@newcomers.example" for i in range(1, 122)]
    job = admin_call(platform, url, "inviteEmails", {"emails": hires})["job"]
    wait_job(url, platform, job["id"])
    hook = admin_call(platform, url, "rotateWebhookSecret", {})
    delivered = deliver(url, hook["url"], hook["secret"], "msg_hr_1", ["hr.hire@newcomers.example"])
    assert delivered.status_code == 202, delivered.text
    wait_job(url, platform, delivered.json()["jobId"])
    store = Store(settings.database_url, settings.secret_key)
    try:  # Forge's own entry (the simulated platform sends no installed event to a new backend)
        store.add_audit(
            platform.installation.id,
            actor="forge",
            action="app.installed",
            source="forge",
            subjects=[site.admin_id],
            outcome="ok",
        )
    finally:
        store.close()

    page, panel = open_panel(new_context, host, panel_width=LOOKS[0][0], theme=LOOKS[0][1])
    shots = Screens(page, "attention-audit")
    sent = Sent(page)
    panel.get_by_role("tab", name="Audit log").click()
    audit = panel.get_by_role("tabpanel", name="Audit log")
    rows = audit.get_by_role("region", name="Audit log").locator("tbody tr")
    filters = audit.get_by_role("search", name="Filter the audit log")
    # One entry per webhook delivery: the webhook's, run as its admin.
    expect(rows.filter(has_text="A webhook asked for a preview of 1 email")).to_have_count(1)
    expect(rows.filter(has_text=f"{name} previewed")).to_have_count(0)
    expect(rows.filter(has_text="invited 121 people")).to_contain_text(
        "new.hire001@newcomers.example, new.hire002@newcomers.example, "
        "new.hire003@newcomers.example and 118 more"
    )

    # The 121st invitee is found, marked, and the count is right.
    filters.get_by_label("Email or account id").fill(hires[120].upper())
    filters.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{name} invited 121 people: 121 invited.")
    expect(rows.first.locator("mark")).to_have_text(hires[120])
    expect(rows.first).to_contain_text("and 120 more")
    look(page, panel, shots, "match")

    # Who: the webhook, then Forge; When: the last 24 hours, or a custom range.
    filters.get_by_role("button", name="Clear filters").click()
    filters.get_by_label("Who").select_option(label="The webhook")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(
        f"A webhook asked for a preview of 1 email, run as {name}: would invite 1."
    )
    assert sent.payloads("listAudit")[-1] == {"limit": 100, "source": "webhook"}
    filters.get_by_label("Who").select_option(label="Forge (install and upgrade)")
    expect(rows).to_have_count(1)
    # the installer by name (the FIT's subject), "through Forge"
    expect(rows.first).to_contain_text(re.compile(r"\w installed Access Desk through Forge\."))
    filters.get_by_label("Who").select_option(label="Anyone")
    filters.get_by_label("When").select_option(label="Last 24 hours")
    expect(rows.filter(has_text="invited 121 people")).to_have_count(1)
    assert set(sent.payloads("listAudit")[-1]) == {"limit", "since"}
    expect(filters.get_by_label("From")).to_be_hidden()
    filters.get_by_label("When").select_option(label="Custom range…")
    expect(filters.get_by_label("From")).to_be_visible()
    filters.get_by_label("From").fill("2020-01-01")
    filters.get_by_label("To").fill("2020-01-31")
    filters.get_by_role("button", name="Apply filters").click()
    expect(audit.get_by_role("heading", name="No entries match these filters")).to_be_visible()
    look(page, panel, shots, "custom-range")

    # The CSV: names, and one address per row.
    filters.get_by_role("button", name="Clear filters").click()
    filters.get_by_label("Email or account id").fill(hires[0])
    filters.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    csv_rows = downloaded_csv(
        page,
        audit.get_by_role("button", name="Download CSV of the audit entries shown by the filters"),
    )
    header, body = csv_rows[0], csv_rows[1:]
    assert header[:2] == ["When (UTC)", "Who"] and header[-1] == "Email or account"
    assert len(body) == 100 and {r[1] for r in body} == {name}
    assert [r[-1] for r in body] == hires[:100]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body[0][0])
    assert all("[" not in cell for row in body for cell in row)


def test_webhook_setup_from_the_first_secret_to_a_test_delivery(
    new_context, host, platform, live_backend
):
    url = live_backend.url
    page, panel = open_panel(new_context, host, panel_width=LOOKS[0][0], theme=LOOKS[0][1])
    shots = Screens(page, "attention-webhook")
    sent = Sent(page)
    panel.get_by_role("tab", name="Webhook").click()
    hook = panel.get_by_role("tabpanel", name="Webhook")
    expect(hook.get_by_role("button", name="Send test delivery")).to_be_disabled()
    hook.get_by_role("button", name="Create secret…").click()
    hook.get_by_role("button", name="Create secret", exact=True).click()

    # The new secret: first-time words; the primary action finishes the setup.
    expect(hook.get_by_role("textbox", name="Signing secret")).to_have_value(re.compile("^whsec_"))
    created = hook.locator(".msg-success")
    expect(created).to_contain_text("Webhook secret created")
    expect(created).not_to_contain_text("replaced")
    expect(hook.locator(".btn-primary:visible")).to_have_text(["Copy secret"])
    expect(hook.get_by_role("button", name="Rotate secret…")).not_to_have_class(
        re.compile("btn-primary")
    )
    dismiss_flags(page)
    look(page, panel, shots, "created")
    secret = hook.get_by_role("textbox", name="Signing secret").input_value()
    hook.get_by_role("button", name="Done").click()
    expect(hook.get_by_role("textbox", name="Signing secret")).to_have_count(0)
    test = hook.get_by_role("button", name="Send test delivery")
    expect(test).to_be_focused()

    # A test delivery, signed by the server and sent through the real endpoint.
    test.click()
    accepted = hook.locator(".msg-success")
    expect(accepted).to_contain_text("Test delivery accepted")
    expect(accepted).to_contain_text("access-desk-webhook-test@example.com")
    assert ("sendTestWebhook", {}) in sent.calls
    deliveries = hook.get_by_role("region", name="Recent deliveries")
    expect(deliveries.locator(".lozenge", has_text="Accepted")).to_have_count(1)

    # Deliveries refused (a wrong secret, an old timestamp) are listed, with why.
    assert (
        deliver(
            url, hook_url(hook), "whsec_" + "A" * 43 + "=", "msg_wrong", ["a@b.example"]
        ).status_code
        == 401
    )
    wait_refused(lambda key, payload: admin_call(platform, url, key, payload), "msg_wrong")
    assert deliver(url, hook_url(hook), secret, "msg_fine", ["c@d.example"]).status_code == 202
    panel.get_by_role("tab", name="Jobs").click()
    panel.get_by_role("tab", name="Webhook").click()
    expect(deliveries.locator("tbody tr")).to_have_count(3)
    expect(deliveries.locator("tbody tr").nth(1)).to_contain_text("msg_wrong")
    expect(deliveries.locator("tbody tr").nth(1)).to_contain_text(
        "The signature matched neither the current secret nor the previous one"
    )
    expect(hook.locator(".msg-warning")).to_contain_text("A delivery was refused")
    look(page, panel, shots, "refused", top=True)
    deliveries.get_by_role("button", name=re.compile("^View job of delivery msg_test_")).click()
    detail = panel.get_by_role("tabpanel", name="Jobs").locator(".job-detail")
    expect(detail.locator("h3")).to_contain_text("Preview of 1 email by webhook")
    shots.publish("refused-1024-light", ROOT / "docs" / "panel-webhook.png")


def hook_url(hook: Any) -> str:
    value: str = hook.get_by_role("textbox", name="Webhook URL").input_value()
    return value
