"""Issue 19 items 6, 7, 10, 12 and 13 in Chromium, as a Confluence site admin meets them in ./dev:

- the seeded site through "Try with sample data" (./dev's, only when the simulator offers it);
- Look up: deactivated and closed accounts marked (a closed one reads "Closed account"), only
  active people with a visible email handed to Check access; addresses, names and ids never broken
  inside (one line, cut with an ellipsis, whole on hover) at 1,024 and 1,440 px, light and dark;
- Invite: what invitees get (the site's default access) beside the Invite button;
- Diagnose in plain sentences, the technical reading behind "Show details" (keyboard too);
- one honest message per cause of a failure; an external collaborator is "You" in the header
  (the id behind "Show details"), told plainly that Confluence refuses lookups for their account,
  and why they are not an administrator; dates in the viewer's locale; who installed the app.

Against a real gunicorn on the simulated platform; axe-core on every screen.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from simulator.host import sample_lists
from simulator.triggers import lifecycle
from tests.e2e.panel_helpers import FITS, ROOT, Screens, open_panel, overflow, paste, sign_in_as
from tests.e2e.test_panel_flows import admin_call

pytestmark = pytest.mark.e2e

SIZES = [(1024, "light"), (1024, "dark"), (1440, "light"), (1440, "dark")]
LONG = "maximiliana.alexandrova-kowalczyk.contractor@subsidiary-of-a-long-name.example.org"
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:")

# Every value in a table that must not break: on one line, and whole in its title when cut short.
ONE_LINE = """(root) => [...root.querySelectorAll("table.data .fit, table.data .person-name")]
    .filter((el) => el.offsetParent)
    .map((el) => ({
        text: el.textContent,
        lines: Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)),
        cut: el.scrollWidth > el.clientWidth,
        title: el.getAttribute("title"),
    }))"""


def unbroken(region: Any) -> list[dict[str, Any]]:
    """The table values of ``region`` (a locator), each checked on one line and whole when cut."""
    values: list[dict[str, Any]] = region.evaluate(ONE_LINE)
    assert values, "no values to check"
    for v in values:
        assert v["lines"] == 1, v
        assert not v["cut"] or v["title"] == v["text"], v
    return values


@pytest.mark.parametrize(("width", "theme"), SIZES, ids=[f"{w}-{t}" for w, t in SIZES])
def test_sample_data_lookup_invite_and_diagnose_fit_and_read_plainly(
    new_context, host, platform, live_backend, width, theme
):
    site = platform.installation.site
    admin_name = site.users[site.admin_id]["displayName"]
    admin_call(platform, live_backend.url, "rotateWebhookSecret", {})  # webhook jobs act as admin
    platform.samples = True  # as ./dev has it
    page, panel = open_panel(new_context, host, panel_width=width, theme=theme)
    shots = Screens(page, f"plain-{width}-{theme}")
    # Look up the seeded site's sample ids: every kind of account.
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_role("button", name="Try with sample data").click()
    expect(lookup.locator(".field-count")).to_have_text(
        "9 account ids. The first line, “Account ID”, is read as a column header and not sent."
    )
    lookup.get_by_role("button", name="Look up").click()
    found = lookup.get_by_role("region", name="Found users")
    expect(found.locator("tbody tr")).to_have_count(8)
    closed = found.locator("tr", has_text="Former user")
    expect(closed.locator("td").nth(1)).to_have_text("Closed account")
    expect(closed.locator(".lozenge")).to_have_text("Closed")
    inactive = site.users[site.inactive_ids[0]]["displayName"]
    expect(found.locator("tr", has_text=inactive).locator(".lozenge")).to_have_text("Deactivated")
    hidden = site.users[site.hidden_email_ids[0]]["displayName"]
    expect(found.locator("tr", has_text=hidden).locator("td").nth(1)).to_have_text(
        "Hidden by their profile settings"
    )
    notes = lookup.locator(".found-notes")
    expect(notes).to_contain_text("1 deactivated account and 1 closed account")
    expect(notes).to_contain_text("does not offer them for invitation")
    values = unbroken(found)
    if width == 1024:  # a 712020:… id is cut short there, and whole on hover
        assert any(v["cut"] and v["text"].startswith("712020:") for v in values), values
    assert overflow(panel) == FITS
    shots.check("lookup")

    # Only active people whose email shows go on to Check access (not the deactivated one).
    invitable = [
        u["email"]
        for u in (site.users[i] for i in sample_ids(site) if i in site.users)
        if u["accountStatus"] == "active" and u["email"]
    ]
    assert site.users[site.inactive_ids[0]]["email"] not in invitable
    lookup.get_by_role("button", name=f"Check access for {len(invitable)} emails…").click()
    access = panel.get_by_role("tabpanel", name="Check access")
    area = access.get_by_role("textbox", name="Emails")
    expect(area).to_have_value("\n".join(invitable))
    expect(access.get_by_role("button", name="Check access")).to_be_focused()
    paste(area, "\n".join([*invitable, LONG]))
    access.get_by_role("button", name="Check access").click()
    results = access.get_by_role("region", name="Access check results")
    expect(results.locator("tbody tr")).to_have_count(len(invitable) + 1)
    values = unbroken(results)
    long = next(v for v in values if v["text"] == LONG)
    assert long["title"] == LONG and long["cut"] == (width == 1024)  # cut only when narrow
    assert overflow(panel) == FITS
    shots.check("access")

    # Invite: what invitees get, beside the button that sends the invitations.
    panel.get_by_role("tab", name="Invite").click()
    invite = panel.get_by_role("tabpanel", name="Invite")
    expect(invite.locator(".invite-access")).to_contain_text(
        "Invitees join with this site's default access for new users"
    )
    invite.get_by_role("button", name="Try with sample data").click()
    expect(invite.locator(".entry-problems")).to_contain_text("has a space inside")
    invite.get_by_role("button", name="Preview invitations").click()
    bar = invite.get_by_role("group", name=re.compile(r"^Invite \d+ people\?$"))
    expect(bar).to_contain_text("joins with the site's default access for new users")
    unbroken(invite.get_by_role("region", name="Would be invited", exact=True))
    assert overflow(panel) == FITS
    shots.check("invite")

    # Diagnose: sentences first; the technical reading behind "Show details", by keyboard.
    panel.get_by_role("tab", name="Diagnose").click()
    diag = panel.get_by_role("tabpanel", name="Diagnose")
    checks = diag.get_by_role("list", name="Checks").get_by_role("listitem")
    webhook = checks.filter(has_text="Webhook jobs")
    summary = webhook.locator(".diag-summary")  # the admin by name and avatar, not an id
    expect(summary).to_have_text(re.compile(rf"^Webhook jobs can act as .*{admin_name}\.$"))
    expect(summary.locator(".person .avatar")).to_be_visible()
    expect(summary).not_to_contain_text(site.admin_id)
    forge = checks.filter(has_text="Calls from Forge")
    expect(forge).to_contain_text("the signature checks out")
    shown = diag.get_by_role("list", name="Checks").inner_text()
    assert "RS256" not in shown and "ari:cloud" not in shown and not ISO_TIME.search(shown)
    toggle = forge.locator(".disclosure-toggle")
    expect(toggle).to_have_accessible_name("Show details")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_have_accessible_name("Hide details")
    details = forge.locator(f"#{toggle.get_attribute('aria-controls')}")
    expect(details).to_be_visible()
    expect(details).to_contain_text("Verified (RS256, signed by Forge")
    assert overflow(panel) == FITS
    shots.check("diagnose")
    page.keyboard.press("Space")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(details).to_be_hidden()
    if (width, theme) == (1440, "light"):
        shots.publish("diagnose", ROOT / "docs" / "panel-diagnose.png")


def sample_ids(site: Any) -> list[str]:
    """The ids "Try with sample data" pastes (header line left out)."""
    return sample_lists(site)["accountId"].split("\n")[1:]


def test_failures_outsiders_and_dates_read_honestly(new_context, host, platform, live_backend):
    site = platform.installation.site
    refused, limited, down, odd = "fake-refused", "fake-limited", "fake-down", "fake-odd"
    fake = {
        "users": [],
        "notFound": [],
        "failed": [
            {"accountId": refused, "error": "not_permitted"},
            {"accountId": limited, "error": "rate_limited", "retryAfter": 30},
            {"accountId": down, "error": "unavailable"},
            {"accountId": odd, "error": "bad_response"},
        ],
    }

    def answer(route: Any) -> None:
        call = json.loads(route.request.post_data or "{}")
        if call.get("path") == "/resolvers/lookupUsers" and refused in json.dumps(call):
            route.fulfill(json={"status": 200, "headers": {}, "body": json.dumps(fake)})
        else:
            route.continue_()

    # Without ./dev's samples, the simulated page offers none (a real site never does).
    assert requests.get(f"{host}/_host/samples", timeout=10).status_code == 404
    assert lifecycle(platform, "avi:forge:installed:app")["status"] in (200, 202, 204)
    admin_call(platform, live_backend.url, "whoami", {})
    page, panel = open_panel(
        new_context, host, route=answer, locale="de-DE", timezone="Europe/Berlin", panel_width=1024
    )
    shots = Screens(page, "honest")
    expect(panel.get_by_role("button", name="Try with sample data")).to_have_count(0)

    # One message per cause, what will not change first; never "try again" for a refusal.
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    paste(
        lookup.get_by_role("textbox", name="Account ids"),
        "\n".join([refused, limited, down, odd]),
    )
    lookup.get_by_role("button", name="Look up").click()
    messages = lookup.locator(".msg")
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_contain_text("Confluence refused this for your account")
    expect(messages.nth(0)).to_contain_text("trying again will not help")
    expect(messages.nth(1)).to_contain_text("Confluence asked Access Desk to slow down")
    expect(messages.nth(1)).to_contain_text("Try them again in 30 s")
    expect(messages.nth(2)).to_contain_text("Confluence did not answer")
    expect(messages.nth(2)).to_contain_text("in a few minutes")
    expect(messages.nth(3)).to_contain_text("Confluence's answer could not be used")
    expect(lookup.get_by_role("heading", name="Found (0)")).to_have_count(0)
    expect(lookup.locator(".summary")).to_have_text("None of the 4 account ids could be looked up.")
    shots.check("causes")

    # Who installed the app, by name; the date in the viewer's locale (German here).
    panel.get_by_role("tab", name="Audit log").click()
    audit = panel.get_by_role("region", name="Audit log")
    installed = audit.locator("tr", has_text="installed Access Desk")
    admin_name = site.users[site.admin_id]["displayName"]
    expect(installed).to_contain_text(f"{admin_name} installed Access Desk through Forge.")
    expect(installed.locator("td").first).to_have_text(
        re.compile(r"^\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}$")
    )

    # An external collaborator: "You", the id behind details; Confluence's refusal in words.
    external = site.external_ids[0]
    panel = sign_in_as(page, external)
    who = panel.locator("#who")
    expect(who.locator(".person-name")).to_have_text("You")
    toggle = who.get_by_role("button", name="Show details")
    expect(panel.get_by_text(f"Account id: {external}")).to_be_hidden()
    toggle.click()
    expect(panel.get_by_text(f"Account id: {external}")).to_be_visible()
    lookup = panel.get_by_role("region", name="Look up users", exact=True)
    paste(lookup.get_by_role("textbox", name="Account ids"), "\n".join(site.user_ids[:2]))
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.locator(".summary")).to_have_text("None of the 2 account ids could be looked up.")
    expect(lookup.locator(".msg")).to_have_count(1)
    expect(lookup.locator(".msg")).to_contain_text("ask a Confluence administrator")
    expect(lookup).not_to_contain_text("did not answer")

    # Why not an administrator: a sentence, the operations behind "Show details".
    panel.get_by_role("button", name="Why am I not an administrator here?").click()
    why = panel.locator(".admin-answer")
    expect(why).to_contain_text("Confluence does not list you as a Confluence administrator")
    expect(why.get_by_text("operations reported")).to_be_hidden()
    why.get_by_role("button", name="Show details").click()
    expect(why.get_by_text(re.compile("operations reported: use/application"))).to_be_visible()
    assert overflow(panel) == FITS
    shots.check("outsider")
