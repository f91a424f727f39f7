"""The cost model: what a call to Confluence costs in points, estimated before it is sent.

Confluence charges every call in points against a pool per window (docs/platform.md, "Rate
limits"): reads pay a base point per request plus points per identity object involved (users
returned, emails checked); writes pay the base only. ``COSTS`` holds that table (base, per object)
per operation. It estimates a request (``points``: what ``ratelimit.Ledger.admit`` takes from the
pool before the request goes), a lookup (``lookup_points``) and an invite job
(``invite_job_points``: a job's ``estimatedPoints``); each answer's ``Remaining`` then replaces the
estimate in the ledger.
"""

from __future__ import annotations

import math

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
