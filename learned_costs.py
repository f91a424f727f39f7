"""Learning what each operation really costs, from how Confluence's ``r`` moved.

Between two answers that said ``r`` in the same window, with only requests of one operation
answered in between (``k`` requests involving ``x`` objects), ``r`` fell by what they cost (``d``
points). ``ratelimit.Ledger`` records each such sample (``QuotaStorage.add_cost_sample``, kept in
the store and shared by every instance); ``fit`` turns an operation's samples into (base, per
object) by least squares, ``d ~ base * k + per * x``. When the samples cannot tell base from per
object (every request had the same number of objects, or none), the base stays at its starting
estimate (Confluence documents it: 1 point) and only the per-object cost is fitted. Fewer than
``MIN_SAMPLES`` samples, or a fit that comes out negative, leaves the starting estimate.
"""

from __future__ import annotations

from collections.abc import Mapping

from costs import COSTS
from quota_pools import CostSums

MIN_SAMPLES = 3
MAX_SAMPLE_POINTS = 100_000  # a larger fall of r in one sample is someone else's spend


def fit(sums: CostSums, prior: tuple[float, float]) -> tuple[float, float]:
    """(base, per object) from ``sums``, or ``prior`` (see the module docstring)."""
    if sums.samples < MIN_SAMPLES or sums.kk <= 0:
        return prior
    det = sums.kk * sums.xx - sums.kx * sums.kx
    if sums.xx > 0 and det > 1e-6 * sums.kk * sums.xx:
        base = (sums.kd * sums.xx - sums.xd * sums.kx) / det
        per = (sums.kk * sums.xd - sums.kx * sums.kd) / det
        if base >= 0 and per >= 0:
            return base, per
    if sums.xx <= 0:  # no objects at all: only the base can be seen
        return max(0.0, sums.kd / sums.kk), prior[1]
    base = prior[0]
    return base, max(0.0, (sums.xd - base * sums.kx) / sums.xx)


def model(sums: Mapping[str, CostSums]) -> dict[str, tuple[float, float]]:
    """Every operation's (base, per object): learned where it can be, ``COSTS`` otherwise."""
    return {op: fit(sums.get(op, CostSums()), prior) for op, prior in COSTS.items()}


def learned(sums: Mapping[str, CostSums]) -> set[str]:
    """The operations whose cost is learned (enough samples)."""
    return {op for op, s in sums.items() if s.samples >= MIN_SAMPLES and op in COSTS}
