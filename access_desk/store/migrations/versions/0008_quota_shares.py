"""The quota as Confluence really reports it, and shared fairly between customers.

- ``quota.pools`` is rebuilt: a window (``window``, ``window_end``, ``window_id``), the last ``r``
  said (``reported``), this app's estimated spend since (``spent``) and in flight (``pending``),
  whether Confluence's latest entry came without ``r`` (``without_r``), what was answered since the
  last ``r`` (``since_*``, for learning costs) and a ``version`` for atomic changes. Holds in flight
  are kept; what was known of the pools is not (the next answer tells it again);
- ``quota_spend``: what each installation, and each of its users, spent in a pool's window;
- ``quota_costs``: the learned costs' least-squares sums, per operation;
- ``admin_checks``: the shared, short-lived record of "is this user a site admin".

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()
ID = sa.String(255)
ACCOUNT = sa.String(128)


def upgrade() -> None:
    conn = op.get_bind()
    holds = conn.execute(
        sa.text("SELECT key, held_until, updated_at FROM quota_pools WHERE held_until > 0")
    ).all()
    op.drop_table("quota_pools")
    pools = op.create_table(
        "quota_pools",
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("scope", sa.String(8), nullable=True),
        sa.Column("policy", sa.String(128), nullable=True),
        sa.Column("limit", sa.Integer(), nullable=True),
        sa.Column("window", TIME, nullable=True),
        sa.Column("window_end", TIME, nullable=True),
        sa.Column("window_id", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reported", sa.Integer(), nullable=True),
        sa.Column("spent", TIME, nullable=False, server_default="0"),
        sa.Column("pending", TIME, nullable=False, server_default="0"),
        sa.Column("without_r", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("near_limit", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("held_until", TIME, nullable=False, server_default="0"),
        sa.Column("since_op", sa.String(32), nullable=True),
        sa.Column("since_requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("since_objects", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    )
    if holds:
        op.bulk_insert(
            pools,
            [{"key": k, "held_until": h, "updated_at": u} for k, h, u in holds],
        )
    op.create_table(
        "quota_spend",
        sa.Column("pool", sa.String(1024), primary_key=True),
        sa.Column("window_id", sa.Integer(), primary_key=True),
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("account_id", ACCOUNT, primary_key=True),
        sa.Column("points", TIME, nullable=False),
        sa.Column("spent_at", TIME, nullable=False, server_default="0"),
    )
    op.create_table(
        "quota_costs",
        sa.Column("operation", sa.String(32), primary_key=True),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("kk", TIME, nullable=False),
        sa.Column("kx", TIME, nullable=False),
        sa.Column("xx", TIME, nullable=False),
        sa.Column("kd", TIME, nullable=False),
        sa.Column("xd", TIME, nullable=False),
    )
    op.create_table(
        "admin_checks",
        sa.Column("installation_id", ID, primary_key=True),
        sa.Column("account_id", ACCOUNT, primary_key=True),
        sa.Column("is_admin", sa.Boolean(), nullable=True),
        sa.Column("checked_at", TIME, nullable=True),
        sa.Column("operations", sa.String(1024), nullable=True),
        sa.Column("checking_until", TIME, nullable=True),
    )


def downgrade() -> None:
    for table in ("admin_checks", "quota_costs", "quota_spend", "quota_pools"):
        op.drop_table(table)
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
