"""Ready for a real install: Forge's signing keys shared in the store, uninstalls, and the personal
data reporting cycle Atlassian asks for.

- ``signing_keys``: the last good key set (JWKS) fetched from each key URL and when, shared by every
  server process and instance (``forge.keys.KeySet``);
- installations: ``uninstalled_at`` (Forge's preUninstall trigger came; nothing acts for it until
  an ``installed`` event), ``erase_due_at`` / ``erase_lease_owner`` / ``erase_lease_until`` (the
  erasure of its personal data, queued and leased like the personal data duty), ``erased_at``, and
  ``report_cycle_seconds`` (the ``Cycle-Period`` the personal data reporting API last answered).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()
COLUMNS = (
    ("uninstalled_at", TIME),
    ("erase_due_at", TIME),
    ("erase_lease_owner", sa.String(128)),
    ("erase_lease_until", TIME),
    ("erased_at", TIME),
    ("report_cycle_seconds", TIME),
)


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("url", sa.String(1024), primary_key=True),
        sa.Column("jwks", sa.Text(), nullable=False),
        sa.Column("fetched_at", TIME, nullable=False),
    )
    with op.batch_alter_table("installations") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
    op.drop_table("signing_keys")
