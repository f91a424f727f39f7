"""The quota ledger: Confluence's points pools (the app's and each site's) with their holds, when
each installation's job work last had a turn, and the lookup cache. ``rate_holds`` (per-site
``Retry-After`` holds and the near-limit flag) is replaced by ``quota.pools``; a hold in flight is
not carried over (it is at most an hour long, and the next 429 teaches it again).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()
ID = sa.String(255)
ACCOUNT = sa.String(128)


def upgrade() -> None:
    op.create_table(
        "quota_pools",
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("scope", sa.String(8), nullable=True),
        sa.Column("policy", sa.String(128), nullable=True),
        sa.Column("limit", sa.Integer(), nullable=True),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("reset_at", TIME, nullable=True),
        sa.Column("window", TIME, nullable=True),
        sa.Column("near_limit", sa.Boolean(), nullable=False),
        sa.Column("held_until", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "quota_turns",
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("served_at", TIME, nullable=False),
    )
    op.create_table(
        "lookup_cache",
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("caller", ACCOUNT, primary_key=True),
        sa.Column("account_id", ACCOUNT, primary_key=True),
        sa.Column("user", sa.JSON(), nullable=True),
        sa.Column("cached_at", TIME, nullable=False),
    )
    op.create_index("ix_lookup_cache_cached_at", "lookup_cache", ["cached_at"])
    op.create_index("ix_lookup_cache_account", "lookup_cache", ["installation_id", "account_id"])
    op.drop_table("rate_holds")


def downgrade() -> None:
    op.create_table(
        "rate_holds",
        sa.Column("key", ID, primary_key=True),
        sa.Column("until", TIME, nullable=False),
        sa.Column("near_limit", sa.Boolean(), nullable=False),
    )
    for table in ("lookup_cache", "quota_turns", "quota_pools"):
        op.drop_table(table)
