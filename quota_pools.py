"""The quota ledger's state: Confluence's points pools and each site's standing, as rows.

A ``Pool`` is one row, keyed ``APP`` (the app's pool, shared by every installation) or by a site's
``api_base_url`` (the site's own pool, if it has one, and always its hold and which pool it draws
on). ``QuotaStorage`` is what ``ratelimit.Ledger`` needs of the place that keeps the rows, every call
atomic: ``store.quota`` (shared by every worker and instance) or ``MemoryQuota`` here (one process:
tests and single clients). Times are wall-clock epoch seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

APP = "app"  # the key of the app's pool


@dataclass(frozen=True, slots=True)
class Pool:
    """One stored row of the ledger: a pool (key ``"app"`` or a site) and/or a site's standing.

    ``scope`` (site rows): which pool the site draws on, once an answer said. ``held_until``
    (epoch; 0.0: none): calls drawing on this row wait until then."""

    key: str
    scope: str | None = None
    policy: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    window: float | None = None
    near_limit: bool = False
    held_until: float = 0.0
    updated_at: float = 0.0


class QuotaStorage(Protocol):
    """Where the ledger lives (``store.Store`` or ``MemoryQuota``); each call is atomic."""

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        """The stored rows of ``keys`` (absent keys are left out)."""
        ...

    def all_quota_pools(self) -> list[Pool]:
        """Every stored row that is a pool (a limit or remaining points known)."""
        ...

    def record_quota(
        self, pool: Pool, *, site: str | None = None, scope: str | None = None
    ) -> None:
        """Write what an answer said about ``pool.key``: its non-None fields replace the stored
        ones, ``near_limit`` and ``updated_at`` always, ``held_until`` only ever extends. With
        ``site`` and ``scope``: that site now draws on ``scope``'s pool."""
        ...

    def roll_quota_window(
        self, key: str, reset_at: float | None, new_reset_at: float | None
    ) -> None:
        """The window ending ``reset_at`` is over: the pool is full again (``limit``), not near
        its limit, and ends at ``new_reset_at``; a no-op when someone rolled it already."""
        ...

    def take_points(self, key: str, points: int, floor: int | None) -> bool:
        """Take ``points`` from the pool's ``remaining``: only when at least ``floor`` stays left
        (None: always, never below 0). True when taken (or ``remaining`` is unknown)."""
        ...


class MemoryQuota:
    """An in-process ``QuotaStorage`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Pool] = {}

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        with self._lock:
            return {k: self._rows[k] for k in keys if k in self._rows}

    def all_quota_pools(self) -> list[Pool]:
        with self._lock:
            return [
                p for p in self._rows.values() if p.limit is not None or p.remaining is not None
            ]

    def record_quota(
        self, pool: Pool, *, site: str | None = None, scope: str | None = None
    ) -> None:
        with self._lock:
            old = self._rows.get(pool.key, Pool(pool.key))
            changes: dict[str, Any] = {
                name: getattr(pool, name)
                for name in ("scope", "policy", "limit", "remaining", "reset_at", "window")
                if getattr(pool, name) is not None
            }
            self._rows[pool.key] = replace(
                old,
                **changes,
                near_limit=pool.near_limit,
                held_until=max(old.held_until, pool.held_until),
                updated_at=pool.updated_at,
            )
            if site is not None and scope is not None:
                self._rows[site] = replace(self._rows.get(site, Pool(site)), scope=scope)

    def roll_quota_window(
        self, key: str, reset_at: float | None, new_reset_at: float | None
    ) -> None:
        with self._lock:
            old = self._rows.get(key)
            if old is not None and old.reset_at == reset_at:
                self._rows[key] = replace(
                    old, remaining=old.limit, reset_at=new_reset_at, near_limit=False
                )

    def take_points(self, key: str, points: int, floor: int | None) -> bool:
        with self._lock:
            old = self._rows.get(key)
            if old is None or old.remaining is None:
                return True
            if floor is not None and old.remaining - points < floor:
                return False
            self._rows[key] = replace(old, remaining=max(0, old.remaining - points))
            return True
