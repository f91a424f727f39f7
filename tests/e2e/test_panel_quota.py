"""The quota meter in the panel (issue 19 item 4), against a Confluence that meters its points quota
as Confluence does: what is left of the pool, estimated or as reported, with thousands separators;
when it resets ("in 24 s" or "at 14:00", never a past time nor today's date); the installation's own
spend and share; refreshed after every call that spends points (no 30 s wait); shown to
administrators only, and an ordinary user's cost line names no pool the app does not have. One page
load, looked at light and dark at 1,024 and 1,440 px, axe-core finding no serious or critical
violation.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from simulator.quota import Quota
from tests.e2e.panel_helpers import (
    FITS,
    HOST_NAV,
    VIEWPORT,
    Screens,
    open_panel,
    overflow,
    sign_in_as,
)

pytestmark = pytest.mark.e2e

LEFT = re.compile(
    r"^The app's Confluence points: (\d{1,3}(,\d{3})*) of 6,500 left \(estimated by Access Desk\)"
    r" · resets (in \d{1,2} s|at \d\d:\d\d) · this site spent (\d{1,3}(,\d{3})*) of its "
    r"3,250-point share$"
)


def shown_left(meter: Any) -> int:
    found = LEFT.match(meter.locator(".quota-text").inner_text())
    assert found, meter.locator(".quota-text").inner_text()
    return int(found.group(1).replace(",", ""))


def test_the_quota_meter_shows_the_pool_as_it_moves(new_context, host, platform, live_backend):
    platform.meter.configure(Quota(6500, 3600))
    site = platform.installation.site
    page, panel = open_panel(new_context, host, panel_width=1024, theme="light")
    shots = Screens(page, "quota")
    meter = panel.locator(".quota-meter")
    expect(meter).to_be_visible()  # the admin check answered: the pool is known
    expect(meter.locator(".quota-text")).to_have_text(LEFT)
    before = shown_left(meter)
    expect(meter.get_by_role("meter", name="Confluence points left")).to_have_attribute(
        "aria-valuenow", re.compile(r"^(99|100)$")
    )

    lookup = panel.get_by_role("tabpanel", name="Look up users")
    lookup.get_by_label("Account ids").fill("\n".join(site.user_ids[:30]))
    expect(lookup.locator(".field-cost")).to_contain_text("of the app's 6,500-point pool")
    lookup.get_by_role("button", name="Look up").click()
    expect(lookup.get_by_role("heading", name="Found (30)")).to_be_visible()
    # 1 + 2 x 30 points, on the meter within seconds of the answer (not after 30 s), and the
    # estimate is what Confluence really has left
    expect(meter.locator(".quota-text")).not_to_have_text(re.compile(f" {before:,} of "))
    truth = platform.meter.snapshot()["pools"][0]["remaining"]
    assert shown_left(meter) == truth <= before - 61

    for width in (1024, 1440):
        page.set_viewport_size({"width": width + HOST_NAV, "height": VIEWPORT["height"]})
        for theme in ("light", "dark"):
            page.select_option("#host-theme", theme)
            expect(panel.locator(f"html[data-color-mode={theme}]")).to_have_count(1)
            assert overflow(panel) == FITS
            shots.check(f"{width}-{theme}", top=True)

    # An ordinary user sees no meter, and a cost without a pool that is not the app's.
    user = sign_in_as(page, site.user_ids[0])
    expect(user.locator(".quota-meter")).to_be_hidden()
    mine = user.locator("#main")
    mine.get_by_label("Account ids").fill("\n".join(site.user_ids[:5]))
    expect(mine.locator(".field-cost")).to_have_text(
        "Looking them up costs about 11 Confluence points (less for ids looked up in the "
        "last minutes)."
    )
