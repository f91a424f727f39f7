"""Learning what each operation really costs: from how Confluence's ``r`` moved, and from its
silence.

**From r.** Between two answers that said ``r`` in the same window, with only requests of one
operation answered in between (``k`` requests involving ``x`` objects), ``r`` fell by what they cost
(``d`` points). ``quota.ledger.Ledger`` records each such sample (``QuotaStorage.add_cost_sample``,
kept in the store and shared by every instance); ``fit`` turns an operation's samples into (base,
per object) by least squares, ``d ~ base * k + per * x``. When the samples cannot tell base from per
object (every request had the same number of objects, or none), the base stays at its starting
estimate (Confluence documents it: 1 point) and only the per-object cost is fitted. Fewer than
``MIN_SAMPLES`` samples, or a fit that comes out negative, leaves the starting estimate.

**From silence.** Confluence says ``r`` once about 80% of the pool is used: an answer without it
says less is used, so what this app's requests answered in the window before that request was sent
cost is at most that (``bound``; ``quota.rules.Sent``). When the current costs price them above it,
the estimates are high: ``silence_caps``
lowers the per-object cost of the operations whose price Atlassian leaves open (``quota.costs.UNSAID``)
and that r has not taught yet, all by one factor, just enough for the window's requests to fit the
bound. Those caps are kept with the samples (``QuotaStorage.lower_cost_caps``, only ever lower) and
serve every later window; once r teaches an operation's cost (``MIN_SAMPLES`` samples), the fit
replaces its cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from access_desk.quota.costs import COSTS, UNSAID, Costs
from access_desk.quota.pools import CostSums

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
    """Every operation's (base, per object): fitted where r taught it, else ``COSTS`` with the
    per-object cost capped where silence lowered it."""
    found = {}
    for op, prior in COSTS.items():
        s = sums.get(op, CostSums())
        base, per = fit(s, prior)
        if s.samples < MIN_SAMPLES and s.cap is not None:
            per = min(per, s.cap)
        found[op] = (base, per)
    return found


def taught_by_r(sums: Mapping[str, CostSums]) -> set[str]:
    """The operations whose cost r taught (enough samples)."""
    return {op for op, s in sums.items() if s.samples >= MIN_SAMPLES and op in COSTS}


def learned(sums: Mapping[str, CostSums]) -> set[str]:
    """The operations whose cost is learned: taught by r, or lowered by silence."""
    return taught_by_r(sums) | {op for op, s in sums.items() if s.cap is not None and op in COSTS}


def silence_caps(
    counts: Iterable[tuple[str, int, int]], costs: Costs, taught: set[str], bound: float
) -> dict[str, float]:
    """New per-object caps when the window's answered requests (``counts``: operation, requests,
    objects) cost more by ``costs`` than ``bound`` (what Confluence's silence allows); empty when
    they fit, or when no open price (``UNSAID``, not ``taught`` by r) can give way."""
    total = 0.0
    open_part: dict[str, float] = {}
    for op, k, x in counts:
        base, per = costs.get(op, COSTS.get(op, (1.0, 0.0)))
        total += base * k + per * x
        if op in UNSAID and op not in taught and per > 0 and x > 0:
            open_part[op] = open_part.get(op, 0.0) + per * x
    flexible = sum(open_part.values())
    if total <= bound * (1 + 1e-9) or flexible <= 0:
        return {}
    factor = max(0.0, bound - (total - flexible)) / flexible
    return {op: costs[op][1] * factor for op in open_part}
