"""A 503 without Retry-After from the experimental email endpoints means the API is disabled on the
site (Atlassian's OpenAPI document: "Returned if API is disabled on site"): ``api_disabled``, reported
once and never retried, in a job (on SQLite and PostgreSQL) and in a panel call; a 503 WITH
Retry-After stays a transient wait."""

from __future__ import annotations

import requests

from access_desk.confluence.errors import API_DISABLED_HELP
from access_desk.jobs.runner import JobRunner
from access_desk.store import Store
from simulator import Platform
from tests.conftest import Backend
from tests.support.simulated import client


def email_requests(platform: Platform) -> list[str]:
    return [r.endpoint for r in platform.requests if r.endpoint in ("check-access", "invite")]


def test_a_disabled_email_api_is_reported_once_and_not_retried(
    platform: Platform, store: Store, session: requests.Session
) -> None:
    inst = platform.installation
    admin = inst.site.admin_id
    emails = [f"new{n}@new.example" for n in range(150)]  # two check chunks
    job = store.create_job(inst.id, source="panel", dry_run=False, created_by=admin, emails=emails)
    inst.site.api_disabled = True
    platform.clear_requests()
    runner = JobRunner(store)

    def step() -> None:
        token = platform.user_token(inst, admin)
        acting = client(platform, session, inst.api_base_url, token, max_retries=4)
        runner.advance(inst.id, job.id, acting, worker_id="w", budget_seconds=60)

    step()
    step()  # nothing is left to try: the job ended

    assert email_requests(platform) == ["check-access"]  # one request: no retry, no next chunk
    ended = store.job(inst.id, job.id)
    assert ended is not None and ended.state == "failed"
    assert {i.outcome for i in ended.items or ()} == {"failed"}
    assert {i.error for i in ended.items or ()} == {API_DISABLED_HELP}
    assert "ask Atlassian support to enable it" in API_DISABLED_HELP
    assert ended.counts.failed == 150


def test_a_503_with_retry_after_is_waited_out_as_before(
    platform: Platform, store: Store, session: requests.Session
) -> None:
    inst = platform.installation
    admin = inst.site.admin_id
    job = store.create_job(
        inst.id, source="panel", dry_run=False, created_by=admin, emails=["a@new.example"]
    )
    platform.faults.add("check-access", "503", retry_after=1)
    platform.clear_requests()
    acting = client(platform, session, inst.api_base_url, platform.user_token(inst, admin))
    done = JobRunner(store).advance(inst.id, job.id, acting, worker_id="w", budget_seconds=60)
    assert email_requests(platform) == ["check-access", "check-access", "invite"]  # retried
    assert done.state == "done" and done.counts.invited == 1


def test_a_panel_check_reports_api_disabled_without_retrying(
    backend: Backend, platform: Platform
) -> None:
    platform.installation.site.api_disabled = True
    backend.call("whoami")
    platform.clear_requests()
    answer = backend.call("checkAccess", {"emails": ["a@new.example", "b@new.example"]})
    assert answer.status_code == 200
    failed = answer.get_json()["failed"]
    assert [f["error"] for f in failed] == ["api_disabled", "api_disabled"]
    assert email_requests(platform) == ["check-access"]
