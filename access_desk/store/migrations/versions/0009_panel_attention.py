"""Cancelled is its own outcome, retries happen once, refused webhook deliveries are kept, and the
audit log's subject filter finds every address of a job.

- jobs: ``cancelled`` (count), ``checked`` (items whose access check is done), ``retried_as`` (the
  one job that retried this one), ``wait_reason`` (why a waiting job waits, with ``not_before``);
- job_items: an item a cancel stopped (``failed`` with error ``cancelled``) becomes ``cancelled``,
  and its job's counts follow; so do the counts in the audit entries of those jobs' ends;
- audit: an index for the new ``source`` filter; the subject keys of entries about a job are
  completed from the job's items (an entry showed at most 100 of them);
- webhook_deliveries: indexed by job; ``webhook_refusals``: the last refused deliveries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import string
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_BATCH = 500
_SHOWN = 100  # an entry's ``subjects`` showed at most this many of its job's emails

jobs = sa.table(
    "jobs",
    sa.column("id", sa.String()),
    sa.column("installation_id", sa.String()),
    sa.column("failed", sa.Integer()),
    sa.column("cancelled", sa.Integer()),
    sa.column("checked", sa.Integer()),
)
items = sa.table(
    "job_items",
    sa.column("job_id", sa.String()),
    sa.column("position", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("error", sa.Text()),
    sa.column("checked", sa.Boolean()),
)
audit = sa.table(
    "audit",
    sa.column("id", _BIGID),
    sa.column("installation_id", sa.String()),
    sa.column("action", sa.String()),
    sa.column("subjects", sa.JSON()),
    sa.column("outcome", sa.JSON()),
)
audit_subjects = sa.table(
    "audit_subjects",
    sa.column("audit_id", _BIGID),
    sa.column("subject", sa.String()),
    sa.column("installation_id", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cancelled", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("checked", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retried_as", sa.String(64), nullable=True))
        batch.add_column(sa.Column("wait_reason", sa.String(32), nullable=True))
    op.create_index("ix_audit_installation_source", "audit", ["installation_id", "source", "id"])
    op.create_index(
        "ix_webhook_deliveries_job", "webhook_deliveries", ["installation_id", "job_id"]
    )
    op.create_table(
        "webhook_refusals",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("installation_id", sa.String(255), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=True),
    )
    op.create_index(
        "ix_webhook_refusals_installation", "webhook_refusals", ["installation_id", "id"]
    )
    conn = op.get_bind()
    conn.execute(
        sa.update(items)
        .where(items.c.outcome == "failed", items.c.error == "cancelled")
        .values(outcome="cancelled", error=None)
    )

    def counted(*where: Any) -> Any:
        return (
            sa.select(sa.func.count())
            .select_from(items)
            .where(items.c.job_id == jobs.c.id, *where)
            .scalar_subquery()
        )

    touched = sa.select(items.c.job_id).where(items.c.outcome == "cancelled").distinct()
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(touched))
        .values(
            failed=counted(items.c.outcome == "failed"),
            cancelled=counted(items.c.outcome == "cancelled"),
        )
    )
    conn.execute(
        sa.update(jobs).values(
            checked=counted(sa.or_(items.c.outcome != "pending", items.c.checked == sa.true()))
        )
    )
    _recount_cancelled_entries(conn)
    _complete_subject_keys(conn)


def _entries(conn: Any, *where: Any) -> Any:
    """Audit rows matching ``where``, in batches by id."""
    last = -1
    while True:
        rows = conn.execute(
            sa.select(audit.c.id, audit.c.installation_id, audit.c.subjects, audit.c.outcome)
            .where(audit.c.id > last, *where)
            .order_by(audit.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _recount_cancelled_entries(conn: Any) -> None:
    """A cancelled job's end entry counted its cancelled items as failed: split them again."""
    ends = audit.c.action.in_(("invite", "invite.dryRun"))
    for row in _entries(conn, ends, sa.cast(audit.c.outcome, sa.Text).like("%cancelled%")):
        outcome = row.outcome
        if not isinstance(outcome, dict) or not isinstance(outcome.get("jobId"), str):
            continue
        counts = conn.execute(
            sa.select(jobs.c.failed, jobs.c.cancelled).where(
                jobs.c.id == outcome["jobId"], jobs.c.installation_id == row.installation_id
            )
        ).first()
        if counts is None or not counts.cancelled:
            continue
        fixed = {**outcome, "failed": counts.failed, "cancelled": counts.cancelled}
        conn.execute(sa.update(audit).where(audit.c.id == row.id).values(outcome=fixed))


def _complete_subject_keys(conn: Any) -> None:
    """Entries about a job that showed the first 100 of its emails get keys for all of them (not
    for a job whose emails retention already redacted, nor for an entry whose subjects were)."""
    about_jobs = audit.c.action.in_(("invite", "invite.dryRun", "webhook.delivery", "job.retry"))
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(audit_subjects)
    for row in _entries(conn, about_jobs):
        outcome = row.outcome if isinstance(row.outcome, dict) else {}
        job_id = outcome.get("jobId")
        if not isinstance(job_id, str) or len(row.subjects or ()) < _SHOWN:
            continue
        emails = conn.execute(
            sa.select(items.c.email)
            .select_from(items.join(jobs, jobs.c.id == items.c.job_id))
            .where(jobs.c.id == job_id, jobs.c.installation_id == row.installation_id)
        ).scalars()
        keys = {e.translate(_LOWER) for e in emails if e}
        if not keys or any(k.startswith("redacted-") for k in keys):
            continue
        conn.execute(
            insert.on_conflict_do_nothing(index_elements=["audit_id", "subject"]),
            [
                {"audit_id": row.id, "subject": k, "installation_id": row.installation_id}
                for k in sorted(keys)
            ],
        )


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(
        sa.update(items)
        .where(items.c.outcome == "cancelled")
        .values(outcome="failed", error="cancelled")
    )
    conn.execute(
        sa.update(jobs).where(jobs.c.cancelled > 0).values(failed=jobs.c.failed + jobs.c.cancelled)
    )
    op.drop_index("ix_webhook_refusals_installation", table_name="webhook_refusals")
    op.drop_table("webhook_refusals")
    op.drop_index("ix_webhook_deliveries_job", table_name="webhook_deliveries")
    op.drop_index("ix_audit_installation_source", table_name="audit")
    with op.batch_alter_table("jobs") as batch:
        for column in ("wait_reason", "retried_as", "checked", "cancelled"):
            batch.drop_column(column)
