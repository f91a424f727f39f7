"""The rules that move one ledger row (``quota_pools.Pool``): pure functions, no storage.

- **Windows** end at the clock's multiples of the window ``w`` (the top of each UTC hour for the
  hourly quota) unless ``t`` says otherwise (``window_end = now + t``); a ``t`` more than half a
  window past the known end starts a new window. A row whose window has ended rolls over
  (``rolled``): a new ``window_id``, nothing spent, r unknown, not near the limit.
- **What is left** (``left``): the last ``r`` minus what this app spent and has in flight since,
  or, while Confluence has not said ``r`` this window, the pool size minus that; while its latest
  quota entry came without ``r`` (Confluence says under about 80% is used) never under 20% of the
  pool, whatever the estimates say.
- **Taking in an answer** (``with_entry``): ``q``, ``w``, ``t`` and ``r`` replace what was known;
  a fall of ``r`` since the last one, with only one operation answered in between, is a cost
  sample (``Sample``) for ``learned_costs``.
- **Holds** (``held``) only ever extend, and last at most ``MAX_HOLD``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from quota_pools import Pool
from ratelimit_headers import QuotaEntry

DEFAULT_WINDOW = 3600.0  # seconds: the hourly quota, when no w was said
MAX_HOLD = 3600.0  # seconds: no hold lasts longer
UNDER_R_SHARE = 0.2  # Confluence sends r once about 80% is used: without r, at least this is left
MAX_SAMPLE_POINTS = 100_000  # a larger fall of r in one sample is not ours to learn from


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
    """One more answered request of ``operation`` since the last r (for learning its cost)."""
    same = pool.since_op in (None, operation)
    return replace(
        pool,
        since_op=operation if same else "mixed",
        since_requests=pool.since_requests + 1,
        since_objects=pool.since_objects + max(0, objects),
    )


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
