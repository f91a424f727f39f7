"""The database schema as SQLAlchemy Core tables (kept equal to ``migrations/versions``: a test
compares them). Times are epoch seconds; secrets are stored Fernet-encrypted (``*_enc``)."""

from __future__ import annotations

import sqlalchemy as sa

from access_desk.account_ids import ACCOUNT_ID_MAX

metadata = sa.MetaData()
_ID = sa.String(255)
_ACCOUNT = sa.String(ACCOUNT_ID_MAX)  # every account id column (account_ids.py)
_TIME: sa.Double[float] = sa.Double()
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

installations = sa.Table(
    "installations",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("uuid", _ID, nullable=False),
    sa.Column("cloud_id", _ID, nullable=False),
    sa.Column("api_base_url", sa.String(1024), nullable=False),
    sa.Column("system_token_enc", sa.Text(), nullable=True),
    sa.Column("system_token_expires_at", _TIME, nullable=True),
    sa.Column("webhook_secret_enc", sa.Text(), nullable=True),
    sa.Column("webhook_secret_prev_enc", sa.Text(), nullable=True),
    sa.Column("webhook_admin", _ACCOUNT, nullable=True),
    sa.Column("webhook_secret_rotated_at", _TIME, nullable=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    # platform duties (migration 0003): offline token context form, dormancy, personal data
    sa.Column("context_form", sa.String(16), nullable=True),
    sa.Column("offline_token_error", sa.Text(), nullable=True),
    sa.Column("offline_token_error_at", _TIME, nullable=True),
    sa.Column("last_scheduled_at", _TIME, nullable=True),
    sa.Column("dormant_since", _TIME, nullable=True),
    sa.Column("dormant_reason", sa.String(32), nullable=True),
    sa.Column("resumed_at", _TIME, nullable=True),
    sa.Column("duty_due_at", _TIME, nullable=True),
    sa.Column("duty_lease_owner", _ACCOUNT, nullable=True),
    sa.Column("duty_lease_until", _TIME, nullable=True),
    sa.Column("last_report_at", _TIME, nullable=True),
    sa.Column("report_error", sa.Text(), nullable=True),
    sa.Column("report_error_at", _TIME, nullable=True),
    sa.Column("housekept_at", _TIME, nullable=True),
    sa.Column("retention_until", _TIME, nullable=True),
    # uninstall and the reporting cycle (migration 0006): Forge's preUninstall trigger came, the
    # erasure of the installation's personal data (queued, leased, done), and the Cycle-Period
    # the personal data reporting API last asked for
    sa.Column("uninstalled_at", _TIME, nullable=True),
    sa.Column("erase_due_at", _TIME, nullable=True),
    sa.Column("erase_lease_owner", _ACCOUNT, nullable=True),
    sa.Column("erase_lease_until", _TIME, nullable=True),
    sa.Column("erased_at", _TIME, nullable=True),
    sa.Column("report_cycle_seconds", _TIME, nullable=True),
    sa.UniqueConstraint("uuid", name="uq_installations_uuid"),
    # migration 0011: what the worker polls for and sweeps, found without reading every row
    sa.Index("ix_installations_dormant_since", "dormant_since"),
    sa.Index("ix_installations_duty_due_at", "duty_due_at"),
    sa.Index("ix_installations_erase_due_at", "erase_due_at"),
    sa.Index("ix_installations_last_scheduled_at", "last_scheduled_at"),
)
offline_tokens = sa.Table(
    "offline_tokens",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("account_id", _ACCOUNT, primary_key=True),
    sa.Column("token_enc", sa.Text(), nullable=False),
    sa.Column("expires_at", _TIME, nullable=False),
)
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("installation_id", _ID, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("dry_run", sa.Boolean(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("created_by", _ACCOUNT, nullable=True),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
    sa.Column("pending", sa.Integer(), nullable=False),
    sa.Column("invited", sa.Integer(), nullable=False),
    sa.Column("already_has_access", sa.Integer(), nullable=False),
    sa.Column("invalid", sa.Integer(), nullable=False),
    sa.Column("failed", sa.Integer(), nullable=False),
    sa.Column("lease_owner", _ACCOUNT, nullable=True),
    sa.Column("lease_until", _TIME, nullable=True),
    sa.Column("not_before", _TIME, nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    # cancelJob: when and by whom; the job ends when its lease holder lets go (jobs.py)
    sa.Column("cancel_requested_at", _TIME, nullable=True),
    sa.Column("cancelled_by", _ACCOUNT, nullable=True),
    # invitation follow-ups: the next one due (None: no more), rounds done, the latest result
    sa.Column("follow_up_at", _TIME, nullable=True),
    sa.Column("follow_up_round", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("follow_up_checked_at", _TIME, nullable=True),
    sa.Column("follow_up_joined", sa.Integer(), nullable=True),
    # migration 0009: items cancelled before they started, items checked so far, the one job that
    # retried this one's failed and cancelled items, and why a waiting job waits (with not_before)
    sa.Column("cancelled", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("checked", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("retried_as", sa.String(64), nullable=True),
    sa.Column("wait_reason", sa.String(32), nullable=True),
    sa.Index("ix_jobs_installation_created", "installation_id", "created_at", "id"),
    sa.Index("ix_jobs_state_created", "state", "created_at"),
    sa.Index("ix_jobs_follow_up_at", "follow_up_at"),
    sa.Index("ix_jobs_state_installation", "state", "installation_id"),  # 0011: claims' turns
)
job_items = sa.Table(
    "job_items",
    metadata,
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
    sa.Column("joined", sa.Boolean(), nullable=True),  # an invitee seen with access by a follow-up
    sa.Column("follow_up_round", sa.Integer(), nullable=False, server_default="0"),  # last checked
    # an invite in flight: who claimed the item and until when (store.queue.claim_items)
    sa.Column("claim_owner", sa.String(64), nullable=True),
    sa.Column("claim_until", _TIME, nullable=True),
    sa.Index("uq_job_items_email", "job_id", "email", unique=True),
    sa.Index("ix_job_items_pending", "job_id", "outcome", "checked", "position"),
)
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("installation_id", _ID, nullable=False),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("actor", _ACCOUNT, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("subjects", sa.JSON(), nullable=False),
    sa.Column("outcome", sa.JSON(), nullable=False),
    sa.Index("ix_audit_installation_id", "installation_id", "id"),
    sa.Index("ix_audit_installation_action", "installation_id", "action", "id"),
    sa.Index("ix_audit_installation_actor", "installation_id", "actor", "id"),
    sa.Index("ix_audit_installation_at", "installation_id", "at"),
    sa.Index("ix_audit_installation_source", "installation_id", "source", "id"),
)
# Each audit entry's subjects, ASCII-lower-cased, for listAudit's ``subject`` filter: every address
# the entry is about (all of a job's items, not only the first 100 its ``subjects`` show); an
# entry's rows go with it (and must go when its subjects are redacted).
audit_subjects = sa.Table(
    "audit_subjects",
    metadata,
    sa.Column(
        "audit_id",
        _BIGID,
        sa.ForeignKey("audit.id", ondelete="CASCADE", name="fk_audit_subjects_audit"),
        primary_key=True,
    ),
    sa.Column("subject", sa.String(512), primary_key=True),
    sa.Column("installation_id", _ID, nullable=False),
    sa.Index("ix_audit_subjects_lookup", "installation_id", "subject", "audit_id"),
)
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("webhook_id", _ID, primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("received_at", _TIME, nullable=False),
    sa.Column("replayed_at", _TIME, nullable=True),  # the latest repeat of this webhook-id
    sa.Column("replays", sa.Integer(), nullable=False, server_default="0"),
    sa.Index("ix_webhook_deliveries_received", "installation_id", "received_at"),
    sa.Index("ix_webhook_deliveries_replayed", "installation_id", "replayed_at"),
    sa.Index("ix_webhook_deliveries_job", "installation_id", "job_id"),
)
# Deliveries refused (bad signature, stale timestamp, ...) of known installations, the last few
# per installation (``store.deliveries``): when and why, and the sender's webhook-id; never the
# body or the signature.
webhook_refusals = sa.Table(
    "webhook_refusals",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("installation_id", _ID, nullable=False),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("webhook_id", sa.String(64), nullable=True),
    sa.Index("ix_webhook_refusals_installation", "installation_id", "id"),
)
# the quota ledger (migration 0004, rebuilt by 0008): Confluence's points pools, holds, turns,
# the lookup cache; who spent what this window, the learned costs, the admin check record (0008)
quota_pools = sa.Table(
    "quota_pools",
    metadata,
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("scope", sa.String(8), nullable=True),
    sa.Column("policy", sa.String(128), nullable=True),
    sa.Column("limit", sa.Integer(), nullable=True),
    sa.Column("window", _TIME, nullable=True),
    sa.Column("window_end", _TIME, nullable=True),
    sa.Column("window_id", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("reported", sa.Integer(), nullable=True),
    sa.Column("spent", _TIME, nullable=False, server_default="0"),
    sa.Column("pending", _TIME, nullable=False, server_default="0"),
    sa.Column("without_r", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("near_limit", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("held_until", _TIME, nullable=False, server_default="0"),
    sa.Column("since_op", sa.String(32), nullable=True),
    sa.Column("since_requests", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("since_objects", sa.Integer(), nullable=False, server_default="0"),
    # what was answered this window, per operation (JSON), and the spend's worth (0010)
    sa.Column("window_counts", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("spend_scale", _TIME, nullable=False, server_default="1"),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
)
quota_spend = sa.Table(
    "quota_spend",
    metadata,
    sa.Column("pool", sa.String(1024), primary_key=True),
    sa.Column("window_id", sa.Integer(), primary_key=True),
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("account_id", _ACCOUNT, primary_key=True),  # "": the installation as a whole
    sa.Column("points", _TIME, nullable=False),
    sa.Column("spent_at", _TIME, nullable=False, server_default="0"),  # the last addition
)
quota_costs = sa.Table(
    "quota_costs",
    metadata,
    sa.Column("operation", sa.String(32), primary_key=True),
    sa.Column("samples", sa.Integer(), nullable=False),
    sa.Column("kk", _TIME, nullable=False),
    sa.Column("kx", _TIME, nullable=False),
    sa.Column("xx", _TIME, nullable=False),
    sa.Column("kd", _TIME, nullable=False),
    sa.Column("xd", _TIME, nullable=False),
    sa.Column("cap", _TIME, nullable=True),  # per object, learnt from silence (0010)
)
admin_checks = sa.Table(
    "admin_checks",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("account_id", _ACCOUNT, primary_key=True),
    sa.Column("is_admin", sa.Boolean(), nullable=True),  # None: no answer yet
    sa.Column("checked_at", _TIME, nullable=True),
    sa.Column("operations", sa.String(1024), nullable=True),  # what Confluence reported
    sa.Column("checking_until", _TIME, nullable=True),  # someone is asking Confluence until then
)
quota_turns = sa.Table(
    "quota_turns",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("served_at", _TIME, nullable=False),
    # migration 0012: from when the installation has job work (None: none; store.turns), and the
    # installations with work in turn, for the background worker's claim
    sa.Column("work_at", _TIME, nullable=True),
    sa.Index(
        "ix_quota_turns_work",
        "served_at",
        "installation_id",
        postgresql_where=sa.text("work_at IS NOT NULL"),
        sqlite_where=sa.text("work_at IS NOT NULL"),
    ),
)
lookup_cache = sa.Table(
    "lookup_cache",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("caller", _ACCOUNT, primary_key=True),
    sa.Column("account_id", _ACCOUNT, primary_key=True),
    sa.Column("user", sa.JSON(), nullable=True),
    sa.Column("cached_at", _TIME, nullable=False),
    sa.Index("ix_lookup_cache_cached_at", "cached_at"),
    sa.Index("ix_lookup_cache_account", "installation_id", "account_id"),
    sa.Index("ix_lookup_cache_caller_fresh", "installation_id", "caller", "cached_at"),  # 0011
)
# Forge's signing keys (migration 0006): the last good JWKS of each key URL and when it was fetched,
# shared by every server process and instance (keys.KeySet); not tenant data.
signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("url", sa.String(1024), primary_key=True),
    sa.Column("jwks", sa.Text(), nullable=False),
    sa.Column("fetched_at", _TIME, nullable=False),
)
# ids Confluence did not find, per caller, without a user object (migration 0007; store.lookups)
lookup_misses = sa.Table(
    "lookup_misses",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("caller", _ACCOUNT, primary_key=True),
    sa.Column("account_id", _ACCOUNT, primary_key=True),
    sa.Column("cached_at", _TIME, nullable=False),
    sa.Index("ix_lookup_misses_cached_at", "cached_at"),
    sa.Index("ix_lookup_misses_account", "installation_id", "account_id"),
)
# background calls Confluence refused, per acting account (migration 0007; dormancy)
account_refusals = sa.Table(
    "account_refusals",
    metadata,
    sa.Column("installation_id", _ID, primary_key=True),
    sa.Column("account_id", _ACCOUNT, primary_key=True),
    sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("first_refusal_at", _TIME, nullable=True),
    sa.Column("last_call_at", _TIME, nullable=False),
    sa.Column("paused_since", _TIME, nullable=True),
    sa.Index("ix_account_refusals_paused_since", "paused_since"),  # 0011
)
