"""The installations with job work, kept with their turns (found by ``bench/scale.py``: the
background worker's claim listed them from every queued job, so a claim's cost grew with the
jobs queued; on a year's store its p99 was 11-15 ms).

- ``quota_turns.work_at``: from when the installation has job work (a queued or running job: when
  it was made; else its next follow-up; None: none);
- ``ix_quota_turns_work``: the installations with work, in turn (partial: ``work_at`` set).

Existing work is carried over: an installation with a queued or running job or a follow-up and
no turn yet gets one (served at 0: never served).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()
WITH_WORK = "work_at IS NOT NULL"
# a job's work: made and not finished, or a follow-up to come
JOB_WORK = "(state IN ('queued', 'running') OR follow_up_at IS NOT NULL)"


def upgrade() -> None:
    with op.batch_alter_table("quota_turns") as batch:
        batch.add_column(sa.Column("work_at", TIME, nullable=True))
    op.create_index(
        "ix_quota_turns_work",
        "quota_turns",
        ["served_at", "installation_id"],
        postgresql_where=sa.text(WITH_WORK),
        sqlite_where=sa.text(WITH_WORK),
    )
    op.execute(
        f"""
        INSERT INTO quota_turns (installation_id, served_at)
        SELECT DISTINCT installation_id, 0 FROM jobs
        WHERE {JOB_WORK}
          AND installation_id NOT IN (SELECT installation_id FROM quota_turns)
        """
    )
    op.execute(
        f"""
        UPDATE quota_turns SET work_at = (
            SELECT min(CASE WHEN state IN ('queued', 'running') THEN created_at
                            ELSE follow_up_at END)
            FROM jobs
            WHERE jobs.installation_id = quota_turns.installation_id AND {JOB_WORK}
        )
        """
    )


def downgrade() -> None:
    op.drop_index("ix_quota_turns_work", table_name="quota_turns")
    with op.batch_alter_table("quota_turns") as batch:
        batch.drop_column("work_at")
