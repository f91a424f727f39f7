"""``checkAccess``: which emails lack access to the site (administrators only)."""

from __future__ import annotations

from typing import Any

from resolvers.context import Context
from resolvers.inputs import email_key, only_fields, string_list
from resolvers.users import failure_json


def check(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Each distinct email in exactly one of withoutAccess / withAccess / invalid / failed."""
    only_fields(payload, {"emails"})
    emails = string_list(payload, "emails", key=email_key)
    ctx.require_admin()
    result = ctx.confluence().check_access(emails)
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
            "invalid": len(result.invalid),
            "failed": len(result.failed),
        },
    )
    return {
        "withoutAccess": result.without_access,
        "withAccess": result.with_access,
        "invalid": result.invalid,
        "failed": [failure_json(f, "email") for f in result.failed],
    }
