"""The panel's controls against the real backend, in Chromium: the invite flow's one primary action
and fresh results, job control (cancel a running job, retry its failed items, pace while it runs),
the invitation follow-up ("joined"), the audit log's filters and the CSV of the filtered range, and
the webhook tab's state (create, signed deliveries, rotate, revoke now, the copyable test command).

Nothing is faked: gunicorn with its background worker, the simulator slowed with its latency switch
where a job must still be running, follow-ups a few seconds after a job instead of an hour
(``FOLLOW_UP_DELAYS_SECONDS``). Each test runs at 1,024 px in light and 1,440 px in dark, with
axe-core on every screen, transient ones included (progress, flags, errors, copy feedback).
``ACCESS_DESK_UPDATE_DOCS=1`` copies the 1,024 px light screens to docs/.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import date
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
    QUICK_FOLLOW_UPS,
    ROOT,
    Screens,
    deliver,
    dismiss_flags,
    downloaded_csv,
    host_flag,
    open_panel,
    overflow,
    wait_refused,
)
from tests.e2e.test_backend import wait_job
from tests.e2e.test_panel_flows import admin_call, preview_two_new, resolver_call

pytestmark = pytest.mark.e2e

LOOKS = [(1024, "light"), (1440, "dark")]
LOOK_IDS = [f"{w}-{t}" for w, t in LOOKS]
DOCS = (1024, "light")  # the look the docs' screenshots show


@pytest.fixture()
def live_backend(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """The real backend, its follow-ups due 2 s after a job ends."""
    server = start_gunicorn(backend_env(settings, **QUICK_FOLLOW_UPS), tmp_path / "gunicorn.log")
    try:
        yield server
    finally:
        stop_server(server)


class Sent:
    """Every resolver call (key, payload) the panel sends."""

    def __init__(self, page: Any) -> None:
        self.calls: list[tuple[str, Any]] = []
        page.on("request", self._note)

    def _note(self, request: Any) -> None:
        found = resolver_call(request)
        if found is not None:
            self.calls.append(found)

    def payloads(self, key: str) -> list[Any]:
        return [p for k, p in self.calls if k == key]


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_invite_has_one_primary_action_and_fresh_results(
    new_context, host, platform, live_backend, width, theme
):
    page, panel = open_panel(new_context, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-invite-{width}-{theme}")
    try:
        invite, confirm = preview_two_new(panel, platform)
        bar = invite.get_by_role("group", name="Invite 2 people?")
        expect(bar).to_be_visible()
        expect(invite.get_by_role("heading", name="Would be invited (2)")).to_be_visible()
        expect(invite.locator(".btn-primary:visible")).to_have_count(1)
        expect(invite.get_by_role("button", name="Preview invitations")).not_to_have_class(
            re.compile("btn-primary")
        )
        assert overflow(panel) == FITS
        shots.check("preview", top=True)

        # A list the form refuses: the old preview goes at once.
        area = invite.get_by_label("Emails to invite")
        area.fill("")
        invite.get_by_role("button", name="Preview invitations").click()
        expect(invite.locator(".field-error")).to_have_text("Enter at least one email.")
        expect(bar).to_have_count(0)
        expect(invite.get_by_role("heading", name="Preview")).to_have_count(0)

        # A list with an entry too long to send (the backend would refuse the whole list): the
        # form says so before sending, and its error replaces the preview.
        invite, confirm = preview_two_new(panel, platform)
        area.fill("one@example.com\n" + "a" * 330 + "@example.com")
        invite.get_by_role("button", name="Preview invitations").click()
        alert = invite.get_by_role("alert")
        expect(alert).to_contain_text("1 entry is too long to send (over 320 characters)")
        expect(invite.get_by_role("group", name="Invite 2 people?")).to_have_count(0)
        assert overflow(panel) == FITS
        shots.check("refused")

        # A finished invitation clears the form; one that ends on another tab raises a flag.
        invite, confirm = preview_two_new(panel, platform)
        platform.latency = 1.0
        confirm.click()
        expect(invite.get_by_role("progressbar", name="Invitation progress")).to_be_visible()
        shots.check("progress")
        panel.get_by_role("tab", name="Audit log").click()
        flag = host_flag(page, "Invitations finished")
        expect(flag).to_contain_text("2 invited")
        assert overflow(panel) == FITS
        shots.check("flag")
        platform.latency = 0
        flag.get_by_role("button", name="View job").click()
        expect(flag).to_have_count(0)  # the action closed its flag
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        expect(jobs.get_by_role("region", name="Job items").locator("tbody tr")).to_have_count(2)
        expect(jobs.locator("tr.row-open")).to_have_count(1)
        panel.get_by_role("tab", name="Invite").click()
        expect(invite.get_by_label("Emails to invite")).to_have_value("")
        expect(invite.get_by_role("heading", name="Invitations finished")).to_be_visible()
    finally:
        platform.latency = 0
    if (width, theme) == DOCS:
        shots.publish("preview", ROOT / "docs" / "panel-invite.png")


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_a_running_job_is_cancelled_its_failed_items_retried_and_followed_up(
    new_context, host, platform, live_backend, width, theme
):
    url = live_backend.url
    site = platform.installation.site
    emails = [f"cancel.me{i}@newcomers.example" for i in range(400)]
    platform.latency = 1.0  # a Confluence call a second: the job runs for several seconds
    page, panel = open_panel(new_context, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-jobs-{width}-{theme}")
    sent = Sent(page)
    try:
        job = admin_call(platform, url, "inviteEmails", {"emails": emails})["job"]
        panel.get_by_role("tab", name="Jobs").click()
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        table = jobs.get_by_role("region", name="Jobs")
        expect(table.locator("tbody tr")).to_have_count(1)
        table.locator("tbody tr").first.locator("td").nth(3).click()  # anywhere on the row
        expect(table.locator("tr.row-open")).to_have_count(1)
        detail = jobs.locator(".job-detail")
        expect(detail.get_by_role("heading", name=re.compile("^Invitation of 400"))).to_be_visible()
        cancel = jobs.get_by_role("button", name="Cancel job")
        expect(cancel).to_be_visible()
        expect(
            detail.locator(".lozenge", has_text=re.compile("Queued|In progress"))
        ).to_be_visible()
        expect(jobs.get_by_role("progressbar", name="Job progress")).to_be_visible()
        assert overflow(panel) == FITS
        shots.check("running")

        cancel.click()
        expect(host_flag(page, "Job cancelled")).to_be_visible()
        assert {"jobId": job["id"]} in sent.payloads("cancelJob")
        ended = wait_job(url, platform, job["id"])
        assert ended["state"] == "failed", ended["counts"]
        left = ended["counts"]["cancelled"]
        assert 0 < left <= 400 and ended["counts"]["failed"] == 0
        platform.latency = 0
        expect(detail.locator(".lozenge", has_text="Cancelled").first).to_be_visible()
        expect(detail.locator(".lozenge", has_text="Stopped")).to_have_count(0)
        expect(cancel).to_have_count(0)
        items = jobs.get_by_role("region", name="Job items")
        jobs.get_by_label("Filter job items").fill("cancelled")  # the filter box of long results
        expect(items.locator(".lozenge", has_text="Cancelled").first).to_be_visible()
        expect(items.locator("tbody tr").first).to_contain_text(
            "Not sent: the job was cancelled first"
        )
        expect(items.locator(".lozenge", has_text="Invited")).to_have_count(0)
        retry = jobs.get_by_role(
            "button", name=f"Invite the {left:,} {'people' if left > 1 else 'person'} not sent"
        )
        expect(retry).to_be_visible()
        shots.check("cancelled")

        # Retry: a new job of the failed items, opened and followed to its end.
        retry.click()
        expect(host_flag(page, "Retry started")).to_be_visible()
        assert {"jobId": job["id"]} in sent.payloads("retryJob")
        expect(table.locator("tbody tr")).to_have_count(2)
        noun = "person" if left == 1 else "people"
        expect(detail.locator("h3")).to_contain_text(f"Invitation of {left:,} {noun}")
        expect(table.locator("tr.row-open")).to_have_count(1)
        expect(table.locator("tbody tr").first).to_have_class(re.compile("row-open"))
        expect(detail.locator(".lozenge", has_text="Done").first).to_be_visible(timeout=60_000)
        shots.check("retried")

        # The follow-up finds the invitees on the site: "joined" in the list and on each item.
        again = admin_call(platform, url, "listJobs", {"limit": 1})["jobs"][0]
        wait_followed_up(url, platform, again["id"])
        jobs.get_by_role("button", name="Refresh").click()
        first = table.locator("tbody tr").first
        expect(first).to_contain_text(f"{left:,} invited · {left:,} joined")
        first.get_by_role("button", name=re.compile("^Open job")).click()
        expect(detail).to_contain_text(f"{left:,} of {left:,} joined (checked")
        expect(detail.get_by_role("list", name="Counts")).to_contain_text(f"{left:,}Joined")
        expect(items.locator(".lozenge-joined").first).to_have_text("Joined")
        expect(items.locator("tbody")).to_contain_text("Invited, has since joined the site")
        assert overflow(panel) == FITS
        dismiss_flags(page)
        shots.check("followed-up", top=True)
        assert site.admin_id == again["createdBy"]
        expect(first.locator(".person-name")).to_have_text(site.users[site.admin_id]["displayName"])
    finally:
        platform.latency = 0
    if (width, theme) == DOCS:
        shots.publish("followed-up", ROOT / "docs" / "panel-jobs.png")


def wait_followed_up(url: str, platform: Any, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = admin_call(platform, url, "getJob", {"jobId": job_id})["job"]
        if job.get("followUp"):
            return job
        time.sleep(0.5)
    raise AssertionError("no follow-up in time")


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_audit_filters_narrow_the_log_and_the_csv_holds_the_filtered_range(
    new_context, host, platform, live_backend, settings, width, theme
):
    url = live_backend.url
    site = platform.installation.site
    name = site.users[site.admin_id]["displayName"]
    new = list(site.sample_new_emails)[:4]
    member = next(u["email"] for u in site.users.values() if u.get("email"))
    admin_call(platform, url, "checkAccess", {"emails": [new[0], member]})
    preview = admin_call(platform, url, "inviteEmails", {"emails": new[:3], "dryRun": True})["job"]
    job = admin_call(platform, url, "inviteEmails", {"emails": [new[3], member, "bad"]})["job"]
    wait_job(url, platform, preview["id"])
    wait_job(url, platform, job["id"])
    hook = admin_call(platform, url, "rotateWebhookSecret", {})
    delivered = deliver(url, hook["url"], hook["secret"], "msg_audit_1", [new[0]])
    assert delivered.status_code == 202, delivered.text
    wait_job(url, platform, delivered.json()["jobId"])
    # An admin of earlier days (the simulated site has one admin): an entry by someone else.
    former = next(a for a, u in site.users.items() if a != site.admin_id and u.get("email"))
    store = Store(settings.database_url, settings.secret_key)
    try:
        store.add_audit(
            platform.installation.id,
            actor=former,
            action="invite",
            source="panel",
            subjects=[new[3]],
            outcome={"jobId": "job-old", "state": "done", "invited": 1},
        )
    finally:
        store.close()

    page, panel = open_panel(new_context, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-audit-{width}-{theme}")
    sent = Sent(page)
    panel.get_by_role("tab", name="Audit log").click()
    audit = panel.get_by_role("tabpanel", name="Audit log")
    rows = audit.get_by_role("region", name="Audit log").locator("tbody tr")
    expect(
        rows.filter(
            has_text=f"A webhook asked for a preview of 1 email, run as {name}: would invite 1."
        )
    ).to_have_count(1)  # one entry per delivery: its job's
    expect(rows.first).to_contain_text(f"{site.users[former]['displayName']} invited 1 person")
    everything = rows.count()
    assert everything >= 6
    expect(audit).to_contain_text("After 90 days")
    filters = audit.get_by_role("search", name="Filter the audit log")

    # What: the invitations only (served by listAudit's action filter).
    filters.get_by_label("What").select_option(label="Invitations")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text(
        f"{name} invited 3 people: 1 invited, 1 has access, 1 invalid."
    )
    assert sent.payloads("listAudit")[-1] == {"limit": 100, "action": "invite"}

    # Who: one person's entries.
    filters.get_by_label("Who").select_option(label=name)
    expect(rows).to_have_count(1)
    assert sent.payloads("listAudit")[-1] == {
        "limit": 100, "action": "invite", "actor": site.admin_id,
    }  # fmt: skip
    filters.get_by_label("What").select_option(label="Everything")
    expect(rows).to_have_count(everything - 1)

    # Email and dates: a past month has nothing (an empty state that offers to clear).
    filters.get_by_label("Email or account id").fill(new[3].upper())
    filters.get_by_label("When").select_option(label="Custom range…")
    filters.get_by_label("From").fill("2020-01-01")
    filters.get_by_label("To").fill("2020-01-31")
    filters.get_by_role("button", name="Apply filters").click()
    expect(audit.get_by_role("heading", name="No entries match these filters")).to_be_visible()
    assert overflow(panel) == FITS
    shots.check("filtered-empty")
    today = date.today().isoformat()
    filters.get_by_label("From").fill(today)
    filters.get_by_label("To").fill(today)
    filters.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)  # the check and the preview did not name it
    expect(rows.first).to_contain_text(f"{name} invited 3 people")
    last = sent.payloads("listAudit")[-1]
    assert (last["actor"], last["subject"]) == (site.admin_id, new[3].upper())
    assert last["since"] < last["until"]
    assert overflow(panel) == FITS
    shots.check("filtered", top=True)

    csv_rows = downloaded_csv(
        page,
        audit.get_by_role("button", name="Download CSV of the audit entries shown by the filters"),
    )
    assert sent.payloads("listAudit")[-1]["limit"] == 500
    assert [r[4] for r in csv_rows[1:]] == ["invite"] * 3  # one row per address
    assert [r[7] for r in csv_rows[1:]] == [new[3], member, "bad"]
    assert csv_rows[1][5] == f"{name} invited 3 people: 1 invited, 1 has access, 1 invalid."
    assert csv_rows[1][1] == name
    expect(host_flag(page, "Downloaded audit-filtered.csv")).to_be_visible()
    shots.check("downloaded")

    # The job as a link.
    audit.get_by_role("button", name=re.compile("^View job: invited 3")).click()
    expect(panel.get_by_role("tab", name="Jobs")).to_have_attribute("aria-selected", "true")
    jobs = panel.get_by_role("tabpanel", name="Jobs")
    expect(jobs.locator(".job-detail h3")).to_contain_text("Invitation of 3 people")
    if (width, theme) == DOCS:
        shots.publish("filtered", ROOT / "docs" / "panel-audit.png")


@pytest.mark.parametrize(("width", "theme"), LOOKS, ids=LOOK_IDS)
def test_webhook_tab_shows_its_state_deliveries_and_can_revoke_the_old_secret(
    new_context, host, platform, live_backend, width, theme, tmp_path
):
    url = live_backend.url
    site = platform.installation.site
    name = site.users[site.admin_id]["displayName"]
    page, panel = open_panel(new_context, host, panel_width=width, theme=theme)
    shots = Screens(page, f"control-webhook-{width}-{theme}")
    panel.get_by_role("tab", name="Webhook").click()
    hook = panel.get_by_role("tabpanel", name="Webhook")
    # First setup: the URL already shows, the action is "Create secret".
    hook_url = hook.get_by_role("textbox", name="Webhook URL").input_value()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/webhooks/[0-9a-f-]{36}", hook_url)
    expect(hook.locator("dl.facts")).to_contain_text("Not set")
    expect(hook.get_by_role("heading", name="No deliveries yet")).to_be_visible()
    curl = hook.locator("pre").first
    expect(curl).to_contain_text(hook_url)
    expect(curl).to_contain_text('"dryRun":true')
    expect(hook.get_by_role("button", name=re.compile("^Rotate"))).to_have_count(0)
    assert overflow(panel) == FITS
    shots.check("first")

    # The test command is copyable (a flag says so).
    hook.get_by_role("button", name="Copy the curl and openssl example").click()
    copied = host_flag(page, re.compile("^Copied the curl and openssl example"))
    expect(copied).to_be_visible()
    shots.check("copied")

    hook.get_by_role("button", name="Create secret…").click()
    expect(hook.get_by_role("checkbox")).to_have_count(0)  # nothing to revoke yet
    hook.get_by_role("button", name="Create secret", exact=True).click()
    secret_box = hook.get_by_role("textbox", name="Signing secret")
    expect(secret_box).to_have_value(re.compile("^whsec_"))
    expect(secret_box).to_be_focused()
    first_secret = secret_box.input_value()
    facts = hook.locator("dl.facts")
    expect(facts).to_contain_text(f"by {name}")
    expect(facts.locator("dd").nth(1).locator(".person-name")).to_have_text(name)

    # The copyable command, run as it stands, makes a signed delivery; a repeat is ignored.
    ran = subprocess.run(
        ["bash", "-s"],
        input=curl.inner_text(),
        env={**os.environ, "ACCESS_DESK_WEBHOOK_SECRET": first_secret},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert '"jobId"' in ran.stdout, ran.stdout + ran.stderr
    for _ in range(2):
        answer = deliver(url, hook_url, first_secret, "msg_repeat", ["x@newcomers.example"])
        assert answer.status_code in (200, 202), answer.text
    panel.get_by_role("tab", name="Jobs").click()
    panel.get_by_role("tab", name="Webhook").click()
    deliveries = hook.get_by_role("region", name="Recent deliveries")
    expect(deliveries.locator("tbody tr")).to_have_count(3)
    expect(deliveries).to_contain_text("Repeat, ignored")
    expect(deliveries.locator(".lozenge", has_text="Accepted")).to_have_count(2)

    # A rotation keeps the old secret 24 h; "Revoke it now…" ends it.
    hook.get_by_role("button", name="Rotate secret…").click()
    hook.get_by_role("button", name="Rotate secret", exact=True).click()
    expect(facts).to_contain_text("Still works until")
    expect(hook.locator(".msg-success")).to_contain_text("keeps working for 24 hours")
    assert deliver(url, hook_url, first_secret, "msg_old_1", ["y@newcomers.example"]).ok
    assert overflow(panel) == FITS
    dismiss_flags(page)
    shots.check("rotated", top=True)
    hook.get_by_role("button", name="Revoke it now…").click()
    box = hook.get_by_role("checkbox", name=re.compile("^Revoke the current secret now"))
    expect(box).to_be_checked()
    shots.check("revoke-confirm")
    second_secret = hook.get_by_role("textbox", name="Signing secret").count()
    assert second_secret == 0  # the confirm replaced the shown secret
    hook.get_by_role("button", name="Rotate secret", exact=True).click()
    expect(hook.locator(".msg-success")).to_contain_text("The previous secret no longer works.")
    expect(hook.get_by_role("button", name="Revoke it now…")).to_have_count(0)
    refused = deliver(url, hook_url, first_secret, "msg_old_2", ["z@newcomers.example"])
    assert refused.status_code == 401
    wait_refused(lambda key, payload: admin_call(platform, url, key, payload), "msg_old_2")

    # A delivery's job: a preview that reads "would invite".
    panel.get_by_role("tab", name="Jobs").click()
    panel.get_by_role("tab", name="Webhook").click()
    expect(deliveries.locator("tbody tr")).to_have_count(5)  # the refused one too
    expect(deliveries.locator(".lozenge", has_text="Refused")).to_have_count(1)
    shots.check("state")
    deliveries.get_by_role("button", name="View job of delivery msg_repeat").first.click()
    jobs = panel.get_by_role("tabpanel", name="Jobs")
    detail = jobs.locator(".job-detail")
    expect(detail.locator("h3")).to_contain_text("Preview of 1 email by webhook")
    expect(detail.get_by_role("list", name="Counts")).to_contain_text("1Would be invited")
    expect(jobs.get_by_role("region", name="Jobs").locator("tr.row-open")).to_contain_text(
        "Would invite 1"
    )
    # docs/panel-webhook.png comes from test_panel_attention.py (refused deliveries, the test).
