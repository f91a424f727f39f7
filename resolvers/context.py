"""What a resolver gets: the verified caller, its tokens and the services to act with.

The errors resolvers raise are in ``resolvers.errors`` (imported here too); whether the caller is a
site administrator is ``resolvers.admins``' shared record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from access_desk.confluence.client import Client
from access_desk.forge.invocation import Invocation
from access_desk.forge.offline_tokens import OfflineTokens
from access_desk.jobs.runner import JobRunner
from access_desk.quota.ledger import Ledger
from access_desk.store import Store
from access_desk.store.batched_lookups import BatchedLookups
from resolvers.admins import AdminCache
from resolvers.errors import BadInput, MissingToken, NotAllowed, NotFound, ResolverError, TooMany

__all__ = [
    "AdminCache",
    "BadInput",
    "Context",
    "Diagnostics",
    "MissingToken",
    "NotAllowed",
    "NotFound",
    "ResolverError",
    "TooMany",
]


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """What ``diagnose`` needs besides a resolver's usual services (built by the HTTP edge for
    that call only): the tokens this call carried, an offline token minter, a Confluence client
    for another token, the personal data report interval, and the wall clock."""

    user_token: str | None = field(default=None, repr=False)
    system_token: str | None = field(default=None, repr=False)
    received_at: float = 0.0
    offline_tokens: OfflineTokens | None = None
    client_for: Callable[[str], Client] | None = None
    report_days: float = 7.0
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class Context:
    """One verified call: the invocation, the user's Confluence client, and shared services."""

    invocation: Invocation
    user_client: Client | None
    admins: AdminCache
    store: Store
    runner: JobRunner
    ledger: Ledger  # the process's quota ledger (its own calls' changes seen at once)
    lookups: BatchedLookups  # the lookup cache (its writes in batches, seen here at once)
    public_base_url: str
    budget_seconds: float
    diagnostics: Diagnostics | None = None
    lookup_cache_seconds: float = 0.0  # LOOKUP_CACHE_SECONDS (0: lookups are not cached)
    # the admin check's answer the edge read from the shared record for this call (fresh within
    # ADMIN_CACHE_SECONDS; None: not known), so the call does not read the record again
    admin_known: bool | None = None
    # sendTestWebhook only: (path, body, headers) -> (status, JSON answer) through this server's
    # own routes, in process (never a network request, so never another host)
    deliver: Callable[[str, bytes, dict[str, str]], tuple[int, Any]] | None = None

    @property
    def account_id(self) -> str | None:
        return self.invocation.principal

    def confluence(self) -> Client:
        """The Confluence client acting as the calling user."""
        if self.user_client is None:
            raise MissingToken("The call carried no user token (x-forge-oauth-user).")
        return self.user_client

    def is_admin(self) -> bool:
        """Whether the caller is a site administrator: the answer the edge already read for this
        call when it had a fresh one, else the shared admin check (``AdminCache.is_admin``)."""
        if self.account_id is None or self.user_client is None:
            return False
        if self.admin_known is not None:
            return self.admin_known
        return self.admins.is_admin(
            self.invocation.installation_id, self.account_id, self.user_client
        )

    def require_admin(self) -> None:
        if not self.is_admin():
            raise NotAllowed("Only Confluence administrators can do this.")
