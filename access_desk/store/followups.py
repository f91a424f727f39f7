"""Invitation follow-ups: a real invite job that invited anyone checks on its invitees again about
an hour and about a day after it ended (``store.base.FOLLOW_UP_AFTER``, or the store's
``follow_up_after``: ``FOLLOW_UP_DELAYS_SECONDS``).

A job's ``follow_up_at`` says when the next follow-up is due (None: no more), and ``claim_job``
(``store.leases``) leases a job whose follow-up is due like a runnable one. The holder asks for the
invitees still to check (``follow_up_items``: each item remembers the last round that checked it,
so a resumed round checks only the rest, and whoever was seen to have joined is not asked again),
records each chunk's answers under its lease (``record_joined``) and closes the round
(``complete_follow_up``: the job's ``followUp`` and the next due time), or gives it up
(``skip_follow_up``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from access_desk.store.jobs import Jobs
from access_desk.store.queue import update_held
from access_desk.store.tables import job_items, jobs


class FollowUps(Jobs):
    """The follow-up rounds of finished invite jobs, written under the job's lease."""

    def follow_up_items(self, installation_id: str, job_id: str, *, limit: int = 100) -> list[str]:
        """Emails of the first ``limit`` invitees the due follow-up has yet to check (those seen to
        have joined before are not checked again), in order."""
        return self._item_emails(
            installation_id,
            job_id,
            limit,
            job_items.c.outcome == "invited",
            sa.or_(job_items.c.joined.is_(None), job_items.c.joined == sa.false()),
            job_items.c.follow_up_round <= jobs.c.follow_up_round,
        )

    def record_joined(
        self, installation_id: str, job_id: str, worker_id: str, joined: dict[str, bool]
    ) -> bool:
        """Record whether each invitee (email -> joined) has joined, as the due follow-up found,
        in ONE transaction while ``worker_id`` holds the lease (else nothing, and False)."""
        now = self._clock()
        with self.engine.begin() as conn:
            lease = conn.execute(
                update_held(installation_id, job_id, worker_id, now).returning(
                    jobs.c.follow_up_round
                )
            ).first()
            if lease is None:
                return False
            if joined:
                conn.execute(
                    sa.update(job_items)
                    .where(
                        job_items.c.job_id == job_id,
                        job_items.c.email == sa.bindparam("b_email"),
                        job_items.c.outcome == "invited",
                    )
                    .values(
                        joined=sa.bindparam("b_joined"),
                        follow_up_round=lease.follow_up_round + 1,
                    ),
                    [{"b_email": e, "b_joined": j} for e, j in joined.items()],
                )
        return True

    def complete_follow_up(self, installation_id: str, job_id: str, worker_id: str) -> bool:
        """Close the due follow-up while ``worker_id`` holds the lease: the job's ``followUp`` (now,
        invitees joined) and when the next one is due (None after the last)."""
        return self._next_follow_up(installation_id, job_id, worker_id, checked=True)

    def skip_follow_up(self, installation_id: str, job_id: str, worker_id: str) -> bool:
        """Give up the due follow-up (nobody could check) and schedule the next, if any."""
        return self._next_follow_up(installation_id, job_id, worker_id, checked=False)

    def _next_follow_up(
        self, installation_id: str, job_id: str, worker_id: str, *, checked: bool
    ) -> bool:
        now = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(
                update_held(
                    installation_id, job_id, worker_id, now, jobs.c.follow_up_at.is_not(None)
                ).returning(jobs.c.follow_up_round, jobs.c.follow_up_at)
            ).first()
            if row is None:
                return False
            done = row.follow_up_round + 1
            due = None
            after = self._follow_up_after
            if done < len(after):
                due = row.follow_up_at + after[done] - after[done - 1]
            values: dict[str, Any] = {"follow_up_round": done, "follow_up_at": due}
            if checked:
                values["follow_up_checked_at"] = now
                values["follow_up_joined"] = conn.execute(
                    sa.select(sa.func.count()).where(
                        job_items.c.job_id == job_id,
                        job_items.c.outcome == "invited",
                        job_items.c.joined == sa.true(),
                    )
                ).scalar_one()
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(values))
        return True
