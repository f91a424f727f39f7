"""Rate limiting: how Access Desk spends Confluence's points quota as one careful client.

Confluence charges every call in points against a pool per window (docs/platform.md, "Rate
limits"; the rules below are docs/contract.md §6). Everything about *when* a call may go lives
here; ``confluence.Client`` asks a ``Ledger`` before each request and tells it what each answer
said (its headers as ``ratelimit_headers`` reads them). The state is kept by a ``QuotaStorage``
(``quota_pools``): the store (``store.quota``, shared by every worker and instance) or
``MemoryQuota`` (one process: tests and single clients).

- **Pools.** A site draws on the app's pool (key ``"app"``: one for the whole app, shared by every
  installation; Confluence's default) or on its own (key = the site's ``api_base_url``). Which one
  is learnt from ``RateLimit-Reason`` / ``Beta-RateLimit-Policy`` (``global``/``app`` -> the app's,
  ``tenant`` -> the site's); until an answer says, a site draws on the app's pool.
- **Ledger.** Every answer's ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (ISO 8601),
  ``-NearLimit`` and the policy's window (``w=``) update the pool (``observe``); any header may be
  missing. When the window has ended, the pool counts as full again (``limit``).
- **Holds.** A 429 holds its pool until ``Retry-After`` (at most ``MAX_RETRY_AFTER``) or else its
  ``Reset``; an app pool's hold holds every site drawing on it, a site pool's only that site.
  ``Remaining: 0`` holds the pool until its ``Reset``. A 503's ``Retry-After`` holds only its site.
  Holds only ever extend. ``wait_seconds`` says how long a site's calls must still wait.
- **Pacing and reserve.** ``admit`` takes a request's estimated points (``costs.COSTS``) from the
  pool before it is sent. Background work (job steps) is refused, with the seconds until the window
  resets, when it would dig into the last ``RESERVE_SHARE`` (20%) of a known window or while the
  pool is near its limit: that share is kept for panel calls, which only holds stop. Before any
  answer told what is left, background work goes (its first answer tells).
- **Cost model.** ``costs.COSTS`` (base + per object, from the platform facts) estimates a request
  before it is sent (``costs.points``: the ``cost`` given to ``admit``); each answer's
  ``Remaining`` then replaces the estimate in the ledger.

Reads are cached in-process for ``cache_seconds`` (0.5 s by default for the store); what this
process learns updates its cache at once. Times are wall-clock epoch seconds (``clock``), since
instances share them; ``Reset`` is read against the same clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from quota_pools import APP, MemoryQuota, Pool, QuotaStorage
from ratelimit_headers import MAX_RETRY_AFTER, Reading, read_headers

RESERVE_SHARE = 0.2  # the last 20% of a known window is kept for panel calls
DEFAULT_LIMIT = 65_000  # the app pool's points per window when nobody has said (Tier 1)
DEFAULT_WINDOW = 3600.0  # seconds
SPENT_HOLD = 60.0  # a spent pool without a Reset header holds this long (or its window)


@dataclass(frozen=True, slots=True)
class PoolView:
    """The pool a site draws on, as the ``quota`` resolver shows it (None: not known yet)."""

    scope: str | None
    limit: int | None
    remaining: int | None
    reset_at: float | None
    held_until: float | None
    near_limit: bool


class Ledger:
    """The rate-limit rules over a ``QuotaStorage``; see the module docstring. Thread-safe."""

    def __init__(
        self,
        storage: QuotaStorage,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 0.5,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Pool | None]] = {}  # key -> (read at, row)

    # -- reading ---------------------------------------------------------------------------------

    def _rows(self, keys: Sequence[str], fresh: bool = False) -> dict[str, Pool]:
        now = self._clock()
        found: dict[str, Pool] = {}
        missing: list[str] = []
        with self._lock:
            for key in keys:
                cached = self._cache.get(key)
                if not fresh and cached is not None and now - cached[0] < self._cache_seconds:
                    if cached[1] is not None:
                        found[key] = cached[1]
                else:
                    missing.append(key)
        if missing:
            stored = self._storage.quota_pools(missing)
            with self._lock:
                for key in missing:
                    self._cache[key] = (now, stored.get(key))
            found.update(stored)
        return found

    def _forget(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._cache.pop(key, None)

    def _pool_key(self, site: str, rows: Mapping[str, Pool]) -> str:
        row = rows.get(site)
        return site if row is not None and row.scope == "site" else APP

    def _current(self, pool: Pool, now: float) -> Pool:
        """``pool`` as it stands at ``now``: a window that has ended is full again."""
        if pool.reset_at is not None and pool.reset_at <= now:
            return replace(pool, remaining=pool.limit, reset_at=None, near_limit=False)
        if pool.reset_at is None and pool.updated_at + (pool.window or DEFAULT_WINDOW) <= now:
            return replace(pool, remaining=None, near_limit=False)  # stale, and no Reset said
        return pool

    def wait_seconds(self, key: str) -> float:
        """How long calls for site ``key`` must still wait (0 = go): its own hold and, when it
        draws on the app's pool, the app pool's."""
        now = self._clock()
        rows = self._rows([key, APP])
        until = rows[key].held_until if key in rows else 0.0
        if self._pool_key(key, rows) == APP and APP in rows:
            until = max(until, rows[APP].held_until)
        return max(0.0, until - now)

    def is_near_limit(self, key: str) -> bool:
        """Whether the pool site ``key`` draws on is near its limit (new chunks go one at a
        time): ``X-RateLimit-NearLimit`` was set, or less than 20% of a known window is left."""
        rows = self._rows([key, APP])
        pool = rows.get(self._pool_key(key, rows))
        if pool is None:
            return False
        pool = self._current(pool, self._clock())
        low = (
            pool.limit is not None
            and pool.remaining is not None
            and pool.remaining < pool.limit * RESERVE_SHARE
        )
        return pool.near_limit or low

    def view(self, key: str) -> PoolView:
        """The pool site ``key`` draws on, read fresh (nulls before any answer told)."""
        now = self._clock()
        rows = self._rows([key, APP], fresh=True)
        pool_key = self._pool_key(key, rows)
        pool = rows.get(pool_key)
        held = max((rows[k].held_until for k in {key, pool_key} if k in rows), default=0.0)
        if pool is None:  # nothing said of a pool yet; the site itself may be held (a 503)
            return PoolView(None, None, None, None, held if held > now else None, False)
        pool = self._current(pool, now)
        return PoolView(
            scope="site" if pool_key == key else APP,
            limit=pool.limit,
            remaining=pool.remaining,
            reset_at=pool.reset_at,
            held_until=held if held > now else None,
            near_limit=pool.near_limit,
        )

    def pool_gauges(self) -> list[tuple[str, int | None, int | None, float]]:
        """Every known pool as (key, limit, remaining, seconds held) for the metrics."""
        now = self._clock()
        return [
            (p.key, p.limit, p.remaining, max(0.0, p.held_until - now))
            for p in (self._current(p, now) for p in self._storage.all_quota_pools())
        ]

    # -- spending --------------------------------------------------------------------------------

    def admit(self, key: str, cost: int, *, background: bool) -> float:
        """Take a request's estimated ``cost`` from the pool site ``key`` draws on; 0.0 = go.

        Background work gets the seconds until the window resets instead (nothing taken) when the
        request would leave less than the reserve, or while the pool is near its limit."""
        now = self._clock()
        rows = self._rows([key, APP], fresh=True)
        pool_key = self._pool_key(key, rows)
        stored = rows.get(pool_key)
        if stored is None:
            return 0.0
        pool = self._current(stored, now)
        if pool is not stored and stored.reset_at is not None and stored.reset_at <= now:
            window = stored.window
            new_reset = (
                stored.reset_at + window * math.ceil((now - stored.reset_at) / window + 1e-9)
                if window
                else None
            )
            self._storage.roll_quota_window(pool_key, stored.reset_at, new_reset)
            pool = replace(pool, reset_at=new_reset)
        floor: int | None = None
        if background and pool.limit is not None and pool.remaining is not None:
            if pool.near_limit:
                return self._until_reset(pool, now)
            floor = math.ceil(pool.limit * RESERVE_SHARE)
        if pool.remaining is None:
            return 0.0
        taken = self._storage.take_points(pool_key, cost, floor)
        self._forget(pool_key)
        return 0.0 if taken else self._until_reset(pool, now)

    def _until_reset(self, pool: Pool, now: float) -> float:
        if pool.reset_at is not None:
            return min(MAX_RETRY_AFTER, max(1.0, pool.reset_at - now))
        return min(MAX_RETRY_AFTER, pool.window or SPENT_HOLD)

    # -- learning --------------------------------------------------------------------------------

    def observe(self, key: str, status: int, headers: Mapping[str, str]) -> Reading:
        """Feed one answer of site ``key`` into the ledger (holds included); returns its reading."""
        reading = read_headers(status, headers)
        now = self._clock()
        if reading.says_quota or status == 429:
            rows = self._rows([key, APP])
            scope = reading.scope or ("site" if self._pool_key(key, rows) == key else APP)
            pool_key = key if scope == "site" else APP
            until = 0.0
            if status == 429:
                if reading.retry_after is not None:
                    until = now + reading.retry_after
                elif reading.reset_at is not None:
                    until = min(reading.reset_at, now + MAX_RETRY_AFTER)
            if reading.remaining == 0:
                spent = (
                    reading.reset_at
                    if reading.reset_at is not None
                    else now + (reading.window or SPENT_HOLD)
                )
                until = max(until, min(spent, now + MAX_RETRY_AFTER))
            previous = rows.get(pool_key)
            near = reading.near_limit
            if near is None:
                near = previous.near_limit if previous is not None else False
            self._storage.record_quota(
                Pool(
                    pool_key,
                    scope=scope if pool_key == APP else "site",
                    policy=reading.policy,
                    limit=reading.limit,
                    remaining=reading.remaining,
                    reset_at=reading.reset_at,
                    window=reading.window,
                    near_limit=near,
                    held_until=until,
                    updated_at=now,
                ),
                site=key if reading.scope is not None and pool_key != key else None,
                scope=reading.scope,
            )
            self._forget(key, APP)
        elif reading.near_limit is not None:
            self.near_limit(key, reading.near_limit)
        if status == 503 and reading.retry_after is not None:
            self.hold(key, reading.retry_after)
        return reading

    def hold(self, key: str, seconds: float) -> None:
        """Hold site ``key`` alone for ``seconds`` (a 503's ``Retry-After``)."""
        now = self._clock()
        self._storage.record_quota(Pool(key, held_until=now + max(0.0, seconds), updated_at=now))
        self._forget(key)

    def near_limit(self, key: str, near: bool) -> None:
        """The near-limit flag of the pool site ``key`` draws on, from an answer without other
        quota headers; an unchanged flag is not rewritten."""
        rows = self._rows([key, APP])
        pool_key = self._pool_key(key, rows)
        pool = rows.get(pool_key)
        if (pool.near_limit if pool is not None else False) == near:
            return
        base = pool or Pool(pool_key)
        self._storage.record_quota(
            replace(base, near_limit=near, held_until=0.0, updated_at=self._clock())
        )
        self._forget(pool_key)


# ``Gate`` is what ``confluence.Client`` needs of a ledger.
Gate = Ledger


class MemoryGate(Ledger):
    """An in-process ledger (one process; tests and single clients), without a read cache."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(MemoryQuota(), clock=clock, cache_seconds=0.0)


class StoreGate(Ledger):
    """The ledger shared by every worker and instance, kept in the store (``store.quota``): a
    ``Ledger`` over the store, named for what it is where it is built."""
