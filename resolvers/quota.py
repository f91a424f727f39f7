"""``quota``: the Confluence points pool this installation draws on (administrators only).

What the shared ledger knows (docs/contract.md §6), read fresh through this process's ledger (its
own calls' changes at once, the other processes' once written, within ``quota.batched``'s 0.1 s):
``scope`` ``"app"`` (the app's pool, shared by every installation) or ``"site"`` (this site's
own), points per window (``limit``: the policy's ``q``), what is left (``remaining``;
``remainingEstimated`` true while Confluence has not said ``r`` this window, or the ledger has
spent since it did: then it is the ledger's estimate), when the window ends (``resetAt``), until
when calls are held (``heldUntil``: a quota 429 or a spent pool), whether Confluence said the pool
is near its limit, this installation's own estimated spend this window (``spent``) and its fair
share (``share``: ``INSTALLATION_SHARE`` of the pool), and what each call costs by the ledger's
learned costs (``costs``: base and per-object points per request, ``learned`` once the answers
have shown it: how r moved, or Confluence's silence lowered it). Nulls before any answer told.
"""

from __future__ import annotations

from typing import Any

from access_desk.store.records import iso
from resolvers.context import Context
from resolvers.inputs import only_fields

OPERATIONS = {"users_bulk": "lookup", "check_access": "check", "invite": "invite"}


def quota(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, set())
    ctx.require_admin()
    ledger = ctx.ledger
    view = ledger.view(ctx.invocation.api_base_url, ctx.invocation.installation_id)
    costs = ledger.costs()
    learned = ledger.learned_operations()
    return {
        "scope": view.scope,
        "limit": view.limit,
        "remaining": view.remaining,
        "remainingEstimated": view.estimated,
        "resetAt": None if view.reset_at is None else iso(view.reset_at),
        "heldUntil": None if view.held_until is None else iso(view.held_until),
        "nearLimit": view.near_limit,
        "spent": view.spent,
        "share": view.share,
        "costs": {
            name: {
                "base": round(costs[op][0], 2),
                "perObject": round(costs[op][1], 2),
                "learned": op in learned,
            }
            for op, name in OPERATIONS.items()
        },
    }
