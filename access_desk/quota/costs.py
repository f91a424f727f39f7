"""The cost model: what a call to Confluence costs in points, estimated before it is sent.

Confluence charges every request a base point plus points per object it involves; writes pay the
base only (docs/platform.md, "Rate limits"). It publishes no per-endpoint figure: whether the POSTs
that read (users-bulk, check-access) pay per object is not said. ``COSTS`` holds the starting
estimates (base, per object) per operation: an invite is a write (the base only); the reads are
priced as identity reads, 2 points per object, the costliest reading (``UNSAID``: the table may
price them as writes). ``quota.ledger.Ledger`` replaces them with what it learns from the answers
(``quota.learning``); ``Costs`` is such a table, used by
``points``, ``lookup_points`` and ``invite_job_points`` (a job's ``estimatedPoints``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# (base, per object): the starting estimates; ``Costs`` with learned ones replace them.
COSTS: dict[str, tuple[float, float]] = {
    "users_bulk": (1.0, 2.0),  # per account id asked (unknown ids may turn out free)
    "check_access": (1.0, 2.0),  # per email checked
    "invite": (1.0, 0.0),  # a write: the base only
    "user_current": (1.0, 2.0),  # the one user answered (the admin check)
}
Costs = Mapping[str, tuple[float, float]]
# The operations whose per-object cost Atlassian's table leaves open (POSTs that read): learnt from
# how r moves, or lowered by Confluence's silence. The others' costs are the table's own.
UNSAID = frozenset({"users_bulk", "check_access"})
IDS_PER_REQUEST = 250
EMAILS_PER_REQUEST = 100


def points(operation: str, objects: int = 0, costs: Costs = COSTS) -> int:
    """The estimated points of one request of ``operation`` involving ``objects`` objects."""
    base, per = costs.get(operation, COSTS[operation])
    return max(1, math.ceil(base + per * max(0, objects) - 1e-9))


def _requests(n: int, per_request: int) -> int:
    return math.ceil(max(0, n) / per_request)


def _many(operation: str, n: int, per_request: int, costs: Costs) -> int:
    base, per = costs.get(operation, COSTS[operation])
    return math.ceil(base * _requests(n, per_request) + per * max(0, n) - 1e-9)


def lookup_points(ids: int, costs: Costs = COSTS) -> int:
    """What looking up ``ids`` account ids costs at most (250 per request)."""
    return _many("users_bulk", ids, IDS_PER_REQUEST, costs)


def check_points(emails: int, costs: Costs = COSTS) -> int:
    """What checking ``emails`` emails' access costs (100 per request)."""
    return _many("check_access", emails, EMAILS_PER_REQUEST, costs)


def invite_job_points(total: int, *, dry_run: bool, settled: int = 0, costs: Costs = COSTS) -> int:
    """What an invite job of ``total`` emails costs: checking all of them, then (unless a dry
    run) inviting those not ``settled`` (already with access or invalid), 100 per request."""
    invites = 0 if dry_run else _many("invite", max(0, total - settled), EMAILS_PER_REQUEST, costs)
    return check_points(total, costs) + invites
