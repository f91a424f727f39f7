"""Initial schema: installations, offline tokens, jobs and their items, audit, webhook deliveries,
shared rate-limit holds.

Revision ID: 0001
Revises:
Create Date: 2025-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(255)
ACCOUNT = sa.String(128)
TIME: sa.Double[float] = sa.Double()
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "installations",
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("uuid", ID, nullable=False),
        sa.Column("cloud_id", ID, nullable=False),
        sa.Column("api_base_url", sa.String(1024), nullable=False),
        sa.Column("system_token_enc", sa.Text(), nullable=True),
        sa.Column("system_token_expires_at", TIME, nullable=True),
        sa.Column("webhook_secret_enc", sa.Text(), nullable=True),
        sa.Column("webhook_secret_prev_enc", sa.Text(), nullable=True),
        sa.Column("webhook_admin", ACCOUNT, nullable=True),
        sa.Column("webhook_secret_rotated_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("uuid", name="uq_installations_uuid"),
    )
    op.create_table(
        "offline_tokens",
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("account_id", ACCOUNT, primary_key=True),
        sa.Column("token_enc", sa.Text(), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("installation_id", ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ACCOUNT, nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("invited", sa.Integer(), nullable=False),
        sa.Column("already_has_access", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("lease_owner", ACCOUNT, nullable=True),
        sa.Column("lease_until", TIME, nullable=True),
        sa.Column("not_before", TIME, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_jobs_installation_created", "jobs", ["installation_id", "created_at", "id"])
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])
    op.create_table(
        "job_items",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.id", ondelete="CASCADE", name="fk_job_items_job"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_job_items_email", "job_items", ["job_id", "email"])
    op.create_index(
        "ix_job_items_pending", "job_items", ["job_id", "outcome", "checked", "position"]
    )
    op.create_table(
        "audit",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("installation_id", ID, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", ACCOUNT, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_installation_id", "audit", ["installation_id", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("webhook_id", ID, primary_key=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
    )
    op.create_table(
        "rate_holds",
        sa.Column("key", ID, primary_key=True),
        sa.Column("until", TIME, nullable=False),
        sa.Column("near_limit", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "rate_holds",
        "webhook_deliveries",
        "audit",
        "job_items",
        "jobs",
        "offline_tokens",
        "installations",
    ):
        op.drop_table(table)
