"""The admin panel in Debian's Chromium, hosted by the simulated Forge, against a real gunicorn.

Every screen is saved under test-output/screenshots/ and checked with axe-core (no serious or
critical violations). ACCESS_DESK_UPDATE_DOCS=1 also copies the best admin screenshot to
docs/panel.png.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
from playwright.sync_api import expect

from simulator.host import signed_in_choices
from tests.e2e.panel_helpers import (
    ROOT,
    ROWS,
    Screens,
    downloaded_csv,
    host_flag,
    open_panel,
    paste,
    sign_in_as,
)

pytestmark = pytest.mark.e2e


def test_admin_uses_every_tool(new_context, host, platform, live_backend):
    site = platform.installation.site
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "admin")
    expect(panel.locator("#who")).to_contain_text("Confluence administrator")
    tabs = panel.get_by_role("tab")
    expect(tabs).to_have_text(
        ["Look up users", "Check access", "Invite", "Jobs", "Audit log", "Webhook", "Diagnose"]
    )
    shots.check("start")

    # Tabs: a proper tablist, arrow keys, Home and End.
    panel.get_by_role("tab", name="Look up users").focus()
    page.keyboard.press("ArrowRight")
    expect(panel.get_by_role("tab", name="Check access")).to_be_focused()
    expect(panel.get_by_role("tab", name="Check access")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(panel.get_by_role("tab", name="Diagnose")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(panel.get_by_role("tab", name="Look up users")).to_be_focused()
    expect(panel.get_by_role("tabpanel", name="Look up users")).to_be_visible()

    # Look up users: found, not found; copy and CSV export.
    ids = [account for account, _ in signed_in_choices(platform)] + ["no-such-account-0001"]
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_label("Account ids").fill(", ".join(ids[:3]) + ";\n" + "\n".join(ids[3:]))
    expect(lookup.locator(".field-count")).to_have_text("5 account ids")
    expect(lookup.locator(".field-cost")).to_have_text(
        "Looking them up costs about 11 Confluence points "
        "(less for ids looked up in the last minutes)."
    )
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Found (4)")).to_be_visible()
    expect(lookup.get_by_role("heading", name="Not found (1)")).to_be_visible()
    found = lookup.get_by_role("region", name="Found users")
    for account in ids[:4]:
        expect(found).to_contain_text(site.users[account]["displayName"])
    expect(found.locator(".lozenge", has_text="external")).to_have_count(1)
    shots.check("lookup")
    rows = downloaded_csv(page, lookup.get_by_role("button", name="Download CSV of found users"))
    assert rows[0][:3] == ["accountId", "displayName", "publicName"]
    assert [r[0] for r in rows[1:]] == ids[:4]
    copy = lookup.get_by_role("button", name="Copy found users as CSV")
    copy.click()
    expect(host_flag(page, "Copied 4 users.")).to_be_visible()
    # Seen on the button too, for a moment, its name saying the same (axe: the visible word is
    # part of the name); then both come back.
    expect(lookup.get_by_role("button", name="Copied found users as CSV")).to_have_text("Copied")
    expect(copy).to_have_text("Copy")
    expect(copy).to_have_text("Copy")

    # Errors in words: an expired session (401 from the bridge), a busy Confluence.
    page.route(
        "**/_host/invoke",
        lambda route: route.fulfill(
            json={"status": 401, "headers": {}, "body": '{"error": "invalid_token"}'}
        ),
    )
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("alert")).to_contain_text(
        "Access Desk could not verify this request from Confluence. Reload the page"
    )
    expect(lookup.get_by_role("alert")).to_contain_text("check its FORGE_APP_ID")
    page.unroute("**/_host/invoke")

    # Check access: four buckets with counts; CSV export.
    with_access = [
        user["email"]
        for user in site.users.values()
        if user.get("email") and user.get("accountStatus", "active") == "active"
    ][:2]
    new = list(site.sample_new_emails)[:2]
    panel.get_by_role("tab", name="Check access").click()
    access = panel.get_by_role("tabpanel", name="Check access")
    access.get_by_label("Emails").fill("\n".join([*with_access, *new, "not-an-email"]))
    access.get_by_role("button", name="Check access").click()
    cards = access.get_by_role("list", name="Counts")
    expect(cards).to_contain_text(f"{len(new)}No access")
    expect(cards).to_contain_text(f"{len(with_access)}Has access")
    expect(cards).to_contain_text("1Invalid email")
    expect(cards).not_to_contain_text("Failed")  # a zero count is no card
    shots.check("access")
    rows = downloaded_csv(page, access.get_by_role("button", name="Download CSV of access results"))
    assert rows[0] == ["email", "result", "detail"]
    assert {r[0] for r in rows[1:] if r[1] == "withoutAccess"} == set(new)
    assert {r[0] for r in rows[1:] if r[1] == "invalid"} == {"not-an-email"}
    access.get_by_role(
        "button", name=re.compile(r"^Invite the \d+ (person|people) with no access")
    ).click()
    invite = panel.get_by_role("tabpanel", name="Invite")
    expect(panel.get_by_role("tab", name="Invite")).to_have_attribute("aria-selected", "true")
    expect(invite.get_by_label("Emails to invite")).to_have_value("\n".join(new))

    # Invite: a dry run first, a confirm step, then the job with a progress bar.
    invite.get_by_label("Emails to invite").fill(
        ", ".join([*new, *with_access[:1], "not-an-email-either"])
    )
    invite.get_by_role("button", name="Preview invitations").click()
    expect(invite.get_by_role("heading", name=f"Would be invited ({len(new)})")).to_be_visible()
    expect(invite.get_by_role("heading", name="Skipped (")).to_be_visible()
    skipped = invite.get_by_role("region", name="Skipped", exact=True)
    expect(skipped).to_contain_text("Has access")
    expect(skipped).to_contain_text("Invalid email")
    confirm = invite.get_by_role("button", name=f"Invite {len(new)} people")
    expect(confirm).to_be_visible()
    shots.check("invite-preview")
    confirm.click()
    bar = invite.get_by_role("progressbar", name="Invitation progress")
    expect(bar).to_have_attribute("aria-valuemax", str(len(new)))
    expect(invite.locator(".msg-success")).to_contain_text(f"Done: {len(new)} invited")
    expect(invite.locator(".msg-success")).to_contain_text(
        "The 2 people skipped in the preview were not invited."
    )
    expect(invite.get_by_role("heading", name="Invitations finished")).to_be_visible()
    expect(bar).to_have_attribute("aria-valuenow", str(len(new)))
    outcomes = invite.get_by_role("region", name="Invitation outcomes")
    expect(outcomes.locator("tbody tr")).to_have_count(len(new))
    expect(outcomes).to_contain_text("Invited")
    shots.check("invite-done")
    rows = downloaded_csv(
        page, invite.get_by_role("button", name="Download CSV of invitation outcomes")
    )
    assert sorted((r[0], r[1]) for r in rows[1:]) == sorted((e, "invited") for e in new)

    # Webhook: confirm, rotate, show URL and secret once; a signed delivery starts a job.
    panel.get_by_role("tab", name="Webhook").click()
    hook = panel.get_by_role("tabpanel", name="Webhook")
    hook.get_by_role("button", name="Create secret…").click()
    expect(hook.get_by_role("heading", name="Create the webhook secret?")).to_be_visible()
    shots.check("webhook-confirm")
    hook.get_by_role("button", name="Create secret", exact=True).click()
    url = hook.get_by_role("textbox", name="Webhook URL").input_value()
    secret = hook.get_by_role("textbox", name="Signing secret").input_value()
    assert secret.startswith("whsec_")
    expect(hook.locator("pre").first).to_contain_text(url)
    expect(hook.locator("pre").first).to_contain_text("openssl dgst -sha256 -mac HMAC")
    shots.check("webhook-secret")
    examples = {"curl": ["bash", "-s"], "Python": [sys.executable, "-"]}
    for at, (language, runner) in enumerate(examples.items()):
        example = hook.locator("pre").nth(at).inner_text()
        sent = subprocess.run(
            runner,
            input=example,
            env={**os.environ, "ACCESS_DESK_WEBHOOK_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        assert "jobId" in sent.stdout, (language, sent.stdout, sent.stderr)

    # Jobs: panel and webhook jobs; open one.
    panel.get_by_role("tab", name="Jobs").click()
    jobs = panel.get_by_role("tabpanel", name="Jobs")
    table = jobs.get_by_role("region", name="Jobs")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table).to_contain_text("By webhook")
    expect(table).to_contain_text("Preview")
    shots.check("jobs")
    table.get_by_role(
        "button", name=re.compile("^Open job: Invitation of 2 people from the panel")
    ).click()
    detail = jobs.get_by_role("region", name="Job items")
    expect(detail.locator("tbody tr")).to_have_count(len(new))
    shots.check("job-detail")

    # Audit log: newest first, 100 at a time ("Older" pages back), CSV export.
    headers = platform.invocation_headers(platform.installation, site.admin_id, lifetime=300)
    with requests.Session() as session:
        for n in range(100):
            answer = session.post(
                f"{live_backend.url}/resolvers/checkAccess",
                json={"emails": [f"audit-filler-{n}@example.com"]},
                headers=headers,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
    panel.get_by_role("tab", name="Audit log").click()
    audit = panel.get_by_role("tabpanel", name="Audit log")
    entries = audit.get_by_role("region", name="Audit log")
    expect(entries.locator("tbody tr")).to_have_count(100)
    expect(entries.locator("tbody tr").first).to_contain_text("audit-filler-99@example.com")
    shots.check("audit")
    audit.get_by_role("button", name="Older audit entries").click()
    expect(audit.locator(".pager-info")).to_have_text(re.compile(r"^Rows 1–100 of 10\d$"))
    audit.get_by_role("button", name="Next page of audit log").click()
    expect(entries).to_contain_text("created a new webhook secret.")
    rows = downloaded_csv(
        page,
        audit.get_by_role("button", name="Download CSV of the audit entries shown by the filters"),
    )
    header = [
        "When (UTC)",
        "Who",
        "Run as",
        "Actor account id",
        "Action",
        "What happened",
        "Job",
        "Email or account",
    ]
    assert rows[0] == header
    assert len(rows) > 101
    assert any(r[4] == "webhook.rotateSecret" for r in rows[1:])

    # Confluence busy for longer than a call may wait: those entries fail, in words. (Last:
    # the backend then holds off that site for the Retry-After.) Ids not looked up before:
    # the ones above are answered from this caller's lookup cache, without Confluence.
    panel.get_by_role("tab", name="Look up users").click()
    platform.faults.add("users-bulk", "429", retry_after=1847)
    lookup.get_by_label("Account ids").fill("no-such-account-0002\nno-such-account-0003")
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("region", name="Account ids that failed")).to_contain_text(
        "Confluence is busy; try again in 1847 s"
    )
    shots.check("lookup-failed")

    # Dark mode, as Forge sets it with data-color-mode.
    page.select_option("#host-theme", "dark")
    expect(panel.locator("html[data-color-mode=dark]")).to_have_count(1)
    shots.check("dark")
    shots.publish("lookup", ROOT / "docs" / "panel.png")


def test_ordinary_users_get_lookup_and_a_polite_note(new_context, host, platform):
    site = platform.installation.site
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "user")
    options = page.locator("#host-account option")
    expect(options).to_have_count(4)
    ordinary = options.nth(1).get_attribute("value")
    external = options.nth(3).get_attribute("value")
    panel = sign_in_as(page, ordinary)
    expect(panel.locator("#who")).to_contain_text("Confluence user")
    expect(panel.get_by_role("tab")).to_have_count(0)  # one tool: no tab strip
    expect(panel.locator(".msg-info")).to_contain_text("for Confluence administrators")
    shots.check("start")
    lookup = panel.get_by_role("region", name="Look up users", exact=True)
    lookup.get_by_label("Account ids").fill(f"{site.admin_id}\n{ordinary}")
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Found (2)")).to_be_visible()
    shots.check("lookup")
    refused = (
        page.frame_locator("#host-panel")
        .locator("html")
        .evaluate(
            """() => import("./api.js").then((api) =>
            api.call("checkAccess", {emails: ["someone@example.com"]}).then(
                () => "allowed", (err) => err.message))"""
        )
    )
    assert refused == "Only Confluence administrators can do this."

    panel = sign_in_as(page, external)
    expect(panel.get_by_role("heading", name="Look up users")).to_be_visible()
    expect(panel.get_by_role("tab")).to_have_count(0)
    shots.check("external")


def test_panel_runs_under_the_forge_content_security_policy(new_context, host):
    page, panel = open_panel(new_context, host, bypass_csp=False)
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None)
    for name in [
        "Check access",
        "Invite",
        "Jobs",
        "Audit log",
        "Webhook",
        "Diagnose",
        "Look up users",
    ]:
        panel.get_by_role("tab", name=name).click()
        expect(panel.get_by_role("tabpanel", name=name)).to_be_visible()
    assert refused == []
    frame = next(f for f in page.frames if "/panel/" in f.url)
    assert frame.evaluate("() => document.querySelectorAll('script:not([src])').length") == 0


def test_ten_thousand_ids_stay_responsive(new_context, host, platform):
    site = platform.installation.site
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "large")
    unknown = [f"no-such-account-{i:05d}" for i in range(10_000 - 2)]
    ids = [site.admin_id, *unknown, next(iter(site.external_ids))]
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    paste(lookup.get_by_label("Account ids"), "\n".join(ids))
    expect(lookup.locator(".field-count")).to_have_text("10,000 account ids")
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Not found (9,998)")).to_be_visible(timeout=60_000)
    missing = lookup.get_by_role("region", name="Account ids not found")
    expect(missing.locator("tbody tr")).to_have_count(100)
    pager = lookup.locator("section[aria-labelledby=notfound-h] .pager-info")
    expect(pager).to_have_text("Rows 1–100 of 9,998")
    lookup.get_by_role("button", name="Next page of account ids not found").click()
    expect(pager).to_have_text("Rows 101–200 of 9,998")
    shown = ROWS.match(pager.inner_text())
    assert shown is not None
    assert shown.groups() == ("101", "200", "9,998")
    rendered = panel.locator("tr").count()
    assert rendered < 300, rendered
    shots.check("lookup")
    paste(lookup.get_by_role("textbox", name="Account ids"), "\n".join([*ids, "one-more"]))
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.locator(".field-error")).to_contain_text("At most 10,000 entries at once")
