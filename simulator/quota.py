"""The simulated Confluence limits (Confluence's rate limits since March 2026; docs/quota.md).

Off by default. When on (``Platform(quota=Quota(...))``, ``platform.meter.configure(...)``,
``PUT /_sim/quota`` or ``./dev --quota POINTS/SECONDS``), every answer of the simulated Confluence
to a known installation spends points from a pool and carries the headers Confluence sends, two
limits apart:

**The points quota.** A call costs a base point plus points per object; writes cost the base only.
``costs="reads"`` (the default) charges the two POSTs that read (users-bulk, check-access) per
object as identity reads; ``costs="writes"`` charges every POST the base only (the other reading
of Atlassian's table, which prices POST as a write):

============== ============= ============= ============================================
endpoint       reads         writes        objects
============== ============= ============= ============================================
users-bulk     1 + 2/object  1             user objects returned (unknown ids are free)
check-access   1 + 2/object  1             distinct emails checked (case-insensitive)
invite         1             1             none: a write costs the base only
user-current   1 + 2         1 + 2         the one user object answered (a GET)
============== ============= ============= ============================================

Only 2xx answers spend points; a refused call is free. ``mode="app"`` (Tier 1, the default): one
pool for the app (policy ``"global-app-quota"``, reason ``confluence-quota-global-based``);
``mode="site"`` (Tier 2): one per site (``"tenant-app-quota"``, ``confluence-quota-tenant-based``).
A pool holds ``points`` per window of ``seconds``; windows end at the clock's multiples of
``seconds`` (the top of each UTC hour for 3600), and a new window starts with the whole pool.
Headers on every metered answer, in the enforced spelling (``spelling="enforced"``) or the beta
one (``"beta"``): ``RateLimit-Policy: "global-app-quota";q=65000;w=3600`` and
``RateLimit: "global-app-quota";t=<seconds to reset>``, with ``r=<points left>`` only once 80% of
the pool is used; ``X-RateLimit-NearLimit: true`` under 20% left (``X-Beta-RateLimit-NearLimit``).
A call whose cost does not fit answers 429 with ``Retry-After`` (seconds to the window's end, at
least 1), ``RateLimit-Reason`` (``X-Beta-RateLimit-Reason``) and ``RateLimit: "…";r=0;t=…``
without the policy header (as vendors saw it). The base point is reserved before the handler runs
(``admit``), so a pool without it refuses before any side effect (an invite); the per-object
points are charged once the answer is known (``settle``), and when they do not fit the base is
given back and the call is refused.

**The burst limit** (per site, per second): ``X-RateLimit-Limit: 350`` and
``X-RateLimit-Remaining`` on every answer (``burst``); past it a call answers 429 with
``Retry-After: 1``, ``X-RateLimit-Remaining: 0`` and no quota reason. (Faults inject burst 429s at
will: ``simulator.faults``, kind ``burst``.)

``Meter`` counts, per installation, the points spent, the requests charged and the 429s sent
(``snapshot()``, ``GET /_sim/quota``). It is thread-safe; its clock (seconds since the epoch) is
injectable for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MODES = ("app", "site")
SPELLINGS = ("enforced", "beta")
CHARGING = ("reads", "writes")
BURST = 350  # requests a second per site
R_FROM_USED = 0.8  # r is sent once this share of the pool is used
DEFAULT_POINTS = 65000
DEFAULT_SECONDS = 3600
NEAR_LIMIT_SHARE = 0.2
POLICY_NAMES = {"app": "global-app-quota", "site": "tenant-app-quota"}
REASONS = {"app": "confluence-quota-global-based", "site": "confluence-quota-tenant-based"}
APP_POOL = "app"


@dataclass(frozen=True, slots=True)
class Cost:
    base: int
    per_object: int


COSTS = {
    "reads": {
        "users-bulk": Cost(1, 2),
        "check-access": Cost(1, 2),
        "invite": Cost(1, 0),
        "user-current": Cost(1, 2),
    },
    "writes": {
        "users-bulk": Cost(1, 0),
        "check-access": Cost(1, 0),
        "invite": Cost(1, 0),
        "user-current": Cost(1, 2),
    },
}


def cost_of(endpoint: str, objects: int, costs: str = "reads") -> int:
    """The points a 2xx answer of ``endpoint`` involving ``objects`` objects costs."""
    cost = COSTS[costs][endpoint]
    return cost.base + cost.per_object * objects


@dataclass(frozen=True, slots=True)
class Quota:
    """A pool size (``points`` per ``seconds``), one for the app or per site, the header
    ``spelling`` and how POSTs that read are charged (``costs``)."""

    points: int = DEFAULT_POINTS
    seconds: int = DEFAULT_SECONDS
    mode: str = "app"
    spelling: str = "enforced"
    costs: str = "reads"
    burst: int = BURST

    def __post_init__(self) -> None:
        for name in ("points", "seconds", "burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        for name, allowed in (("mode", MODES), ("spelling", SPELLINGS), ("costs", CHARGING)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")

    @classmethod
    def parse(
        cls, text: str, mode: str = "app", spelling: str = "enforced", costs: str = "reads"
    ) -> Quota:
        """``"6500/60"``: 6,500 points per 60 seconds (``"65000"`` alone: per hour)."""
        points, _, seconds = text.strip().partition("/")
        try:
            number = int(points), int(seconds) if seconds else DEFAULT_SECONDS
            return cls(number[0], number[1], mode, spelling, costs)
        except ValueError as exc:
            raise ValueError(
                f"expected POINTS/SECONDS with whole numbers of at least 1 (e.g. 6500/60), "
                f"not {text!r}: {exc}"
            ) from None

    @property
    def policy_name(self) -> str:
        return POLICY_NAMES[self.mode]

    @property
    def reason(self) -> str:
        return REASONS[self.mode]

    def cost_of(self, endpoint: str, objects: int) -> int:
        return cost_of(endpoint, objects, self.costs)

    def base_of(self, endpoint: str) -> int:
        return COSTS[self.costs][endpoint].base

    def names(self) -> tuple[str, str, str, str]:
        """The policy, state, reason and near-limit header names in this spelling."""
        if self.spelling == "beta":
            return (
                "Beta-RateLimit-Policy",
                "Beta-RateLimit",
                "X-Beta-RateLimit-Reason",
                "X-Beta-RateLimit-NearLimit",
            )
        return ("RateLimit-Policy", "RateLimit", "RateLimit-Reason", "X-RateLimit-NearLimit")

    def to_json(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "seconds": self.seconds,
            "mode": self.mode,
            "spelling": self.spelling,
            "costs": self.costs,
        }


def quota_from_flags(
    text: str | None, mode: str | None, spelling: str | None = None, costs: str | None = None
) -> Quota | None:
    """The quota of ``--quota [POINTS/SECONDS]`` (``""``: the flag alone), ``--quota-mode``,
    ``--quota-spelling`` and ``--quota-costs``: None (metering off) without any of them; the
    default 65000/3600 when only the others are given."""
    if text is None and mode is None and spelling is None and costs is None:
        return None
    return Quota.parse(
        text or f"{DEFAULT_POINTS}/{DEFAULT_SECONDS}",
        mode or "app",
        spelling=spelling or "enforced",
        costs=costs or "reads",
    )


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Reading:
    """A pool as one answer reports it."""

    quota: Quota
    pool: str
    remaining: int
    reset: float  # the window's end, seconds since the epoch
    now: float

    @property
    def near_limit(self) -> bool:
        return self.remaining < self.quota.points * NEAR_LIMIT_SHARE

    @property
    def seconds_left(self) -> int:
        return max(1, math.ceil(self.reset - self.now))

    @property
    def says_r(self) -> bool:
        """r is sent once 80% of the pool is used."""
        return self.quota.points - self.remaining >= self.quota.points * R_FROM_USED

    def headers(self) -> dict[str, str]:
        q, name = self.quota, self.quota.policy_name
        policy, state, _, near = q.names()
        left = f";r={self.remaining}" if self.says_r else ""
        found = {
            policy: f'"{name}";q={q.points};w={q.seconds}',
            state: f'"{name}"{left};t={self.seconds_left}',
        }
        if self.near_limit:
            found[near] = "true"
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "policy": self.quota.policy_name,
            "limit": self.quota.points,
            "remaining": self.remaining,
            "spent": self.quota.points - self.remaining,
            "reset": iso(self.reset),
            "nearLimit": self.near_limit,
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call that does not fit: answer 429 with ``headers()``."""

    reading: Reading

    def headers(self) -> dict[str, str]:
        q = self.reading.quota
        _, state, reason, near = q.names()
        return {
            state: f'"{q.policy_name}";r=0;t={self.reading.seconds_left}',
            near: "true",
            "Retry-After": str(self.reading.seconds_left),
            reason: q.reason,
            "X-RateLimit-Reset": iso(self.reading.reset),
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    """The base point reserved by ``admit`` for one call, settled or released once answered."""

    installation_id: str
    pool: str
    window: float
    endpoint: str
    points: int


@dataclass
class _Pool:
    window: float = 0.0
    spent: int = 0


@dataclass
class _Open:
    """A pool in its current window (inside the meter's lock): its quota, key, state and now."""

    quota: Quota
    key: str
    pool: _Pool
    now: float

    @property
    def left(self) -> int:
        return self.quota.points - self.pool.spent

    def reading(self) -> Reading:
        remaining = max(0, self.left)
        return Reading(
            self.quota, self.key, remaining, self.pool.window + self.quota.seconds, self.now
        )


@dataclass
class _Tally:
    points: int = 0
    requests: int = 0
    refused: int = 0

    def to_json(self) -> dict[str, int]:
        return {"points": self.points, "requests": self.requests, "refused": self.refused}


@dataclass
class _State:
    pools: dict[str, _Pool] = field(default_factory=dict)
    tallies: dict[str, _Tally] = field(default_factory=dict)
    outside: int = 0  # points spent through ``spend`` (the app's tenants outside the simulator)
    bursts: dict[str, tuple[int, int]] = field(default_factory=dict)  # site -> (second, calls)
    burst_refused: int = 0


class Meter:
    """The pools and what each installation spent; ``quota`` None means metering is off."""

    def __init__(self, quota: Quota | None = None, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._quota = quota
        self._state = _State()

    @property
    def quota(self) -> Quota | None:
        return self._quota

    @property
    def enabled(self) -> bool:
        return self._quota is not None

    def configure(self, quota: Quota | None) -> None:
        """Meter with ``quota`` from now on (None: stop metering), with full pools and no counts."""
        with self._lock:
            self._quota = quota
            self._state = _State()

    def pool_of(self, site: str) -> str:
        """The pool key of a site (its cloudId): the app's pool unless in per-site mode."""
        quota = self._quota
        return site if quota is not None and quota.mode == "site" else APP_POOL

    # -- charging (each takes the lock once) -----------------------------------------------------

    def admit(self, installation_id: str, site: str, endpoint: str) -> Ticket | Refusal | None:
        """Reserve the base cost of a call; None when metering is off."""
        with self._lock:
            at = self._open(self.pool_of(site))
            if at is None:
                return None
            base = at.quota.base_of(endpoint)
            if base > at.left:
                self._tally(installation_id).refused += 1
                return Refusal(at.reading())
            at.pool.spent += base
            return Ticket(installation_id, at.key, at.pool.window, endpoint, base)

    def settle(self, ticket: Ticket, objects: int) -> Reading | Refusal | None:
        """Charge the rest of a 2xx answer's cost, or give the base back and refuse it."""
        with self._lock:
            at = self._open(ticket.pool)
            if at is None:
                return None
            held = ticket.points if at.pool.window == ticket.window else 0
            extra = at.quota.cost_of(ticket.endpoint, objects) - held
            tally = self._tally(ticket.installation_id)
            if extra > at.left:
                at.pool.spent -= held
                tally.refused += 1
                return Refusal(at.reading())
            at.pool.spent += extra
            tally.points += held + extra
            tally.requests += 1
            return at.reading()

    def release(self, ticket: Ticket) -> Reading | None:
        """Give the base back (an answer that costs nothing)."""
        with self._lock:
            at = self._open(ticket.pool)
            if at is None:
                return None
            if at.pool.window == ticket.window:
                at.pool.spent -= ticket.points
            return at.reading()

    def spend(self, site: str, points: int) -> Reading | None:
        """Spend up to ``points`` of a site's pool as the app's other tenants would."""
        with self._lock:
            at = self._open(self.pool_of(site))
            if at is None:
                return None
            taken = max(0, min(points, at.left))
            at.pool.spent += taken
            self._state.outside += taken
            return at.reading()

    def burst(self, site: str) -> tuple[int, int] | None:
        """Count one call to ``site`` against its per-second burst limit: (limit, what is left
        this second), or None when the call is over the limit (answer 429); ``(0, 0)`` when
        metering is off."""
        with self._lock:
            quota = self._quota
            if quota is None:
                return (0, 0)
            second = math.floor(self._clock())
            at, count = self._state.bursts.get(site, (second, 0))
            count = count + 1 if at == second else 1
            self._state.bursts[site] = (second, count)
            if count > quota.burst:
                self._state.burst_refused += 1
                return None
            return quota.burst, quota.burst - count

    # -- reading ---------------------------------------------------------------------------------

    def reading(self, site: str) -> Reading | None:
        """The pool of a site (its cloudId) as an answer would report it now."""
        with self._lock:
            at = self._open(self.pool_of(site))
            return at.reading() if at is not None else None

    def spent_by(self, installation_id: str) -> int:
        with self._lock:
            tally = self._state.tallies.get(installation_id)
            return tally.points if tally else 0

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_sim/quota`` answers: the policy, each pool now, and the counts."""
        with self._lock:
            quota = self._quota
            tallies = self._state.tallies
            total = _Tally(
                sum(t.points for t in tallies.values()),
                sum(t.requests for t in tallies.values()),
                sum(t.refused for t in tallies.values()),
            )
            opened = [self._open(key) for key in sorted(self._state.pools)]
            pools = [at.reading().to_json() for at in opened if at is not None]
            return {
                "enabled": quota is not None,
                "quota": quota.to_json() if quota else None,
                "pools": pools,
                "installations": {k: t.to_json() for k, t in sorted(tallies.items())},
                "total": total.to_json(),
                "outside": self._state.outside,
                "burstRefused": self._state.burst_refused,
            }

    # -- inside the lock -------------------------------------------------------------------------

    def _open(self, key: str) -> _Open | None:
        """The pool ``key`` now (a new window starts it over); None when metering is off."""
        quota = self._quota
        if quota is None:
            return None
        now = self._clock()
        window = math.floor(now / quota.seconds) * quota.seconds  # windows on the clock
        pool = self._state.pools.setdefault(key, _Pool(window))
        if pool.window != window:
            pool.window, pool.spent = window, 0
        return _Open(quota, key, pool, now)

    def _tally(self, installation_id: str) -> _Tally:
        return self._state.tallies.setdefault(installation_id, _Tally())
