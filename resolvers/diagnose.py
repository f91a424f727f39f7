"""``diagnose``: a live check of this installation, for Confluence administrators.

Answers ``{"checks": [{"name", "status": "ok" | "warn" | "fail", "detail"}]}`` (docs/contract.md
§4 and §7), in this order:

1. ``Forge invocation token``: what the verified FIT says (installation, site, environment).
2. ``User token`` / ``System token``: the tokens Forge sent with this call, and when they expire
   (``auth.token_expiry``: a JWT's ``exp``, otherwise 55 minutes), or the stored system token.
3. ``Admin check``: ``user/current?expand=operations`` as the caller, with the operations
   Confluence reported (so a wrong admin reading is visible).
4. One minimal call to each endpoint, with the scope it needs: ``users-bulk`` with the caller's
   own account id; ``check-access-by-email`` with one address under ``example.com`` (a reserved
   domain: nobody is affected); ``invite-by-email`` with an EMPTY list, which cannot invite anyone:
   Confluence answers 400 for it past the gateway's scope check, while a missing scope or
   permission answers 401/403/404 (docs/platform.md, "What diagnose reveals on a real site").
   Each shows the points Confluence reported (``X-RateLimit-*``) when it sent them.
5. ``Offline token``: one for the webhook admin (or the caller when no webhook is set up) through
   ``atlassian.OfflineTokens``, then ``user/current`` with it: the context ARI form that worked,
   or the gateway's messages. A token Confluence refuses (401) is minted again once.
6. ``Scheduled trigger``, ``Personal data report``, ``Quota`` and ``Dormancy`` from the store.

The calls run concurrently (at most ``WORKERS`` at once) within the call's time budget; a check
whose call has not finished by then is reported ``warn`` (``timed out``). Every ``warn`` and
``fail`` says what an administrator or the operator must do. No token appears in any detail.

A caller who is not confirmed an administrator gets 403 ``not_allowed`` with ``details.adminCheck``
saying what Confluence answered (its operations, or the failure and its remedy): someone wrongly
read as a non-administrator (a missing scope, a refused token) can see why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from atlassian import OfflineTokenError, OfflineTokenRefused, context_ari
from auth import FALLBACK_TOKEN_SECONDS, token_expiry
from confluence import Probe
from records import iso
from resolvers.context import Context, Diagnostics, NotAllowed
from resolvers.inputs import only_fields
from store import RateHold

log = logging.getLogger(__name__)

WORKERS = 4
PROBE_EMAIL = "access-desk-diagnose@example.com"  # example.com is reserved (RFC 2606)
ADMIN_PATH = "/wiki/rest/api/user/current?expand=operations"
V2 = "/wiki/api/v2"
USER_SCOPE = "read:user:confluence"
CONFIG_SCOPE = "read:configuration:confluence"
ADMIN_SCOPE = "read:content-details:confluence"
TRIGGER_LATE = 2 * 3600.0  # the trigger is hourly: two hours without one is worth a look
TRIGGER_GONE = 72 * 3600.0  # dormancy.QUIET_SECONDS
REDEPLOY = "redeploy with forge deploy and upgrade the installation (forge install --upgrade)"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def diagnose(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    only_fields(payload, set())
    kit = ctx.diagnostics or Diagnostics()
    now = kit.clock()
    if not ctx.is_admin():
        detail = "This call carried no user token (x-forge-oauth-user)."
        if ctx.user_client is not None:
            answer = ctx.user_client.within(ctx.budget_seconds).probe("GET", ADMIN_PATH)
            detail = _admin(ctx, answer).detail
        raise NotAllowed("Only Confluence administrators can run diagnose.", {"adminCheck": detail})
    client = ctx.confluence().within(ctx.budget_seconds)
    me = ctx.account_id or ""
    calls: dict[str, Callable[[], Any]] = {  # the longest first
        "offline": lambda: _offline(ctx, kit),
        "admin": lambda: client.probe("GET", ADMIN_PATH),
        "users": lambda: client.probe("POST", V2 + "/users-bulk", {"accountIds": [me]}),
        "access": lambda: client.probe(
            "POST", V2 + "/user/access/check-access-by-email", {"emails": [PROBE_EMAIL]}
        ),
        "invite": lambda: client.probe("POST", V2 + "/user/access/invite-by-email", {"emails": []}),
    }
    results = _run(calls, ctx.budget_seconds)

    def probe_check(key: str, judge: Callable[[Probe], Check], name: str) -> Check:
        found = results.get(key)
        if isinstance(found, Probe):
            return judge(found)
        return _unfinished(name, found)

    health = ctx.store.installation_health(ctx.invocation.installation_id)
    probes = [r for r in results.values() if isinstance(r, Probe)]
    checks = [
        _fit(ctx),
        _user_token(kit, now),
        _system_token(ctx, kit, now),
        probe_check("admin", lambda p: _admin(ctx, p), "Admin check"),
        probe_check("users", lambda p: _users(ctx, p), "Look up users (users-bulk)"),
        probe_check("access", _access, "Check access (check-access-by-email)"),
        probe_check(
            "invite", lambda p: _invite(p, results.get("access")), "Invite (invite-by-email)"
        ),
        _offline_check(results.get("offline")),
        _trigger(health, now),
        _report(health, kit, now),
        _quota(ctx, probes, now),
        _dormancy(health),
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


def _unfinished(name: str, found: Any) -> Check:
    if isinstance(found, BaseException):
        log.warning("diagnose: the %s check failed", name, exc_info=found)
        return Check(name, "fail", f"The check itself failed ({type(found).__name__}).")
    return Check(
        name,
        "warn",
        "Timed out: Confluence did not answer within the call's deadline. "
        "Run the diagnosis again; if it stays slow, the operator should check the "
        "server's connection to api.atlassian.com.",
    )


# -- what Forge sent ------------------------------------------------------------------------------


def _fit(ctx: Context) -> Check:
    inv = ctx.invocation
    parts = [
        f"installation {inv.installation_id}",
        f"site cloudId {inv.cloud_id}",
        f"API base URL {inv.api_base_url}",
    ]
    if inv.environment_id:
        parts.append(f"environment {inv.environment_id}")
    if inv.module_key:
        parts.append(f"module {inv.module_key}")
    return Check(
        "Forge invocation token",
        "ok",
        "Verified (RS256, signed by Forge, for this app) for " + ", ".join(parts) + ".",
    )


def _lifetime(token: str, received_at: float, now: float) -> tuple[float, str]:
    """(expiry, words): when the token expires and how that was read (``auth.token_expiry``)."""
    expires = token_expiry(token, received_at)
    assert expires is not None
    if expires == received_at + FALLBACK_TOKEN_SECONDS:
        how = "not a JWT with an exp claim, so taken as valid for 55 minutes"
    else:
        how = "a JWT; its exp claim says valid"
    return expires, f"{how} until {iso(expires)} ({_span(expires - now)} from now)"


def _user_token(kit: Diagnostics, now: float) -> Check:
    name = "User token"
    if not kit.user_token:
        return Check(
            name,
            "fail",
            "Forge sent no user token (x-forge-oauth-user): enable "
            "auth.appUserToken on the access-desk-ui endpoint in manifest.yml and the "
            f"read:app-user-token scope, then {REDEPLOY}.",
        )
    expires, words = _lifetime(kit.user_token, kit.received_at or now, now)
    if expires <= now:
        return Check(
            name,
            "fail",
            f"Received, but already expired ({words}). Reload the page; "
            "if it stays so, the server's clock may be wrong (the operator should "
            "check NTP).",
        )
    return Check(name, "ok", f"Received with this call: {words}.")


def _system_token(ctx: Context, kit: Diagnostics, now: float) -> Check:
    name = "System token"
    stored = ctx.store.installation(ctx.invocation.installation_id)
    stored_until = stored.system_token_expires_at if stored and stored.system_token else None
    kept = (
        f" The stored one (for background work) is valid until {iso(stored_until)}."
        if stored_until and stored_until > now
        else ""
    )
    if kit.system_token:
        expires, words = _lifetime(kit.system_token, kit.received_at or now, now)
        if expires <= now:
            return Check(
                name,
                "fail",
                f"Received, but already expired ({words}). The operator "
                "should check the server's clock (NTP).",
            )
        return Check(name, "ok", f"Received with this call: {words}.{kept}")
    enable = (
        "enable auth.appSystemToken on the access-desk-ui endpoint in manifest.yml and "
        f"the read:app-system-token scope, then {REDEPLOY}"
    )
    if kept:
        return Check(
            name,
            "warn",
            f"This call carried no system token (x-forge-oauth-system)."
            f"{kept} Triggers bring fresh ones; to have one with every call, {enable}.",
        )
    return Check(
        name,
        "fail",
        "Forge sent no system token, and none valid is stored: webhook "
        f"and background jobs cannot act. To fix it, {enable}.",
    )


# -- the Confluence calls -------------------------------------------------------------------------


def _admin(ctx: Context, probe: Probe) -> Check:
    name = "Admin check"
    if probe.status is None or not 200 <= probe.status < 300:
        return _refused(name, probe, ADMIN_SCOPE, "the admin check (user/current)")
    body = probe.body if isinstance(probe.body, dict) else {}
    operations = body.get("operations")
    if not isinstance(operations, list):
        return Check(
            name,
            "fail",
            "Confluence answered user/current without an operations "
            "list, so nobody can be confirmed an administrator. Tell the operator: the "
            "answer's shape may have changed.",
        )
    named = [
        f"{op.get('operation')}/{op.get('targetType')}" for op in operations if isinstance(op, dict)
    ]
    seen = ", ".join(named) if named else "none"
    account = body.get("accountId")
    if isinstance(account, str) and ctx.account_id and account != ctx.account_id:
        return Check(
            name,
            "fail",
            f"The user token belongs to {account}, not to the signed-in "
            f"{ctx.account_id}: reload the page. Operations reported: {seen}.",
        )
    admin = "administer/application" in named
    if not admin:
        return Check(
            name,
            "fail",
            "Confluence does not report the administer/application "
            f"operation for {ctx.account_id} (operations reported: {seen}). Only a "
            "Confluence administrator (global administer permission) can use the admin "
            "tools.",
        )
    return Check(
        name,
        "ok",
        f"{ctx.account_id} is a Confluence administrator: Confluence "
        f"reported operations {seen}.{_points(probe)}",
    )


def _users(ctx: Context, probe: Probe) -> Check:
    name = "Look up users (users-bulk)"
    if probe.status is None or not 200 <= probe.status < 300:
        return _refused(name, probe, USER_SCOPE, "users-bulk")
    results = probe.body.get("results") if isinstance(probe.body, dict) else None
    if not isinstance(results, list):
        return Check(
            name,
            "fail",
            "users-bulk answered without a results list: tell the "
            "operator (the answer's shape may have changed).",
        )
    ids = [u.get("accountId") for u in results if isinstance(u, dict)]
    if ctx.account_id not in ids:
        return Check(
            name,
            "warn",
            f"users-bulk answered but left out your own account "
            f"({ctx.account_id}): Confluence may hide profiles from this account. "
            f"Scope {USER_SCOPE} works.{_points(probe)}",
        )
    return Check(
        name, "ok", f"Scope {USER_SCOPE} works: your own profile was found.{_points(probe)}"
    )


def _access(probe: Probe) -> Check:
    name = "Check access (check-access-by-email)"
    if probe.status is None or not 200 <= probe.status < 300:
        return _refused(name, probe, CONFIG_SCOPE, "check-access-by-email")
    body = probe.body
    keys = ("emailsWithoutAccess", "invalidEmails")
    if not isinstance(body, dict) or not all(isinstance(body.get(k, []), list) for k in keys):
        return Check(
            name,
            "fail",
            "check-access-by-email answered in a shape Access Desk does "
            "not read: tell the operator (this experimental API may have changed).",
        )
    return Check(
        name,
        "ok",
        f"Scope {CONFIG_SCOPE} works: {PROBE_EMAIL} (a reserved, "
        f"harmless address) was checked.{_points(probe)}",
    )


def _invite(probe: Probe, access: Any) -> Check:
    """The empty-list probe; read together with the check-access probe, which needs the same
    scope: a 400 here while check-access was refused for scope or permission is inconclusive."""
    name = "Invite (invite-by-email)"
    refused = isinstance(access, Probe) and access.status in (401, 403)
    if probe.status == 400 and refused:
        return Check(
            name,
            "warn",
            "Probed with an empty list, which invites nobody: Confluence answered 400, but "
            f"check-access-by-email, which needs the same scope ({CONFIG_SCOPE}), was refused: "
            "this site may read the body before the scope, so inviting is probably refused too. "
            "Fix the Check access row first.",
        )
    if probe.status == 400:
        return Check(
            name,
            "ok",
            "Probed with an empty list, which invites nobody: Confluence answered 400 (the list "
            f"must hold 1 to 100 emails) past the scope check, so {CONFIG_SCOPE} is granted for "
            f"inviting too.{_points(probe)}",
        )
    if probe.status is not None and 200 <= probe.status < 300:
        return Check(
            name,
            "ok",
            "Probed with an empty list, which invites nobody: Confluence accepted it "
            f"(HTTP {probe.status}); scope {CONFIG_SCOPE} works.{_points(probe)}",
        )
    return _refused(name, probe, CONFIG_SCOPE, "invite-by-email")


def _refused(name: str, probe: Probe, scope: str, what: str) -> Check:
    """A probe that got no 2xx answer: what it means and what to do."""
    said = f": {probe.message}" if probe.message else ""
    if probe.status is None:
        if probe.reason == "rate_limited":
            until = f" for {_span(probe.retry_after)}" if probe.retry_after else ""
            return Check(
                name,
                "warn",
                f"Not tried: Confluence asked Access Desk to wait{until} "
                "(rate limit). Run the diagnosis again later.",
            )
        if probe.reason == "timeout":
            return _unfinished(name, None)
        return Check(
            name,
            "fail",
            f"No answer from Confluence ({probe.reason}) to {what}. The "
            "operator should check the server can reach api.atlassian.com (firewall, "
            "proxy, DNS).",
        )
    status = probe.status
    if status == 401 and "scope" in probe.message.lower():
        return Check(
            name,
            "fail",
            f"Confluence refused {what} for a missing scope (401{said}). "
            f"Grant the app the {scope} scope: add it under permissions.scopes in "
            f"manifest.yml, {REDEPLOY}, and have an admin accept the new scope.",
        )
    if status == 401:
        return Check(
            name,
            "fail",
            f"Confluence refused the token for {what} (401{said}). Reload "
            f"the page; if it persists, check the app has the {scope} scope ({REDEPLOY}) "
            "and is still installed on this site.",
        )
    if status == 403:
        return Check(
            name,
            "fail",
            f"Confluence forbade {what} (403{said}). Check the app has "
            f"the {scope} scope ({REDEPLOY}), and that this site allows the app to act "
            "for users (Confluence admin > Connected apps).",
        )
    if status == 404:
        return Check(
            name,
            "fail",
            f"Confluence answered 404 to {what}{said}: your account may "
            "not be allowed to do this (external collaborators cannot), or the API is "
            f"not available on this site. Check the {scope} scope ({REDEPLOY}).",
        )
    if status == 429:
        return Check(
            name,
            "warn",
            f"Rate limited (429{said}): Confluence's points pool is spent "
            "for now. Run the diagnosis again after the reset (see Quota).",
        )
    if status == 503:
        return Check(
            name,
            "warn",
            f"Confluence answered 503 to {what}{said}: the API is "
            "unavailable or disabled on this site. Try again later; if it stays so, ask "
            "Atlassian support whether this (experimental) API is enabled for the site.",
        )
    if status >= 500:
        return Check(
            name,
            "warn",
            f"Confluence had an error ({status}{said}) on {what}. Run the "
            "diagnosis again in a few minutes.",
        )
    return Check(
        name,
        "fail",
        f"Confluence rejected {what} ({status}{said}). Tell the operator: "
        "the API may have changed.",
    )


def _points(probe: Probe) -> str:
    """What the rate-limit headers of the answer said, as a sentence (empty without them)."""
    rl = probe.rate_limit
    left, limit = rl.get("X-RateLimit-Remaining"), rl.get("X-RateLimit-Limit")
    if left is None and limit is None:
        return ""
    pool = f"{left} of {limit}" if left is not None and limit is not None else (left or limit)
    reset = rl.get("X-RateLimit-Reset")
    return f" Points left after this call: {pool}" + (f", resets {reset}." if reset else ".")


# -- the offline token ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Offline:
    status: str
    detail: str


def _offline(ctx: Context, kit: Diagnostics) -> _Offline:
    """Mint (or reuse) an offline token for the webhook admin, or the caller, and use it once."""
    iid = ctx.invocation.installation_id
    installation = ctx.store.installation(iid)
    if kit.offline_tokens is None or kit.client_for is None or installation is None:
        return _Offline(
            "warn",
            "Not checked: the installation is not stored yet. Reload the "
            "page and run the diagnosis again.",
        )
    admin = installation.webhook_admin
    account = admin or ctx.account_id or ""
    who = f"the webhook admin {admin}" if admin else f"you ({account}; no webhook is set up yet)"
    try:
        token = kit.offline_tokens.token_for(installation, account)
    except OfflineTokenRefused as exc:
        return _Offline(
            "fail",
            f"The gateway refused an offline token for {who} with both "
            f"context ARI forms ({exc.reason}). Webhook jobs cannot run. Check the "
            "app is installed on this site with the read:app-system-token scope; if "
            "it is, tell the operator (docs/platform.md, 'Offline user token').",
        )
    except OfflineTokenError as exc:
        return _Offline("fail", f"No offline token for {who}: {exc}. {_offline_advice(str(exc))}")
    form = ctx.store.context_form(iid) or "site"
    ari = context_ari(form, ctx.invocation.cloud_id)
    probe = kit.client_for(token).within(ctx.budget_seconds).probe("GET", ADMIN_PATH)
    renewed = ""
    if probe.status == 401:
        try:
            token = kit.offline_tokens.renew(installation, account)
        except OfflineTokenError as exc:
            return _Offline(
                "fail",
                f"Confluence refused the offline token for {who} and a new "
                f"one could not be minted: {exc}. {_offline_advice(str(exc))}",
            )
        probe = kit.client_for(token).within(ctx.budget_seconds).probe("GET", ADMIN_PATH)
        renewed = " (minted again after Confluence refused the cached one)"
    minted = f"minted with the {form} context ARI form ({ari}){renewed}"
    if probe.status is None or not 200 <= probe.status < 300:
        said = f"{probe.status or probe.reason}" + (f": {probe.message}" if probe.message else "")
        return _Offline(
            "fail",
            f"An offline token for {who} was {minted}, but Confluence "
            f"refused it ({said}). Tell the operator (docs/platform.md, 'Offline "
            "user token').",
        )
    ops = probe.body.get("operations") if isinstance(probe.body, dict) else None
    is_admin = isinstance(ops, list) and any(
        isinstance(op, dict)
        and op.get("operation") == "administer"
        and op.get("targetType") == "application"
        for op in ops
    )
    if admin and not is_admin:
        return _Offline(
            "warn",
            f"An offline token for {who} was {minted} and works, but "
            f"{admin} is no longer a Confluence administrator: webhook jobs would be "
            "refused. An administrator should rotate the webhook secret (Webhook "
            "tab) so jobs act as them.",
        )
    return _Offline(
        "ok", f"An offline token for {who} was {minted}; Confluence accepted it." + _points(probe)
    )


def _offline_advice(error: str) -> str:
    if "system token" in error:
        return (
            "Forge brings system tokens with triggers and panel calls: check "
            "auth.appSystemToken is enabled in manifest.yml and the hourly scheduled "
            "trigger is deployed."
        )
    if "GRAPHQL_URL" in error or "allowlisted" in error:
        return "The operator must set GRAPHQL_URL on a host of API_BASE_URL_ALLOWLIST."
    return (
        "The operator should check the server can reach the GraphQL gateway (GRAPHQL_URL) "
        "and its logs."
    )


def _offline_check(found: Any) -> Check:
    name = "Offline token"
    if isinstance(found, _Offline):
        return Check(name, found.status, found.detail)
    return _unfinished(name, found)


# -- what the store knows -------------------------------------------------------------------------


def _trigger(health: Any, now: float) -> Check:
    name = "Scheduled trigger"
    last = health.last_scheduled_at if health is not None else None
    if last is None:
        return Check(
            name,
            "warn",
            "No scheduled trigger has arrived yet. Forge calls "
            "/forge/scheduled every hour: if none arrives within an hour of installing, "
            "check the app is installed and the scheduledTrigger in manifest.yml is "
            f"deployed ({REDEPLOY}), and that Atlassian can reach the remote's baseUrl.",
        )
    age = now - last
    when = f"{iso(last)} ({_span(age)} ago)"
    if age >= TRIGGER_GONE:
        return Check(
            name,
            "fail",
            f"No scheduled trigger for {_span(age)} (last {iso(last)}): "
            "check the app is installed and the scheduled trigger in manifest.yml is "
            f"deployed ({REDEPLOY}). Meanwhile personal data reports and background "
            "jobs wait.",
        )
    if age >= TRIGGER_LATE:
        return Check(
            name,
            "warn",
            f"The last scheduled trigger was at {when}; one is expected "
            "every hour. If this stays so, check the scheduledTrigger in manifest.yml "
            "is deployed and the remote's baseUrl answers.",
        )
    return Check(name, "ok", f"The last scheduled trigger arrived at {when}.")


def _report(health: Any, kit: Diagnostics, now: float) -> Check:
    name = "Personal data report"
    if health is None:
        return Check(name, "warn", "The installation is not stored yet: run the diagnosis again.")
    if health.report_error:
        at = f" at {iso(health.report_error_at)}" if health.report_error_at else ""
        return Check(
            name,
            "fail",
            f"The last report to Atlassian's personal data reporting API "
            f"failed{at}: {health.report_error}. It is retried; if it keeps failing the "
            "operator should check PERSONAL_DATA_URL and the server logs "
            "(docs/platform.md, 'Personal data').",
        )
    queued = f" A report is queued since {iso(health.duty_due_at)}." if health.duty_due_at else ""
    if health.last_report_at is None:
        return Check(
            name,
            "warn",
            "No personal data report yet: a scheduled trigger queues one "
            "and the background worker sends it (BACKGROUND_WORKER must be on in at "
            f"least one server process).{queued}",
        )
    age = now - health.last_report_at
    due = max(kit.report_days, 1.0) * 86400
    if age > 2 * due:
        return Check(
            name,
            "warn",
            f"The last report was {_span(age)} ago ({iso(health.last_report_at)}), "
            f"more than twice PERSONAL_DATA_REPORT_DAYS: check the scheduled trigger "
            f"arrives and the background worker runs.{queued}",
        )
    return Check(
        name,
        "ok",
        f"Account ids last reported at {iso(health.last_report_at)} ({_span(age)} ago).{queued}",
    )


def _quota(ctx: Context, probes: list[Probe], now: float) -> Check:
    name = "Quota"
    try:
        hold: RateHold = ctx.store.rate_hold(ctx.invocation.api_base_url)
    except Exception as exc:  # the ledger is being reshaped: never let it break the diagnosis
        return Check(name, "warn", f"The quota state could not be read ({type(exc).__name__}).")
    seen = [p for p in probes if "X-RateLimit-Remaining" in p.rate_limit]
    latest = min(seen, key=lambda p: _int(p.rate_limit["X-RateLimit-Remaining"])) if seen else None
    pool = _points(latest).strip() if latest else "Confluence sent no rate-limit headers."
    policies = {
        p.rate_limit["Beta-RateLimit-Policy"]
        for p in probes
        if "Beta-RateLimit-Policy" in p.rate_limit
    }
    if policies:
        pool += f" Policy: {', '.join(sorted(policies))}."
    if hold.until > now:
        return Check(
            name,
            "warn",
            f"Confluence asked Access Desk to wait until "
            f"{iso(hold.until)} (429 Retry-After): panel calls report entries as failed "
            f"and jobs wait until then. {pool} If this recurs, send smaller batches.",
        )
    if hold.near_limit:
        return Check(
            name,
            "warn",
            "Confluence reports under 20% of its points left "
            "(X-RateLimit-NearLimit): background jobs wait for the next window, panel "
            f"calls go one at a time. {pool}",
        )
    return Check(name, "ok", f"No hold, not near the limit. {pool}")


def _dormancy(health: Any) -> Check:
    name = "Dormancy"
    if health is None:
        return Check(name, "ok", "Not dormant.")
    if health.dormant:
        since = iso(health.dormant_since)
        if health.dormant_reason == "refused":
            why = (
                "the site refused every background call (401/403/404): check the app is "
                "still installed and its scopes are granted"
            )
        else:
            why = (
                "Forge sent no scheduled trigger for 72 hours: check the app is installed and "
                "the scheduled trigger in manifest.yml is deployed"
            )
        return Check(
            name,
            "fail",
            f"Dormant since {since}: {why}. Its jobs are paused; the "
            "next valid call from Forge resumes them.",
        )
    if health.refusals:
        first = f" since {iso(health.first_refusal_at)}" if health.first_refusal_at else ""
        return Check(
            name,
            "warn",
            f"{health.refusals} background call(s) in a row refused by "
            f"the site{first}; after 10 over an hour the installation goes dormant and "
            "its jobs pause. Check the app's scopes and the webhook admin (Offline "
            "token).",
        )
    resumed = f" It woke from dormancy at {iso(health.resumed_at)}." if health.resumed_at else ""
    return Check(name, "ok", f"Active: jobs run.{resumed}")


def _int(value: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        return 1 << 62


def _span(seconds: float | None) -> str:
    """A duration in words: ``45 seconds``, ``12 minutes``, ``3 hours``, ``4 days``."""
    s = max(0.0, seconds or 0.0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size * (2 if unit != "minute" else 1):
            n = int(s // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = int(s)
    return f"{n} second{'s' if n != 1 else ''}"
