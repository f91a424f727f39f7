"""Helpers for the panel's browser tests: Chromium, the simulated Forge host, axe, screenshots."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    return os.environ.get("ACCESS_DESK_CHROMIUM", "/usr/bin/chromium")


def axe_source() -> str:
    modules = os.environ.get("ACCESS_DESK_NODE_MODULES") or str(ROOT / ".cache/node/node_modules")
    return (Path(modules) / "axe-core" / "axe.min.js").read_text()


def forge_host(platform: Any) -> str:
    """The URL of the simulated Confluence admin page hosting the panel (the platform's own server,
    which mounts ``simulator.host``)."""
    url = str(platform.url).rstrip("/")
    answer = requests.get(url + "/_host/forge-bridge.js", timeout=5)
    assert answer.status_code == 200 and "__bridge" in answer.text, "the platform has no host"
    return url


def serious_violations(frame: Any, axe: str, *, iframes: bool = True) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations in one frame's document."""
    if not frame.evaluate("() => typeof window.axe !== 'undefined'"):
        frame.add_script_tag(content=axe)
    found: list[dict[str, Any]] = frame.evaluate(
        """async (iframes) => {
            const result = await axe.run(document, {resultTypes: ["violations"], iframes});
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
        }""",
        iframes,
    )
    return found


class Screens:
    """Screenshots of each screen, checked with axe-core: no serious or critical violations."""

    def __init__(self, page: Any, prefix: str) -> None:
        self.page = page
        self.prefix = prefix
        self.axe = axe_source()
        self.taken: dict[str, Path] = {}
        SHOTS.mkdir(parents=True, exist_ok=True)

    @property
    def frame(self) -> Any:
        return self.page.frame_locator("#host-panel")

    def panel_frame(self) -> Any:
        for frame in self.page.frames:
            if "/panel/" in frame.url:
                return frame
        raise AssertionError("the panel frame is not there")

    def check(self, name: str, *, top: bool = False) -> Path:
        """axe on the panel as it is (and on the host page while it shows a flag), and a screenshot
        of the whole page, or with ``top`` of the window's height from the top (the docs' shots:
        what an admin sees on arrival)."""
        violations = serious_violations(self.panel_frame(), self.axe)
        if self.page.locator("#host-flags .host-flag").count():
            # The host page's own document: its flags, not the panel's frame again.
            violations += serious_violations(self.page.main_frame, self.axe, iframes=False)
        path = SHOTS / f"{self.prefix}-{name}.png"
        if top:
            self.page.evaluate("() => window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=not top)
        self.taken[name] = path
        assert violations == [], f"axe on {name}: {violations}"
        return path

    def publish(self, name: str, target: Path) -> None:
        """Copies a screenshot to the docs when ACCESS_DESK_UPDATE_DOCS=1."""
        if os.environ.get("ACCESS_DESK_UPDATE_DOCS") == "1":
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.taken[name], target)


def lines(count: int, make: Any) -> str:
    return "\n".join(make(i) for i in range(count))


ROWS = re.compile(r"Rows ([\d,]+)–([\d,]+) of ([\d,]+)")


VIEWPORT = {"width": 1366, "height": 1000}


HOST_NAV = 232  # the simulated admin page's side navigation, left of the panel's frame


def open_panel(
    new_context,
    host_url,
    *,
    bypass_csp=True,
    panel_width=None,
    theme=None,
    route=None,
    locale=None,
    timezone=None,
):
    """A page on the simulated Confluence admin page, the panel loaded and ready: its start-up calls
    answered, the signed-in user's name included (people.js asks lookupUsers for it a moment after
    the panel is ready, so a test routing lookupUsers calls later would otherwise race it). The page
    has a context of its own, opened by ``new_context`` (the fixture), which closes it when the test
    ends.
    ``panel_width`` sizes the window so that the panel's frame is that wide, ``theme`` is the host's
    light or dark; ``route`` handles every bridge call (``/_host/invoke``) from the first one on;
    ``locale`` and ``timezone`` are the browser's (e.g. "de-DE", "Europe/Berlin")."""
    viewport = dict(VIEWPORT)
    if panel_width:
        viewport["width"] = panel_width + HOST_NAV
    context = new_context(  # reduced motion: the progress bar is final when captured
        viewport=viewport,
        bypass_csp=bypass_csp,
        accept_downloads=True,
        reduced_motion="reduce",
        locale=locale,
        timezone_id=timezone,
    )
    if route:
        context.route("**/_host/invoke", route)
    page = context.new_page()
    page.goto(host_url + "/")
    panel = page.frame_locator("#host-panel")
    expect(panel.locator("html[data-ready=true]")).to_have_count(1)
    expect(panel.locator("#who .person-pending")).to_have_count(0)
    if panel_width:
        # The host page's own scrollbar, if any, takes from the frame: widen the window by that.
        inner = panel.locator("html").evaluate("() => window.innerWidth")
        if inner != panel_width:
            viewport["width"] += panel_width - inner
            page.set_viewport_size(viewport)
        assert panel.locator("html").evaluate("() => window.innerWidth") == panel_width
    if theme:
        page.select_option("#host-theme", theme)
        expect(panel.locator(f"html[data-color-mode={theme}]")).to_have_count(1)
    return page, panel


# What overflows sideways in the panel, in pixels: the page itself, the tab strip (either way), and
# any table region that would scroll. Every value is 0 on a page that fits.
OVERFLOW = """() => {
    const doc = document.documentElement;
    const tabs = document.querySelector(".tabs");
    const tables = [...document.querySelectorAll(".table-scroll")].filter((el) => el.offsetParent);
    return {
        page: Math.max(0, doc.scrollWidth - doc.clientWidth),
        tabsDown: tabs ? Math.max(0, tabs.scrollHeight - tabs.clientHeight) : 0,
        tabsAcross: tabs ? Math.max(0, tabs.scrollWidth - tabs.clientWidth) : 0,
        tables: tables.reduce((most, el) => Math.max(most, el.scrollWidth - el.clientWidth), 0),
    };
}"""
FITS = {"page": 0, "tabsDown": 0, "tabsAcross": 0, "tables": 0}


def overflow(panel) -> dict[str, int]:
    """OVERFLOW measured in the panel's frame."""
    measured: dict[str, int] = panel.locator("html").evaluate(OVERFLOW)
    return measured


def sign_in_as(page, account_id):
    """Picks another account in the host page; the panel reloads as that user."""
    panel = page.frame_locator("#host-panel")
    panel.locator("html").evaluate("(root) => { root.dataset.stale = 'yes'; }")
    page.select_option("#host-account", account_id)
    expect(panel.locator("html[data-ready=true]:not([data-stale])")).to_have_count(1)
    expect(panel.locator("#who .person-pending")).to_have_count(0)
    return panel


def paste(textarea, text):
    """Puts a large text in at once, as a paste does (fill() types it in, which takes long)."""
    textarea.evaluate(
        "(el, text) => { el.value = text; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        text,
    )


def downloaded_csv(page, button):
    with page.expect_download() as info:
        button.click()
    with open(info.value.path(), encoding="utf-8") as file:
        text = file.read()
    return list(csv.reader(io.StringIO(text)))


# Follow-ups a few seconds after a job ends instead of an hour (README FOLLOW_UP_DELAYS_SECONDS), so
# the panel can show who has joined: the background worker (WORKER_POLL_SECONDS 2) makes them.
QUICK_FOLLOW_UPS = {"FOLLOW_UP_DELAYS_SECONDS": "2,3600"}


def deliver(backend_url: str, webhook_url: str, secret: str, msg_id: str, emails: list[str]) -> Any:
    """A signed preview (dryRun) delivery to the backend's webhook; the answer."""
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    body = json.dumps({"type": "access.invite", "data": {"emails": emails, "dryRun": True}})
    now = datetime.now(tz=UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    path = "/webhooks/" + webhook_url.rsplit("/", 1)[1]
    return requests.post(backend_url + path, data=body, headers=headers, timeout=30)


def host_flag(page: Any, title: Any) -> Any:
    """A flag the panel raised, as the host page shows it (an alert named by its title)."""
    return page.locator("#host-flags").get_by_role("alert", name=title)


def dismiss_flags(page: Any) -> None:
    """Closes every flag the host page shows (before a screenshot for the docs)."""
    flags = page.locator("#host-flags .host-flag")
    flags.locator(".host-flag-dismiss").evaluate_all(
        "(buttons) => buttons.forEach((b) => b.click())"
    )
    expect(flags).to_have_count(0)


def wait_refused(call: Any, webhook_id: str, timeout: float = 15.0) -> None:
    """Until ``webhookStatus`` (``call(key, payload)``) lists a refused delivery ``webhook_id``: the
    backend keeps refusals in batches, about a second after they came."""
    import time

    deadline = time.monotonic() + timeout
    while not any(
        r["webhookId"] == webhook_id for r in call("webhookStatus", {})["recentRefusals"]
    ):
        assert time.monotonic() < deadline, f"the refusal of {webhook_id} was not kept"
        time.sleep(0.2)
