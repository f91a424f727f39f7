"""The rules that move one ledger row (``quota.pools.Pool``): pure functions, no storage.

- **Windows** end at the clock's multiples of the window ``w`` (the top of each UTC hour for the
  hourly quota) unless ``t`` says otherwise (``window_end = now + t``; a ``t`` within
  ``T_GRAIN`` of the clock's end is the clock's end: ``t`` is whole seconds). A ``t`` more than
  half a window past the known end starts a new window; a ``t`` of a few seconds that ends in
  the first half of the current window is an answer of the window before (``stale``: answered
  just before the turn, read just after) and says nothing of this one. A row whose window has ended rolls over
  (``rolled``): a new ``window_id``, nothing spent or answered, r unknown, not near the limit.
- **What is left** (``left``): the last ``r`` minus what this app spent and has in flight since,
  or, while Confluence has not said ``r`` this window, the pool size minus that; while its latest
  quota entry came without ``r`` (Confluence says under about 80% is used) never under 20% of the
  pool, whatever the estimates say.
- **Silence** (``silent``): an answer without ``r`` says this app was charged at most about 80%
  of the pool (``silence_bound``) for everything it had answered before that request was sent
  (``Sent``: the window's estimated spend and its answered requests, ``window_counts``, then).
  Estimated spend beyond it is an over-estimate: the window's estimated spend and what the
  installations' recorded spend is worth (``spend_scale``) fall by the factor that bounds it, and
  the costs that priced those requests above it are lowered (``quota.learning.silence_caps``).
- **Taking in an answer** (``with_entry``): ``q``, ``w``, ``t`` and ``r`` replace what was known;
  a fall of ``r`` since the last one, with only one operation answered in between, is a cost
  sample (``Sample``) for ``quota.learning``.
- **Holds** (``held``) only ever extend, and last at most ``MAX_HOLD``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from access_desk.quota.costs import Costs
from access_desk.quota.headers import QuotaEntry
from access_desk.quota.learning import silence_caps
from access_desk.quota.pools import Pool

DEFAULT_WINDOW = 3600.0  # seconds: the hourly quota, when no w was said
MAX_HOLD = 3600.0  # seconds: no hold lasts longer
UNDER_R_SHARE = 0.2  # Confluence sends r once about 80% is used: without r, at least this is left
MAX_SAMPLE_POINTS = 100_000  # a larger fall of r in one sample is not ours to learn from
T_GRAIN = 1.5  # seconds: t is whole seconds, a little late; an end this near the clock's is it
STALE_T = 5.0  # seconds: an answer with a t this small, read in a new window, was the old one's


@dataclass(frozen=True, slots=True)
class Sample:
    """``requests`` answered requests of ``operation`` with ``objects`` objects cost ``points``."""

    operation: str
    requests: int
    objects: int
    points: float


def clock_window_end(now: float, window: float) -> float:
    """The end of the window ``now`` is in, windows ending at the clock's multiples of ``window``."""
    return (math.floor(now / window) + 1) * window


def rolled(pool: Pool, now: float) -> Pool | None:
    """``pool`` in a new window when its window has ended by ``now``; None when it has not."""
    if pool.window_end is None or pool.window_end > now:
        return None
    return replace(
        pool,
        window_id=pool.window_id + 1,
        window_end=clock_window_end(now, pool.window or DEFAULT_WINDOW),
        reported=None,
        spent=0.0,
        without_r=False,
        near_limit=False,
        since_op=None,
        since_requests=0,
        since_objects=0,
        window_counts=(),
        spend_scale=1.0,
    )


def current(pool: Pool, now: float) -> Pool:
    """``pool`` as it stands at ``now`` (rolled over when its window has ended)."""
    return rolled(pool, now) or pool


def left(pool: Pool) -> float | None:
    """What is left of the pool (see the module docstring); None when nothing is known."""
    if pool.limit is None and pool.reported is None:
        return None
    base = pool.reported if pool.reported is not None else pool.limit
    assert base is not None
    value = base - pool.spent - pool.pending
    if pool.reported is None and pool.without_r and pool.limit is not None:
        value = max(value, pool.limit * UNDER_R_SHARE)
    if pool.limit is not None:
        value = min(value, float(pool.limit))
    return max(0.0, value)


def held(pool: Pool, until: float, now: float) -> Pool:
    """``pool`` held until ``until`` (at most ``MAX_HOLD`` from ``now``); holds only extend."""
    return replace(pool, held_until=max(pool.held_until, min(until, now + MAX_HOLD)))


def answered(pool: Pool, operation: str, objects: int) -> Pool:
    """One more answered request of ``operation`` since the last r and in this window (for
    learning its cost)."""
    same = pool.since_op in (None, operation)
    objects = max(0, objects)
    counts = dict((op, (k, x)) for op, k, x in pool.window_counts)
    k, x = counts.get(operation, (0, 0))
    counts[operation] = (k + 1, x + objects)
    return replace(
        pool,
        since_op=operation if same else "mixed",
        since_requests=pool.since_requests + 1,
        since_objects=pool.since_objects + objects,
        window_counts=tuple(sorted((op, k, x) for op, (k, x) in counts.items())),
    )


def stale(pool: Pool, entry: QuotaEntry, now: float) -> bool:
    """Whether ``entry`` (read at ``now``) describes the window before ``pool``'s: its window was
    about to end (``t`` at most ``STALE_T``) and that end falls in the first half of the current
    window (see the module docstring)."""
    if entry.reset_in is None or entry.reset_in > STALE_T or pool.window_end is None:
        return False
    window = float(entry.window) if entry.window is not None else pool.window
    window = window or DEFAULT_WINDOW
    return now + entry.reset_in < pool.window_end - window / 2


def silence_bound(pool: Pool) -> float | None:
    """The most this app can have been charged this window while Confluence says no ``r`` (about
    80% of the pool); None unless its latest entry this window came without ``r``."""
    if pool.reported is not None or not pool.without_r or pool.limit is None:
        return None
    return pool.limit * (1 - UNDER_R_SHARE)


@dataclass(frozen=True, slots=True)
class Sent:
    """What a pool's window had settled when a request was sent (``spent``, ``spend_scale``,
    ``window_counts`` then): all of it Confluence had charged before it answered the request.
    Requests settled meanwhile may have been charged after it answered: they are not its to
    bound."""

    window_id: int
    spent: float
    scale: float
    counts: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, pool: Pool) -> Sent:
        return cls(pool.window_id, pool.spent, pool.spend_scale, pool.window_counts)


def silent(pool: Pool, costs: Costs, taught: set[str], sent: Sent) -> tuple[Pool, dict[str, float]]:
    """``pool`` after a silent answer to a request ``sent`` in its window: the estimated spend
    bounded (see the module docstring), and the per-object caps it taught (operation -> cap;
    empty: none). Idempotent for answers sent alike: the spend falls to what the bound allows of
    what was settled before the request went, never twice for it."""
    bound = silence_bound(pool)
    if bound is None or sent.window_id != pool.window_id:
        return pool, {}
    caps = silence_caps(sent.counts, costs, taught, bound)
    if sent.spent > bound:
        scale = min(pool.spend_scale, sent.scale * bound / sent.spent)
        if scale < pool.spend_scale:
            spent = pool.spent * scale / pool.spend_scale
            pool = replace(pool, spent=spent, spend_scale=scale)
    return pool, caps


def with_entry(pool: Pool, entry: QuotaEntry, now: float) -> tuple[Pool, Sample | None]:
    """``pool`` after an answer's quota ``entry``, and the cost sample it gave (if any)."""
    window = float(entry.window) if entry.window is not None else pool.window
    pool = replace(
        pool,
        policy=entry.policy,
        limit=entry.limit if entry.limit is not None else pool.limit,
        window=window,
    )
    if pool.window_end is None:
        pool = replace(pool, window_end=clock_window_end(now, window or DEFAULT_WINDOW))
    if entry.reset_in is not None:
        end = now + entry.reset_in
        on_the_clock = clock_window_end(now, window or DEFAULT_WINDOW)
        if abs(end - on_the_clock) <= T_GRAIN:
            end = on_the_clock
        assert pool.window_end is not None
        if end > pool.window_end + (window or DEFAULT_WINDOW) / 2:
            pool = current(replace(pool, window_end=now), now)  # Confluence began a new window
        pool = replace(pool, window_end=end)
    sample = None
    if entry.remaining is not None:
        r = entry.remaining
        if pool.reported is not None and pool.since_op not in (None, "mixed"):
            fall = pool.reported - r
            if pool.since_requests > 0 and 0 <= fall <= MAX_SAMPLE_POINTS:
                assert pool.since_op is not None
                sample = Sample(pool.since_op, pool.since_requests, pool.since_objects, fall)
        pool = replace(
            pool,
            reported=r if pool.reported is None else min(pool.reported, r),
            spent=0.0,
            without_r=False,
            since_op=None,
            since_requests=0,
            since_objects=0,
        )
        if r == 0 and pool.window_end is not None:
            pool = held(pool, pool.window_end, now)
    elif entry.stated:
        pool = replace(pool, without_r=True)
    return pool, sample
