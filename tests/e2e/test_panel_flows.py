"""The panel's harder flows in Chromium: runs overtaken by newer ones, lists loaded twice at once,
a dry run's progress, an invitation job that cannot start, and a failed "Older" page.

Each test drives the panel in the simulated Forge host against a real gunicorn; slow answers come
from the platform's upstream latency, failures from routing the host's ``/_host/invoke`` in the
browser (the panel's bridge sends every resolver call there).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.panel_helpers import Screens, open_panel, paste
from tests.e2e.test_backend import call

pytestmark = pytest.mark.e2e

INVOKE = "**/_host/invoke"


def resolver_call(request: Any) -> tuple[str, Any] | None:
    """(resolver key, payload) of a bridge call the panel sends to ``/_host/invoke``."""
    if request.method != "POST" or not request.url.endswith("/_host/invoke"):
        return None
    try:
        call = json.loads(request.post_data or "")
    except ValueError:
        return None
    return str(call.get("path", "")).rsplit("/", 1)[-1], call.get("body")


def failing(status: int = 500) -> dict[str, Any]:
    """The bridge's answer when the backend fails (as the host page relays it)."""
    body = {"error": "internal", "message": "Something went wrong."}
    return {"status": status, "headers": {}, "body": json.dumps(body)}


class Calls:
    """Counts the resolver calls the page sends and those answered, by resolver key."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.sent: list[str] = []
        self.answered: list[str] = []
        page.on("request", lambda r: self._note(self.sent, r))
        page.on("requestfinished", lambda r: self._note(self.answered, r))
        page.on("requestfailed", lambda r: self._note(self.answered, r))

    @staticmethod
    def _note(into: list[str], request: Any) -> None:
        found = resolver_call(request)
        if found is not None:
            into.append(found[0])

    def wait(self, what: Callable[[], bool], timeout: float = 15.0) -> None:
        """Lets the page run until ``what()`` holds (events are delivered while it waits)."""
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, (self.sent, self.answered)
            self.page.wait_for_timeout(50)

    def settle(self, key: str) -> None:
        """Until every ``key`` call sent so far is answered, then a moment for the panel to use it."""
        self.wait(lambda: self.answered.count(key) >= self.sent.count(key))
        self.page.wait_for_timeout(300)


class Held:
    """Holds the page's calls of one resolver until ``release``; later ones then go through."""

    def __init__(self, page: Any, key: str) -> None:
        self.page = page
        self.key = key
        self.routes: list[Any] = []
        self.released = False
        page.route(INVOKE, self._route)

    def _route(self, route: Any) -> None:
        found = resolver_call(route.request)
        if self.released or found is None or found[0] != self.key:
            route.continue_()
        else:
            self.routes.append(route)

    def release(self, *, newest_first: bool = False) -> None:
        """Answers the held calls with the backend's answers, in the order asked."""
        self.released = True
        held, self.routes = self.routes, []
        answers = [route.fetch() for route in held]
        pairs = list(zip(held, answers, strict=True))
        for route, answer in reversed(pairs) if newest_first else pairs:
            route.fulfill(response=answer)
        self.page.unroute(INVOKE, self._route)


def admin_call(platform: Any, backend_url: str, key: str, payload: Any) -> Any:
    answer = call(backend_url, platform, key, payload)
    assert answer.status_code == 200, answer.text
    return answer.json()


def preview_two_new(panel: Any, platform: Any) -> tuple[Any, Any]:
    """The Invite tab with a dry run of two new addresses done: (tab panel, its confirm button)."""
    new = list(platform.installation.site.sample_new_emails)[:2]
    panel.get_by_role("tab", name="Invite").click()
    invite = panel.get_by_role("tabpanel", name="Invite")
    invite.get_by_label("Emails to invite").fill("\n".join(new))
    invite.get_by_role("button", name="Preview invitations").click()
    confirm = invite.get_by_role("button", name="Invite 2 people")
    expect(confirm).to_be_visible()
    return invite, confirm


def test_check_access_invite_drops_a_slow_dry_run(new_context, host, platform, live_backend):
    page, panel = open_panel(new_context, host)
    try:
        many = [f"slow.person{i:04d}@example.com" for i in range(1000)]
        few = list(platform.installation.site.sample_new_emails)[:2]
        platform.latency = 0.4  # 10 chunks of 100: the dry run takes about 4 s upstream

        panel.get_by_role("tab", name="Invite").click()
        invite = panel.get_by_role("tabpanel", name="Invite")
        paste(invite.get_by_label("Emails to invite"), "\n".join(many))
        invite.get_by_role("button", name="Preview invitations").click()
        expect(invite.get_by_role("progressbar", name="Preview progress")).to_be_visible()

        # While it runs: check a short list and invite the ones without access.
        panel.get_by_role("tab", name="Check access").click()
        access = panel.get_by_role("tabpanel", name="Check access")
        access.get_by_label("Emails").fill("\n".join(few))
        access.get_by_role("button", name="Check access").click()
        access.get_by_role("button", name="Invite the 2 people with no access…").click()
        expect(invite.get_by_label("Emails to invite")).to_have_value("\n".join(few))
        expect(invite.get_by_role("progressbar")).to_have_count(0)
        expect(invite.get_by_role("button", name="Preview invitations")).to_be_enabled()

        # The slow dry run ends on the server; the panel polls about once a second, so give a
        # stale poll time to land before checking that nothing of it shows.
        deadline = time.monotonic() + 30
        while True:
            jobs = admin_call(platform, live_backend.url, "listJobs", {"limit": 10})["jobs"]
            slow = [j for j in jobs if j["total"] == len(many)]
            if slow and slow[0]["state"] == "done":
                break
            assert time.monotonic() < deadline, jobs
            page.wait_for_timeout(200)
        page.wait_for_timeout(2500)
        expect(invite.get_by_role("heading", name="Preview")).to_have_count(0)
        expect(invite.get_by_role("button", name=re.compile(r"^Invite 1,000"))).to_have_count(0)
        expect(invite.get_by_label("Emails to invite")).to_have_value("\n".join(few))

        platform.latency = 0
        invite.get_by_role("button", name="Preview invitations").click()
        expect(invite.get_by_role("heading", name="Would be invited (2)")).to_be_visible()
        expect(invite.get_by_role("button", name="Invite 2 people")).to_be_visible()
        expect(invite).not_to_contain_text("1,000")
    finally:
        platform.latency = 0


def test_jobs_list_loads_once_and_gives_focus_back(new_context, host, platform, live_backend):
    site = platform.installation.site
    for email in list(site.sample_new_emails)[:2]:
        admin_call(platform, live_backend.url, "inviteEmails", {"emails": [email], "dryRun": True})
    page, panel = open_panel(new_context, host)
    calls = Calls(page)
    tab = panel.get_by_role("tab", name="Jobs")
    tab.click()
    jobs = panel.get_by_role("tabpanel", name="Jobs")
    rows = jobs.get_by_role("region", name="Jobs").locator("tbody tr")
    expect(rows).to_have_count(2)
    calls.settle("listJobs")
    before = calls.sent.count("listJobs")

    # Hold every listJobs answer, so the loads below overlap for sure; then answer them
    # newest first, so a stale answer comes last.
    held = Held(page, "listJobs")
    tab.click()  # already selected: nothing to reload
    jobs.get_by_role("button", name="Refresh").dblclick()
    calls.wait(lambda: len(held.routes) >= 2)
    page.wait_for_timeout(300)  # a further load would show up by now
    held.release(newest_first=True)
    calls.settle("listJobs")
    expect(rows).to_have_count(2)
    assert calls.sent.count("listJobs") - before == 2, calls.sent
    expect(jobs.locator(".results")).to_have_attribute("aria-busy", "false")

    # A job's details: closing them puts focus back on the button that opened them.
    opener = jobs.get_by_role("button", name=re.compile("^Open job: Preview")).first
    opener.click()
    expect(jobs.get_by_role("region", name="Job items")).to_be_visible()
    expect(jobs.get_by_role("progressbar", name="Job progress")).to_have_attribute(
        "aria-valuenow", "1"
    )
    jobs.get_by_role("button", name="Close job details").click()
    expect(jobs.get_by_role("region", name="Job items")).to_have_count(0)
    expect(opener).to_be_focused()


def test_dry_run_progress_counts_what_is_checked(new_context, host, platform):
    page, panel = open_panel(new_context, host)
    try:
        emails = [f"checking.person{i:03d}@example.com" for i in range(500)]
        platform.latency = 0.4  # 5 chunks: about 2 s
        panel.get_by_role("tab", name="Invite").click()
        invite = panel.get_by_role("tabpanel", name="Invite")
        paste(invite.get_by_label("Emails to invite"), "\n".join(emails))
        invite.get_by_role("button", name="Preview invitations").click()

        bar = invite.get_by_role("progressbar", name="Preview progress")
        expect(bar).to_have_attribute(
            "aria-valuetext", re.compile(r"^Checked [\d,]+ of 500 emails$")
        )
        expect(bar).to_have_attribute("aria-valuemax", "500")
        expect(invite.locator(".progress-text")).to_have_text(
            re.compile(r"^Checked [\d,]+ of 500 emails$")
        )
        expect(invite.get_by_role("heading", name="Would be invited (500)")).to_be_visible()
        platform.latency = 0

        # Done: the job's details show the full bar.
        panel.get_by_role("tab", name="Jobs").click()
        jobs = panel.get_by_role("tabpanel", name="Jobs")
        jobs.get_by_role("button", name=re.compile("^Open job: Preview")).click()
        done = jobs.get_by_role("progressbar", name="Job progress")
        expect(done).to_have_attribute("aria-valuemax", "500")
        expect(done).to_have_attribute("aria-valuenow", "500")
        expect(jobs.locator(".progress-text")).to_have_text("Checked 500 of 500 emails")
    finally:
        platform.latency = 0


def test_an_invitation_that_cannot_start_says_so_and_can_be_retried(new_context, host, platform):
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "flows")
    invite, confirm = preview_two_new(panel, platform)

    def refuse_invites(route: Any) -> None:
        found = resolver_call(route.request)
        if found and found[0] == "inviteEmails" and not (found[1] or {}).get("dryRun"):
            route.fulfill(json=failing(500))
        else:
            route.continue_()

    page.route(INVOKE, refuse_invites)
    confirm.click()
    heading = invite.get_by_role("heading", name="The invitations were not sent")
    expect(heading).to_be_focused()
    stage = invite.locator(".results")
    alert = stage.get_by_role("alert")
    expect(alert).to_contain_text("error 500")
    expect(alert).to_contain_text("Nobody was invited")
    expect(invite.get_by_role("progressbar")).to_have_count(0)
    expect(invite.get_by_role("heading", name="Inviting")).to_have_count(0)
    expect(stage).to_have_attribute("aria-busy", "false")
    shots.check("invite-not-started")

    # Back to the preview, with focus on its confirm button; it fails once more.
    invite.get_by_role("button", name="Back to the preview").click()
    expect(invite.get_by_role("heading", name="Would be invited (2)")).to_be_visible()
    expect(confirm).to_be_focused()
    confirm.click()
    expect(heading).to_be_focused()

    # Then "Try again" once the backend answers: the job runs as usual.
    page.unroute(INVOKE)
    invite.get_by_role("button", name="Try again").click()
    expect(invite.get_by_role("heading", name="Invitations finished")).to_be_visible()
    expect(invite.locator(".msg-success")).to_contain_text("Done: 2 invited")
    bar = invite.get_by_role("progressbar", name="Invitation progress")
    expect(bar).to_have_attribute("aria-valuenow", "2")
    expect(stage).to_have_attribute("aria-busy", "false")


def test_a_failed_older_page_keeps_the_rows(new_context, host, platform, live_backend):
    for n in range(101):
        admin_call(
            platform, live_backend.url, "checkAccess", {"emails": [f"older-filler-{n}@example.com"]}
        )
    page, panel = open_panel(new_context, host)
    shots = Screens(page, "flows")
    panel.get_by_role("tab", name="Audit log").click()
    audit = panel.get_by_role("tabpanel", name="Audit log")
    entries = audit.get_by_role("region", name="Audit log")
    expect(entries.locator("tbody tr")).to_have_count(100)

    def refuse_older(route: Any) -> None:
        found = resolver_call(route.request)
        if found and found[0] == "listAudit" and (found[1] or {}).get("before"):
            route.fulfill(json=failing(503))
        else:
            route.continue_()

    page.route(INVOKE, refuse_older)
    audit.get_by_role("button", name="Older audit entries").click()
    alert = audit.get_by_role("alert")
    expect(alert).to_contain_text("The older audit entries could not be loaded.")
    expect(alert).to_contain_text("error 503")
    expect(entries.locator("tbody tr")).to_have_count(100)
    expect(audit.locator(".pager-info")).to_have_text("Rows 1–100 of 100")
    retry = audit.get_by_role("button", name="Try again to load older audit entries")
    expect(retry).to_be_focused()
    expect(audit.get_by_role("button", name="Older audit entries", exact=True)).to_be_hidden()
    shots.check("older-failed")

    page.unroute(INVOKE)
    retry.click()
    expect(audit.locator(".pager-info")).to_have_text(re.compile(r"^Rows 1–100 of 10\d$"))
    expect(audit.get_by_role("alert")).to_have_count(0)
    expect(entries.locator("tbody tr").first).to_contain_text("older-filler-100@example.com")


def test_webhook_rotation_keeps_the_old_secret_a_day_and_moves_focus(
    new_context, host, platform, live_backend
):
    admin_call(platform, live_backend.url, "rotateWebhookSecret", {})
    page, panel = open_panel(new_context, host)
    panel.get_by_role("tab", name="Webhook").click()
    hook = panel.get_by_role("tabpanel", name="Webhook")
    hook.get_by_role("button", name="Rotate secret…").click()
    group = hook.get_by_role("group", name="Rotate the webhook secret?")
    expect(group).to_contain_text("keep working for 24 hours")
    expect(group).not_to_contain_text("will be refused until you update them")
    hook.get_by_role("button", name="Rotate secret", exact=True).click()
    expect(hook.get_by_role("textbox", name="Signing secret")).to_be_focused()


def test_a_rate_limited_invitation_says_it_waits_and_then_finishes(new_context, host, platform):
    page, panel = open_panel(new_context, host)
    invite, confirm = preview_two_new(panel, platform)
    platform.faults.add("invite", "429", times=1, retry_after=12)
    confirm.click()
    hint = invite.locator(".progress-hint")
    expect(hint).to_contain_text("You can leave this page")
    expect(hint).to_contain_text("Waiting for Confluence", timeout=20_000)
    expect(invite.get_by_role("heading", name="Invitations finished")).to_be_visible(timeout=40_000)
    expect(invite.locator(".msg-success")).to_contain_text("Done: 2 invited")
    expect(hint).to_be_empty()
