"""The panel's flags go through @forge/bridge's showFlag and show on the host page, bottom left of the
window, where the admin is looking however long the panel's frame has grown; their actions run back
in the panel; success and info flags go by themselves after 8 s, warnings and errors stay until
dismissed; without a bridge that shows flags, the panel shows its own.

Chromium on the simulated Forge host page (simulator/host_assets), against a real gunicorn."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.panel_helpers import VIEWPORT, Screens, host_flag
from tests.e2e.test_panel_bridge import RECORD_BRIDGE

pytestmark = pytest.mark.e2e

# Raises a flag with the panel's own flags.js (the module the panel runs, same URL, same instance).
RAISE = """async ([tone, title, text, action]) => {
    const flags = await import(new URL("./flags.js", location.href).href);
    window.__clicks = window.__clicks || [];
    const actions = action ? [{label: action, onClick: () => window.__clicks.push(action)}] : [];
    flags.flag(tone, title, text, actions);
}"""

# The bridge the host injects, refusing showFlag at once (a host without flags).
NO_HOST_FLAGS = """(() => {
    let bridge;
    Object.defineProperty(globalThis, "__bridge", {
        configurable: true,
        get() { return bridge; },
        set(real) {
            bridge = {callBridge: (name, input) => {
                if (name === "showFlag") { throw new Error("This host shows no flags."); }
                return real.callBridge(name, input);
            }};
        },
    });
})();"""


def start(new_context: Any, host: str, *scripts: str, clock: bool = False) -> tuple[Any, Any, Any]:
    """The host page with the panel ready: (page, panel frame locator, panel frame)."""
    context = new_context(viewport=VIEWPORT, bypass_csp=True)
    for script in scripts:
        context.add_init_script(script)
    page = context.new_page()
    if clock:
        page.clock.install()
    page.goto(host + "/")
    panel = page.frame_locator("#host-panel")
    expect(panel.locator("html[data-ready=true]")).to_have_count(1)
    frame = next(f for f in page.frames if "/panel/" in f.url)
    return page, panel, frame


def in_window(page: Any, locator: Any) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return bool(
        box and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] and box["x"] < 200
    )


def test_a_flag_shows_on_the_host_page_in_view_on_a_long_panel(new_context: Any, host: str) -> None:
    page, panel, frame = start(new_context, host, RECORD_BRIDGE)
    # A panel far taller than the window: the host grows its frame to fit.
    frame.evaluate(
        """() => { const tall = document.createElement("div");
            tall.style.height = "4000px"; document.querySelector("main").append(tall); }"""
    )
    page.wait_for_function("() => document.getElementById('host-panel').offsetHeight > 4000")
    page.evaluate("() => window.scrollTo(0, 0)")
    frame.evaluate(RAISE, ["warning", "Invitations stopped", "1 invited, 1 failed.", "View job"])

    flag = host_flag(page, "Invitations stopped")
    expect(flag).to_be_visible()
    expect(flag).to_contain_text("1 invited, 1 failed.")
    assert flag.get_attribute("data-type") == "warning"
    assert in_window(page, flag)
    expect(panel.locator(".flag")).to_have_count(0)  # none in the frame
    # The host's alert reads it out; the panel's live region does not say it twice.
    expect(panel.locator("#status")).to_have_text("Access Desk is ready.")
    Screens(page, "flags-host").check("warning")  # axe on the panel and on the host page
    page.evaluate("() => window.scrollTo(0, 2500)")
    assert in_window(page, flag)  # fixed to the window, not to the page

    # What went over the bridge: @forge/bridge's showFlag, plain options and the onClick.
    sent = frame.evaluate(
        """() => window.__bridgeLog.filter((e) => e.name === "showFlag").map((e) => ({
            ...e.input, answer: e.answer,
            actions: e.input.actions.map((a) => ({text: a.text, onClick: typeof a.onClick}))}))"""
    )
    assert len(sent) == 1
    flag_id = sent[0].pop("id")
    assert flag_id.startswith("access-desk-flag-")
    assert sent[0] == {
        "title": "Invitations stopped",
        "description": "1 invited, 1 failed.",
        "type": "warning",
        "isAutoDismiss": False,
        "actions": [{"text": "View job", "onClick": "function"}],
        "answer": None,
    }

    # The action runs in the panel, which closes the flag (closeFlag, answered true).
    flag.get_by_role("button", name="View job").click()
    expect(flag).to_have_count(0)
    assert frame.evaluate("() => window.__clicks") == ["View job"]
    assert page.evaluate("() => window.__forgeHost.flagActions") == [{"id": flag_id, "index": 0}]
    closed = frame.evaluate(
        "() => window.__bridgeLog.filter((e) => e.name === 'closeFlag')"
        ".map((e) => [e.input, e.answer])"
    )
    assert closed == [[{"id": flag_id}, True]]
    expect(page.locator("#host-flags")).to_have_count(0)


@pytest.mark.parametrize(
    ("theme", "surface", "icon"),
    [
        ("light", "rgb(255, 255, 255)", "rgb(201, 55, 44)"),
        ("dark", "rgb(40, 46, 51)", "rgb(226, 72, 61)"),
    ],
)
def test_flags_take_the_host_theme_and_stack_newest_first(
    new_context: Any, host: str, theme: str, surface: str, icon: str
) -> None:
    page, _, frame = start(new_context, host)
    page.select_option("#host-theme", theme)
    frame.evaluate(RAISE, ["error", "The audit log could not be downloaded", "Try again.", None])
    frame.evaluate(RAISE, ["success", "Copied 2 users.", "", None])
    flags = page.locator("#host-flags .host-flag")
    expect(flags).to_have_count(2)
    # Newest first for screen readers; shown nearest the corner.
    expect(flags.first).to_have_attribute("data-type", "success")
    error = host_flag(page, "The audit log could not be downloaded")
    assert error.bounding_box()["y"] < flags.first.bounding_box()["y"]
    assert error.evaluate("(el) => getComputedStyle(el).backgroundColor") == surface
    assert error.locator(".host-flag-icon").evaluate("(el) => getComputedStyle(el).color") == icon
    Screens(page, f"flags-host-{theme}").check("stacked")
    # The dismiss button takes one away; the other stays.
    error.get_by_role("button", name="Dismiss").click()
    expect(error).to_have_count(0)
    expect(flags).to_have_count(1)


def test_success_flags_go_after_8_seconds_warnings_stay(new_context: Any, host: str) -> None:
    page, _, frame = start(new_context, host, clock=True)
    frame.evaluate(RAISE, ["warning", "A job stopped", "Invitation of 2: 2 failed.", None])
    frame.evaluate(RAISE, ["success", "Downloaded invitations.csv", "", None])
    copied = host_flag(page, "Downloaded invitations.csv")
    stopped = host_flag(page, "A job stopped")
    expect(copied).to_be_visible()
    page.mouse.move(VIEWPORT["width"] - 5, 5)  # the pointer away: a hovered flag waits
    page.clock.run_for(7_000)
    expect(copied).to_be_visible()
    page.clock.run_for(1_500)
    expect(copied).to_have_count(0)
    page.clock.run_for(60_000)
    expect(stopped).to_be_visible()  # warnings stay until dismissed


def test_a_flag_waits_while_the_pointer_is_on_it(new_context: Any, host: str) -> None:
    page, _, frame = start(new_context, host, clock=True)
    frame.evaluate(RAISE, ["info", "Job cancelled", "It stops after the batch in flight.", None])
    flag = host_flag(page, "Job cancelled")
    flag.hover()
    page.clock.run_for(20_000)
    expect(flag).to_be_visible()
    page.mouse.move(VIEWPORT["width"] - 5, 5)
    page.clock.run_for(8_500)
    expect(flag).to_have_count(0)


def test_without_host_flags_the_panel_shows_its_own(new_context: Any, host: str) -> None:
    page, panel, frame = start(new_context, host, NO_HOST_FLAGS)
    frame.evaluate(RAISE, ["success", "Copied 2 users.", "", None])
    own = panel.get_by_role("group", name="Copied 2 users.")
    expect(own).to_be_visible()
    expect(panel.locator("#status")).to_have_text("Copied 2 users.")
    expect(page.locator("#host-flags")).to_have_count(0)
    own.get_by_role("button", name="Dismiss: Copied 2 users.").click()
    expect(own).to_have_count(0)
