"""``whoami`` and ``lookupUsers``: who is calling, and Confluence users in bulk by account id.

``lookupUsers`` reads its ids by the pasted-list rules (``entries``) and takes ids of at most
``ACCOUNT_ID_MAX`` (128) characters (a longer one is 400 ``bad_input``, before anything is sent);
an id the rules refuse (a space inside, or not an account id's form: ``account_ids.is_account_id``)
names no account and is answered ``notFound`` without being sent or cached. It answers ids the
same caller (installation + account) looked up in the last ``LOOKUP_CACHE_SECONDS`` from the
store's lookup cache, without asking Confluence (it costs no points), and asks Confluence only for
the rest; what Confluence answered is cached for that caller alone (``store.lookups``, bounded per
caller), chunk by chunk as the answers arrive, kept by the process and written in batches off the
call's path (``store.batched_lookups``). Failed ids are not cached. When Confluence refuses the
caller (401/403/404, ``not_permitted``), everything cached for them is dropped, nothing more is
cached, and the ids this call answered from the cache are failed ``not_permitted`` too: what they
were shown before is not shown again once they may no longer see it.
"""

from __future__ import annotations

from typing import Any

from access_desk import entries
from access_desk.confluence.results import Failure, LookupResult
from resolvers.context import Context
from resolvers.inputs import entry_list, only_fields

REFUSED = frozenset({401, 403, 404})


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
    id the pasted-list rules refuse is not sent: no account has it (notFound)."""
    only_fields(payload, {"accountIds"})
    given = entry_list(payload, "accountIds", "accountId")
    client = ctx.confluence()
    ids = [i for i in given if entries.accepted(i, "accountId")]  # the rest name no account
    sendable = set(ids)
    caller, ttl = ctx.account_id or "", ctx.lookup_cache_seconds
    iid = ctx.invocation.installation_id
    caching = bool(caller) and ttl > 0
    cached = ctx.lookups.cached_users(iid, caller, ids, ttl) if caching else {}
    missing = [i for i in ids if i not in cached]
    refused = False

    def remember(part: LookupResult) -> None:  # each chunk's answers, while the rest are awaited
        nonlocal refused
        if not refused and any(f.status in REFUSED for f in part.failed):
            refused = True
            ctx.lookups.drop_cached_lookups(iid, caller)
        if not refused and (part.users or part.not_found):
            ctx.lookups.cache_users(iid, caller, part.users, part.not_found, ttl)

    result = (
        client.lookup_users(missing, remember if caching else None) if missing else LookupResult()
    )
    fresh = {u.get("accountId"): u for u in result.users}
    absent = set(result.not_found)
    failed = list(result.failed)
    if refused:  # no longer served from the cache: Confluence refuses this caller now
        status = next(f.status for f in failed if f.status in REFUSED)
        failed += [Failure(i, "not_permitted", None, status) for i in ids if i in cached]
        cached = {}
    users: list[dict[str, Any]] = []
    not_found: list[str] = []
    for account_id in given:
        user = cached[account_id] if account_id in cached else fresh.get(account_id)
        if user is not None:
            users.append(user)
        elif account_id in cached or account_id in absent or account_id not in sendable:
            not_found.append(account_id)
    order = {a: n for n, a in enumerate(ids)}
    failed.sort(key=lambda f: order.get(f.subject, len(ids)))
    return {
        "users": users,
        "notFound": not_found,
        "failed": [failure_json(f, "accountId") for f in failed],
    }


def failure_json(failure: Failure, subject_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {subject_field: failure.subject, "error": failure.error}
    if failure.retry_after is not None:
        out["retryAfter"] = failure.retry_after
    return out
