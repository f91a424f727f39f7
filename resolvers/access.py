"""``checkAccess``: which emails lack access to the site (administrators only)."""

from __future__ import annotations

from typing import Any

from access_desk import entries
from resolvers.context import Context
from resolvers.inputs import entry_list, only_fields
from resolvers.users import failure_json


def check(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Each distinct email in exactly one of withoutAccess / withAccess / invalid / failed. An
    entry the pasted-list rules refuse is ``invalid`` without asking Confluence."""
    only_fields(payload, {"emails"})
    emails = entry_list(payload, "emails", "email")
    ctx.require_admin()
    refused = {e for e in emails if not entries.accepted(e, "email")}
    result = ctx.confluence().check_access([e for e in emails if e not in refused])
    invalid = set(result.invalid) | refused
    invalid_in_order = [e for e in emails if e in invalid]
    assert ctx.account_id is not None
    ctx.store.add_audit(
        ctx.invocation.installation_id,
        actor=ctx.account_id,
        action="checkAccess",
        source="panel",
        subjects=emails[:100],
        outcome={
            "emails": len(emails),
            "withoutAccess": len(result.without_access),
            "withAccess": len(result.with_access),
            "invalid": len(invalid_in_order),
            "failed": len(result.failed),
        },
    )
    return {
        "withoutAccess": result.without_access,
        "withAccess": result.with_access,
        "invalid": invalid_in_order,
        "failed": [failure_json(f, "email") for f in result.failed],
    }
