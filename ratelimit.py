"""Rate limiting: how Access Desk spends Confluence's quota as one careful client.

Everything about *when* a call to Confluence may go lives here; ``confluence.Client`` asks a
``Gate`` before each request and tells it what each answer said. Today that is:

- ``Gate``: the protocol the client uses, keyed by site (the ``api_base_url``): how long calls
  must still wait, a ``Retry-After`` hold to honour, and the ``X-RateLimit-NearLimit`` flag (while
  it is set new chunks run one at a time);
- ``MemoryGate``: an in-process gate (one process; tests and single clients);
- ``StoreGate``: the gate shared by every worker and instance, kept in the store's quota ledger
  (``store.quota``) through its public API only, with a short in-process read cache;
- ``retry_after_seconds``: the ``Retry-After`` header as seconds, capped at ``MAX_RETRY_AFTER``.

Holds only ever extend, never shorten. This module is also the place for the rest of the quota
rules as they come: the points ledger fed by the rate-limit headers, pacing of job steps, the
reserve kept for panel calls, and fair turns across installations; the store keeps their state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from store import Store

MAX_RETRY_AFTER = 3600.0  # seconds; longer Retry-After answers are taken as one hour


class Gate(Protocol):
    """Rate-limit state shared by everything that calls one site (key = the api_base_url)."""

    def wait_seconds(self, key: str) -> float:
        """How long calls for ``key`` must still wait (0 = go)."""
        ...

    def hold(self, key: str, seconds: float) -> None:
        """A 429/503 ``Retry-After`` told us to wait this long."""
        ...

    def near_limit(self, key: str, near: bool) -> None:
        """``X-RateLimit-NearLimit: true`` seen (True) or a normal answer (False)."""
        ...

    def is_near_limit(self, key: str) -> bool:
        """Whether new chunks for ``key`` should run one at a time."""
        ...


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (None when absent or not a number; HTTP dates are not used),
    at most ``MAX_RETRY_AFTER``: one wild header must not hold a site for ever."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds:  # absent or NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


class MemoryGate:
    """A thread-safe in-process ``Gate``; holds only ever extend, never shorten."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        self._near: dict[str, bool] = {}

    def wait_seconds(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._until.get(key, 0.0) - self._clock())

    def hold(self, key: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            self._until[key] = max(until, self._until.get(key, until))

    def near_limit(self, key: str, near: bool) -> None:
        with self._lock:
            self._near[key] = near

    def is_near_limit(self, key: str) -> bool:
        with self._lock:
            return self._near.get(key, False)


class StoreGate:
    """``Gate`` backed by the store, so holds are shared by every worker and instance.

    Reads are cached in-process for ``cache_seconds`` (0.5 s) per key; a hold or a near-limit
    change seen here updates the cache at once, and an unchanged near-limit flag is not rewritten.
    Times are wall-clock epoch seconds (``clock``), since instances share them.
    """

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, cache_seconds: float = 0.5
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, float, bool]] = {}  # key -> (read at, until, near)

    def _state(self, key: str) -> tuple[float, bool]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1], cached[2]
        stored = self._store.rate_hold(key)
        with self._lock:
            self._cache[key] = (now, stored.until, stored.near_limit)
        return stored.until, stored.near_limit

    def wait_seconds(self, key: str) -> float:
        return max(0.0, self._state(key)[0] - self._clock())

    def hold(self, key: str, seconds: float) -> None:
        until = self._clock() + max(0.0, seconds)
        self._store.hold(key, until)
        with self._lock:
            read_at, cached_until, near = self._cache.get(key, (0.0, 0.0, False))
            self._cache[key] = (read_at, max(until, cached_until), near)

    def near_limit(self, key: str, near: bool) -> None:
        if self._state(key)[1] == near:
            return
        self._store.set_near_limit(key, near)
        with self._lock:
            read_at, until, _ = self._cache.get(key, (0.0, 0.0, near))
            self._cache[key] = (read_at, until, near)

    def is_near_limit(self, key: str) -> bool:
        return self._state(key)[1]
