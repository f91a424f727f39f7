"""Cancelling a job: ``request_cancel`` ends a job nobody holds at once; a held one ends when its
holder releases it (``store.leases``' ``release_job``), which a worker does at its next chunk
boundary once it sees ``cancel_requested``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.audit import write_audit
from access_desk.store.jobs import ACTIVE, CANCELLED, Jobs
from access_desk.store.queue import job_ended
from access_desk.store.records import Job
from access_desk.store.tables import job_items, jobs


class Cancels(Jobs):
    """Asking a job to stop, and whether it was asked."""

    def request_cancel(self, installation_id: str, job_id: str, actor: str) -> Job | None:
        """Ask a queued or running job to stop, with one ``job.cancel`` audit entry by ``actor``;
        return the job (without items) afterwards, None if there is no such job.

        When nobody holds its lease the job ends at once; otherwise it ends when its holder lets go
        (``release_job``), which a worker does at its next chunk boundary (``cancel_requested``).
        Ending: items not started (every pending item; for a dry run, the unchecked ones) become
        ``cancelled`` (their own outcome, never ``failed``) and the job ends ``failed`` with error
        ``cancelled``, or ``done`` when nothing was left to cancel. A finished job is left as it
        is. (The uninstall duty calls this too: its name and signature stay.)
        """
        now = self._clock()
        with self.engine.begin() as conn:
            asked = conn.execute(
                sa.update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.installation_id == installation_id,
                    jobs.c.state.in_(ACTIVE),
                    jobs.c.cancel_requested_at.is_(None),
                )
                .values(cancel_requested_at=now, cancelled_by=actor)
            )
            if asked.rowcount == 1:
                write_audit(
                    conn,
                    installation_id,
                    at=now,
                    actor=actor,
                    action="job.cancel",
                    source="panel",
                    subjects=[],
                    outcome={"jobId": job_id},
                )
            free = sa.or_(
                jobs.c.lease_owner.is_(None),
                jobs.c.lease_until.is_(None),
                jobs.c.lease_until <= now,
            )
            mine = jobs.c.installation_id == installation_id
            end_cancelled(conn, job_id, now, sa.and_(free, mine), self._follow_up_after[0])
        return self.job(installation_id, job_id, items=False)

    def cancel_requested(self, installation_id: str, job_id: str) -> bool:
        """Whether ``request_cancel`` asked this job to stop (a worker looks between chunks)."""
        with self.engine.connect() as conn:
            asked = conn.execute(
                sa.select(jobs.c.cancel_requested_at).where(
                    jobs.c.id == job_id, jobs.c.installation_id == installation_id
                )
            ).scalar()
        return asked is not None


def end_cancelled(
    conn: Connection, job_id: str, now: float, when: sa.ColumnElement[bool], follow_up: float
) -> bool:
    """End a job whose cancel was asked for, if it is still active and ``when`` holds (inside the
    caller's transaction; ``follow_up``: see ``store.queue.job_ended``)."""
    ended = conn.execute(
        sa.update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.state.in_(ACTIVE),
            jobs.c.cancel_requested_at.is_not(None),
            when,
        )
        .values(
            state="failed",
            error=CANCELLED,
            lease_owner=None,
            lease_until=None,
            not_before=None,
            wait_reason=None,
            updated_at=now,
        )
        .returning(jobs.c.installation_id, jobs.c.dry_run)
    ).first()
    if ended is None:
        return False
    not_started = sa.and_(job_items.c.job_id == job_id, job_items.c.outcome == "pending")
    if ended.dry_run:  # a dry run's checked items are finished: would-be invites
        not_started = sa.and_(not_started, job_items.c.checked == sa.false())
    stopped = conn.execute(
        sa.update(job_items).where(not_started).values(outcome=CANCELLED, error=None)
    )
    state, error = ("failed", CANCELLED) if stopped.rowcount else ("done", None)
    if state == "done":
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(state=state, error=None))
    job_ended(conn, ended.installation_id, job_id, state, error, now, follow_up)
    return True
