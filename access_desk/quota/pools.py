"""The quota ledger's state: Confluence's points pools, who spent what, and the learned costs.

A ``Pool`` is one row, keyed ``APP`` (the app's pool, shared by every installation), by a site's
``api_base_url`` (the site's own pool, if it has one, and always the site's own hold and which pool
it draws on) or ``MINTS`` (Forge's offline token mints a minute). ``QuotaStorage`` is what
``quota.ledger.Ledger`` needs of the place that keeps the rows, every call atomic: ``store.quota``
(shared by every worker and instance) or ``MemoryQuota`` here (one process: tests and single
clients). The rules that change a row live in ``quota.ledger``; storage only applies them atomically
(``change_pool``). Times are wall-clock epoch seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

APP = "app"  # the key of the app's pool, and the scope of a site drawing on it
SITE = "site"  # the scope of a site with a pool of its own
MINTS = "forge-mints"  # the key of the row counting offline token mints


@dataclass(frozen=True, slots=True)
class Pool:
    """One row of the ledger (see the module docstring); None: not said.

    ``spent`` is this app's estimated spend in the window since ``reported`` (r) was said, or since
    the window began; ``pending`` the estimates of requests sent and not answered yet.
    ``without_r``: the latest quota entry came without r (Confluence: under about 80% used).
    ``since_*``: what was answered since the last r, for learning costs (``since_op`` is
    ``"mixed"`` when several operations were). ``window_counts``: every request answered (2xx)
    this window, as (operation, requests, objects), for learning from Confluence's silence.
    ``spend_scale``: what the fair-share spend recorded this window (``quota_spend``) is worth in
    points (below 1 once Confluence's silence showed the estimates were high)."""

    key: str
    scope: str | None = None
    policy: str | None = None
    limit: int | None = None
    window: float | None = None
    window_end: float | None = None
    window_id: int = 0
    reported: int | None = None
    spent: float = 0.0
    pending: float = 0.0
    without_r: bool = False
    near_limit: bool = False
    held_until: float = 0.0
    since_op: str | None = None
    since_requests: int = 0
    since_objects: int = 0
    window_counts: tuple[tuple[str, int, int], ...] = ()
    spend_scale: float = 1.0
    updated_at: float = 0.0
    version: int = 0


@dataclass(frozen=True, slots=True)
class CostSums:
    """Least-squares sums of an operation's samples: ``requests`` (k), ``objects`` (x) and the
    points they cost (d), as ``how r moved`` showed them; ``cap``: the most one object can cost,
    as Confluence's silence showed it (None: not learnt)."""

    samples: int = 0
    kk: float = 0.0
    kx: float = 0.0
    xx: float = 0.0
    kd: float = 0.0
    xd: float = 0.0
    cap: float | None = None

    def add(self, k: float, x: float, d: float) -> CostSums:
        return CostSums(
            self.samples + 1,
            self.kk + k * k,
            self.kx + k * x,
            self.xx + x * x,
            self.kd + k * d,
            self.xd + x * d,
            self.cap,
        )

    def capped(self, cap: float) -> CostSums:
        """These sums with the per-object cap lowered to ``cap`` (caps only ever fall)."""
        return replace(self, cap=cap if self.cap is None else min(self.cap, cap))


Change = Callable[[Pool], Pool | None]
Written = Callable[[Pool], None]
SpendKey = tuple[str, int, str, str]  # (pool, window_id, installation_id, account_id or "")


def spend_rows(
    pool: str, window_id: int, installation_id: str, account_id: str, points: float
) -> dict[SpendKey, float]:
    """The spend rows one addition changes: the installation's, and its user's (if any)."""
    who = ["", account_id] if account_id else [""]
    return {(pool, window_id, installation_id, a): points for a in who}


class QuotaStorage(Protocol):
    """What a ledger's storage offers (``store.Store`` or ``MemoryQuota``); each call atomic."""

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        """The stored rows of ``keys`` (absent keys are left out)."""
        ...

    def all_quota_pools(self) -> list[Pool]:
        """Every row that is a pool (a limit or r known)."""
        ...

    def change_pool(
        self, key: str, change: Change, *, replay: Change | None = None, then: Written | None = None
    ) -> Pool:
        """``change(row)`` (``Pool(key)`` when absent) applied atomically; None from ``change``
        writes nothing. Returns the row as it then stands. A storage that writes later
        (``quota.batched``) applies ``replay`` (default: ``change`` again) to the shared row when
        it writes; ``then`` is called with the row as written, once it is."""
        ...

    def add_spends(self, changes: Mapping[SpendKey, float]) -> None:
        """Add points (negative: a correction) to this window's spend of installations and their
        users, a row each (``spend_rows``: an installation's, and its user's), in one
        transaction; in the window's units: times the pool row's ``spend_scale`` they are
        points."""
        ...

    def spend_of(
        self, pool: str, window_id: int, installation_id: str, account_id: str
    ) -> tuple[float, float]:
        """This window's spend of the installation and of its user."""
        ...

    def drop_spend_before(self, pool: str, window_id: int) -> None:
        """Forget the spend of windows before ``window_id``."""
        ...

    def cost_sums(self) -> dict[str, CostSums]:
        """The learned costs' sums, per operation."""
        ...

    def add_cost_sample(self, operation: str, k: float, x: float, d: float) -> None:
        """One more sample: ``k`` requests of ``operation`` involving ``x`` objects cost ``d``."""
        ...

    def lower_cost_caps(self, caps: Mapping[str, float]) -> None:
        """Lower each operation's per-object cap to the one given (a cap never rises)."""
        ...

    def flush(self) -> bool:
        """Write what is kept back now (nothing, for a storage that writes at once); whether
        all of it was written."""
        ...

    def forget(self) -> None:
        """Drop what is held apart from the shared rows (nothing, for a storage that holds none):
        for a store emptied under it."""
        ...


class MemoryQuota:
    """An in-process quota storage (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Pool] = {}
        self._spend: dict[tuple[str, int, str, str], float] = {}
        self._costs: dict[str, CostSums] = {}

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        with self._lock:
            return {k: self._rows[k] for k in keys if k in self._rows}

    def all_quota_pools(self) -> list[Pool]:
        with self._lock:
            return [
                p
                for p in self._rows.values()
                if p.key != MINTS and (p.limit is not None or p.reported is not None)
            ]

    def change_pool(
        self, key: str, change: Change, *, replay: Change | None = None, then: Written | None = None
    ) -> Pool:
        with self._lock:
            old = self._rows.get(key, Pool(key))
            new = change(old)
            if new is not None:
                new = replace(new, key=key, version=old.version + 1)
                self._rows[key] = new
        if then is not None:
            then(new or old)
        return new or old

    def add_spends(self, changes: Mapping[SpendKey, float]) -> None:
        with self._lock:
            for k, points in changes.items():
                self._spend[k] = self._spend.get(k, 0.0) + points

    def spend_of(
        self, pool: str, window_id: int, installation_id: str, account_id: str
    ) -> tuple[float, float]:
        with self._lock:
            mine = self._spend.get((pool, window_id, installation_id, ""), 0.0)
            user = self._spend.get((pool, window_id, installation_id, account_id), 0.0)
            return mine, user if account_id else 0.0

    def drop_spend_before(self, pool: str, window_id: int) -> None:
        with self._lock:
            for k in [k for k in self._spend if k[0] == pool and k[1] < window_id]:
                del self._spend[k]

    def cost_sums(self) -> dict[str, CostSums]:
        with self._lock:
            return dict(self._costs)

    def add_cost_sample(self, operation: str, k: float, x: float, d: float) -> None:
        with self._lock:
            self._costs[operation] = self._costs.get(operation, CostSums()).add(k, x, d)

    def lower_cost_caps(self, caps: Mapping[str, float]) -> None:
        with self._lock:
            for operation, cap in caps.items():
                self._costs[operation] = self._costs.get(operation, CostSums()).capped(cap)

    def flush(self) -> bool:
        """Nothing is kept back."""
        return True

    def forget(self) -> None:
        """Nothing is held apart from the rows."""
