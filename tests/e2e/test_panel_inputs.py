"""The panel's ways in and out: "Load CSV file", a lookup whose batch call fails, exports and copies
that a spreadsheet cannot run, and the host's theme (Forge's enableTheming).

Chromium on the simulated Forge host page, against a real gunicorn, as in test_panel.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from tests.e2e.panel_helpers import (
    VIEWPORT,
    Screens,
    downloaded_csv,
    host_flag,
    open_panel,
    paste,
)

pytestmark = pytest.mark.e2e

BATCH = 2500  # ids per lookupUsers call (static/lookup.js)
FORMULAS = ["=1+2", "+1", "-2", "@SUM(A1)", "=HYPERLINK(x)"]

# Records what the panel copies instead of touching the real clipboard.
RECORD_COPIES = """() => {
    window.__copied = [];
    Object.defineProperty(navigator, "clipboard", {configurable: true, value: {
        writeText: async (text) => { window.__copied.push(text); }}});
}"""
# A browser that refuses both ways of copying.
REFUSE_COPIES = """() => {
    Object.defineProperty(navigator, "clipboard", {configurable: true, value: {
        writeText: () => Promise.reject(new DOMException("Write permission denied.", "NotAllowedError"))}});
    document.execCommand = () => false;
}"""
# A bridge that never answers enableTheming (the panel must start anyway and get no host theme).
SILENT_THEMING = """(() => {
    let bridge;
    Object.defineProperty(globalThis, "__bridge", {
        configurable: true,
        get() { return bridge; },
        set(real) {
            bridge = {callBridge: (name, input) =>
                name === "enableTheming" ? new Promise(() => {}) : real.callBridge(name, input)};
        },
    });
})();"""


def csv_file(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode()}


def choose_file(page: Any, load_button: Any, file: dict[str, Any]) -> None:
    with page.expect_file_chooser() as chooser:
        load_button.click()
    chooser.value.set_files(file)


def test_load_csv_file_fills_each_form(new_context, host, platform):
    site = platform.installation.site
    page, panel = open_panel(new_context, host)
    # Intercept pickers from now on: expect_file_chooser sets interception up without waiting for
    # it, and a picker opened at once by a key press could come first (and not be caught).
    page.on("filechooser", lambda chooser: None)
    shots = Screens(page, "inputs")
    # Look up: a real button, reached by keyboard, opens the file picker; the accountId column.
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    area = lookup.get_by_role("textbox", name="Account ids")
    load = lookup.get_by_role("button", name="Load CSV file")
    area.focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(load).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(
        csv_file(
            "people.csv",
            f'name,accountId\r\nAda,{site.admin_id}\r\n"Lovelace, Ada",no-such-account\r\n',
        )
    )
    expect(area).to_have_value(f"{site.admin_id}\nno-such-account")
    expect(area).to_be_focused()
    expect(lookup.locator(".field-count")).to_have_text("2 account ids")
    shots.check("lookup-loaded")
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Found (1)", exact=True)).to_be_visible()
    expect(lookup.get_by_role("heading", name="Not found (1)")).to_be_visible()

    # A file with nothing to load, or that is no text at all, says so and keeps the list.
    choose_file(page, load, csv_file("empty.csv", ""))
    expect(lookup.locator(".field-error")).to_have_text("empty.csv is empty.")
    choose_file(page, load, csv_file("only-header.csv", "accountId\r\n"))
    expect(lookup.locator(".field-error")).to_have_text("No account ids found in only-header.csv.")
    choose_file(
        page,
        load,
        {"name": "book.xlsx", "mimeType": "text/csv", "buffer": b"PK\x03\x04\x00\x00\x08"},
    )
    expect(lookup.locator(".field-error")).to_have_text(
        "book.xlsx is not a CSV or text file. Save the spreadsheet as CSV first."
    )
    expect(area).to_have_value(f"{site.admin_id}\nno-such-account")

    # Check access: the "Email" column (other columns ignored).
    panel.get_by_role("tab", name="Check access").click()
    access = panel.get_by_role("tabpanel", name="Check access")
    choose_file(
        page,
        access.get_by_role("button", name="Load CSV file"),
        csv_file(
            "staff.csv",
            "Name;Email;Team\nAda;ada@example.com;R&D\nGrace;grace@example.com;Ops\n",
        ),
    )
    expect(access.get_by_label("Emails")).to_have_value("ada@example.com\ngrace@example.com")
    expect(access.locator(".field-count")).to_have_text("2 emails")

    # Invite: no header column, so every cell (UTF-16 "Unicode text" as spreadsheets save it).
    panel.get_by_role("tab", name="Invite").click()
    invite = panel.get_by_role("tabpanel", name="Invite")
    choose_file(
        page,
        invite.get_by_role("button", name="Load CSV file"),
        {
            "name": "new.txt",
            "mimeType": "text/plain",
            "buffer": "\ufeffnew.one@example.com\tnew.two@example.com\r\n".encode("utf-16-le"),
        },
    )
    expect(invite.get_by_label("Emails to invite")).to_have_value(
        "new.one@example.com\nnew.two@example.com"
    )


def test_a_failed_lookup_batch_keeps_the_other_batches(new_context, host, platform):
    site = platform.installation.site
    unknown = [f"no-such-account-{i:05d}" for i in range(2 * BATCH + 8)]
    external = next(iter(site.external_ids))
    # Three calls: the admin + 2,499 unknown; 2,500 unknown (this call fails); the rest.
    ids = [site.admin_id, *unknown[: 2 * BATCH - 1], external, *unknown[2 * BATCH - 1 :]]
    batches = [ids[at : at + BATCH] for at in range(0, len(ids), BATCH)]
    failing = batches[1]
    calls: list[int] = []  # which of ``batches`` the panel sent, in order
    failure = {"status": 503, "body": '{"error": "unavailable"}'}

    def second_batch_fails(route: Route) -> None:
        # Only the Look up button's batches count: the panel's other lookupUsers calls (people.js
        # asks for the signed-in user's name as it starts, before any batch) go through as they are.
        sent = route.request.post_data_json or {}
        asked = (sent.get("body") or {}).get("accountIds")
        if sent.get("path") == "/resolvers/lookupUsers" and asked in batches:
            calls.append(batches.index(asked))
            if len(calls) == 2:
                route.fulfill(json={**failure, "headers": {}})
                return
        route.continue_()

    # Routed from the first call on, so the start-up name lookup is always seen (and let through).
    page, panel = open_panel(new_context, host, route=second_batch_fails)
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    paste(lookup.get_by_label("Account ids"), "\n".join(ids))
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("list", name="Counts")).to_have_text(
        "2Found2,500Failed2,508Not found", timeout=60_000
    )
    assert calls == [0, 1, 2]
    assert [len(b) for b in batches] == [BATCH, BATCH, 10]
    expect(lookup.get_by_role("heading", name="Found (2)", exact=True)).to_be_visible()
    reason = "Access Desk could not finish this (error 503). Try again in a moment."
    failed = lookup.get_by_role("region", name="Account ids that failed")
    first = failed.locator("tbody tr").first
    expect(first.locator("td").first).to_have_text(failing[0])
    expect(first.locator("td").last).to_have_text(reason)
    # Every id in exactly one list: found, not found, failed (with the reason in words).
    found = downloaded_csv(page, lookup.get_by_role("button", name="Download CSV of found users"))
    missing = downloaded_csv(
        page, lookup.get_by_role("button", name="Download CSV of account ids not found")
    )
    gone = downloaded_csv(
        page, lookup.get_by_role("button", name="Download CSV of failed account ids")
    )
    assert gone[0] == ["accountId", "error", "retryAfter", "reason"]
    assert [r[0] for r in gone[1:]] == failing
    assert {r[3] for r in gone[1:]} == {reason}
    lists = [[r[0] for r in rows[1:]] for rows in (found, missing, gone)]
    assert sorted(lists[0]) == sorted([site.admin_id, external])
    assert sorted(sum(lists, [])) == sorted(ids)

    # A session that expires half way: what came back stays, the rest fail, nothing more is sent.
    calls.clear()
    failure.update(status=401, body='{"error": "invalid_token"}')
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("list", name="Counts")).to_have_text(
        "1Found2,510Failed2,499Not found", timeout=60_000
    )
    assert calls == [0, 1]
    expect(failed.locator("tbody tr").first).to_contain_text(
        "Access Desk could not verify this request from Confluence."
    )


def test_exports_and_copies_cannot_run_formulas(new_context, host):
    page, panel = open_panel(new_context, host)
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_label("Account ids").fill("\n".join(FORMULAS))
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name=f"Not found ({len(FORMULAS)})")).to_be_visible()
    guarded = [f"'{value}" for value in FORMULAS]
    rows = downloaded_csv(
        page, lookup.get_by_role("button", name="Download CSV of account ids not found")
    )
    assert rows == [["accountId"], *([g] for g in guarded)]

    frame = panel.locator("html")
    frame.evaluate(RECORD_COPIES)
    lookup.get_by_role("button", name="Copy account ids not found").click()
    expect(host_flag(page, f"Copied {len(FORMULAS)} account ids.")).to_be_visible()
    assert frame.evaluate("() => window.__copied") == ["\n".join(guarded)]

    # When the browser refuses the clipboard, the panel says so instead of "Copied".
    frame.evaluate(REFUSE_COPIES)
    lookup.get_by_role("button", name="Copy account ids not found").click()
    refused = host_flag(page, "Could not copy")
    expect(refused).to_contain_text("The browser did not allow access to the clipboard.")
    expect(refused.get_by_role("button", name="Dismiss")).to_be_visible()  # errors stay


def test_the_host_theme_reaches_the_panel_after_enable_theming(new_context, host):
    # The OS is dark, Confluence is set to light: the panel must follow Confluence.
    context = new_context(viewport=VIEWPORT, color_scheme="dark", bypass_csp=True)
    page = context.new_page()
    page.goto(host + "/")
    panel = page.frame_locator("#host-panel")
    expect(panel.locator("html[data-ready=true]")).to_have_count(1)
    # "Follow system" resolved by the host, as Confluence does, once the panel asked.
    expect(panel.locator("html[data-color-mode=dark]")).to_have_count(1)
    assert page.evaluate("() => window.__forgeHost.themingRequests") == 1
    assert page.evaluate("() => window.__forgeHost.themingEnabled()") is True
    page.select_option("#host-theme", "light")
    expect(panel.locator("html[data-color-mode=light]")).to_have_count(1)
    body = panel.locator("body")
    expect(body).to_have_css("background-color", "rgb(255, 255, 255)")
    page.select_option("#host-theme", "dark")
    expect(body).to_have_css("background-color", "rgb(29, 33, 37)")

    # A panel that never asks gets no theme from the host, and a bridge that never answers
    # enableTheming does not keep the panel from starting.
    context = new_context(viewport=VIEWPORT, color_scheme="light", bypass_csp=True)
    context.add_init_script(SILENT_THEMING)
    page = context.new_page()
    page.goto(host + "/")
    panel = page.frame_locator("#host-panel")
    expect(panel.locator("html[data-ready=true]")).to_have_count(1)
    page.select_option("#host-theme", "dark")
    expect(page.locator("html[data-color-mode=dark]")).to_have_count(1)  # the host page
    expect(panel.locator("html[data-color-mode]")).to_have_count(0)
    assert page.evaluate("() => window.__forgeHost.themingRequests") == 0
    expect(panel.locator("body")).to_have_css("background-color", "rgb(255, 255, 255)")


# Payloads a spreadsheet splitting on ";" or a tab would run as a formula in a cell of their own.
SPLIT_FORMULAS = ["x;=1+1;", "x\t=cmd|' /C calc'!A0"]


def test_csv_quotes_every_cell_and_guards_formulas_after_separators(new_context, host, platform):
    site = platform.installation.site
    page, panel = open_panel(new_context, host)

    # Names Confluence returns reach the CSV as they are: the backend's answer is replaced by
    # one whose users carry the payloads.
    def hostile_names(route: Route) -> None:
        call = json.loads(route.request.post_data or "{}")
        if not str(call.get("path", "")).endswith("/lookupUsers"):
            route.continue_()
            return
        answer = route.fetch().json()
        body = json.loads(answer["body"])
        for user in body["users"]:
            user["displayName"], user["publicName"] = SPLIT_FORMULAS
        route.fulfill(json={**answer, "body": json.dumps(body)})

    page.route("**/_host/invoke", hostile_names)
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_label("Account ids").fill(site.admin_id)
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Found (1)")).to_be_visible()
    with page.expect_download() as info:
        lookup.get_by_role("button", name="Download CSV of found users").click()
    raw = Path(info.value.path()).read_bytes().decode("utf-8")
    lines = raw.split("\r\n")
    # Every cell quoted, the formulas after ; and the tab guarded by a '.
    assert lines[0].startswith('"accountId","displayName","publicName"'), lines[0]
    assert lines[1].startswith(f'"{site.admin_id}","x;\'=1+1;","x\t\'=cmd|\' /C calc\'!A0"')
    # Split the way a spreadsheet set to ; or tab would: no piece starts a formula.
    for separator in [";", "\t", ","]:
        for piece in raw.replace('"', "").replace("\r\n", separator).split(separator):
            assert not piece.lstrip().startswith(("=", "+", "-", "@")), (separator, piece)

    # The same guard in the module every export and copy uses.
    guarded = panel.locator("html").evaluate(
        """(root, values) => import("./csv.js").then((csv) => [
            csv.toCsv(["v"], values.map((v) => [v])), csv.toLines(values)])""",
        SPLIT_FORMULAS,
    )
    assert guarded[0] == '"v"\r\n"x;\'=1+1;"\r\n"x\t\'=cmd|\' /C calc\'!A0"\r\n'
    assert guarded[1] == "x;'=1+1;\nx\t'=cmd|' /C calc'!A0"


def test_email_dedupe_lowercases_ascii_letters_only(new_context, host):
    page, panel = open_panel(new_context, host)
    sent: list[Any] = []

    def record(route: Route) -> None:
        call = json.loads(route.request.post_data or "{}")
        if str(call.get("path", "")).endswith("/checkAccess"):
            sent.append(call["body"]["emails"])
        route.continue_()

    page.route("**/_host/invoke", record)
    panel.get_by_role("tab", name="Check access").click()
    access = panel.get_by_role("tabpanel", name="Check access")
    emails = [
        "straße@example.com",
        "STRASSE@example.com",
        "strasse@example.com",  # the same as STRASSE: A-Z only
        "\u212aelvin@example.com",  # the Kelvin sign, not K
        "Kelvin@example.com",
        "kelvin@EXAMPLE.com",  # the same as Kelvin
    ]
    access.get_by_label("Emails").fill("\n".join(emails))
    expect(access.locator(".field-count")).to_have_text("4 emails (2 repeated, sent once)")
    access.get_by_role("button", name="Check access").click()
    expect(access.get_by_role("list", name="Counts")).to_be_visible()
    assert sent == [
        [
            "straße@example.com",
            "STRASSE@example.com",
            "\u212aelvin@example.com",
            "Kelvin@example.com",
        ]
    ]


def test_a_busy_answer_is_retried_before_it_is_shown(new_context, host, platform):
    # 429 busy (the server's bound on this user's calls in flight) clears as soon as an earlier call
    # ends: the panel tries again after a pause instead of showing an error.
    site = platform.installation.site
    page, panel = open_panel(new_context, host)
    busy_answers: list[int] = []

    def busy_twice(route: Route) -> None:
        sent = route.request.post_data_json or {}
        if sent.get("path") == "/resolvers/lookupUsers" and len(busy_answers) < 2:
            busy_answers.append(1)
            body = {"error": "busy", "message": "You have too many calls in progress."}
            route.fulfill(
                json={"status": 429, "headers": {"retry-after": "1"}, "body": json.dumps(body)}
            )
            return
        route.continue_()

    page.route("**/_host/invoke", busy_twice)
    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_label("Account ids").fill(site.admin_id)
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("list", name="Counts")).to_have_text("1Found", timeout=15_000)
    assert busy_answers == [1, 1]
