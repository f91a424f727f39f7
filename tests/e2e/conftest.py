"""Browser fixtures of the panel tests: one Chromium per run, browser contexts closed by the fixture
that opened them (``new_context``), the simulated Forge host page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

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
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Opens a browser context (``browser.new_context``'s options) for this test; each one, with
    its pages, is closed when the test ends, passed or failed, so no test closes its own. Then no
    context may be left open in the browser (one opened some other way would leak into the run)."""
    with ExitStack() as opened:

        def new(**options: Any) -> BrowserContext:
            context = browser.new_context(**options)
            opened.callback(context.close)
            return context

        yield new
    assert browser.contexts == [], "a browser context outlived its test"


@pytest.fixture()
def host(platform: Any, live_backend: Any) -> str:
    """The URL of the simulated Confluence admin page whose panel calls ``live_backend``."""
    platform.remote_url = live_backend.url
    return forge_host(platform)
