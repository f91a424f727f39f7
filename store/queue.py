"""The job queue: workers claim jobs under leases, record item outcomes, finish jobs, and cancel.

``claim_job`` atomically takes one runnable job (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
conditional ``UPDATE`` checked by rowcount on SQLite), and writes to a job (``record_outcomes``,
``finish_job``, ``renew_lease``) happen only while the caller's lease holds. Item outcomes never go
back from final to ``pending``; a finished job gets exactly one audit entry, and a real job that
invited anyone its first follow-up (``store.followups``), which makes it claimable again when due.

``request_cancel`` ends a job nobody holds at once; a held one ends when its holder releases it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from records import Counts, Job
from store.audit import write_audit
from store.base import dialect_insert
from store.jobs import ACTIVE, AUDIT_SUBJECTS, CANCELLED, OUTCOMES, Jobs
from tables import installations, job_items, jobs, quota_turns


def lease_held(job_id: str, worker_id: str, now: float) -> sa.ColumnElement[bool]:
    """The job is leased to ``worker_id`` and the lease has not run out."""
    return sa.and_(
        jobs.c.id == job_id,
        jobs.c.lease_owner == worker_id,
        jobs.c.lease_until > now,
    )


class Queue(Jobs):
    """Leases on jobs and the lease-guarded writes of a worker."""

    def claim_job(
        self,
        worker_id: str,
        lease_seconds: float,
        *,
        installation_id: str | None = None,
        job_id: str | None = None,
    ) -> Job | None:
        """Lease ONE runnable job to ``worker_id`` and return it (without items): the job of the
        installation served longest ago (``quota_turns``: fair turns on a shared quota pool), then
        oldest first.

        Runnable: ``queued`` or ``running`` or a follow-up due, ``not_before`` passed, and no lease or
        an expired lease (a crashed worker's); when ``job_id`` is given, also a lease already held by
        ``worker_id`` (the claim then renews it). Without ``job_id`` (the background worker), jobs
        of a dormant installation are not runnable.
        A ``queued`` job becomes ``running``, its ``not_before`` is cleared, and its installation is
        marked served now. None when nothing is runnable.
        """
        now = self._clock()
        free = sa.or_(
            jobs.c.lease_owner.is_(None), jobs.c.lease_until.is_(None), jobs.c.lease_until <= now
        )
        if job_id is not None:
            free = sa.or_(free, jobs.c.lease_owner == worker_id)
        runnable = sa.and_(
            sa.or_(jobs.c.state.in_(ACTIVE), jobs.c.follow_up_at <= now),  # work, or a follow-up
            sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
            free,
        )
        if installation_id is not None:
            runnable = sa.and_(runnable, jobs.c.installation_id == installation_id)
        if job_id is not None:
            runnable = sa.and_(runnable, jobs.c.id == job_id)
        else:  # the background worker: a dormant installation's jobs wait and spend nothing
            dormant = sa.select(installations.c.installation_id).where(
                installations.c.dormant_since.is_not(None)
            )
            runnable = sa.and_(runnable, jobs.c.installation_id.not_in(dormant))
        # Fair turns: the installation whose job work was served longest ago goes first.
        candidates = (
            sa.select(jobs.c.id, jobs.c.installation_id)
            .select_from(
                jobs.outerjoin(quota_turns, quota_turns.c.installation_id == jobs.c.installation_id)
            )
            .where(runnable)
            .order_by(sa.func.coalesce(quota_turns.c.served_at, 0.0), jobs.c.created_at, jobs.c.id)
        )
        take = {
            "lease_owner": worker_id,
            "lease_until": now + lease_seconds,
            "state": sa.case((jobs.c.state == "queued", "running"), else_=jobs.c.state),
            "not_before": None,
        }
        claimed: tuple[str, str] | None = None
        if not self._sqlite:
            with self.engine.begin() as conn:
                row = conn.execute(
                    candidates.limit(1).with_for_update(skip_locked=True, of=jobs)
                ).first()
                if row is not None:
                    conn.execute(sa.update(jobs).where(jobs.c.id == row.id).values(take))
                    claimed = (row.installation_id, row.id)
        else:
            # Plain SELECTs run outside a transaction under pysqlite; the conditional UPDATE is
            # the atomic step (SQLite serializes writers), and rowcount says whether we won.
            with self.engine.connect() as conn:
                rows = conn.execute(candidates.limit(8)).all()
            for row in rows:
                with self.engine.begin() as conn:
                    won = conn.execute(
                        sa.update(jobs).where(jobs.c.id == row.id, runnable).values(take)
                    )
                if won.rowcount == 1:
                    claimed = (row.installation_id, row.id)
                    break
        if claimed is None:
            return None
        self._served(claimed[0], now)
        return self.job(claimed[0], claimed[1], items=False)

    def waiting_elsewhere(self, installation_id: str) -> bool:
        """Whether another installation has a job the background worker could claim now (the
        worker then ends its step after the chunk in flight: turns go chunk by chunk)."""
        now = self._clock()
        dormant = sa.select(installations.c.installation_id).where(
            installations.c.dormant_since.is_not(None)
        )
        query = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.installation_id != installation_id,
                sa.or_(jobs.c.state.in_(ACTIVE), jobs.c.follow_up_at <= now),
                sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
                sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until <= now),
                jobs.c.installation_id.not_in(dormant),
            )
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def _served(self, installation_id: str, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                dialect_insert(conn, quota_turns)
                .values(installation_id=installation_id, served_at=now)
                .on_conflict_do_update(index_elements=["installation_id"], set_={"served_at": now})
            )

    def renew_lease(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend a lease still held by ``worker_id``; False when it was lost (or expired)."""
        now = self._clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(lease_held(job_id, worker_id, now))
                .values(lease_until=now + lease_seconds)
            )
            return done.rowcount == 1

    def release_job(self, job_id: str, worker_id: str, *, not_before: float | None = None) -> bool:
        """Give up ``worker_id``'s lease; ``not_before`` (epoch) delays the next claim. A job whose
        cancel was asked for ends now (see ``request_cancel``)."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if not_before is not None:
            values["not_before"] = not_before
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == worker_id)
                .values(values)
            )
            if done.rowcount != 1:
                return False
            self._end_cancelled(conn, job_id, self._clock(), sa.true())
            return True

    # -- cancelling --------------------------------------------------------------------------------

    def request_cancel(self, installation_id: str, job_id: str, actor: str) -> Job | None:
        """Ask a queued or running job to stop, with one ``job.cancel`` audit entry by ``actor``;
        return the job (without items) afterwards, None if there is no such job.

        When nobody holds its lease the job ends at once; otherwise it ends when its holder lets go
        (``release_job``), which a worker does at its next chunk boundary (``cancel_requested``).
        Ending: items not started (every pending item; for a dry run, the unchecked ones) become
        ``failed`` with error ``cancelled`` and the job ends ``failed`` with that error, or
        ``done`` when nothing was left to cancel. A finished job is left as it is.
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
            self._end_cancelled(conn, job_id, now, sa.and_(free, mine))
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

    def _end_cancelled(
        self, conn: Connection, job_id: str, now: float, when: sa.ColumnElement[bool]
    ) -> bool:
        """End a job whose cancel was asked for, if it is still active and ``when`` holds."""
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
            sa.update(job_items).where(not_started).values(outcome="failed", error=CANCELLED)
        )
        state, error = ("failed", CANCELLED) if stopped.rowcount else ("done", None)
        if state == "done":
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(state=state, error=None))
        _ended(conn, ended.installation_id, job_id, state, error, now, self._follow_up_after[0])
        return True

    def next_items(
        self, installation_id: str, job_id: str, *, checked: bool, limit: int = 100
    ) -> list[str]:
        """Emails of the first ``limit`` pending items that are (not) yet checked, in order."""
        query = (
            sa.select(job_items.c.email)
            .join(jobs, jobs.c.id == job_items.c.job_id)
            .where(
                jobs.c.id == job_id,
                jobs.c.installation_id == installation_id,
                job_items.c.outcome == "pending",
                job_items.c.checked == checked,
            )
            .order_by(job_items.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def record_outcomes(
        self,
        installation_id: str,
        job_id: str,
        worker_id: str,
        outcomes: dict[str, tuple[str, str | None]],
        *,
        checked: bool | None = None,
    ) -> bool:
        """Set item outcomes (email -> (outcome, error)) and the job's counts in ONE transaction.

        Only while ``worker_id`` holds the job's lease: otherwise nothing is written and False is
        returned. Only ``pending`` items change; ``checked`` (when given) is set on all of them.
        """
        bad = {o for o, _ in outcomes.values()} - set(OUTCOMES)
        if bad:
            raise ValueError(f"unknown outcomes {sorted(bad)}")
        now = self._clock()
        with self.engine.begin() as conn:
            held = conn.execute(
                sa.update(jobs)
                .where(
                    lease_held(job_id, worker_id, now), jobs.c.installation_id == installation_id
                )
                .values(
                    updated_at=now,
                    state=sa.case((jobs.c.state == "queued", "running"), else_=jobs.c.state),
                )
            )
            if held.rowcount != 1:
                return False
            if outcomes:
                values: dict[str, Any] = {
                    "outcome": sa.bindparam("b_outcome"),
                    "error": sa.bindparam("b_error"),
                }
                if checked is not None:
                    values["checked"] = checked
                conn.execute(
                    sa.update(job_items)
                    .where(
                        job_items.c.job_id == job_id,
                        job_items.c.email == sa.bindparam("b_email"),
                        job_items.c.outcome == "pending",
                    )
                    .values(values),
                    [
                        {"b_email": email, "b_outcome": outcome, "b_error": error}
                        for email, (outcome, error) in outcomes.items()
                    ],
                )
            _recount(conn, job_id)
        return True

    def finish_job(
        self,
        installation_id: str,
        job_id: str,
        worker_id: str,
        *,
        state: str = "done",
        error: str | None = None,
    ) -> bool:
        """End a job (``done`` or ``failed``) while holding its lease, and write its audit entry.

        ``failed`` also fails every item still pending, with ``error``. Exactly one audit entry
        per job: the state change and the entry share one transaction. False if the lease is lost.
        """
        if state not in ("done", "failed"):
            raise ValueError("a job finishes 'done' or 'failed'")
        now = self._clock()
        with self.engine.begin() as conn:
            ended = conn.execute(
                sa.update(jobs)
                .where(
                    lease_held(job_id, worker_id, now),
                    jobs.c.installation_id == installation_id,
                    jobs.c.state.in_(ACTIVE),
                )
                .values(
                    state=state, error=error, lease_owner=None, lease_until=None, updated_at=now
                )
            )
            if ended.rowcount != 1:
                return False
            if state == "failed":
                conn.execute(
                    sa.update(job_items)
                    .where(job_items.c.job_id == job_id, job_items.c.outcome == "pending")
                    .values(outcome="failed", error=error or "failed")
                )
            _ended(conn, installation_id, job_id, state, error, now, self._follow_up_after[0])
        return True


def _ended(
    conn: Connection,
    installation_id: str,
    job_id: str,
    state: str,
    error: str | None,
    now: float,
    follow_up: float,
) -> None:
    """After a job ended (inside that transaction): its counts, its first follow-up (``follow_up``
    seconds from now) if it invited anyone (not for dry runs), and its one audit entry."""
    counts = _recount(conn, job_id)
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()
    if counts.invited and not row.dry_run:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(follow_up_at=now + follow_up, follow_up_round=0)
        )
    subjects = conn.execute(
        sa.select(job_items.c.email)
        .where(job_items.c.job_id == job_id)
        .order_by(job_items.c.position)
        .limit(AUDIT_SUBJECTS)
    ).scalars()
    outcome: dict[str, Any] = {"jobId": job_id, "state": state, **counts.to_json()}
    if error is not None:
        outcome["error"] = error
    write_audit(
        conn,
        installation_id,
        at=now,
        actor=row.created_by or row.source,
        action="invite.dryRun" if row.dry_run else "invite",
        source=row.source,
        subjects=list(subjects),
        outcome=outcome,
    )


def _recount(conn: Connection, job_id: str) -> Counts:
    """Recompute a job's counts from its items and store them (inside the caller's transaction)."""
    rows = conn.execute(
        sa.select(job_items.c.outcome, sa.func.count())
        .where(job_items.c.job_id == job_id)
        .group_by(job_items.c.outcome)
    )
    by = {outcome: int(n) for outcome, n in rows}
    counts = Counts(
        pending=by.get("pending", 0),
        invited=by.get("invited", 0),
        already_has_access=by.get("alreadyHasAccess", 0),
        invalid=by.get("invalid", 0),
        failed=by.get("failed", 0),
    )
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            pending=counts.pending,
            invited=counts.invited,
            already_has_access=counts.already_has_access,
            invalid=counts.invalid,
            failed=counts.failed,
        )
    )
    return counts
