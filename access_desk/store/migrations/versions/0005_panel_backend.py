"""The panel's job control, invitation follow-ups, webhook deliveries and audit filters.

- jobs: ``cancel_requested_at``/``cancelled_by`` (cancelJob), ``follow_up_at``, ``follow_up_round``,
  ``follow_up_checked_at``, ``follow_up_joined`` (follow-ups), indexed by ``follow_up_at``;
- job_items: ``joined`` and ``follow_up_round``;
- webhook_deliveries: ``replayed_at`` and ``replays``, indexed by time per installation;
- audit: indexes for the ``action``, ``actor`` and time filters, and ``audit_subjects`` (each
  entry's subjects, ASCII-lower-cased) for the ``subject`` filter, filled from existing entries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import string
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIME: sa.Double[float] = sa.Double()
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cancel_requested_at", _TIME, nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("follow_up_at", _TIME, nullable=True))
        batch.add_column(
            sa.Column("follow_up_round", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("follow_up_checked_at", _TIME, nullable=True))
        batch.add_column(sa.Column("follow_up_joined", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_follow_up_at", "jobs", ["follow_up_at"])
    with op.batch_alter_table("job_items") as batch:
        batch.add_column(sa.Column("joined", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column("follow_up_round", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("replayed_at", _TIME, nullable=True))
        batch.add_column(sa.Column("replays", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(
        "ix_webhook_deliveries_received", "webhook_deliveries", ["installation_id", "received_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_replayed", "webhook_deliveries", ["installation_id", "replayed_at"]
    )
    op.create_index("ix_audit_installation_action", "audit", ["installation_id", "action", "id"])
    op.create_index("ix_audit_installation_actor", "audit", ["installation_id", "actor", "id"])
    op.create_index("ix_audit_installation_at", "audit", ["installation_id", "at"])
    subjects = op.create_table(
        "audit_subjects",
        sa.Column(
            "audit_id",
            _BIGID,
            sa.ForeignKey("audit.id", ondelete="CASCADE", name="fk_audit_subjects_audit"),
            primary_key=True,
        ),
        sa.Column("subject", sa.String(512), primary_key=True),
        sa.Column("installation_id", sa.String(255), nullable=False),
    )
    op.create_index(
        "ix_audit_subjects_lookup", "audit_subjects", ["installation_id", "subject", "audit_id"]
    )
    _fill_subjects(subjects)


def _fill_subjects(subjects: sa.Table) -> None:
    """One row per distinct (entry, lower-cased subject) of the entries already written."""
    conn = op.get_bind()
    audit = sa.table(
        "audit",
        sa.column("id", _BIGID),
        sa.column("installation_id", sa.String()),
        sa.column("subjects", sa.JSON()),
    )
    last = -1
    while True:
        rows = conn.execute(
            sa.select(audit.c.id, audit.c.installation_id, audit.c.subjects)
            .where(audit.c.id > last)
            .order_by(audit.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        batch: list[dict[str, Any]] = []
        for row in rows:
            keys = {s.translate(_LOWER) for s in row.subjects or () if isinstance(s, str) and s}
            batch.extend(
                {"audit_id": row.id, "subject": k, "installation_id": row.installation_id}
                for k in sorted(keys)
            )
        if batch:
            conn.execute(sa.insert(subjects), batch)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_audit_subjects_lookup", table_name="audit_subjects")
    op.drop_table("audit_subjects")
    op.drop_index("ix_audit_installation_at", table_name="audit")
    op.drop_index("ix_audit_installation_actor", table_name="audit")
    op.drop_index("ix_audit_installation_action", table_name="audit")
    op.drop_index("ix_webhook_deliveries_replayed", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_received", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("replays")
        batch.drop_column("replayed_at")
    with op.batch_alter_table("job_items") as batch:
        batch.drop_column("follow_up_round")
        batch.drop_column("joined")
    op.drop_index("ix_jobs_follow_up_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in (
            "follow_up_joined",
            "follow_up_checked_at",
            "follow_up_round",
            "follow_up_at",
            "cancelled_by",
            "cancel_requested_at",
        ):
            batch.drop_column(column)
