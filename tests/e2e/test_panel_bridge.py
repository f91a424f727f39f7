"""The panel talks to Forge through the pinned @forge/bridge build (static/vendor/forge-bridge.js):
the messages it sends to ``globalThis.__bridge`` are @forge/bridge's own, the simulated host answers
them in @forge/bridge's envelope, and a page without a bridge says so instead of never starting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.panel_helpers import VIEWPORT, open_panel

pytestmark = pytest.mark.e2e

# Wraps the bridge the host injects: records what @forge/bridge sends and what the host answers.
RECORD_BRIDGE = """(() => {
    let bridge;
    window.__bridgeLog = [];
    Object.defineProperty(globalThis, "__bridge", {
        configurable: true,
        get() { return bridge; },
        set(real) {
            bridge = {callBridge: async (name, input) => {
                const entry = {name, input: input === undefined ? null : input};
                window.__bridgeLog.push(entry);
                const answer = await real.callBridge(name, input);
                // A copy: @forge/bridge joins the header lists in place.
                entry.answer = answer === undefined ? null : structuredClone(answer);
                return answer;
            }};
        },
    });
})();"""


def test_panel_calls_go_through_the_vendored_forge_bridge(new_context: Any, host: str) -> None:
    context = new_context(viewport=VIEWPORT)
    context.add_init_script(RECORD_BRIDGE)
    page = context.new_page()
    loaded: list[str] = []
    page.on("requestfinished", lambda r: loaded.append(r.url.split("/panel/", 1)[-1]))
    page.goto(host + "/")
    panel = page.frame_locator("#host-panel")
    expect(panel.locator("html[data-ready=true]")).to_have_count(1)
    assert "vendor/forge-bridge.js" in loaded
    frame = next(f for f in page.frames if "/panel/" in f.url)
    log = frame.evaluate("() => window.__bridgeLog")
    # view.theme.enable() first, before the panel mounts; then invokeRemote for whoami.
    assert log[0] == {"name": "enableTheming", "input": None, "answer": None}
    whoami = log[1]
    assert whoami["name"] == "invoke"
    assert whoami["input"] == {
        "path": "/resolvers/whoami",
        "method": "POST",
        "headers": {},
        "body": {},
        "invokeType": "ui-remote-fetch",
    }
    answer = whoami["answer"]
    assert answer["success"] is True and set(answer) == {"success", "payload"}
    assert answer["payload"]["status"] == 200
    assert answer["payload"]["headers"]["content-type"] == ["application/json"]
    assert json.loads(answer["payload"]["body"])["isAdmin"] is True
    assert {entry["name"] for entry in log} == {"enableTheming", "invoke"}


def test_a_refused_call_comes_back_in_the_error_envelope(new_context: Any, host: str) -> None:
    page, _ = open_panel(new_context, host)
    refused = {
        "status": 403,
        "headers": {"content-type": "application/json", "x-seen-by": ["forge", "remote"]},
        "body": '{"error": "not_allowed", "message": "No."}',
    }
    page.route("**/_host/invoke", lambda route: route.fulfill(json=refused))
    frame = next(f for f in page.frames if "/panel/" in f.url)
    answer = frame.evaluate(
        """() => globalThis.__bridge.callBridge("invoke", {path: "/resolvers/whoami",
            method: "POST", body: {}, invokeType: "ui-remote-fetch"})"""
    )
    assert answer == {
        "success": False,
        "error": {
            "status": 403,
            "headers": {"content-type": ["application/json"], "x-seen-by": ["forge", "remote"]},
            "body": refused["body"],
        },
    }
    # The panel's modules read it through @forge/bridge (which joins header lists).
    seen = frame.evaluate(
        """async () => {
            const bridge = await import(new URL("./bridge.js", location.href).href);
            const api = await import(new URL("./api.js", location.href).href);
            const raw = await bridge.invokeRemote({path: "/resolvers/whoami", body: {}});
            try {
                await api.call("whoami", {});
                return {raw, error: null};
            } catch (err) {
                return {raw, error: {status: err.status, code: err.code, message: err.message}};
            }
        }"""
    )
    assert seen["raw"] == {
        "status": 403,
        "headers": {"content-type": "application/json", "x-seen-by": "forge,remote"},
        "body": {"error": "not_allowed", "message": "No."},
    }
    assert seen["error"] == {
        "status": 403,
        "code": "not_allowed",
        "message": "Only Confluence administrators can do this.",
    }


def test_without_a_bridge_the_panel_says_where_to_open_it(
    new_context: Any, live_backend: Any
) -> None:
    # The backend serves the same static/ with nothing injected, under its own CSP.
    context = new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(live_backend.url + "/")
    expect(page.get_by_role("alert")).to_have_text(
        "The Forge bridge is missing: open Access Desk from Confluence."
    )
    expect(page.locator("#main")).to_have_attribute("aria-busy", "false")
    assert errors == []
