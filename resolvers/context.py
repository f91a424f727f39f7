"""What a resolver gets: the verified caller, its tokens and the services to act with.

Errors raised by resolvers (mapped to HTTP in ``handlers/errors.py``)::

    ResolverError
     +-- BadInput        400 bad_input (``details`` names each bad field or index)
     +-- TooMany         413 too_many
     +-- MissingToken    400 missing_user_token (Forge sent no user token)
     +-- NotAllowed      403 not_allowed (not a Confluence administrator, or it could not be confirmed,
                         or the user token is not the caller's)
     +-- NotFound        404 not_found (absent, or another installation's)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atlassian import OfflineTokens
from auth import Invocation
from confluence import Client, ConfluenceError, UpstreamError
from jobs import JobRunner
from store import Store


class ResolverError(Exception):
    details: Any = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class BadInput(ResolverError):
    pass


class TooMany(ResolverError):
    pass


class MissingToken(ResolverError):
    pass


class NotAllowed(ResolverError):
    pass


class NotFound(ResolverError):
    pass


class AdminCache:
    """Remembers, per (installation, account), whether the user is a Confluence administrator.

    A confirmed answer is used for ``ttl`` seconds; then the check is made again. A failed check is
    not cached and counts as "no" (fail closed), with one exception: while a rate-limit hold keeps
    the check from being made (``rate_limited``), a "yes" confirmed at most ``held_ttl`` seconds
    ago (1 hour) still stands, so a hold does not lock administrators out. A "no" is never
    extended. The answer must be the FIT principal's: when Confluence says the user token belongs
    to another account (or to none it names), ``NotAllowed`` is raised and nothing is cached.
    """

    def __init__(
        self,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        held_ttl: float = 3600.0,
    ) -> None:
        self._ttl = ttl
        self._held_ttl = max(ttl, held_ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[bool, float]] = {}  # -> (answer, confirmed at)
        self._checking: dict[tuple[str, str], threading.Lock] = {}

    def is_admin(self, installation_id: str, account_id: str, client: Client) -> bool:
        key = (installation_id, account_id)
        answer = self._cached(key, self._ttl)
        if answer is not None:
            return answer
        with self._lock:
            checking = self._checking.setdefault(key, threading.Lock())
        with checking:  # concurrent first calls for one user make one upstream check
            answer = self._cached(key, self._ttl)
            if answer is not None:
                return answer
            try:
                status = client.admin_status()
            except UpstreamError as exc:
                return exc.reason == "rate_limited" and self._cached(key, self._held_ttl) is True
            except ConfluenceError:
                return False
            if status.account_id != account_id:
                raise NotAllowed("The user token does not belong to the caller.")
            now = self._clock()
            with self._lock:
                if len(self._answers) > 10_000:
                    self._answers = {
                        k: v for k, v in self._answers.items() if v[1] + self._held_ttl > now
                    }
                    self._checking = {k: v for k, v in self._checking.items() if k in self._answers}
                self._answers[key] = (status.is_admin, now)
            return status.is_admin

    def _cached(self, key: tuple[str, str], max_age: float) -> bool | None:
        """The answer confirmed less than ``max_age`` seconds ago, if any."""
        with self._lock:
            cached = self._answers.get(key)
        return cached[0] if cached is not None and self._clock() < cached[1] + max_age else None


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
    public_base_url: str
    budget_seconds: float
    diagnostics: Diagnostics | None = None
    lookup_cache_seconds: float = 0.0  # LOOKUP_CACHE_SECONDS (0: lookups are not cached)
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
        if self.account_id is None or self.user_client is None:
            return False
        return self.admins.is_admin(
            self.invocation.installation_id, self.account_id, self.user_client
        )

    def require_admin(self) -> None:
        if not self.is_admin():
            raise NotAllowed("Only Confluence administrators can do this.")
