"""The Diagnose tab in Chromium, hosted by the simulated Forge, against a real gunicorn (with its
background worker): every check green on a healthy installation; a check failing through the
simulator shows its advice; someone read as a non-administrator can ask why. axe-core finds no
serious or critical violation on any of these screens."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from access_desk.settings import Settings
from access_desk.store import Store
from simulator import Platform
from simulator.quota import Quota
from simulator.triggers import scheduled
from tests.e2e.panel_helpers import Screens, open_panel, sign_in_as

pytestmark = pytest.mark.e2e

CHECKS = 12


def wait_for_report(settings: Settings, platform: Platform) -> None:
    """A scheduled trigger, then the background worker's personal data report."""
    assert scheduled(platform)["status"] in (200, 202, 204)
    store = Store(settings.database_url, settings.secret_key)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = store.installation_health(platform.installation.id)
            if health is not None and health.last_report_at is not None:
                return
            time.sleep(0.2)
    finally:
        store.close()
    raise AssertionError("the worker sent no personal data report within 30 s")


def test_diagnose_shows_every_check_green(new_context, host, platform, settings):
    wait_for_report(settings, platform)
    platform.meter.configure(Quota())  # answers carry the points Confluence reports
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "diagnose")
    panel.get_by_role("tab", name="Diagnose").click()
    tab = panel.get_by_role("tabpanel", name="Diagnose")
    expect(tab.locator(".msg-success")).to_have_text(f"All {CHECKS} checks passed.")
    checks = tab.get_by_role("list", name="Checks").get_by_role("listitem")
    expect(checks).to_have_count(CHECKS)
    expect(tab.locator(".diag-ok")).to_have_count(CHECKS)
    expect(tab.locator(".lozenge", has_text="OK")).to_have_count(CHECKS)
    expect(checks.filter(has_text="Look up users (users-bulk)")).to_contain_text(
        "quota 'global-app-quota' (RateLimit) 65,000 points per 3600 s"
    )
    expect(checks.filter(has_text="Offline token")).to_contain_text("context ARI form")
    shots.check("green")


def test_a_failing_check_shows_what_to_do(new_context, host, platform):
    platform.faults.add("check-access", "scope", times=None)  # the scope is not granted
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "diagnose")
    panel.get_by_role("tab", name="Diagnose").click()
    tab = panel.get_by_role("tabpanel", name="Diagnose")
    expect(tab.get_by_role("alert")).to_contain_text("1 check failed")
    failed = tab.locator(".diag-fail")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("Check access (check-access-by-email)")
    expect(failed.locator(".lozenge")).to_have_text("Failed")
    expect(failed).to_contain_text(
        "Grant the app the read:configuration:confluence scope: add it under "
        "permissions.scopes in manifest.yml, redeploy with forge deploy"
    )
    shots.check("failing")

    platform.faults.clear()  # the scope granted: run again
    tab.get_by_role("button", name="Run again").click()
    expect(tab.locator(".diag-fail")).to_have_count(0)
    expect(tab.locator(".diag-check", has_text="Check access")).to_have_class("diag-check diag-ok")

    ordinary = platform.installation.site.user_ids[0]
    panel = sign_in_as(page, ordinary)
    expect(panel.get_by_role("tab", name="Diagnose")).to_have_count(0)
    panel.get_by_role("button", name="Why am I not an administrator here?").click()
    expect(panel.locator(".msg-info")).to_contain_text("operations reported: use/application")
    shots.check("not-admin")
