"""``diagnose``: a live check of this installation, for Confluence administrators.

Answers ``{"checks": [{"name", "status": "ok" | "warn" | "fail", "detail", "summary",
"accounts"?}]}`` (docs/contract.md §4 and §7): ``detail`` the technical reading, ``summary`` the
same in plain words with what to do, ``accounts`` the account ids the summary names
(``check.Check``). In this order:

1. ``Forge invocation token``: what the verified FIT says (installation, site, environment).
2. ``User token`` / ``System token``: the tokens Forge sent with this call, and when they expire
   (``forge.tokens.token_expiry``: a JWT's ``exp``, otherwise 2 hours), or the stored system token.
3. ``Admin check``: ``user/current?expand=operations`` as the caller, with the operations
   Confluence reported (so a wrong admin reading is visible).
4. One minimal call to each endpoint, with the scope it needs: ``users-bulk`` with the caller's
   own account id; ``check-access-by-email`` with one address under ``example.com`` (a reserved
   domain: nobody is affected); ``invite-by-email`` with an EMPTY list, which cannot invite anyone:
   Confluence answers 400 for it past the gateway's scope check, while a missing scope or
   permission answers 401/403/404 (docs/platform.md, "What diagnose reveals on a real site").
   Each shows the points Confluence reported (``X-RateLimit-*``) when it sent them.
5. ``Offline token``: a freshly minted one (never a cached one) for the webhook admin (or the
   caller when no webhook is set up) through ``forge.offline_tokens.OfflineTokens``, then ``user/current``
   with it on an offline client: the context ARI form that worked, or the gateway's messages, and
   what to change in the manifest when impersonation is refused.
6. ``Scheduled trigger``, ``Personal data report``, ``Quota`` and ``Dormancy`` from the store.

The calls run concurrently (at most ``WORKERS`` at once) within the call's time budget; a check
whose call has not finished by then is reported ``warn`` (``timed out``). Every ``warn`` and
``fail`` says what an administrator or the operator must do. No token appears in any detail.

The checks live in ``tokens`` (1, 2), ``endpoints`` (3, 4), ``offline`` (5) and ``duties`` (6);
``check`` holds the ``Check`` row and the phrases they share. This module runs the calls.

A caller who is not confirmed an administrator gets 403 ``not_allowed`` with ``details.adminCheck``
saying what Confluence answered (its operations, or the failure and its remedy) and
``details.adminCheckSummary`` the same in plain words: someone wrongly read as a
non-administrator (a missing scope, a refused token) can see why.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from access_desk.confluence.results import Probe
from resolvers.context import Context, Diagnostics, NotAllowed
from resolvers.diagnose import duties, endpoints, offline, tokens
from resolvers.diagnose.check import Check, unfinished
from resolvers.diagnose.endpoints import PROBE_EMAIL
from resolvers.inputs import only_fields

WORKERS = 4


def diagnose(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, set())
    kit = ctx.diagnostics or Diagnostics()
    now = kit.clock()
    if not ctx.is_admin():
        detail = "This call carried no user token (x-forge-oauth-user)."
        summary = "Forge did not send your sign-in with this call. Reload the page."
        iid, me = ctx.invocation.installation_id, ctx.account_id or ""
        recorded = ctx.admins.recorded_refusal(iid, me)
        if recorded is not None:  # the admin check just answered: say what it said, at no cost
            check = endpoints.not_admin(ctx, recorded)
            detail, summary = check.detail, check.summary
        elif ctx.user_client is not None:  # the check failed: one probe (through the ledger)
            answer = ctx.user_client.within(ctx.budget_seconds).probe_admin()
            check = endpoints.admin(ctx, answer)
            detail, summary = check.detail, check.summary
        raise NotAllowed(
            "Only Confluence administrators can run diagnose.",
            {"adminCheck": detail, "adminCheckSummary": summary},
        )
    client = ctx.confluence().within(ctx.budget_seconds)
    me = ctx.account_id or ""
    calls: dict[str, Callable[[], Any]] = {  # the longest first
        "offline": lambda: offline.try_token(ctx, kit),
        "admin": client.probe_admin,
        "users": lambda: client.probe_users([me]),
        "access": lambda: client.probe_check_access([PROBE_EMAIL]),
        "invite": lambda: client.probe_invite([]),  # an empty list: nobody can be invited
    }
    results = _run(calls, ctx.budget_seconds)

    def probe_check(key: str, judge: Callable[[Probe], Check], name: str) -> Check:
        found = results.get(key)
        if isinstance(found, Probe):
            return judge(found)
        return unfinished(name, found)

    health = ctx.store.installation_health(ctx.invocation.installation_id)
    probes = [r for r in results.values() if isinstance(r, Probe)]
    checks = [
        tokens.fit(ctx),
        tokens.user_token(kit, now),
        tokens.system_token(ctx, kit, now),
        probe_check("admin", lambda p: endpoints.admin(ctx, p), "Admin check"),
        probe_check("users", lambda p: endpoints.users_bulk(ctx, p), "Look up users (users-bulk)"),
        probe_check("access", endpoints.check_access, "Check access (check-access-by-email)"),
        probe_check(
            "invite",
            lambda p: endpoints.invite(p, results.get("access")),
            "Invite (invite-by-email)",
        ),
        offline.check(results.get("offline")),
        duties.trigger(health, now),
        duties.report(health, kit, now),
        duties.quota(ctx, probes, now),
        duties.dormancy(health),
    ]
    return {"checks": [c.to_json() for c in checks]}


def _run(calls: dict[str, Callable[[], Any]], budget: float) -> dict[str, Any]:
    """Each call's result (or the exception it raised); a call unfinished after ``budget``
    seconds is left out (its thread is not waited for)."""
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="diagnose")
    futures: dict[str, Future[Any]] = {key: pool.submit(call) for key, call in calls.items()}
    wait(futures.values(), timeout=budget)
    pool.shutdown(wait=False, cancel_futures=True)
    results: dict[str, Any] = {}
    for key, future in futures.items():
        if future.done() and not future.cancelled():
            error = future.exception()
            results[key] = error if error is not None else future.result()
    return results
