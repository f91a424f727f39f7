"""Rate limiting: how Access Desk spends Confluence's points quota as one careful client.

Confluence charges every call in points against a pool per window (docs/platform.md, "Rate
limits"; the rules below are docs/contract.md §6). Everything about *when* a call may go lives
here; ``confluence.Client`` asks a ``Ledger`` before each request and tells it what each answer
said. The state is kept by a ``QuotaStorage``: the store (``store.quota``, shared by every worker
and instance) or ``MemoryQuota`` (one process: tests and single clients).

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
- **Pacing and reserve.** ``admit`` takes a request's estimated points (``COSTS``) from the pool
  before it is sent. Background work (job steps) is refused, with the seconds until the window
  resets, when it would dig into the last ``RESERVE_SHARE`` (20%) of a known window or while the
  pool is near its limit: that share is kept for panel calls, which only holds stop. Before any
  answer told what is left, background work goes (its first answer tells).
- **Cost model.** ``COSTS`` (base + per object, from the platform facts) estimates a request before
  it is sent (``points``), a lookup (``lookup_points``) and an invite job (``invite_job_points``);
  each answer's ``Remaining`` then replaces the estimate in the ledger.

Reads are cached in-process for ``cache_seconds`` (0.5 s by default for the store); what this
process learns updates its cache at once. Times are wall-clock epoch seconds (``clock``), since
instances share them; ``Reset`` is read against the same clock.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

MAX_RETRY_AFTER = 3600.0  # seconds; longer Retry-After answers are taken as one hour
RESERVE_SHARE = 0.2  # the last 20% of a known window is kept for panel calls
APP = "app"  # the key of the app's pool
DEFAULT_LIMIT = 65_000  # the app pool's points per window when nobody has said (Tier 1)
DEFAULT_WINDOW = 3600.0  # seconds
SPENT_HOLD = 60.0  # a spent pool without a Reset header holds this long (or its window)

# What a request costs in points: (base, per object). Reads pay per identity object involved
# (users returned, emails checked); writes pay the base only (docs/platform.md, "Rate limits").
COSTS: dict[str, tuple[int, int]] = {
    "users_bulk": (1, 2),  # per account id asked (unknown ids may turn out free)
    "check_access": (1, 2),  # per email checked
    "invite": (1, 0),  # a write
    "user_current": (1, 2),  # the one user answered (the admin check)
}
IDS_PER_REQUEST = 250
EMAILS_PER_REQUEST = 100


def points(operation: str, objects: int = 0) -> int:
    """The estimated points of one request of ``operation`` involving ``objects`` objects."""
    base, per = COSTS[operation]
    return base + per * max(0, objects)


def _requests(n: int, per_request: int) -> int:
    return math.ceil(max(0, n) / per_request)


def lookup_points(ids: int) -> int:
    """What looking up ``ids`` account ids costs at most (250 per request)."""
    base, per = COSTS["users_bulk"]
    return base * _requests(ids, IDS_PER_REQUEST) + per * max(0, ids)


def check_points(emails: int) -> int:
    """What checking ``emails`` emails' access costs (100 per request)."""
    base, per = COSTS["check_access"]
    return base * _requests(emails, EMAILS_PER_REQUEST) + per * max(0, emails)


def invite_job_points(total: int, *, dry_run: bool, settled: int = 0) -> int:
    """What an invite job of ``total`` emails costs: checking all of them, then (unless a dry
    run) inviting those not ``settled`` (already with access or invalid), 100 per request."""
    invite_base, _ = COSTS["invite"]
    invites = 0 if dry_run else invite_base * _requests(total - settled, EMAILS_PER_REQUEST)
    return check_points(total) + invites


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


# -- what an answer says ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """The quota headers of one answer (None: not said). ``reset_at`` is epoch seconds."""

    status: int
    scope: str | None = None  # "app" | "site"
    policy: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    window: float | None = None
    near_limit: bool | None = None
    retry_after: float | None = None

    @property
    def says_quota(self) -> bool:
        return any(
            v is not None
            for v in (self.scope, self.limit, self.remaining, self.reset_at, self.window)
        )


_POLICY = re.compile(r'^\s*"?([^";,\s]+)"?((?:\s*;\s*[a-z]+=[^;,\s]+)*)')


def _scope_of(name: str | None) -> str | None:
    lowered = (name or "").lower()
    if "tenant" in lowered or "site" in lowered:
        return "site"
    if "global" in lowered or "app" in lowered:
        return APP
    return None


def _int(value: str | None) -> int | None:
    try:
        number = int(float(value)) if value is not None else None
    except ValueError:
        return None
    return None if number is None or number < 0 else number


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:  # some APIs send epoch seconds
        number = float(text)
    except ValueError:
        return None
    return number if number > 1e9 and number == number else None


def read_headers(status: int, headers: Mapping[str, str]) -> Reading:
    """What ``headers`` (case-insensitive, e.g. ``requests``' ``CaseInsensitiveDict``) say."""
    policy_name: str | None = None
    limit = _int(headers.get("X-RateLimit-Limit"))
    window: float | None = None
    match = _POLICY.match(headers.get("Beta-RateLimit-Policy") or "")
    if match:
        policy_name = match.group(1)
        params = dict(re.findall(r"([a-z]+)=([^;,\s]+)", match.group(2)))
        limit = limit if limit is not None else _int(params.get("q"))
        w = _int(params.get("w"))
        window = float(w) if w else None
    reason = headers.get("RateLimit-Reason")
    scope = _scope_of(reason) or _scope_of(policy_name)
    near = (headers.get("X-RateLimit-NearLimit") or "").strip().lower()
    return Reading(
        status=status,
        scope=scope,
        policy=policy_name,
        limit=limit,
        remaining=_int(headers.get("X-RateLimit-Remaining")),
        reset_at=_epoch(headers.get("X-RateLimit-Reset")),
        window=window,
        near_limit=True if near == "true" else (False if 200 <= status < 300 else None),
        retry_after=retry_after_seconds(headers.get("Retry-After")),
    )


# -- the stored state ---------------------------------------------------------------------------


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


# -- the rules ----------------------------------------------------------------------------------


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
    """The ledger shared by every worker and instance, kept in the store (``store.quota``)."""

    def __init__(
        self,
        storage: QuotaStorage,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 0.5,
    ) -> None:
        super().__init__(storage, clock=clock, cache_seconds=cache_seconds)
