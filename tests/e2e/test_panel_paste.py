"""Pasted lists in Chromium (issue 19 item 1): the panel's static/entries.js reads the shared table
tests/entry_cases.json exactly as entries.py does (tests/test_entries.py), and every form of a
pasted list (a header row, a space inside an address, mailto:, Name <addr>, "Name" <addr>, commas,
semicolons) reads the same through the panel's forms and through the webhook, against a real
gunicorn on the simulated platform. Each invalid entry shows under the field before anything is
sent, and is never sent to Confluence as a fragment.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.panel_helpers import ROOT, Screens, deliver, open_panel, paste
from tests.e2e.test_backend import wait_job
from tests.e2e.test_panel_flows import admin_call

pytestmark = pytest.mark.e2e

CASES: list[dict[str, Any]] = json.loads((ROOT / "tests" / "entry_cases.json").read_text())["cases"]
FORMS = next(c for c in CASES if c.get("forms"))
SPACED = FORMS["invalid"][0]["entry"]  # "new hire301@example.com"

# The panel's own module, run in the panel's frame on every case of the table.
RUN_TABLE = """async (cases) => {
    const rules = await import("./entries.js");
    return cases.map((c) => {
        const found = rules.parse(c.text, c.kind);
        return {entries: found.entries, invalid: found.invalid, header: found.header,
                repeated: found.repeated};
    });
}"""


def expected(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "entries": case["entries"],
        "invalid": case["invalid"],
        "header": case.get("header"),
        "repeated": case.get("repeated", 0),
    }


def sent(platform: Any, endpoint: str, field: str) -> list[str]:
    return [e for r in platform.requests if r.endpoint == endpoint for e in r.body[field]]


def column(region: Any, index: int = 0) -> list[str]:
    cells = region.locator(f"tbody tr td:nth-child({index + 1})")
    return [t.strip() for t in cells.all_inner_texts()]


def test_every_form_of_a_pasted_list_reads_the_same_in_the_panel_and_the_webhook(
    new_context, host, platform, live_backend
):
    site = platform.installation.site
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "paste")
    # The panel's rules and the table: the same answers as Python's, case by case.
    found = shots.panel_frame().evaluate(RUN_TABLE, CASES)
    assert [f == expected(c) or c["name"] for f, c in zip(found, CASES, strict=True)] == [
        True
    ] * len(CASES)

    # Check access: the forms pasted; the invalid entry listed under the field at once.
    platform.clear_requests()
    panel.get_by_role("tab", name="Check access").click()
    access = panel.get_by_role("tabpanel", name="Check access")
    area = access.get_by_role("textbox", name="Emails")
    paste(area, FORMS["text"])
    problems = access.locator(".entry-problems")
    expect(problems).to_contain_text(f"Line 2: “{SPACED}” has a space inside")
    expect(problems).to_contain_text("It is not sent to Confluence")
    expect(access.locator(".field-count")).to_have_text(
        "6 emails (1 not valid). The first line, “Email address”, is read as a column "
        "header and not sent."
    )
    expect(area).to_have_attribute("aria-invalid", "true")
    assert sent(platform, "check-access", "emails") == []  # nothing sent before the click
    shots.check("invalid-listed", top=True)
    shots.publish("invalid-listed", ROOT / "docs" / "panel-paste.png")
    access.get_by_role("button", name="Check access").click()
    results = access.get_by_role("region", name="Access check results")
    expect(results.locator("tbody tr")).to_have_count(7)
    assert sorted(column(results)) == sorted([*FORMS["entries"], SPACED])
    expect(results.locator("tr", has_text=SPACED)).to_contain_text("Invalid email")
    assert sent(platform, "check-access", "emails") == FORMS["entries"]

    # One action removes the invalid entry: the list then holds what would be sent.
    access.get_by_role("button", name="Remove the invalid entry").click()
    expect(area).to_have_value("\n".join(FORMS["entries"]))
    expect(problems).to_be_hidden()
    expect(area).not_to_have_attribute("aria-invalid", "true")

    # Invite: the preview lists the addresses; the spaced entry is skipped whole.
    panel.get_by_role("tab", name="Invite").click()
    invite = panel.get_by_role("tabpanel", name="Invite")
    paste(invite.get_by_role("textbox", name="Emails to invite"), FORMS["text"])
    expect(invite.locator(".entry-problems")).to_contain_text(SPACED)
    invite.get_by_role("button", name="Preview invitations").click()
    would = invite.get_by_role("region", name="Would be invited", exact=True)
    expect(would.locator("tbody tr")).to_have_count(len(FORMS["entries"]))
    assert column(would) == FORMS["entries"]
    skipped = invite.get_by_role("region", name="Skipped", exact=True)
    assert column(skipped) == [SPACED]
    assert "hire301@example.com" not in sent(platform, "check-access", "emails")

    # Look up: an "Account ID" header, ids after commas, a name pasted by mistake.
    panel.get_by_role("tab", name="Look up users").click()
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    a, b = site.user_ids[:2]
    paste(lookup.get_by_role("textbox", name="Account ids"), f"Account ID\n{a}, {b}\nJane Doe")
    expect(lookup.locator(".field-count")).to_have_text(
        "2 account ids (1 not valid). The first line, “Account ID”, is read as a column "
        "header and not sent."
    )
    expect(lookup.locator(".entry-problems")).to_contain_text(
        "Line 3: “Jane Doe” has a space inside (an account id has none)."
    )
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Found (2)")).to_be_visible()
    expect(lookup.get_by_role("heading", name="Not found (1)")).to_be_visible()
    assert sent(platform, "users-bulk", "accountIds")[-2:] == [a, b]

    # The webhook: the same text, one line an entry, read by the same rules.
    url = live_backend.url
    rotated = admin_call(platform, url, "rotateWebhookSecret", {})
    answer = deliver(url, rotated["url"], rotated["secret"], "msg_forms", FORMS["text"].split("\n"))
    assert answer.status_code == 202, answer.text
    job = wait_job(url, platform, answer.json()["jobId"])
    outcomes = {item["email"]: item["outcome"] for item in job["items"]}
    assert outcomes == {SPACED: "invalid", **dict.fromkeys(FORMS["entries"], "pending")}
