"""``quota``: the Confluence points pool this installation draws on (administrators only).

What Confluence last reported (docs/contract.md §6), read fresh from the shared ledger: ``scope``
``"app"`` (the app's pool, shared by every installation) or ``"site"`` (this site's own), points per
window (``limit``), what is left (``remaining``; a window that has ended counts as full again), when
the window resets (``resetAt``), until when calls are held (``heldUntil``: a 429 or a spent pool) and
whether Confluence said the pool is near its limit. Nulls before any answer told.
"""

from __future__ import annotations

from typing import Any

from ratelimit import Ledger
from records import iso
from resolvers.context import Context
from resolvers.inputs import only_fields


def quota(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, set())
    ctx.require_admin()
    view = Ledger(ctx.store, clock=ctx.store.now, cache_seconds=0.0).view(
        ctx.invocation.api_base_url
    )
    return {
        "scope": view.scope,
        "limit": view.limit,
        "remaining": view.remaining,
        "resetAt": None if view.reset_at is None else iso(view.reset_at),
        "heldUntil": None if view.held_until is None else iso(view.held_until),
        "nearLimit": view.near_limit,
    }
