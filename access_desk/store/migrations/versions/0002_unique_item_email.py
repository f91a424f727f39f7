"""Make (job_id, email) unique on job items, so recording a chunk finds each item by that index
instead of scanning the job's pending items (quadratic in the job's size on SQLite).

Jobs never hold one email twice (emails are de-duplicated case-insensitively before a job is made).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_job_items_email", table_name="job_items")
    op.create_index("uq_job_items_email", "job_items", ["job_id", "email"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_job_items_email", table_name="job_items")
    op.create_index("ix_job_items_email", "job_items", ["job_id", "email"])
