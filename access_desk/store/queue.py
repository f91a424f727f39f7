"""The lease-guarded writes of a worker on the job it holds: item outcomes (``record_outcomes``),
the claims of the items an invite is about to go for (``claim_items``: their outcomes are then
written by the claim's holder alone, even after its lease ran out), and finishing the job
(``finish_job``), each only while the caller's lease holds (``lease_held``,
which ``store.leases``' ``renew_lease`` uses too; ``update_held`` for the installation's job, which
``store.followups`` uses too). Item outcomes never go back from final to ``pending``; a job that
ended (finished here, or cancelled: ``store.cancels``) gets its counts, exactly one audit entry
(found by every email of the job; a webhook job's entry is its delivery's one entry, naming the
``webhookId``), and, a real job that invited anyone, its first follow-up (``store.followups``),
which makes it claimable again when due (``job_ended``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.audit import write_audit
from access_desk.store.jobs import ACTIVE, AUDIT_SUBJECTS, OUTCOMES, Jobs
from access_desk.store.records import Counts
from access_desk.store.tables import job_items, jobs, webhook_deliveries
from access_desk.store.turns import note_work


def lease_held(job_id: str, worker_id: str, now: float) -> sa.ColumnElement[bool]:
    """The job is leased to ``worker_id`` and the lease has not run out."""
    return sa.and_(
        jobs.c.id == job_id,
        jobs.c.lease_owner == worker_id,
        jobs.c.lease_until > now,
    )


def _unclaimed(now: float) -> sa.ColumnElement[bool]:
    """The item is not claimed by an invite still in flight (``Queue.claim_items``)."""
    return sa.or_(job_items.c.claim_until.is_(None), job_items.c.claim_until <= now)


def update_held(
    installation_id: str, job_id: str, worker_id: str, now: float, *where: sa.ColumnElement[bool]
) -> sa.Update:
    """An UPDATE of the installation's job, also matching ``where``, that changes it only while
    ``worker_id`` holds its lease (``lease_held``); it sets ``updated_at`` to ``now``."""
    return (
        sa.update(jobs)
        .where(
            lease_held(job_id, worker_id, now), jobs.c.installation_id == installation_id, *where
        )
        .values(updated_at=now)
    )


class Queue(Jobs):
    """The lease-guarded writes of a worker: item outcomes and finishing a job."""

    def next_items(
        self, installation_id: str, job_id: str, *, checked: bool, limit: int = 100
    ) -> list[str]:
        """Emails of the first ``limit`` pending items that are (not) yet checked, in order,
        leaving out items claimed by an invite still in flight (``claim_items``)."""
        return self._item_emails(
            installation_id,
            job_id,
            limit,
            job_items.c.outcome == "pending",
            job_items.c.checked == checked,
            _unclaimed(self._clock()),
        )

    def claim_items(
        self, installation_id: str, job_id: str, worker_id: str, emails: list[str], seconds: float
    ) -> list[str]:
        """Claim these pending items for ``worker_id``'s invite for ``seconds``, in a transaction
        of their own, only while its lease on the job holds: the emails it now holds, in the given
        order (items no longer pending, or claimed by an invite still in flight, are left out;
        none when the lease was lost). Whoever holds an item's claim is the only one who sends it
        and records its outcome (``record_outcomes(claimed=True)``)."""
        now = self._clock()
        until = now + seconds
        with self.engine.begin() as conn:
            held = conn.execute(update_held(installation_id, job_id, worker_id, now))
            if held.rowcount != 1:
                return []
            mine = sa.and_(job_items.c.job_id == job_id, job_items.c.email.in_(emails))
            conn.execute(
                sa.update(job_items)
                .where(mine, job_items.c.outcome == "pending", _unclaimed(now))
                .values(claim_owner=worker_id, claim_until=until)
            )
            claimed = set(
                conn.execute(
                    sa.select(job_items.c.email).where(
                        mine,
                        job_items.c.claim_owner == worker_id,
                        job_items.c.claim_until == until,
                    )
                ).scalars()
            )
        return [e for e in emails if e in claimed]

    def items_in_flight(self, installation_id: str, job_id: str) -> float | None:
        """When the first claim on a pending item of the job runs out (an invite in flight:
        ``claim_items``), None when there is none."""
        now = self._clock()
        with self.engine.connect() as conn:
            until = conn.execute(
                sa.select(sa.func.min(job_items.c.claim_until))
                .join(jobs, jobs.c.id == job_items.c.job_id)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.installation_id == installation_id,
                    job_items.c.outcome == "pending",
                    job_items.c.claim_until > now,
                )
            ).scalar()
        return None if until is None else float(until)

    def record_outcomes(
        self,
        installation_id: str,
        job_id: str,
        worker_id: str,
        outcomes: dict[str, tuple[str, str | None]],
        *,
        checked: bool | None = None,
        claimed: bool = False,
    ) -> bool:
        """Set item outcomes (email -> (outcome, error)) and the job's counts in ONE transaction.

        Only while ``worker_id`` holds the job's lease: otherwise nothing is written and False is
        returned; or, with ``claimed``, for the items ``worker_id`` claimed (``claim_items``),
        whether the lease still holds or not, and every claim of ``worker_id`` on the job is let
        go (its items not answered stay pending for the next chunk). Only ``pending`` items
        change; ``checked`` (when given) is set on all of them.
        """
        bad = {o for o, _ in outcomes.values()} - set(OUTCOMES)
        if bad:
            raise ValueError(f"unknown outcomes {sorted(bad)}")
        now = self._clock()
        with self.engine.begin() as conn:
            if claimed:
                mine = jobs.c.id == job_id, jobs.c.installation_id == installation_id
                found = conn.execute(sa.update(jobs).where(*mine).values(updated_at=now))
                if found.rowcount != 1:
                    return False
            else:
                held = conn.execute(
                    update_held(installation_id, job_id, worker_id, now).values(
                        state=sa.case((jobs.c.state == "queued", "running"), else_=jobs.c.state)
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
                where = [
                    job_items.c.job_id == job_id,
                    job_items.c.email == sa.bindparam("b_email"),
                    job_items.c.outcome == "pending",
                ]
                if claimed:
                    where.append(job_items.c.claim_owner == worker_id)
                conn.execute(
                    sa.update(job_items).where(*where).values(values),
                    [
                        {"b_email": email, "b_outcome": outcome, "b_error": error}
                        for email, (outcome, error) in outcomes.items()
                    ],
                )
            if claimed:
                conn.execute(
                    sa.update(job_items)
                    .where(job_items.c.job_id == job_id, job_items.c.claim_owner == worker_id)
                    .values(claim_owner=None, claim_until=None)
                )
            recount(conn, job_id)
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
                update_held(
                    installation_id, job_id, worker_id, now, jobs.c.state.in_(ACTIVE)
                ).values(
                    state=state,
                    error=error,
                    lease_owner=None,
                    lease_until=None,
                    not_before=None,
                    wait_reason=None,
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
            job_ended(conn, installation_id, job_id, state, error, now, self._follow_up_after[0])
        return True


def job_ended(
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
    counts = recount(conn, job_id)
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()
    if counts.invited and not row.dry_run:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(follow_up_at=now + follow_up, follow_up_round=0)
        )
        note_work(conn, installation_id, now + follow_up)
    emails = list(
        conn.execute(
            sa.select(job_items.c.email)
            .where(job_items.c.job_id == job_id)
            .order_by(job_items.c.position)
        ).scalars()
    )
    outcome: dict[str, Any] = {"jobId": job_id, "state": state, **counts.to_json()}
    if error is not None:
        outcome["error"] = error
    if row.source == "webhook":  # the delivery's one entry: which delivery it was
        webhook_id = conn.execute(
            sa.select(webhook_deliveries.c.webhook_id).where(
                webhook_deliveries.c.installation_id == installation_id,
                webhook_deliveries.c.job_id == job_id,
            )
        ).scalar()
        if webhook_id is not None:
            outcome["webhookId"] = webhook_id
    write_audit(
        conn,
        installation_id,
        at=now,
        actor=row.created_by or row.source,
        action="invite.dryRun" if row.dry_run else "invite",
        source=row.source,
        subjects=emails[:AUDIT_SUBJECTS],
        keys=emails,
        outcome=outcome,
    )


def recount(conn: Connection, job_id: str) -> Counts:
    """Recompute a job's counts (and how many items are checked) from its items and store them
    (inside the caller's transaction)."""
    rows = conn.execute(
        sa.select(job_items.c.outcome, job_items.c.checked, sa.func.count())
        .where(job_items.c.job_id == job_id)
        .group_by(job_items.c.outcome, job_items.c.checked)
    )
    by: dict[str, int] = {}
    checked = 0
    for outcome, was_checked, n in rows:
        by[outcome] = by.get(outcome, 0) + int(n)
        if outcome != "pending" or was_checked:
            checked += int(n)
    counts = Counts(
        pending=by.get("pending", 0),
        invited=by.get("invited", 0),
        already_has_access=by.get("alreadyHasAccess", 0),
        invalid=by.get("invalid", 0),
        failed=by.get("failed", 0),
        cancelled=by.get("cancelled", 0),
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
            cancelled=counts.cancelled,
            checked=checked,
        )
    )
    return counts
