"""The personal data duty of each installation, queued and leased like a job: a scheduled trigger
records itself (``last_scheduled_at``, which ``dormancy`` reads) and queues the duty when the last
report or housekeeping is old (``note_scheduled_trigger``); a worker leases one due installation
(``claim_privacy_duty``) and ends its lease with what was done (``finish_privacy_duty``). What the
duty reports, erases and redacts is ``store.personal_data``; the rules are ``duties.personal_data``'s.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from access_desk.store.base import StoreBase
from access_desk.store.installations import claim_installation_lease
from access_desk.store.tables import installations


class PrivacyDuty(StoreBase):
    """When each installation's personal data duty is due, who holds it and what it last did."""

    def note_scheduled_trigger(
        self,
        installation_id: str,
        *,
        report_every_seconds: float,
        housekeeping_every_seconds: float = 24 * 3600.0,
    ) -> bool:
        """Record a scheduled trigger, and queue the personal data duty when the last report is
        ``report_every_seconds`` old (0: always; the ``Cycle-Period`` the reporting API last
        asked for instead, when it did) or housekeeping last ran a day ago. True when the duty
        was queued now (a duty already queued, or waiting to retry, is left as it is)."""
        now = self._clock()
        c = installations.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id)
                .values(last_scheduled_at=now)
            )
            stale = sa.or_(
                c.last_report_at.is_(None),
                c.last_report_at
                <= now - sa.func.coalesce(c.report_cycle_seconds, report_every_seconds),
                c.housekept_at.is_(None),
                c.housekept_at <= now - housekeeping_every_seconds,
            )
            queued = conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id, c.duty_due_at.is_(None), stale)
                .values(duty_due_at=now)
            )
        return queued.rowcount == 1

    def claim_privacy_duty(self, worker_id: str, lease_seconds: float) -> str | None:
        """Lease ONE installation whose personal data duty is due; its id, or None."""
        return claim_installation_lease(self, "duty", worker_id, lease_seconds)

    def finish_privacy_duty(
        self,
        installation_id: str,
        worker_id: str,
        *,
        housekept: bool,
        reported: bool,
        error: str | None = None,
        retry_at: float | None = None,
        cycle_seconds: float | None = None,
    ) -> bool:
        """End ``worker_id``'s duty lease: record what was done, the error (if any), when to
        try again (``retry_at``; None: when a scheduled trigger queues it next) and the reporting
        cycle the API asked for (``cycle_seconds``, its ``Cycle-Period``; kept until another)."""
        now = self._clock()
        values: dict[str, Any] = {
            "duty_lease_owner": None,
            "duty_lease_until": None,
            "duty_due_at": retry_at,
        }
        if housekept:
            values["housekept_at"] = now
        if reported:
            values.update(last_report_at=now, report_error=None, report_error_at=None)
        if error is not None:
            values.update(report_error=error[:1000], report_error_at=now)
        if cycle_seconds is not None:
            values["report_cycle_seconds"] = cycle_seconds
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.duty_lease_owner == worker_id,
                )
                .values(values)
            )
        return done.rowcount == 1
