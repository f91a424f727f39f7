"""Webhook deliveries: each ``webhook-id`` seen per installation and the job it made, and the
deliveries refused.

A delivery and its job are written in one transaction, so a repeated (or concurrent) delivery of
the same ``webhook-id`` gets the first delivery's job and never leaves a second job behind. A
repeat is noted on its delivery's row (the latest replay's time and a count: nothing grows with
repeats), so ``recent_deliveries`` lists accepted and replayed ones.

A refused delivery of a known installation is kept (``record_refusal``: when, why, its
``webhook-id``; never the body or the signature), the last ``KEPT_REFUSALS`` per installation: a
flood of bad deliveries replaces them and cannot grow the store, and while the installation's
kept refusals all came in the last minute nothing more is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.base import dialect_insert
from access_desk.store.jobs import Jobs
from access_desk.store.records import Delivery, Refusal
from access_desk.store.tables import webhook_deliveries, webhook_refusals

KEPT_REFUSALS = 50  # refused deliveries kept per installation
FLOOD_SECONDS = 60.0  # while all kept refusals are this recent, more are not written


class Deliveries(Jobs):
    """Webhook deliveries and the jobs they make."""

    def create_webhook_job(
        self,
        installation_id: str,
        webhook_id: str,
        *,
        dry_run: bool,
        created_by: str | None,
        emails: Sequence[str],
    ) -> tuple[str, bool]:
        """The job of a webhook delivery and whether it is new: the delivery is recorded and its job
        created in one transaction, so a repeated (or concurrent) ``webhook_id`` gets the first
        delivery's job and never leaves a second job behind."""
        job_id = secrets.token_urlsafe(12)
        with self.engine.begin() as conn:
            added = conn.execute(
                dialect_insert(conn, webhook_deliveries)
                .values(
                    installation_id=installation_id,
                    webhook_id=webhook_id,
                    job_id=job_id,
                    received_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["installation_id", "webhook_id"])
                .returning(webhook_deliveries.c.job_id)
            ).first()
            if added is None:  # the id was seen: its first delivery's job stands
                stored = self._replayed(conn, installation_id, webhook_id)
                assert stored is not None
                return stored, False
            self._insert_job(
                conn,
                job_id,
                installation_id,
                source="webhook",
                dry_run=dry_run,
                created_by=created_by,
                emails=emails,
            )
        return job_id, True

    def delivery_job(self, installation_id: str, webhook_id: str) -> str | None:
        """The job a webhook delivery made, if that ``webhook_id`` was seen."""
        with self.engine.connect() as conn:
            return _delivery_job(conn, installation_id, webhook_id)

    def replay_delivery(self, installation_id: str, webhook_id: str) -> str | None:
        """The job of a ``webhook_id`` seen before, noting this repeat as its latest replay (one
        row per delivery, however often it is repeated); None for a new ``webhook_id``."""
        with self.engine.begin() as conn:
            return self._replayed(conn, installation_id, webhook_id)

    def _replayed(self, conn: Connection, installation_id: str, webhook_id: str) -> str | None:
        found: str | None = conn.execute(
            sa.update(webhook_deliveries)
            .where(
                webhook_deliveries.c.installation_id == installation_id,
                webhook_deliveries.c.webhook_id == webhook_id,
            )
            .values(replayed_at=self._clock(), replays=webhook_deliveries.c.replays + 1)
            .returning(webhook_deliveries.c.job_id)
        ).scalar()
        return found

    def recent_deliveries(self, installation_id: str, limit: int) -> list[Delivery]:
        """The latest ``limit`` deliveries, newest first: each accepted one at its arrival, and
        each repeated one again at its latest replay."""
        d = webhook_deliveries
        mine = d.c.installation_id == installation_id
        with self.engine.connect() as conn:
            accepted = conn.execute(
                sa.select(d.c.received_at.label("at"), d.c.webhook_id, d.c.job_id)
                .where(mine)
                .order_by(d.c.received_at.desc())
                .limit(limit)
            ).all()
            replayed = conn.execute(
                sa.select(d.c.replayed_at.label("at"), d.c.webhook_id, d.c.job_id)
                .where(mine, d.c.replayed_at.is_not(None))
                .order_by(d.c.replayed_at.desc())
                .limit(limit)
            ).all()
        found = [Delivery(r.at, r.webhook_id, "accepted", r.job_id) for r in accepted]
        found += [Delivery(r.at, r.webhook_id, "replayed", r.job_id) for r in replayed]
        found.sort(key=lambda e: (e.at, e.status == "replayed"), reverse=True)
        return found[:limit]

    def record_refusal(self, installation_id: str, reason: str, webhook_id: str | None) -> bool:
        """Keep a refused delivery of ``installation_id``: its time, ``reason`` and ``webhook_id``
        (the caller passes a well-formed one or None). At most ``KEPT_REFUSALS`` stay (the oldest
        go); while those all came in the last ``FLOOD_SECONDS`` nothing is written (a flood).
        Returns whether it was kept."""
        r = webhook_refusals
        now = self._clock()
        with self.engine.begin() as conn:
            oldest_kept = conn.execute(
                sa.select(r.c.at)
                .where(r.c.installation_id == installation_id)
                .order_by(r.c.id.desc())
                .offset(KEPT_REFUSALS - 1)
                .limit(1)
            ).scalar()
            if oldest_kept is not None and oldest_kept > now - FLOOD_SECONDS:
                return False
            conn.execute(
                sa.insert(r).values(
                    installation_id=installation_id, at=now, reason=reason, webhook_id=webhook_id
                )
            )
            newest = (
                sa.select(r.c.id)
                .where(r.c.installation_id == installation_id)
                .order_by(r.c.id.desc())
                .limit(KEPT_REFUSALS)
            )
            conn.execute(
                sa.delete(r).where(r.c.installation_id == installation_id, r.c.id.not_in(newest))
            )
        return True

    def recent_refusals(self, installation_id: str, limit: int) -> list[Refusal]:
        """The latest ``limit`` refused deliveries, newest first."""
        r = webhook_refusals
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(r.c.at, r.c.reason, r.c.webhook_id)
                .where(r.c.installation_id == installation_id)
                .order_by(r.c.id.desc())
                .limit(limit)
            ).all()
        return [Refusal(row.at, row.reason, row.webhook_id) for row in rows]


def _delivery_job(conn: Connection, installation_id: str, webhook_id: str) -> str | None:
    found: str | None = conn.execute(
        sa.select(webhook_deliveries.c.job_id).where(
            webhook_deliveries.c.installation_id == installation_id,
            webhook_deliveries.c.webhook_id == webhook_id,
        )
    ).scalar()
    return found
