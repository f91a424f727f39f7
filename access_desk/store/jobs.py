"""Jobs and their items as records: create (also as the one retry of another job's failed and
cancelled items), read, list (paged, newest first) and count.

A new job is ``queued`` with every item ``pending`` and unchecked, in the given order. Working on
a job is ``store.leases``, ``store.queue`` (outcomes, finishing), ``store.cancels`` and
``store.followups``; a webhook's job is made with its delivery record in ``store.deliveries``.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from access_desk.store.audit import subject_key, write_audit
from access_desk.store.base import StoreBase
from access_desk.store.paging import cursor, cursor_id, cursor_time, uncursor
from access_desk.store.records import Counts, FollowUp, Job, JobItem
from access_desk.store.tables import account_refusals, job_items, jobs
from access_desk.store.turns import note_work

OUTCOMES = ("pending", "invited", "alreadyHasAccess", "invalid", "failed", "cancelled")
FINAL_OUTCOMES = frozenset(OUTCOMES) - {"pending"}
AUDIT_SUBJECTS = 100  # an audit entry about a job shows at most this many emails (all are keys)
ACTIVE = ("queued", "running")  # a job with invite work left
CANCELLED = "cancelled"  # the outcome of the items a cancel stopped before they started
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
# one job by key, built once (every claim and job read runs it)
_JOB = sa.select(jobs, ACTING_PAUSED).where(
    jobs.c.id == sa.bindparam("p_job"), jobs.c.installation_id == sa.bindparam("p_iid")
)
RETRIED = ("failed", "cancelled")  # the outcomes a retry takes up again
_RETRY_LOCK = 0x52545259  # "RTRY": pg_advisory_xact_lock(_RETRY_LOCK, <installation>) in retries


@dataclass(frozen=True, slots=True)
class Retry:
    """What ``create_retry_job`` made or found: the retry job (None: nothing to retry now),
    whether this call made it, and how many addresses were left out because an active job of
    the installation holds them."""

    job: Job | None
    new: bool
    busy: int = 0


class _NotNow(Exception):
    """Nothing to retry (the transaction is rolled back, the job stays unmarked)."""

    def __init__(self, busy: int = 0) -> None:
        super().__init__(busy)
        self.busy = busy


def _retry_lock(installation_id: str) -> tuple[int, int]:
    """The two 32-bit keys of an installation's retry lock (PostgreSQL advisory locks)."""
    key = zlib.crc32(installation_id.encode())
    return _RETRY_LOCK, key - 2**32 if key >= 2**31 else key


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

    def create_retry_job(
        self, installation_id: str, job_id: str, *, created_by: str
    ) -> Retry | None:
        """The one job that retries the items of the finished job ``job_id`` that ended ``failed``
        or ``cancelled`` (same source and dry-run setting, acting as ``created_by``); None when
        the installation has no such job.

        A job is retried at most once: the job is marked with its retry by a conditional update in
        the same transaction as the new job and its ``job.retry`` audit entry, so concurrent and
        repeated calls all get that one job (``Retry.new`` is False for them). An address that an
        active job of the installation already holds is left out (``Retry.busy`` counts them).
        Nothing is made (``Retry.job`` None) while the job is active, or when none of its items is
        left to retry."""
        new_id = secrets.token_urlsafe(12)
        try:
            with self.engine.begin() as conn:
                if not self._sqlite:  # retries of one installation one at a time (busy addresses)
                    conn.execute(
                        sa.select(sa.func.pg_advisory_xact_lock(*_retry_lock(installation_id)))
                    )
                # The conditional update comes first: on SQLite it takes the write lock before
                # anything is read, so what is read next is what the last writer committed.
                marked = conn.execute(
                    sa.update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.installation_id == installation_id,
                        jobs.c.retried_as.is_(None),
                        jobs.c.state.not_in(ACTIVE),
                    )
                    .values(retried_as=new_id)
                )
                if marked.rowcount != 1:
                    raise _NotNow()
                row = conn.execute(
                    sa.select(jobs.c.source, jobs.c.dry_run).where(jobs.c.id == job_id)
                ).one()
                emails = list(
                    conn.execute(
                        sa.select(job_items.c.email)
                        .where(job_items.c.job_id == job_id, job_items.c.outcome.in_(RETRIED))
                        .order_by(job_items.c.position)
                    ).scalars()
                )
                busy = {
                    subject_key(e)
                    for e in conn.execute(
                        sa.select(job_items.c.email)
                        .join(jobs, jobs.c.id == job_items.c.job_id)
                        .where(jobs.c.installation_id == installation_id, jobs.c.state.in_(ACTIVE))
                    ).scalars()
                }
                kept = [e for e in emails if subject_key(e) not in busy]
                if not kept:
                    raise _NotNow(len(emails))
                job = self._insert_job(
                    conn,
                    new_id,
                    installation_id,
                    source=row.source,
                    dry_run=bool(row.dry_run),
                    created_by=created_by,
                    emails=kept,
                )
                outcome: dict[str, Any] = {"jobId": new_id, "retryOf": job_id, "emails": len(kept)}
                if len(kept) < len(emails):
                    outcome["inOtherJobs"] = len(emails) - len(kept)
                write_audit(
                    conn,
                    installation_id,
                    at=job.created_at,
                    actor=created_by,
                    action="job.retry",
                    source="panel",
                    subjects=kept[:AUDIT_SUBJECTS],
                    keys=kept,
                    outcome=outcome,
                )
        except _NotNow as nothing:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.select(jobs.c.retried_as).where(
                        jobs.c.id == job_id, jobs.c.installation_id == installation_id
                    )
                ).first()
            if found is None:
                return None
            earlier = (
                None if found.retried_as is None else self.job(installation_id, found.retried_as)
            )
            return Retry(earlier, new=False, busy=nothing.busy)
        return Retry(job, new=True, busy=len(emails) - len(kept))

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
            "cancelled": 0,
            "checked": 0,
        }
        items = [
            {"job_id": job_id, "position": i, "email": e, "outcome": "pending", "checked": False}
            for i, e in enumerate(emails)
        ]
        conn.execute(sa.insert(jobs).values(row))
        if items:
            conn.execute(sa.insert(job_items), items)
        note_work(conn, installation_id, now)
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
            return self._read_job(conn, installation_id, job_id, items=items)

    def _read_job(
        self, conn: sa.Connection, installation_id: str, job_id: str, *, items: bool
    ) -> Job | None:
        row = conn.execute(_JOB, {"p_job": job_id, "p_iid": installation_id}).first()
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
            cancelled=row.cancelled,
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
        checked=row.checked,
        retried_as=row.retried_as,
        wait_reason=row.wait_reason,
    )
