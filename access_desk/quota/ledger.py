"""Rate limiting: how Access Desk spends Confluence's points quota as one careful client.

Confluence charges every call in points against a pool per window (docs/platform.md, "Rate
limits"; the rules are docs/contract.md §6). Everything about *when* a call may go lives here;
``confluence.client.Client`` asks a ``Ledger`` before each request (``admit``) and tells it what the
answer said (``settle``). The rows are kept by a ``quota.pools.QuotaStorage``: the store
(``store.quota``, shared by every worker and instance), a process's ``quota.batched.BatchedQuota``
over it (the app's: its writes go in batches, off the calls' path) or ``MemoryQuota`` (one
process).

- **Pools.** A site draws on the app's pool (key ``APP``, shared by every installation;
  Confluence's default) or, once an answer names a tenant policy, on its own (key = its
  ``api_base_url``). Row rules (windows, what is left, learning, holds): ``quota.rules``.
- **Holds.** A quota 429 holds its pool until ``Retry-After``, else ``t``, else the window's end (at
  most an hour): the app pool's hold holds every installation, a site pool's one site. ``r=0``
  holds its pool until the window ends. A burst 429 (no quota reason) pauses that one site for its
  ``Retry-After`` (``BURST_PAUSE`` without one), and so does a 503's ``Retry-After``; the client
  retries within the call. ``wait_seconds`` says how long a site's calls must still wait.
- **Admission.** A request is sent whenever its pool is not known to be spent, whatever its
  estimate. Background work (job steps) also waits, until the window ends, while the pool is near
  its limit or the request would dig into the last ``RESERVE_SHARE`` (20%): that is kept for panel
  calls. (An estimate that could never fit is judged by what is left before it; and while
  Confluence's latest answer came without ``r``, it says over about 20% is left, whatever the
  estimates say: so no estimate can stall a job.) Every request waits when its installation or
  user has spent its fair share and borrowing would dig into the pool's last quarter
  (``quota.shares``). An admitted request's estimate is reserved (``pending``) and counted to its
  installation and user; its answer settles it.
- **Estimates.** What a request costs is estimated with the learned costs (``quota.learning``,
  shared through the storage, re-read every ``COSTS_CACHE_SECONDS``) and corrected once the
  answer tells the objects involved (a lookup pays for the users it returned). An answer without
  ``r`` says at most about 80% of the pool was used when Confluence answered: what the window had
  settled before its request went (``Admission.sent``) is bounded by that, and so is the fair-share
  spend (recorded per window in that window's units, ``Pool.spend_scale``); the open costs that
  priced it higher are lowered (``quota.rules.silent``).

Reads are cached in-process for ``cache_seconds`` (0.5 s for the store); times are wall-clock
epoch seconds (``clock``), since instances share them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from access_desk.quota import rules
from access_desk.quota.costs import Costs, points
from access_desk.quota.headers import QuotaEntry, Reading, read_headers
from access_desk.quota.learning import learned, model, taught_by_r
from access_desk.quota.pools import (
    APP,
    SITE,
    CostSums,
    MemoryQuota,
    Pool,
    QuotaStorage,
    spend_rows,
)
from access_desk.quota.shares import Shares, over_share

RESERVE_SHARE = 0.2  # the last 20% of a window is kept for panel calls
BURST_PAUSE = 1.0  # seconds a burst 429 without Retry-After pauses its site
SPENT_PAUSE = 60.0  # seconds a quota 429 holds when nothing says how long
COSTS_CACHE_SECONDS = 5.0
EVEN_SHARES = Shares()  # INSTALLATION_SHARE and USER_SHARE at their defaults


@dataclass(frozen=True, slots=True)
class Payer:
    """Who a request is for: its installation and user (fair shares); empty: nobody's."""

    installation_id: str = ""
    account_id: str = ""


NOBODY = Payer()  # a request counted to no installation (tests, single clients)


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``admit`` decided: ``wait`` 0.0 to go, else the seconds to wait (nothing reserved);
    ``why`` says what holds it (``held``, ``spent``, ``reserve``, ``share``). ``window_id`` and
    ``scale``: the window the reservation was counted to its payer in, and what a recorded point
    of spend was worth then (``Pool.spend_scale``); ``sent``: what the window had settled then
    (for reading Confluence's silence)."""

    wait: float
    operation: str = ""
    pool: str | None = None
    reserved: float = 0.0
    payer: Payer = NOBODY
    why: str | None = None
    window_id: int = 0
    scale: float = 1.0
    sent: rules.Sent | None = None


@dataclass(frozen=True, slots=True)
class PoolView:
    """The pool a site draws on as the ``quota`` resolver shows it (None: not known yet).
    ``spent`` and ``share``: the installation's estimated spend this window, and its share."""

    scope: str | None
    limit: int | None
    remaining: int | None
    estimated: bool
    reset_at: float | None
    held_until: float | None
    near_limit: bool
    spent: int | None = None
    share: int | None = None


class Ledger:
    """The rate-limit rules over a ``QuotaStorage``; see the module docstring. Thread-safe."""

    def __init__(
        self,
        storage: QuotaStorage,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 0.5,
        shares: Shares = EVEN_SHARES,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._cache_seconds = cache_seconds
        self.shares = shares
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Pool | None]] = {}
        self._sums: tuple[float, dict[str, CostSums]] | None = None

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

    def _remember(self, pool: Pool) -> None:
        with self._lock:
            self._cache[pool.key] = (self._clock(), pool)

    @staticmethod
    def _pool_key(site: str, rows: Mapping[str, Pool]) -> str:
        row = rows.get(site)
        return site if row is not None and row.scope == SITE else APP

    def _cost_sums(self) -> dict[str, CostSums]:
        now = self._clock()
        with self._lock:
            cached = self._sums
        fresh_for = min(COSTS_CACHE_SECONDS, self._cache_seconds * 10)
        if cached is not None and now - cached[0] < fresh_for:
            return cached[1]
        fresh = self._storage.cost_sums()
        with self._lock:
            self._sums = (now, fresh)
        return fresh

    def costs(self) -> Costs:
        """Every operation's (base, per object) points: learned where they can be."""
        return model(self._cost_sums())

    def learned_operations(self) -> set[str]:
        """The operations whose cost the ledger has learned (from r, or lowered by silence)."""
        return learned(self._cost_sums())

    def estimate(self, operation: str, objects: int) -> int:
        """The estimated points of one request (learned costs where known)."""
        return points(operation, objects, self.costs())

    def wait_seconds(self, site: str) -> float:
        """How long calls for ``site`` must still wait (0 = go): its own hold and the hold of the
        pool it draws on."""
        now = self._clock()
        rows = self._rows([site, APP])
        until = rows[site].held_until if site in rows else 0.0
        key = self._pool_key(site, rows)
        if key in rows:
            until = max(until, rows[key].held_until)
        return max(0.0, until - now)

    def is_near_limit(self, site: str) -> bool:
        """Whether the pool ``site`` draws on is near its limit (new chunks go one at a time):
        Confluence said so, or less than 20% of a known window is left."""
        rows = self._rows([site, APP])
        pool = rows.get(self._pool_key(site, rows))
        if pool is None:
            return False
        pool = rules.current(pool, self._clock())
        left = rules.left(pool)
        low = pool.limit is not None and left is not None and left < pool.limit * RESERVE_SHARE
        return pool.near_limit or low

    def view(self, site: str, installation_id: str = "") -> PoolView:
        """The pool ``site`` draws on, read fresh (nulls before any answer told)."""
        now = self._clock()
        rows = self._rows([site, APP], fresh=True)
        key = self._pool_key(site, rows)
        pool = rows.get(key)
        until = max((rows[k].held_until for k in {site, key} if k in rows), default=0.0)
        held_until = until if until > now else None
        if pool is None or (pool.limit is None and pool.reported is None):
            near = pool is not None and pool.near_limit
            return PoolView(None, None, None, True, None, held_until, near)
        pool = rules.current(pool, now)
        left = rules.left(pool)
        spent = share = None
        if installation_id:
            mine, _ = self._storage.spend_of(key, pool.window_id, installation_id, "")
            spent = max(0, round(mine * pool.spend_scale))
            if pool.limit is not None:
                share = math.floor(self.shares.of_installation(pool.limit))
        return PoolView(
            scope=SITE if key == site else APP,
            limit=pool.limit,
            remaining=None if left is None else math.floor(left),
            estimated=pool.reported is None or pool.spent + pool.pending > 0,
            reset_at=pool.window_end,
            held_until=held_until,
            near_limit=pool.near_limit,
            spent=spent,
            share=share,
        )

    def pool_gauges(self) -> list[tuple[str, int | None, int | None, float]]:
        """Every known pool as (key, limit, remaining, seconds held) for the metrics."""
        now = self._clock()
        gauges = []
        for stored in self._storage.all_quota_pools():
            pool = rules.current(stored, now)
            left = rules.left(pool)
            remaining = None if left is None else math.floor(left)
            gauges.append((pool.key, pool.limit, remaining, max(0.0, pool.held_until - now)))
        return gauges

    # -- spending --------------------------------------------------------------------------------

    def admit(
        self,
        site: str,
        operation: str,
        objects: int,
        *,
        background: bool,
        payer: Payer = NOBODY,
        waited: bool = False,
    ) -> Admission:
        """Whether a request of ``operation`` (``objects`` objects) for ``site`` may go now; see
        the module docstring. Every admitted request must be ``settle``-d once. ``waited``: the
        caller has just waited out the holds ``wait_seconds`` gave (and so a pool they said was
        spent): its request goes and its answer tells whether the pool is back."""
        now = self._clock()
        rows = self._rows([site, APP], fresh=True)
        key = self._pool_key(site, rows)
        until = max((rows[k].held_until for k in {site, key} if k in rows), default=0.0)
        if until > now and not waited:
            return Admission(until - now, operation, why="held")
        cost = float(self.estimate(operation, objects))
        stored = rows.get(key)
        if stored is None or (stored.limit is None and stored.reported is None):
            return Admission(0.0, operation, payer=payer)  # nothing known: the answer tells
        window_id = rules.current(stored, now).window_id
        mine = user = 0.0
        if payer.installation_id and stored.limit is not None:
            mine, user = self._storage.spend_of(
                key, window_id, payer.installation_id, payer.account_id
            )
            scale = rules.current(stored, now).spend_scale  # what recorded spend is worth
            mine, user = max(0.0, mine * scale), max(0.0, user * scale)
        refusal: list[tuple[float, str]] = []

        def decide(row: Pool) -> Pool | None:
            refusal.clear()
            pool = rules.current(row, now)
            why = self._refusal(pool, background, cost, mine, user, waited)
            if why is not None:
                end = pool.window_end if pool.window_end is not None else now + SPENT_PAUSE
                refusal.append((max(1.0, end - now), why))
                return pool if pool is not row else None
            return replace(pool, pending=pool.pending + cost, updated_at=now)

        def reserve(row: Pool) -> Pool:  # what is written to the shared row, once decided
            pool = rules.current(row, now)
            return pool if refusal else replace(pool, pending=pool.pending + cost, updated_at=now)

        pool = self._storage.change_pool(key, decide, replay=reserve)
        self._remember(pool)
        if pool.window_id != stored.window_id:
            self._storage.drop_spend_before(key, pool.window_id)
        if refusal:
            return Admission(min(rules.MAX_HOLD, refusal[0][0]), operation, why=refusal[0][1])
        if payer.installation_id:
            self._storage.add_spends(
                spend_rows(
                    key,
                    pool.window_id,
                    payer.installation_id,
                    payer.account_id,
                    cost / pool.spend_scale,
                )
            )
        return Admission(
            0.0,
            operation,
            key,
            cost,
            payer,
            window_id=pool.window_id,
            scale=pool.spend_scale,
            sent=rules.Sent.of(pool),
        )

    def _refusal(
        self, pool: Pool, background: bool, cost: float, mine: float, user: float, waited: bool
    ) -> str | None:
        left = rules.left(pool)
        if pool.reported == 0 and not waited:
            return "spent"
        if left is None or (pool.reported == 0 and waited):
            return None
        limit = pool.limit
        if background and limit is not None:
            reserve = limit * RESERVE_SHARE
            trusted = pool.reported is None and pool.without_r  # Confluence: over ~20% left
            after = left - cost if cost <= limit - reserve else left  # an estimate that can fit
            if pool.near_limit or (after < reserve and not (trusted and left <= reserve)):
                return "reserve"
        if limit is not None and (mine or user):
            if over_share(self.shares, limit, left, cost, mine, user):
                return "share"
        return None

    # -- learning --------------------------------------------------------------------------------

    def settle(
        self,
        site: str,
        admission: Admission | None,
        status: int | None,
        headers: Mapping[str, str],
        objects: int = 0,
    ) -> Reading:
        """Feed one answer of ``site`` into the ledger (``status`` None: no answer came) and
        settle its ``admission``: the estimate for the objects the answer involved replaces the
        one reserved (nothing for a refused or failed answer, the reservation for no answer). An
        answer of the window before (``quota.rules.stale``) only settles: it is not this window's
        spend and says nothing of it. While Confluence says no ``r``, the window's estimated spend
        is bounded by its silence and the costs it shows too high are lowered
        (``quota.rules.silent``)."""
        now = self._clock()
        reading = read_headers(status or 0, headers)
        operation = admission.operation if admission is not None else ""
        charged = status is not None and 200 <= status < 300
        actual = 0.0
        if admission is not None and admission.wait == 0:
            if status is None:
                actual = admission.reserved
            elif charged:
                actual = float(self.estimate(operation, objects))
        rows = self._rows([site, APP])
        scope = self._site_scope(reading) or (SITE if self._pool_key(site, rows) == site else APP)
        key = site if scope == SITE else APP
        for entry in reading.entries:
            entry_key = site if entry.scope == SITE else APP
            if entry_key != key:
                self._change(entry_key, self._with_entry(entry, now))
        samples: list[rules.Sample] = []
        caps: list[dict[str, float]] = []
        lateness: list[bool] = []
        reserved_in = admission.pool if admission is not None else None
        sums = self._cost_sums()
        costs, taught = model(sums), taught_by_r(sums)

        def settled(pool: Pool, spend: float) -> Pool:
            assert admission is not None
            return replace(
                pool,
                pending=max(0.0, pool.pending - admission.reserved),
                spent=pool.spent + spend,
            )

        if reserved_in is not None and reserved_in != key:
            self._change(reserved_in, lambda p: settled(rules.current(p, now), actual))

        def apply(row: Pool) -> Pool:
            pool = rules.current(row, now)
            entry = reading.entry(scope)
            late = entry is not None and rules.stale(pool, entry, now)
            spend = 0.0 if late else actual  # a late answer was charged in the window before
            lateness[:] = [late]
            if reserved_in == key:
                pool = settled(pool, spend)
            elif admission is not None and admission.wait == 0 and reserved_in is None:
                pool = replace(pool, spent=pool.spent + spend)  # sent before a pool was known
            samples.clear()
            caps.clear()
            if late:
                return replace(pool, updated_at=now)
            if charged and operation:
                pool = rules.answered(pool, operation, objects)
            if entry is not None:
                pool, sample = rules.with_entry(pool, entry, now)
                samples.extend([sample] if sample is not None else [])
            if reading.near_limit is not None:
                pool = replace(pool, near_limit=reading.near_limit)
            if reading.refused_scope is not None:
                pool = replace(pool, reported=0)
                pool = rules.held(pool, self._quota_hold_end(pool, reading, now), now)
            sent = admission.sent if admission is not None and reserved_in == key else None
            silence = entry is not None and entry.stated and entry.remaining is None
            if sent is not None and silence:  # this very answer came without r
                pool, found = rules.silent(pool, costs, taught, sent)
                caps.extend([found] if found else [])
            return replace(pool, updated_at=now)

        def learn(_: Pool) -> None:  # once written: what the shared row's r showed
            for sample in samples:
                self._storage.add_cost_sample(
                    sample.operation, sample.requests, sample.objects, sample.points
                )
            for found in caps:
                self._storage.lower_cost_caps(found)
            if samples or caps:
                with self._lock:
                    self._sums = None

        stored = rows.get(key)
        near_changes = reading.near_limit is True or (
            reading.near_limit is False and stored is not None and stored.near_limit
        )
        touches = bool(reading.entries or near_changes or reading.quota_429 or reserved_in == key)
        after = self._change(key, apply, then=learn) if touches else None
        if admission is not None and admission.wait == 0 and admission.payer.installation_id:
            self._count_to_payer(admission, key, after, actual, late=any(lateness))
        site_scope = self._site_scope(reading)
        if site_scope is not None and (site not in rows or rows[site].scope != site_scope):
            self._change(site, lambda p: replace(p, scope=site_scope, updated_at=now))
        if reading.burst_429 or (status == 503 and reading.retry_after is not None):
            pause = reading.retry_after if reading.retry_after is not None else BURST_PAUSE
            self.hold(site, pause)
        return reading

    def _count_to_payer(
        self, admission: Admission, key: str, after: Pool | None, actual: float, *, late: bool
    ) -> None:
        """Correct the payer's recorded spend: the reservation goes, and the points the answer
        showed count to the window they were charged in (the pool's now, or the admission's for a
        ``late`` answer); recorded spend is in its window's units (``Pool.spend_scale``)."""
        payer = admission.payer
        changes: dict[tuple[str, int], float] = {}
        if admission.pool is not None:
            changes[(admission.pool, admission.window_id)] = -admission.reserved / admission.scale
        if actual:
            if after is not None and not late:
                where, scale = (after.key, after.window_id), after.spend_scale
            elif admission.pool is not None:
                where, scale = (admission.pool, admission.window_id), admission.scale
            else:
                return  # sent before a pool was known, and no pool was said
            changes[where] = changes.get(where, 0.0) + actual / scale
        for (pool, window_id), change in changes.items():
            if abs(change) > 1e-9:
                self._storage.add_spends(
                    spend_rows(pool, window_id, payer.installation_id, payer.account_id, change)
                )

    def observe(self, site: str, status: int, headers: Mapping[str, str]) -> Reading:
        """Feed an answer that was not admitted (nothing reserved) into the ledger."""
        return self.settle(site, None, status, headers)

    @staticmethod
    def _site_scope(reading: Reading) -> str | None:
        """Which pool an answer says the site draws on (a tenant entry: its own)."""
        scopes = {e.scope for e in reading.entries}
        if reading.refused_scope is not None:
            scopes.add(reading.refused_scope)
        return SITE if SITE in scopes else APP if APP in scopes else None

    @staticmethod
    def _quota_hold_end(pool: Pool, reading: Reading, now: float) -> float:
        """A quota 429 holds until Retry-After, else t, else the window's end."""
        if reading.retry_after is not None:
            return now + reading.retry_after
        entry = reading.entry(APP if pool.key == APP else SITE)
        if entry is not None and entry.reset_in is not None:
            return now + entry.reset_in
        if pool.window_end is not None and pool.window_end > now:
            return pool.window_end
        return now + SPENT_PAUSE

    @staticmethod
    def _with_entry(entry: QuotaEntry, now: float) -> Callable[[Pool], Pool]:
        def change(pool: Pool) -> Pool:
            return rules.with_entry(rules.current(pool, now), entry, now)[0]

        return change

    def _change(
        self,
        key: str,
        change: Callable[[Pool], Pool | None],
        then: Callable[[Pool], None] | None = None,
    ) -> Pool:
        pool = self._storage.change_pool(key, change, then=then)
        self._remember(pool)
        return pool

    def flush(self) -> bool:
        """Write what the storage keeps back (``quota.batched``); whether all of it was written."""
        return self._storage.flush()

    def forget(self) -> None:
        """Drop every row and sum read before (after ``flush``): for a store emptied under the
        process (tests; a restored backup)."""
        with self._lock:
            self._cache.clear()
            self._sums = None
        self._storage.forget()

    def hold(self, site: str, seconds: float) -> None:
        """Hold ``site`` alone for ``seconds`` (a burst 429's or a 503's ``Retry-After``)."""
        now = self._clock()
        self._change(site, lambda p: rules.held(p, now + max(0.0, seconds), now))


class MemoryLedger(Ledger):
    """An in-process ledger (one process; tests and single clients), without a read cache."""

    def __init__(
        self, clock: Callable[[], float] = time.time, shares: Shares = EVEN_SHARES
    ) -> None:
        super().__init__(MemoryQuota(), clock=clock, cache_seconds=0.0, shares=shares)


class SharedLedger(Ledger):
    """The ledger shared by every worker and instance, kept in the store (``store.quota``): a
    ``Ledger`` over the store, or over a process's ``quota.batched.BatchedQuota`` of it (the app's:
    its writes go in batches), named for what it is where it is built."""
