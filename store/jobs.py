"""Jobs and their items as records: create (also as the retry of another job's failed items),
read, list (paged, newest first) and count.

A new job is ``queued`` with every item ``pending`` and unchecked, in the given order. Working on
a job is ``store.leases``, ``store.queue`` (outcomes, finishing), ``store.cancels`` and
``store.followups``; a webhook's job is made with its delivery record in ``store.deliveries``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from records import Counts, FollowUp, Job, JobItem
from store.audit import write_audit
from store.base import StoreBase
from store.paging import cursor, cursor_id, cursor_time, uncursor
from tables import account_refusals, job_items, jobs

OUTCOMES = ("pending", "invited", "alreadyHasAccess", "invalid", "failed")
FINAL_OUTCOMES = frozenset(OUTCOMES) - {"pending"}
AUDIT_SUBJECTS = 100  # an audit entry about a job names at most this many emails
ACTIVE = ("queued", "running")  # a job with invite work left
CANCELLED = "cancelled"  # the error of the items a cancel stopped before they started
# since when the job's acting account is paused (dormancy), read with each job row
ACTING_PAUSED = (
    sa.select(account_refusals.c.paused_since)
    .where(
        account_refusals.c.installation_id == jobs.c.installation_id,
        account_refusals.c.account_id == jobs.c.created_by,
    )
    .scalar_subquery()
    .label("acting_paused_since")
)


class Jobs(StoreBase):
    """Job records and their items, scoped by installation."""

    def create_job(
        self,
        installation_id: str,
        *,
        source: str,
        dry_run: bool,
        created_by: str | None,
        emails: Sequence[str],
        kind: str = "invite",
    ) -> Job:
        """A queued job whose items are all ``pending`` and unchecked, in the given order."""
        with self.engine.begin() as conn:
            return self._insert_job(
                conn,
                secrets.token_urlsafe(12),
                installation_id,
                source=source,
                dry_run=dry_run,
                created_by=created_by,
                emails=emails,
                kind=kind,
            )

    def create_retry_job(self, installation_id: str, job_id: str, *, created_by: str) -> Job | None:
        """A new queued job (same source and dry-run setting, acting as ``created_by``) of the items
        of ``job_id`` that ended ``failed``, with a ``job.retry`` audit entry naming both jobs, in
        one transaction. None when there is no such job or nothing failed."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(jobs.c.source, jobs.c.dry_run).where(
                    jobs.c.id == job_id, jobs.c.installation_id == installation_id
                )
            ).first()
            if row is None:
                return None
            emails = list(
                conn.execute(
                    sa.select(job_items.c.email)
                    .where(job_items.c.job_id == job_id, job_items.c.outcome == "failed")
                    .order_by(job_items.c.position)
                ).scalars()
            )
            if not emails:
                return None
            job = self._insert_job(
                conn,
                secrets.token_urlsafe(12),
                installation_id,
                source=row.source,
                dry_run=bool(row.dry_run),
                created_by=created_by,
                emails=emails,
            )
            write_audit(
                conn,
                installation_id,
                at=job.created_at,
                actor=created_by,
                action="job.retry",
                source="panel",
                subjects=emails[:AUDIT_SUBJECTS],
                outcome={"jobId": job.id, "retryOf": job_id, "emails": len(emails)},
            )
        return job

    def _insert_job(
        self,
        conn: sa.Connection,
        job_id: str,
        installation_id: str,
        *,
        source: str,
        dry_run: bool,
        created_by: str | None,
        emails: Sequence[str],
        kind: str = "invite",
    ) -> Job:
        now = self._clock()
        row = {
            "id": job_id,
            "installation_id": installation_id,
            "kind": kind,
            "source": source,
            "dry_run": dry_run,
            "state": "queued",
            "created_at": now,
            "created_by": created_by,
            "updated_at": now,
            "total": len(emails),
            "pending": len(emails),
            "invited": 0,
            "already_has_access": 0,
            "invalid": 0,
            "failed": 0,
        }
        items = [
            {"job_id": job_id, "position": i, "email": e, "outcome": "pending", "checked": False}
            for i, e in enumerate(emails)
        ]
        conn.execute(sa.insert(jobs).values(row))
        if items:
            conn.execute(sa.insert(job_items), items)
        return Job(
            id=job_id,
            installation_id=installation_id,
            kind=kind,
            source=source,
            dry_run=dry_run,
            state="queued",
            created_at=now,
            created_by=created_by,
            updated_at=now,
            total=len(emails),
            counts=Counts(pending=len(emails)),
            lease_owner=None,
            lease_until=None,
            not_before=None,
            error=None,
            items=tuple(JobItem(i, e, "pending", None, False) for i, e in enumerate(emails)),
        )

    def _item_emails(
        self, installation_id: str, job_id: str, limit: int, *where: sa.ColumnElement[bool]
    ) -> list[str]:
        """Emails of the first ``limit`` items of the installation's job that match ``where``, in
        order."""
        query = (
            sa.select(job_items.c.email)
            .join(jobs, jobs.c.id == job_items.c.job_id)
            .where(jobs.c.id == job_id, jobs.c.installation_id == installation_id, *where)
            .order_by(job_items.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def job(self, installation_id: str, job_id: str, *, items: bool = True) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs, ACTING_PAUSED).where(
                    jobs.c.id == job_id, jobs.c.installation_id == installation_id
                )
            ).first()
            if row is None:
                return None
            loaded: tuple[JobItem, ...] | None = None
            if items:
                rows = conn.execute(
                    sa.select(job_items)
                    .where(job_items.c.job_id == job_id)
                    .order_by(job_items.c.position)
                )
                loaded = tuple(
                    JobItem(
                        r.position,
                        r.email,
                        r.outcome,
                        r.error,
                        bool(r.checked),
                        None if r.joined is None else bool(r.joined),
                    )
                    for r in rows
                )
        return _job(row, loaded, self._clock())

    def list_jobs(
        self, installation_id: str, limit: int, before: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Jobs without items, newest first; pass the returned cursor as ``before`` for more."""
        query = sa.select(jobs, ACTING_PAUSED).where(jobs.c.installation_id == installation_id)
        if before is not None:
            created_at, job_id = uncursor(before, "j", (cursor_time, cursor_id))
            query = query.where(
                sa.or_(
                    jobs.c.created_at < created_at,
                    sa.and_(jobs.c.created_at == created_at, jobs.c.id < job_id),
                )
            )
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            now = self._clock()
            found = [_job(r, None, now) for r in conn.execute(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], cursor("j", last.created_at, last.id)

    def count_jobs_by_state(self) -> dict[str, int]:
        """Jobs per state across every installation (for the queue-depth metric)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
            ).all()
        return {str(state): int(n) for state, n in rows}


def _job(row: Any, items: tuple[JobItem, ...] | None, now: float) -> Job:
    """The record of a job row; a ``not_before`` already passed reads as None (it may run)."""
    return Job(
        id=row.id,
        installation_id=row.installation_id,
        kind=row.kind,
        source=row.source,
        dry_run=bool(row.dry_run),
        state=row.state,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        total=row.total,
        counts=Counts(
            pending=row.pending,
            invited=row.invited,
            already_has_access=row.already_has_access,
            invalid=row.invalid,
            failed=row.failed,
        ),
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        not_before=row.not_before if row.not_before and row.not_before > now else None,
        error=row.error,
        items=items,
        follow_up=None
        if row.follow_up_checked_at is None
        else FollowUp(row.follow_up_checked_at, row.follow_up_joined or 0),
        follow_up_due=row.follow_up_at,
        cancel_requested=row.cancel_requested_at is not None,
        acting_paused_since=getattr(row, "acting_paused_since", None),
    )
