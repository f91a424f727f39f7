"""Forge's budget of offline token mints: 1,000 a minute per app (``MINT_LIMIT``, Forge's
invocation limits), counted for every instance together in the ``MINTS`` row of a ``QuotaStorage``
(the store, or ``MemoryQuota`` in one process). ``take`` counts one mint or says how long to wait;
``hold`` honours the gateway's 429 and its Retry-After. Times are wall-clock epoch seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from access_desk.quota import rules
from access_desk.quota.pools import MINTS, Pool, QuotaStorage

MINT_LIMIT = 1000  # offline token mints a minute per app (Forge's invocation limits)
MINT_WINDOW = 60.0


class Mints:
    """The mint budget over ``storage``; see the module docstring. Thread-safe as its storage."""

    def __init__(self, storage: QuotaStorage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock

    def take(self, limit: int = MINT_LIMIT) -> float:
        """Count one offline token mint; 0.0 = go, else the seconds until one may go (Forge's
        ``limit`` a minute for the whole app is reached, or a refusal's hold runs)."""
        now = self._clock()
        wait: list[float] = []

        def take(row: Pool) -> Pool | None:
            wait.clear()
            pool = row
            if pool.window_end is None or pool.window_end <= now:
                end = rules.clock_window_end(now, MINT_WINDOW)
                pool = replace(pool, limit=limit, window=MINT_WINDOW, window_end=end, spent=0.0)
            assert pool.window_end is not None
            if pool.held_until > now:
                wait.append(pool.held_until - now)
            elif pool.spent >= limit:
                wait.append(pool.window_end - now)
            else:
                return replace(pool, spent=pool.spent + 1, updated_at=now)
            return pool if pool is not row else None

        self._storage.change_pool(MINTS, take)
        return wait[0] if wait else 0.0

    def hold(self, seconds: float) -> None:
        """No mint goes for ``seconds`` (the gateway answered 429)."""
        now = self._clock()
        self._storage.change_pool(MINTS, lambda p: rules.held(p, now + seconds, now))
