"""Webhook deliveries: each ``webhook-id`` seen per installation and the job it made.

A delivery and its job are written in one transaction, so a repeated (or concurrent) delivery of
the same ``webhook-id`` gets the first delivery's job and never leaves a second job behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.base import dialect_insert
from store.jobs import Jobs
from tables import webhook_deliveries


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
                stored = _delivery_job(conn, installation_id, webhook_id)
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


def _delivery_job(conn: Connection, installation_id: str, webhook_id: str) -> str | None:
    found: str | None = conn.execute(
        sa.select(webhook_deliveries.c.job_id).where(
            webhook_deliveries.c.installation_id == installation_id,
            webhook_deliveries.c.webhook_id == webhook_id,
        )
    ).scalar()
    return found
