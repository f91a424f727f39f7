"""``whoami`` and ``lookupUsers``: who is calling, and Confluence users in bulk by account id."""

from __future__ import annotations

from typing import Any

from confluence import Failure
from resolvers.context import Context
from resolvers.inputs import only_fields, string_list


def whoami(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, set())
    inv = ctx.invocation
    return {
        "accountId": inv.principal,
        "isAdmin": ctx.is_admin(),
        "site": {"cloudId": inv.cloud_id, "apiBaseUrl": inv.api_base_url},
    }


def lookup(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Users for the given ids: each distinct id in exactly one of users / notFound / failed."""
    only_fields(payload, {"accountIds"})
    ids = string_list(payload, "accountIds")
    result = ctx.confluence().lookup_users(ids)
    return {
        "users": result.users,
        "notFound": result.not_found,
        "failed": [failure_json(f, "accountId") for f in result.failed],
    }


def failure_json(failure: Failure, subject_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {subject_field: failure.subject, "error": failure.error}
    if failure.retry_after is not None:
        out["retryAfter"] = failure.retry_after
    return out
