"""The checks of the Confluence endpoints, one minimal call each with the scope it needs:
``Admin check`` (``user/current?expand=operations`` as the caller, with the operations Confluence
reported), ``users-bulk`` with the caller's own account id, ``check-access-by-email`` with one
address under ``example.com`` (a reserved domain: nobody is affected) and ``invite-by-email`` with an
EMPTY list, which cannot invite anyone: Confluence answers 400 for it past the gateway's scope check,
while a missing scope or permission answers 401/403/404 (docs/platform.md, "What diagnose reveals
on a real site"). Each shows the points Confluence reported (``X-RateLimit-*``) when it sent them.

A refused call (``_refused``) says what the status means and what to do: grant the scope and
redeploy (401 naming a scope), reload or check the scope (401), check the scope and Connected apps
(403), the account or site cannot use the API (404), wait (429), the email API is disabled on the
site (503 without ``Retry-After``: ``api_disabled``, a site admin asks Atlassian support) or
unavailable for now (503 with it), try again (5xx), reach api.atlassian.com (no answer).
"""

from __future__ import annotations

from typing import Any

from access_desk.confluence.results import Probe
from access_desk.forge.scopes import SCOPES
from resolvers.context import Context
from resolvers.diagnose.check import REDEPLOY, Check, points, span, unfinished

PROBE_EMAIL = "access-desk-diagnose@example.com"  # example.com is reserved (RFC 2606)
USER_SCOPE = SCOPES["users_bulk"]
CONFIG_SCOPE = SCOPES["check_access"]
ADMIN_SCOPE = SCOPES["user_current"]


def admin(ctx: Context, probe: Probe) -> Check:
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
            "Confluence's answer did not say whether you are an administrator, so Access Desk "
            "treats you as not one. Tell whoever runs Access Desk.",
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
            "The sign-in Forge sent belongs to another account than yours. Reload the page.",
        )
    administrator = "administer/application" in named
    if not administrator:
        return not_admin(ctx, seen)
    return Check(
        name,
        "ok",
        f"{ctx.account_id} is a Confluence administrator: Confluence "
        f"reported operations {seen}.{points(probe)}",
        "Confluence confirms you are a Confluence administrator.",
    )


def not_admin(ctx: Context, seen: str) -> Check:
    """The admin check's refusal: the operations Confluence reported (``seen``) lack
    administer/application."""
    return Check(
        "Admin check",
        "fail",
        "Confluence does not report the administer/application "
        f"operation for {ctx.account_id} (operations reported: {seen}). Only a "
        "Confluence administrator (global administer permission) can use the admin "
        "tools.",
        "Confluence does not list you as a Confluence administrator on this site, so Access "
        "Desk offers you only Look up. If you should be one, ask a site or organization "
        "admin to give you the Confluence administrator permission.",
    )


def users_bulk(ctx: Context, probe: Probe) -> Check:
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
            "Confluence answered in a form Access Desk does not read, so looking up users does "
            "not work. Tell whoever runs Access Desk.",
        )
    ids = [u.get("accountId") for u in results if isinstance(u, dict)]
    if ctx.account_id not in ids:
        return Check(
            name,
            "warn",
            f"users-bulk answered but left out your own account "
            f"({ctx.account_id}): Confluence may hide profiles from this account. "
            f"Scope {USER_SCOPE} works.{points(probe)}",
            "Looking up users works, but Confluence left out your own profile: it may hide "
            "profiles from your account.",
        )
    return Check(
        name,
        "ok",
        f"Scope {USER_SCOPE} works: your own profile was found.{points(probe)}",
        "Looking up users works: your own profile was found.",
    )


def check_access(probe: Probe) -> Check:
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
            "Confluence answered in a form Access Desk does not read, so checking access does "
            "not work. Tell whoever runs Access Desk.",
        )
    return Check(
        name,
        "ok",
        f"Scope {CONFIG_SCOPE} works: {PROBE_EMAIL} (a reserved, "
        f"harmless address) was checked.{points(probe)}",
        "Checking access by email works (a reserved test address was checked; nobody was "
        "affected).",
    )


def invite(probe: Probe, access: Any) -> Check:
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
            "Whether inviting works cannot be told while checking access is refused: fix "
            "Checking access first.",
        )
    if probe.status == 400:
        return Check(
            name,
            "ok",
            "Probed with an empty list, which invites nobody: Confluence answered 400 (the list "
            f"must hold 1 to 100 emails) past the scope check, so {CONFIG_SCOPE} is granted for "
            f"inviting too.{points(probe)}",
            "Inviting by email is allowed (tried with an empty list: nobody was invited).",
        )
    if probe.status is not None and 200 <= probe.status < 300:
        return Check(
            name,
            "ok",
            "Probed with an empty list, which invites nobody: Confluence accepted it "
            f"(HTTP {probe.status}); scope {CONFIG_SCOPE} works.{points(probe)}",
            "Inviting by email is allowed (tried with an empty list: nobody was invited).",
        )
    return _refused(name, probe, CONFIG_SCOPE, "invite-by-email")


def _refused(name: str, probe: Probe, scope: str, what: str) -> Check:
    """A probe that got no 2xx answer: what it means and what to do."""
    said = f": {probe.message}" if probe.message else ""
    if probe.status is None:
        if probe.reason == "rate_limited":
            until = f" for {span(probe.retry_after)}" if probe.retry_after else ""
            return Check(
                name,
                "warn",
                f"Not tried: Confluence asked Access Desk to wait{until} "
                "(rate limit). Run the diagnosis again later.",
                f"Not tried: Confluence asked Access Desk to wait{until}. Run the diagnosis "
                "again later.",
            )
        if probe.reason == "timeout":
            return unfinished(name, None)
        return Check(
            name,
            "fail",
            f"No answer from Confluence ({probe.reason}) to {what}. The "
            "operator should check the server can reach api.atlassian.com (firewall, "
            "proxy, DNS).",
            "Access Desk could not reach Confluence. Whoever runs Access Desk should check the "
            "server's network connection to Atlassian.",
        )
    status = probe.status
    if status == 401 and "scope" in probe.message.lower():
        return Check(
            name,
            "fail",
            f"Confluence refused {what} for a missing scope (401{said}). "
            f"Grant the app the {scope} scope: add it under permissions.scopes in "
            f"manifest.yml, {REDEPLOY}, and have an admin accept the new scope.",
            "Confluence refused this because the app lacks a permission it needs. Whoever "
            "deploys Access Desk must add it and redeploy; then accept the new permission here.",
        )
    if status == 401:
        return Check(
            name,
            "fail",
            f"Confluence refused the token for {what} (401{said}). Reload "
            f"the page; if it persists, check the app has the {scope} scope ({REDEPLOY}) "
            "and is still installed on this site.",
            "Confluence did not accept the sign-in. Reload the page; if it keeps happening, the "
            "app may lack a permission or no longer be installed here.",
        )
    if status == 403:
        return Check(
            name,
            "fail",
            f"Confluence forbade {what} (403{said}). Check the app has "
            f"the {scope} scope ({REDEPLOY}), and that this site allows the app to act "
            "for users (Confluence admin > Connected apps).",
            "Confluence forbade this. The app may lack a permission, or this site does not let "
            "apps act for users (Connected apps in Confluence administration).",
        )
    if status == 404:
        return Check(
            name,
            "fail",
            f"Confluence answered 404 to {what}{said}: your account may "
            "not be allowed to do this (external collaborators cannot), or the API is "
            f"not available on this site. Check the {scope} scope ({REDEPLOY}).",
            "Confluence refused this for your account, or the feature is not available on this "
            "site.",
        )
    if status == 429:
        return Check(
            name,
            "warn",
            f"Rate limited (429{said}): Confluence's points pool is spent "
            "for now. Run the diagnosis again after the reset (see Quota).",
            "Confluence's rate limit is reached for now. Run the diagnosis again once it resets.",
        )
    if status == 503 and "Retry-After" not in probe.rate_limit and scope == CONFIG_SCOPE:
        return Check(
            name,
            "fail",
            f"Confluence answered 503 without Retry-After to {what}{said}: this (experimental) "
            "email API is disabled on this site (api_disabled), so checking access and inviting "
            "cannot work. A site admin can ask Atlassian support to enable it for the site; "
            "jobs stopped by it can then be retried.",
            "Checking access and inviting by email are switched off on this site. Ask Atlassian "
            "support to enable this Confluence feature for the site, then retry any job it "
            "stopped.",
        )
    if status == 503:
        return Check(
            name,
            "warn",
            f"Confluence answered 503 to {what}{said}: the API is unavailable for now. Try "
            "again later.",
            "This Confluence feature is unavailable right now. Try again later.",
        )
    if status >= 500:
        return Check(
            name,
            "warn",
            f"Confluence had an error ({status}{said}) on {what}. Run the "
            "diagnosis again in a few minutes.",
            "Confluence had an error. Run the diagnosis again in a few minutes.",
        )
    return Check(
        name,
        "fail",
        f"Confluence rejected {what} ({status}{said}). Tell the operator: "
        "the API may have changed.",
        "Confluence rejected the request. Tell whoever runs Access Desk: Confluence may have "
        "changed.",
    )
