"""Indexes for a store at Marketplace scale (found by ``bench/scale.py`` on a year's data).

- lookup_cache ``(installation_id, caller, cached_at)``: counting a caller's fresh rows (the
  cache's bound per caller, on every lookup that writes) reads the index alone, not each row;
- installations ``dormant_since``: the background worker's claims and its fair-turn check skip
  dormant installations without reading every installation; the metrics' dormant count too;
- installations ``duty_due_at`` and ``erase_due_at``: the personal data duty and the erasure, which
  every worker polls for, find the due installations without reading every installation;
- installations ``last_scheduled_at``: the dormancy sweep finds the quiet installations without
  reading every installation;
- account_refusals ``paused_since``: the claims skip paused accounts' jobs without reading every
  acting account's refusal count;
- jobs ``(state, installation_id)``: the background worker's claim lists the installations with
  queued or running jobs from the index alone, then looks at those whose turn comes first.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-20
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_lookup_cache_caller_fresh", "lookup_cache", ["installation_id", "caller", "cached_at"]),
    ("ix_installations_dormant_since", "installations", ["dormant_since"]),
    ("ix_installations_duty_due_at", "installations", ["duty_due_at"]),
    ("ix_installations_erase_due_at", "installations", ["erase_due_at"]),
    ("ix_installations_last_scheduled_at", "installations", ["last_scheduled_at"]),
    ("ix_account_refusals_paused_since", "account_refusals", ["paused_since"]),
    ("ix_jobs_state_installation", "jobs", ["state", "installation_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
