"""Learning from Confluence's silence (no ``r``: under about 80% of the pool is used).

- ``quota.pools.window_counts``: the requests answered this window per operation (JSON), and
  ``quota.pools.spend_scale``: what the fair-share spend recorded this window is worth in points;
- ``quota_costs.cap``: the most one object of an operation can cost, as silence showed it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    with op.batch_alter_table("quota_pools") as batch:
        batch.add_column(sa.Column("window_counts", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("spend_scale", TIME, nullable=False, server_default="1"))
    with op.batch_alter_table("quota_costs") as batch:
        batch.add_column(sa.Column("cap", TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quota_costs") as batch:
        batch.drop_column("cap")
    with op.batch_alter_table("quota_pools") as batch:
        batch.drop_column("spend_scale")
        batch.drop_column("window_counts")
