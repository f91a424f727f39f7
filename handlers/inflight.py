"""How many resolver calls one server process runs at once, per installation and per user.

A gunicorn process has a fixed number of threads (``GUNICORN_THREADS``, 8) and a call holds one until
it ends, slow Confluence lookups included. ``InFlight.slot(installation, account)`` holds one of the
installation's ``per_installation`` slots and one of the user's ``per_user`` slots for the duration
of a call. When either is taken up the call is refused at once with ``Busy`` (429 ``busy``,
``Retry-After: 1``) instead of waiting for a thread, so one tenant's (or one user's) slow calls leave
the other threads to everyone else.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from handlers.errors import Busy


class InFlight:
    """Counts of calls in flight (see the module docstring); thread-safe."""

    def __init__(self, per_installation: int = 4, per_user: int = 3) -> None:
        if per_installation < 1 or per_user < 1:
            raise ValueError("the bounds must be at least 1")
        self._per_installation = per_installation
        self._per_user = per_user
        self._lock = threading.Lock()
        self._installations: Counter[str] = Counter()
        self._users: Counter[tuple[str, str]] = Counter()

    @contextmanager
    def slot(self, installation_id: str, account_id: str | None) -> Iterator[None]:
        """Hold a slot of the installation (and of the user, if any) or raise ``Busy``."""
        user = (installation_id, account_id) if account_id is not None else None
        with self._lock:
            if self._installations[installation_id] >= self._per_installation:
                raise Busy("Too many calls for this site are in progress; try again in a moment.")
            if user is not None and self._users[user] >= self._per_user:
                raise Busy("You have too many calls in progress; try again in a moment.")
            self._installations[installation_id] += 1
            if user is not None:
                self._users[user] += 1
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

    def in_flight(self, installation_id: str) -> int:
        with self._lock:
            return self._installations[installation_id]
