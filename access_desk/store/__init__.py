"""Store: everything Access Desk keeps, in SQLite (default) or PostgreSQL, through SQLAlchemy Core.

``Store(url, secret_key)`` is one object composed of one mixin per aggregate, all sharing one
engine, one clock and one Fernet key (``store.base``):

- ``store.installations``: installations, system tokens, webhook secrets, offline user tokens;
- ``store.jobs``: jobs and their items as records (create, read, list, count);
- ``store.leases``: claiming (fair turns, dormant installations skipped), renewing, releasing;
- ``store.queue``: the worker's lease-guarded writes (item outcomes, finishing a job);
- ``store.cancels``: cancelling a job (at once, or when its holder releases it);
- ``store.followups``: invitation follow-ups of finished invite jobs (under the same leases);
- ``store.deliveries``: webhook deliveries and the jobs they make;
- ``store.audit``: the audit log;
- ``store.quota``: the quota ledger (Confluence's points pools, holds, spend per window, learned
  costs);
- ``store.lookups``: the lookup cache (user objects per installation and caller);
- ``store.admin_checks``: the shared record of the admin check (is a user a site admin);
- ``store.health``: offline token context form and last error, dormancy, ``installation_health``;
- ``store.personal_data_duty``: the personal data duty: queued by scheduled triggers, leased by a worker;
- ``store.personal_data``: the account ids to report, erasing closed accounts, retention;
- ``store.uninstalls``: Forge's preUninstall trigger: an installation stops, its erasure is queued;
- ``store.keys``: Forge's signing keys (the last good JWKS), shared by every process (not tenant data);
- ``store.paging``: the cursors of the paged lists; ``store.errors``: the errors below.

``migrate()`` brings the schema to Alembic's head (``migrations/``), serialized between processes:
a ``pg_advisory_lock`` on PostgreSQL, an exclusive ``flock`` on ``<database>.migrate.lock`` on
SQLite. SQLite connections run in WAL mode with a busy timeout and foreign keys on.

Tenancy: every method that reads or writes tenant data takes ``installation_id`` first and scopes
every query by it; another installation's job, audit entry or secret reads as ``None``/empty.
Secrets (system tokens, offline user tokens, webhook secrets) are stored encrypted with
``Fernet(secret_key)`` and kept out of every ``repr``; a value that no longer decrypts (the key
changed) reads as absent.

Jobs are claimed with leases: ``claim_job`` atomically takes one runnable job (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, a conditional ``UPDATE`` checked by rowcount on SQLite), and writes to a job
(``record_outcomes``, ``finish_job``, ``renew_lease``) happen only while the caller's lease holds.
Item outcomes never go back from final to ``pending``.

Errors::

    StoreError
     +-- BadCursor             a ``before`` cursor that this store did not hand out
     +-- UnknownInstallation   ``set_webhook_secret`` for an installation never stored

Times are epoch seconds from ``clock`` (``time.time``); ``to_json`` renders ISO 8601 UTC.
"""

from __future__ import annotations

from access_desk.store.admin_checks import AdminChecks
from access_desk.store.audit import Audit
from access_desk.store.cancels import Cancels
from access_desk.store.deliveries import Deliveries
from access_desk.store.errors import BadCursor, StoreError, UnknownInstallation
from access_desk.store.followups import FollowUps
from access_desk.store.health import PlatformHealth
from access_desk.store.installations import Installations, installation_uuid
from access_desk.store.jobs import FINAL_OUTCOMES, OUTCOMES
from access_desk.store.keys import SigningKeys
from access_desk.store.leases import Leases
from access_desk.store.lookups import LookupCache
from access_desk.store.personal_data import ERASED, NON_ACCOUNTS, StoredPersonalData
from access_desk.store.personal_data_duty import PrivacyDuty
from access_desk.store.queue import Queue
from access_desk.store.quota import StoredQuota
from access_desk.store.uninstalls import Uninstalls

__all__ = [
    "FINAL_OUTCOMES",
    "OUTCOMES",
    "ERASED",
    "NON_ACCOUNTS",
    "BadCursor",
    "Store",
    "StoreError",
    "UnknownInstallation",
    "installation_uuid",
]


class Store(
    Uninstalls,  # first: it builds on Cancels and StoredPersonalData
    Installations,
    Deliveries,
    Leases,
    Queue,
    Cancels,
    FollowUps,
    Audit,
    StoredQuota,
    LookupCache,
    AdminChecks,
    PlatformHealth,
    PrivacyDuty,
    StoredPersonalData,
    SigningKeys,
):
    """All persistent state; thread-safe (one engine, a connection per call). See the module doc."""
