"""Platform duties on installations: the offline token context form that worked and the last
exchange error, dormancy (last scheduled trigger, consecutive refusals, dormant since), and the
personal data cycle (queued duty with its lease, last report, retention watermark).

Existing installations count their last refresh (``updated_at``) as their last scheduled trigger, so
upgrading does not make every installation look quiet for 72 hours.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()
COLUMNS = (
    ("context_form", sa.String(16)),
    ("offline_token_error", sa.Text()),
    ("offline_token_error_at", TIME),
    ("last_scheduled_at", TIME),
    ("dormant_since", TIME),
    ("dormant_reason", sa.String(32)),
    ("resumed_at", TIME),
    ("first_refusal_at", TIME),
    ("duty_due_at", TIME),
    ("duty_lease_owner", sa.String(128)),
    ("duty_lease_until", TIME),
    ("last_report_at", TIME),
    ("report_error", sa.Text()),
    ("report_error_at", TIME),
    ("housekept_at", TIME),
    ("retention_until", TIME),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("installations", sa.Column(name, kind, nullable=True))
    op.add_column(
        "installations",
        sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute("UPDATE installations SET last_scheduled_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        for name in ("refusals", *(name for name, _ in reversed(COLUMNS))):
            batch.drop_column(name)
