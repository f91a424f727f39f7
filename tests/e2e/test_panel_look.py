"""The panel as a Confluence site admin sees it, at 1,024 and 1,440 px of panel width, light and dark:
every screen fits without sideways scrolling, the tab strip does not overflow, people show by name,
one word and colour per outcome, and axe-core finds no serious or critical violation.

Chromium on the simulated Forge host page, against a real gunicorn, as in test_panel.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.panel_helpers import FITS, ROOT, Screens, open_panel, overflow, sign_in_as
from tests.e2e.test_backend import wait_job
from tests.e2e.test_panel_flows import admin_call

pytestmark = pytest.mark.e2e

SIZES = [(1024, "light"), (1024, "dark"), (1440, "light"), (1440, "dark")]


def seed(platform: Any, url: str) -> dict[str, Any]:
    """An access check, a preview and an invitation (finished), and a webhook secret."""
    site = platform.installation.site
    fresh = list(site.sample_new_emails)[:4]
    new, invited = fresh[:3], fresh[3]
    member = next(u["email"] for u in site.users.values() if u.get("email"))
    admin_call(platform, url, "checkAccess", {"emails": [new[0], member]})
    preview = admin_call(platform, url, "inviteEmails", {"emails": new, "dryRun": True})["job"]
    job = admin_call(platform, url, "inviteEmails", {"emails": [invited, member, "bad"]})["job"]
    wait_job(url, platform, preview["id"])
    wait_job(url, platform, job["id"])
    admin_call(platform, url, "rotateWebhookSecret", {})
    return {"new": new, "member": member, "job": job["id"]}


@pytest.mark.parametrize(("width", "theme"), SIZES, ids=[f"{w}-{t}" for w, t in SIZES])
def test_every_screen_fits_and_reads_as_an_admin_page(
    new_context, host, platform, live_backend, width, theme
):
    site = platform.installation.site
    admin_name = site.users[site.admin_id]["displayName"]
    seeded = seed(platform, live_backend.url)
    page, panel = open_panel(new_context, host, panel_width=width, theme=theme)
    shots = Screens(page, f"look-{width}-{theme}")
    # Signed in as a person (the id on hover), not as an account id.
    who = panel.locator("#who .person-name")
    expect(who).to_have_text(admin_name)
    expect(panel.locator("#who .person")).to_have_attribute("title", f"Account id: {site.admin_id}")
    expect(panel.locator("#who")).to_contain_text("Confluence administrator")
    assert overflow(panel) == FITS
    shots.check("start")

    # Look up: seven facts a person fit in the width.
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_label("Account ids").fill("\n".join(list(site.users)[:12]))
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name=re.compile(r"^Found \("))).to_be_visible()
    assert overflow(panel) == FITS
    shots.check("lookup")

    # Check access: the same words and colours as the invitation outcomes.
    panel.get_by_role("tab", name="Check access").click()
    access = panel.get_by_role("tabpanel", name="Check access")
    access.get_by_label("Emails").fill("\n".join([*seeded["new"], seeded["member"], "nope"]))
    # The cost in Confluence's points shows before anything is sent (costs.py: one request of
    # 4 emails is 1 point plus 2 per email; "nope" is not valid and never sent).
    expect(access.locator(".field-cost")).to_have_text(
        "Checking them costs about 9 Confluence points."
    )
    access.get_by_role("button", name="Check access").click()
    cards = access.get_by_role("list", name="Counts")
    expect(cards).to_contain_text("1Has access")
    expect(cards).to_contain_text("3No access")
    expect(cards).to_contain_text("1Invalid email")
    expect(access.locator(".lozenge-info", has_text="Has access")).to_have_count(1)
    assert overflow(panel) == FITS
    shots.check("access")

    # Invite: the confirm sits on top of the preview, with the counts, the only primary action.
    access.get_by_role("button", name="Invite the 3 people with no access…").click()
    invite = panel.get_by_role("tabpanel", name="Invite")
    invite.get_by_role("button", name="Preview invitations").click()
    bar = invite.get_by_role("group", name="Invite 3 people?")
    expect(bar).to_contain_text("Nobody is skipped.")
    # 3 emails: a check request (1 + 2 x 3 points) and an invite request (1 point).
    expect(bar).to_contain_text("Inviting them costs about 8 Confluence points.")
    expect(invite.locator(".results > *").nth(1)).to_have_class(re.compile("confirm-bar"))
    expect(invite.locator(".btn-primary:visible")).to_have_count(1)
    expect(invite.locator(".btn-primary:visible")).to_have_text("Invite 3 people")
    assert overflow(panel) == FITS
    shots.check("invite-preview")

    # Jobs: fit, people by name, a click on a row opens the job and marks it.
    panel.get_by_role("tab", name="Jobs").click()
    jobs = panel.get_by_role("tabpanel", name="Jobs")
    table = jobs.get_by_role("region", name="Jobs")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator(".person-name").first).to_have_text(admin_name)
    expect(table).to_contain_text("Would invite 3")
    expect(table).to_contain_text("1 invited · 1 has access · 1 invalid")
    table.locator("tbody tr", has_text="1 invited").locator("td").nth(2).click()
    expect(table.locator("tr.row-open")).to_have_count(1)
    expect(jobs.get_by_role("region", name="Job items")).to_be_visible()
    assert overflow(panel) == FITS
    shots.check("jobs")

    # Audit log: sentences with names and the job as a link.
    panel.get_by_role("tab", name="Audit log").click()
    audit = panel.get_by_role("tabpanel", name="Audit log")
    entries = audit.get_by_role("region", name="Audit log")
    expect(entries).to_contain_text(
        f"{admin_name} invited 3 people: 1 invited, 1 has access, 1 invalid."
    )
    expect(entries).to_contain_text(f"{admin_name} checked access for 2 emails")
    expect(entries).to_contain_text(f"{admin_name} created a new webhook secret.")
    expect(audit).to_contain_text("After 90 days")
    assert overflow(panel) == FITS
    shots.check("audit")

    panel.get_by_role("tab", name="Webhook").click()
    hook = panel.get_by_role("tabpanel", name="Webhook")
    expect(hook.locator("#rotate-start")).to_be_visible()
    assert overflow(panel) == FITS
    shots.check("webhook")
    # docs/panel-jobs.png, panel-audit.png, panel-invite.png and panel-webhook.png come from
    # test_panel_control.py (a job followed up, the filters, the webhook's state).
    if (width, theme) == (1440, "dark"):
        shots.publish("lookup", ROOT / "docs" / "panel-dark.png")


def test_one_tool_means_no_tab_strip(new_context, host, platform):
    page, panel = open_panel(new_context, host, panel_width=1024)
    shots = Screens(page, "look-user")
    ordinary = page.locator("#host-account option").nth(1).get_attribute("value")
    panel = sign_in_as(page, ordinary)
    expect(panel.locator("#who")).to_contain_text("Confluence user")
    expect(panel.get_by_role("tablist")).to_have_count(0)
    expect(panel.get_by_role("tab")).to_have_count(0)
    expect(panel.get_by_role("heading", name="Look up users")).to_be_visible()
    expect(panel.get_by_label("Account ids")).to_be_visible()
    assert overflow(panel) == FITS
    shots.check("start")
