"""Hardening, round three (issue 16):

- ``lookup_misses``: the ids Confluence did not find, per (installation, caller), without a user
  object (they were rows of ``lookup_cache`` with ``user`` null: those are dropped, it is a cache);
- job_items: ``claim_owner`` and ``claim_until``: an item is claimed before its invite is sent, so
  two workers never send it both (a lost lease included);
- ``account_refusals``: background calls Confluence refused per acting account (dormancy counts
  per account; an account's refusals pause only the jobs acting as it), replacing the
  installation's ``refusals`` and ``first_refusal_at``;
- retention's watermark is reset: its next run ages out the account ids of what it already redacted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.String(255)
_ACCOUNT = sa.String(128)  # account_ids.ACCOUNT_ID_MAX
_TIME: sa.Double[float] = sa.Double()


def upgrade() -> None:
    op.create_table(
        "lookup_misses",
        sa.Column("installation_id", _ID, primary_key=True),
        sa.Column("caller", _ACCOUNT, primary_key=True),
        sa.Column("account_id", _ACCOUNT, primary_key=True),
        sa.Column("cached_at", _TIME, nullable=False),
    )
    op.create_index("ix_lookup_misses_cached_at", "lookup_misses", ["cached_at"])
    op.create_index("ix_lookup_misses_account", "lookup_misses", ["installation_id", "account_id"])
    lookup_cache = sa.table("lookup_cache", sa.column("user", sa.JSON()))
    op.execute(sa.delete(lookup_cache).where(sa.cast(lookup_cache.c.user, sa.Text) == "null"))
    op.execute(sa.delete(lookup_cache).where(lookup_cache.c.user.is_(None)))
    with op.batch_alter_table("job_items") as batch:
        batch.add_column(sa.Column("claim_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claim_until", _TIME, nullable=True))
    op.create_table(
        "account_refusals",
        sa.Column("installation_id", _ID, primary_key=True),
        sa.Column("account_id", _ACCOUNT, primary_key=True),
        sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_refusal_at", _TIME, nullable=True),
        sa.Column("last_call_at", _TIME, nullable=False),
        sa.Column("paused_since", _TIME, nullable=True),
    )
    with op.batch_alter_table("installations") as batch:
        batch.drop_column("first_refusal_at")
        batch.drop_column("refusals")
    # retention now also ages out account ids: let its next run go over everything once more
    installations = sa.table("installations", sa.column("retention_until", _TIME))
    op.execute(sa.update(installations).values(retention_until=None))


def downgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("first_refusal_at", _TIME, nullable=True))
    op.drop_table("account_refusals")
    with op.batch_alter_table("job_items") as batch:
        batch.drop_column("claim_until")
        batch.drop_column("claim_owner")
    op.drop_index("ix_lookup_misses_account", table_name="lookup_misses")
    op.drop_index("ix_lookup_misses_cached_at", table_name="lookup_misses")
    op.drop_table("lookup_misses")
