"""Invite jobs (administrators only): ``inviteEmails``, ``getJob``, ``listJobs``, ``cancelJob``,
``retryJob``.

``inviteEmails`` only queues the job; it then advances in the background worker and during every
``getJob`` call (with that call's fresh user token, inside the call's time budget). ``cancelJob``
stops a queued or running job after its chunk in flight (``jobs.runner.JobRunner.cancel``); ``retryJob``
makes the one new job of a finished job's ``failed`` and ``cancelled`` items.
"""

from __future__ import annotations

import uuid
from typing import Any

from resolvers.context import BadInput, Context, NotFound
from resolvers.inputs import (
    entry_list,
    only_fields,
    optional_bool,
    optional_int,
    optional_str,
)

# A getJob call works on its job at most this long, so a polling panel sees progress often.
POLL_STEP_SECONDS = 5.0
# A cancelJob call waits at most this long for a worker to finish its chunk in flight.
CANCEL_WAIT_SECONDS = 5.0


def invite(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, {"emails", "dryRun"})
    emails = entry_list(payload, "emails", "email")
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


def _job_id(payload: dict[str, Any]) -> str:
    only_fields(payload, {"jobId"})
    job_id = optional_str(payload, "jobId")
    if not job_id:
        raise BadInput("'jobId' is required.", {"jobId": "required"})
    return job_id


def get(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    job_id = _job_id(payload)
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


def cancel(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Stop a queued or running job after its chunk in flight; its items not started become
    ``cancelled`` and the job ends ``failed``. A finished job is answered as
    it is. The answer waits a few seconds for a worker's chunk in flight; should that take longer,
    the job is still ``running`` and ends right after it."""
    job_id = _job_id(payload)
    ctx.require_admin()
    assert ctx.account_id is not None
    iid = ctx.invocation.installation_id
    wait = min(ctx.budget_seconds, CANCEL_WAIT_SECONDS)
    ctx.runner.cancel(iid, job_id, ctx.account_id, wait_seconds=wait)  # JobNotFound: 404
    job = ctx.store.job(iid, job_id, items=True)
    if job is None:
        raise NotFound("There is no such job.")
    return {"job": job.to_json(items=True)}


def retry(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """The one job that retries a finished job's items that ended ``failed`` or ``cancelled`` (same
    source and dry-run setting, acting as the caller who made it). A job is retried once: a repeat
    (or a concurrent call) answers that same retry job. An address already in a queued or running
    job of the installation is left out."""
    job_id = _job_id(payload)
    ctx.require_admin()
    assert ctx.account_id is not None
    iid = ctx.invocation.installation_id
    job = ctx.store.job(iid, job_id, items=False)
    if job is None:
        raise NotFound("There is no such job.")
    if job.active:
        raise BadInput(
            "This job is still running: cancel it or wait for it to end, then retry what was not "
            "sent.",
            {"jobId": "still running"},
        )
    made = ctx.store.create_retry_job(iid, job_id, created_by=ctx.account_id)
    if made is None:
        raise NotFound("There is no such job.")
    if made.job is None and made.busy:
        raise BadInput(
            "Every address left to retry is already in a job that is queued or running; that job "
            "invites them.",
            {"jobId": "already in a running job"},
        )
    if made.job is None:
        raise BadInput(
            "This job has no failed or cancelled items, so there is nothing to retry.",
            {"jobId": "no failed items"},
        )
    return {"job": made.job.to_json(items=True)}
