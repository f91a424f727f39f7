"""``listAudit``: the installation's audit log, newest first, with cursor paging (administrators)."""

from __future__ import annotations

from typing import Any

from resolvers.context import Context
from resolvers.inputs import only_fields, optional_int, optional_str


def list_entries(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, {"limit", "before"})
    limit = optional_int(payload, "limit", 100, low=1, high=500)
    before = optional_str(payload, "before")
    ctx.require_admin()
    entries, next_cursor = ctx.store.list_audit(
        ctx.invocation.installation_id, limit, before=before
    )
    return {"entries": [e.to_json() for e in entries], "next": next_cursor}
