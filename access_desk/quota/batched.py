"""A process's quota storage that writes to the shared one in batches, off the request path.

The ledger changes its rows two or three times a call (a reservation, its settlement, the payer's
spend); written one by one, those writes were most of a panel call's CPU (``bench/floor.py``).
``BatchedQuota`` wraps the shared ``QuotaStorage`` (the store) and keeps, per process:

- **a view of each row**: the row as last read from the shared storage (read again when a
  ``quota_pools`` finds it older than ``flush_seconds``, or close to a line, below: what another
  process wrote, a hold too, is seen within that time), with this process's changes not written
  yet applied on top, in order;
- **the changes kept back**: each is applied to the view at once (so the ledger decides on it,
  and this process's own calls see each other at once) and written later by one
  ``change_pool`` per row (its ``replay``, or the change itself, applied again to the shared row:
  a rule sees the row as every process left it), the spend as one ``add_spends``, the learned
  costs' samples and caps as one each;
- **a flush** every ``flush_seconds`` (0.1 s, from the ``flusher`` thread, which also flushes at
  the process's exit), and at once when a change holds a pool (a 429 or a burst: every process
  must stop now) or when asked (``flush``). ``then`` runs once its change is written, with the
  row as written (learning from how ``r`` moved reads the shared row, not a view).

Only a little, far from every line the rules draw, is ever kept back. While a pool (with a known
limit) has less than ``AT_ONCE_BELOW`` (40%) of it left, is near its limit or is spent, each of
its changes is made on the shared row itself, atomically, what is kept back written first, its
spend written at once and read fresh, as without batching (the
highest line is the last quarter kept from borrowers, ``quota.shares``; the panel's reserve is
20%). Above it, a process writes at once too when what it keeps back has reserved or spent more
than ``AT_ONCE_KEPT`` (1%) of the limit. So what the other processes do not see yet is at most 1%
of the pool per process (and one call each), and at most ``flush_seconds`` old: it cannot carry a
pool past the 40% line into the last quarter unless some 15 processes all spend at that moment.

A crash loses at most ``flush_seconds`` of estimates (never a hold: holds are written at once);
Confluence's next ``r`` corrects the estimate. A write that fails is kept and tried again, backing
off (``flusher``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from access_desk.flusher import Flusher
from access_desk.quota import rules
from access_desk.quota.pools import (
    Change,
    CostSums,
    Pool,
    QuotaStorage,
    SpendKey,
    Written,
)

log = logging.getLogger("quota")

FLUSH_SECONDS = 0.1
# Below this share of its limit left, a pool's changes are written at once: the highest line the
# rules draw is at 25% (quota.shares.LAST_QUARTER; the reserve for panel calls is 20%).
AT_ONCE_BELOW = 0.4
# A process keeps back at most this share of a pool's limit reserved or spent: what the others do
# not see yet is at most this much per process (and a call).
AT_ONCE_KEPT = 0.01


@dataclass(slots=True)
class _Kept:
    """What is kept back for one row: its changes in order, and what to call once written."""

    changes: list[Change] = field(default_factory=list)
    then: list[Written] = field(default_factory=list)
    points: float = 0.0  # what the changes reserved or spent


def _replaying(changes: Sequence[Change]) -> Change:
    return lambda row: _applied(row, changes)


def _applied(row: Pool, changes: Sequence[Change]) -> Pool | None:
    """``changes`` applied in order (None: none of them changed anything)."""
    pool, changed = row, False
    for change in changes:
        new = change(pool)
        if new is not None:
            pool, changed = new, True
    return pool if changed else None


class BatchedQuota:
    """A ``QuotaStorage`` over ``shared`` that writes in batches; see the module docstring."""

    def __init__(
        self,
        shared: QuotaStorage,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self._shared = shared
        self._flush_seconds = flush_seconds
        self._clock = clock
        self._lock = threading.Lock()  # guards everything below
        self._flushing = threading.Lock()  # one flush at a time
        self._base: dict[str, Pool] = {}  # rows as last read from or written to ``shared``
        self._kept: dict[str, _Kept] = {}
        self._writing: set[str] = set()  # the keys whose changes ``flush`` is writing
        self._written = 0  # rows ``flush`` has written, so far
        self._read_at: dict[str, float] = {}  # when each row was last read from ``shared``
        self._views: dict[str, Pool] = {}  # base with the changes kept back applied
        self._close: set[str] = set()  # keys whose view is close to a line the rules draw
        self._spend: dict[SpendKey, float] = {}
        self._spend_read: dict[SpendKey, tuple[float, float]] = {}  # (read at, points)
        self._samples: list[tuple[str, float, float, float]] = []
        self._caps: dict[str, float] = {}
        self.flusher = Flusher(self, "quota-flush", flush_seconds, background=background)

    # -- rows ------------------------------------------------------------------------------------

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        now = self._clock()
        with self._lock:
            written = self._written
            due = [
                k
                for k in keys
                if k in self._close or now - self._read_at.get(k, -1e9) >= self._flush_seconds
            ]
        if due:
            stored = self._shared.quota_pools(due)
            with self._lock:
                if self._written == written:  # else a flush wrote since: its rows are newer
                    for key in due:
                        self._rebase(key, stored.get(key))
                        self._read_at[key] = now
        with self._lock:
            return {key: self._views[key] for key in keys if key in self._views}

    def _rebase(self, key: str, row: Pool | None) -> None:
        """Take ``row`` as read from ``shared`` (None: it has none) and apply the changes kept
        back on it, unless they are being written (``flush`` rebases on the row it wrote). Each
        change is applied again only before it is written, never after: its ``then`` reads
        what its last application, the one on the shared row, left."""
        if key in self._writing:
            return
        base = self._base.get(key)
        if row is not None and base is not None and row.version == base.version:
            return  # unchanged since: the view stands
        kept = self._kept.get(key)
        if row is None:
            if kept is None:  # never written, or deleted under this process (an uninstall)
                self._base.pop(key, None)
                self._views.pop(key, None)
                self._close.discard(key)
                return
            row = Pool(key)
        self._base[key] = row
        self._view(key, (_applied(row, kept.changes) if kept else None) or row)

    def _view(self, key: str, pool: Pool) -> None:
        """Hold ``pool`` as the view of ``key``; note whether it is close to a line the rules
        draw (then its changes and spend are written at once, and its spend read fresh)."""
        self._views[key] = pool
        left = rules.left(pool)
        close = pool.limit is not None and (
            pool.near_limit
            or pool.reported == 0
            or (left is not None and left < pool.limit * AT_ONCE_BELOW)
        )
        if close:
            self._close.add(key)
        else:
            self._close.discard(key)

    def all_quota_pools(self) -> list[Pool]:
        self.flush()
        return self._shared.all_quota_pools()

    def change_pool(
        self, key: str, change: Change, *, replay: Change | None = None, then: Written | None = None
    ) -> Pool:
        with self._lock:
            close = key in self._close
        if close:
            return self._change_at_once(key, change, then)
        with self._lock:
            old = self._views.get(key) or Pool(key)
            new = change(old)
            if new is not None:
                self._view(key, new)
                kept = self._kept.setdefault(key, _Kept())
                kept.changes.append(replay or change)
                if then is not None:
                    kept.then.append(then)
                kept.points += max(0.0, new.spent + new.pending - old.spent - old.pending)
                limit = new.limit
                at_once = (
                    new.held_until > old.held_until  # a hold stops every process now
                    or key in self._close  # near a line, every point counts
                    or (limit is not None and kept.points > limit * AT_ONCE_KEPT)
                    or self._flush_seconds <= 0
                )
        if new is None:
            if then is not None:
                then(old)
            return old
        self.flusher.wake()
        if at_once:
            self.flush()
        return new

    def _change_at_once(self, key: str, change: Change, then: Written | None) -> Pool:
        """Near a line: what is kept back goes first, then ``change`` decides on the shared row
        itself, atomically, as without batching (two processes never both take the last points
        on what each saw)."""
        self.flush()
        written = self._shared.change_pool(key, change, then=then)
        with self._lock:
            self._written += 1
            self._rebase(key, written)
            self._read_at[key] = self._clock()
        return written

    # -- spend -----------------------------------------------------------------------------------

    def add_spends(self, changes: Mapping[SpendKey, float]) -> None:
        with self._lock:
            for key, points in changes.items():
                self._spend[key] = self._spend.get(key, 0.0) + points
            at_once = any(key[0] in self._close for key in changes)
        self.flusher.wake()
        if at_once:
            self.flush()

    def spend_of(
        self, pool: str, window_id: int, installation_id: str, account_id: str
    ) -> tuple[float, float]:
        mine_key = (pool, window_id, installation_id, "")
        user_key = (pool, window_id, installation_id, account_id)
        keys = [mine_key, user_key] if account_id else [mine_key]
        now = self._clock()
        with self._lock:
            read = [self._spend_read.get(key) for key in keys]
            fresh = pool in self._close
        if fresh or any(r is None or now - r[0] >= self._flush_seconds for r in read):
            mine, user = self._shared.spend_of(pool, window_id, installation_id, account_id)
            with self._lock:
                self._spend_read[mine_key] = (now, mine)
                if account_id:
                    self._spend_read[user_key] = (now, user)
        with self._lock:
            mine = self._spend_read[mine_key][1] + self._spend.get(mine_key, 0.0)
            if not account_id:
                return mine, 0.0
            return mine, self._spend_read[user_key][1] + self._spend.get(user_key, 0.0)

    def drop_spend_before(self, pool: str, window_id: int) -> None:
        with self._lock:
            for kept in (self._spend, self._spend_read):
                for key in [k for k in kept if k[0] == pool and k[1] < window_id]:
                    del kept[key]
        self._shared.drop_spend_before(pool, window_id)

    # -- learned costs ---------------------------------------------------------------------------

    def cost_sums(self) -> dict[str, CostSums]:
        return self._shared.cost_sums()

    def add_cost_sample(self, operation: str, k: float, x: float, d: float) -> None:
        with self._lock:
            self._samples.append((operation, k, x, d))
        self.flusher.wake()

    def lower_cost_caps(self, caps: Mapping[str, float]) -> None:
        with self._lock:
            for operation, cap in caps.items():
                self._caps[operation] = min(cap, self._caps.get(operation, cap))
        self.flusher.wake()

    # -- writing ---------------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop what this process holds of the shared rows and spend (not what it keeps back):
        for a store emptied under it (tests; a restored backup)."""
        with self._lock:
            self._base.clear()
            self._read_at.clear()
            self._spend_read.clear()
            for key in [k for k in self._views if k not in self._kept and k not in self._writing]:
                del self._views[key]
                self._close.discard(key)

    def has_kept(self) -> bool:
        """Whether anything is kept back."""
        with self._lock:
            return bool(self._kept or self._spend or self._samples or self._caps)

    def flush(self) -> bool:
        """Write everything kept back: each row's changes, then the spend and learned costs.
        Whether all of it was written (what was not is kept for the next flush)."""
        with self._flushing:
            with self._lock:
                kept, self._kept = self._kept, {}
                self._writing = set(kept)
            failed = 0
            for key, row in kept.items():
                try:
                    written = self._shared.change_pool(key, _replaying(row.changes))
                except Exception:
                    self._keep_again(key, row)
                    log.warning("quota row %r not written; kept", key, exc_info=failed == 0)
                    failed += 1
                    continue
                with self._lock:
                    self._writing.discard(key)
                    self._written += 1
                    self._rebase(key, written)
                    self._read_at[key] = self._clock()  # as fresh as a read
                for then in row.then:
                    then(written)  # may keep learned costs back: written below
            with self._lock:
                spend, self._spend = self._spend, {}
                samples, self._samples = self._samples, []
                caps, self._caps = self._caps, {}
            return self._write_spend(spend) and self._write_costs(samples, caps) and not failed

    def _keep_again(self, key: str, row: _Kept) -> None:
        with self._lock:
            self._writing.discard(key)
            later = self._kept.get(key, _Kept())
            self._kept[key] = _Kept(
                row.changes + later.changes, row.then + later.then, row.points + later.points
            )

    def _write_spend(self, spend: dict[SpendKey, float]) -> bool:
        if not spend:
            return True
        try:
            self._shared.add_spends(spend)
        except Exception:
            with self._lock:
                for key, points in spend.items():
                    self._spend[key] = self._spend.get(key, 0.0) + points
            log.warning("quota spend not written; kept", exc_info=True)
            return False
        with self._lock:  # what was read before now holds what was written
            for key, points in spend.items():
                if key in self._spend_read:
                    at, read = self._spend_read[key]
                    self._spend_read[key] = (at, read + points)
        return True

    def _write_costs(
        self, samples: list[tuple[str, float, float, float]], caps: dict[str, float]
    ) -> bool:
        try:
            for n, sample in enumerate(samples):
                self._shared.add_cost_sample(*sample)
                samples[n] = ("", 0.0, 0.0, 0.0)  # written: not kept again
            if caps:
                self._shared.lower_cost_caps(caps)
        except Exception:
            with self._lock:
                self._samples[:0] = [s for s in samples if s[0]]
                for operation, cap in caps.items():
                    self._caps[operation] = min(cap, self._caps.get(operation, cap))
            log.warning("learned costs not written; kept", exc_info=True)
            return False
        return True
