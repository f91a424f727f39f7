"""``whoami`` and ``lookupUsers``: who is calling, and Confluence users in bulk by account id.

``lookupUsers`` answers ids the same caller (installation + account) looked up in the last
``LOOKUP_CACHE_SECONDS`` from the store's lookup cache, without asking Confluence (it costs no
points), and asks Confluence only for the rest; what Confluence answered is cached for that caller
alone (``store.lookups``), chunk by chunk as the answers arrive, so the writes overlap the
requests still in flight. Failed ids are not cached.
"""

from __future__ import annotations

from typing import Any

import entries
from confluence import Failure, LookupResult
from resolvers.context import Context
from resolvers.inputs import entry_list, only_fields


def whoami(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, set())
    inv = ctx.invocation
    return {
        "accountId": inv.principal,
        "isAdmin": ctx.is_admin(),
        "site": {"cloudId": inv.cloud_id, "apiBaseUrl": inv.api_base_url},
    }


def lookup(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Users for the given ids: each distinct id in exactly one of users / notFound / failed. An
    id the pasted-list rules refuse (a space inside) is not sent: no account has it (notFound)."""
    only_fields(payload, {"accountIds"})
    given = entry_list(payload, "accountIds", "accountId")
    client = ctx.confluence()
    refused = {i for i in given if not entries.accepted(i, "accountId")}
    ids = [i for i in given if i not in refused]
    caller, ttl = ctx.account_id or "", ctx.lookup_cache_seconds
    iid = ctx.invocation.installation_id
    caching = bool(caller) and ttl > 0
    cached = ctx.store.cached_users(iid, caller, ids, ttl) if caching else {}
    missing = [i for i in ids if i not in cached]

    def remember(part: LookupResult) -> None:  # each chunk's answers, while the rest are awaited
        if part.users or part.not_found:
            ctx.store.cache_users(iid, caller, part.users, part.not_found, ttl)

    result = (
        client.lookup_users(missing, remember if caching else None) if missing else LookupResult()
    )
    fresh = {u.get("accountId"): u for u in result.users}
    absent = set(result.not_found)
    users: list[dict[str, Any]] = []
    not_found: list[str] = []
    for account_id in given:
        user = cached[account_id] if account_id in cached else fresh.get(account_id)
        if user is not None:
            users.append(user)
        elif account_id in cached or account_id in absent or account_id in refused:
            not_found.append(account_id)
    return {
        "users": users,
        "notFound": not_found,
        "failed": [failure_json(f, "accountId") for f in result.failed],
    }


def failure_json(failure: Failure, subject_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {subject_field: failure.subject, "error": failure.error}
    if failure.retry_after is not None:
        out["retryAfter"] = failure.retry_after
    return out
