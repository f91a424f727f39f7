"""How many resolver calls one server process runs at once (``call_limits.Limits``).

``InFlight.slot(installation, account, slow=..., admin=...)`` holds a slot for the duration of a
call, or refuses it at once with ``Busy`` (429 ``busy``, ``Retry-After: 1``) instead of letting
it wait for a thread:

- of the installation's ``per_installation`` slots, ``reserve`` are kept: only a short call
  (not ``slow``) of a caller not known to be a non-administrator (``admin`` is not False) may take
  them, so an installation's admins are served while its ordinary slots are full;
- a user holds at most ``per_user`` slots;
- ``slow`` calls (``SLOW_RESOLVERS``: they wait on many Confluence requests, up to the call's
  deadline) hold at most ``slow`` threads of the process in all, so a few installations' slow
  calls never take the threads every other installation's short calls need.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from access_desk.call_limits import Limits
from handlers.errors import Busy

# Resolvers that fan out to Confluence and may wait on it up to the call's deadline.
SLOW_RESOLVERS = frozenset({"lookupUsers", "checkAccess", "diagnose"})


class InFlight:
    """Counts of calls in flight (see the module docstring); thread-safe."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits.derive(8)
        self._lock = threading.Lock()
        self._installations: Counter[str] = Counter()
        self._users: Counter[tuple[str, str]] = Counter()
        self._slow = 0

    @contextmanager
    def slot(
        self,
        installation_id: str,
        account_id: str | None,
        *,
        slow: bool = False,
        admin: bool | None = None,
    ) -> Iterator[None]:
        """Hold a slot of the installation (and of the user, if any; and of the process's slow
        calls, if ``slow``) or raise ``Busy``. ``admin``: whether the caller is known to be an
        administrator (None: not known)."""
        limits = self.limits
        user = (installation_id, account_id) if account_id is not None else None
        with self._lock:
            held = self._installations[installation_id]
            reserved = not slow and admin is not False
            room = limits.per_installation - (0 if reserved else limits.reserve)
            if held >= room:
                raise Busy("Too many calls for this site are in progress; try again in a moment.")
            if user is not None and self._users[user] >= limits.per_user:
                raise Busy("You have too many calls in progress; try again in a moment.")
            if slow and self._slow >= limits.slow:
                raise Busy("The server is busy with slow calls; try again in a moment.")
            self._installations[installation_id] += 1
            if user is not None:
                self._users[user] += 1
            self._slow += slow
        try:
            yield
        finally:
            with self._lock:
                self._installations[installation_id] -= 1
                if self._installations[installation_id] <= 0:
                    del self._installations[installation_id]
                if user is not None:
                    self._users[user] -= 1
                    if self._users[user] <= 0:
                        del self._users[user]
                self._slow -= slow

    def in_flight(self, installation_id: str) -> int:
        with self._lock:
            return self._installations[installation_id]
