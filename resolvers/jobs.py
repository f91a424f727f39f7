"""``inviteEmails``, ``getJob``, ``listJobs``: invite jobs started from the panel (administrators only).

``inviteEmails`` only queues the job; it then advances in the background worker and during every
``getJob`` call (with that call's fresh user token, inside the call's time budget).
"""

from __future__ import annotations

import uuid
from typing import Any

from resolvers.context import BadInput, Context, NotFound
from resolvers.inputs import (
    email_key,
    only_fields,
    optional_bool,
    optional_int,
    optional_str,
    string_list,
)

# A getJob call works on its job at most this long, so a polling panel sees progress often.
POLL_STEP_SECONDS = 5.0


def invite(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, {"emails", "dryRun"})
    emails = string_list(payload, "emails", key=email_key)
    dry_run = optional_bool(payload, "dryRun")
    ctx.require_admin()
    job = ctx.store.create_job(
        ctx.invocation.installation_id,
        source="panel",
        dry_run=dry_run,
        created_by=ctx.account_id,
        emails=emails,
    )
    return {"job": job.to_json(items=True)}


def get(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, {"jobId"})
    job_id = optional_str(payload, "jobId")
    if not job_id:
        raise BadInput("'jobId' is required.", {"jobId": "required"})
    ctx.require_admin()
    installation_id = ctx.invocation.installation_id
    job = ctx.store.job(installation_id, job_id, items=False)
    if job is None:
        raise NotFound("There is no such job.")
    # A job acts as its creator: only the creator's own calls lend it their user token.
    mine = job.source == "panel" and job.created_by == ctx.account_id
    if job.state in ("queued", "running") and mine and ctx.user_client:
        step = min(ctx.budget_seconds, POLL_STEP_SECONDS)
        ctx.runner.advance(
            installation_id,
            job_id,
            ctx.user_client.within(step),  # the panel polls again soon: no long Retry-After sleeps
            worker_id=f"call-{uuid.uuid4().hex[:12]}",
            budget_seconds=step,
        )
    job = ctx.store.job(installation_id, job_id, items=True)
    assert job is not None
    return {"job": job.to_json(items=True)}


def list_jobs(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, {"limit", "before"})
    limit = optional_int(payload, "limit", 50, low=1, high=200)
    before = optional_str(payload, "before")
    ctx.require_admin()
    jobs, next_cursor = ctx.store.list_jobs(ctx.invocation.installation_id, limit, before=before)
    return {"jobs": [j.to_json(items=False) for j in jobs], "next": next_cursor}
