"""Browser fixtures of the panel tests: one Chromium per run, the simulated Forge host page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.panel_helpers import CHROMIUM_ARGS, chromium_path, forge_host

expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def host(platform: Any, live_backend: Any) -> str:
    """The URL of the simulated Confluence admin page whose panel calls ``live_backend``."""
    platform.remote_url = live_backend.url
    return forge_host(platform)
