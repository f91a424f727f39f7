"""The ``Offline token`` check: a freshly minted offline token (never a cached one: the row must
show whether the platform grants them now) for the webhook admin, or the caller when no webhook is
set up, through ``forge.offline_tokens.OfflineTokens``, then ``user/current`` with it on an offline client
(``confluence.client.Client.offline``: the scopes ``manifest.yml`` lets the app impersonate with): the
context ARI form that worked, or the gateway's messages.

Advice: when the gateway or Confluence refuses for lack of impersonation (or a fresh token is
refused at all), set ``allowImpersonation: true`` on the scopes offline calls use
(``scopes.impersonated()``) and redeploy; check the app's installation and
``read:app-system-token`` scope (the gateway refused), the system tokens and the scheduled trigger,
``GRAPHQL_URL`` and the allowlist, or the server's reach to the gateway; rotate the webhook secret
when the webhook admin is no longer an administrator.

``try_token`` runs in the pool with the endpoint calls; ``check`` turns what it gave into the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from access_desk.forge.offline_tokens import OfflineTokenError, OfflineTokenRefused, context_ari
from access_desk.forge.scopes import impersonated
from resolvers.context import Context, Diagnostics
from resolvers.diagnose.check import REDEPLOY, Check, points, unfinished


@dataclass(frozen=True, slots=True)
class _Offline:
    status: str
    detail: str
    summary: str = ""
    accounts: tuple[str, ...] = ()


def impersonation_advice() -> str:
    """What to change when offline tokens are refused for lack of impersonation."""
    flagged = ", ".join(sorted(impersonated()))
    return (
        "In manifest.yml, permissions.scopes must be a map with allowImpersonation: true on "
        f"the scopes offline calls use ({flagged}); then {REDEPLOY} so the site accepts it"
    )


def try_token(ctx: Context, kit: Diagnostics) -> _Offline:
    """Mint a fresh offline token for the webhook admin, or the caller, and use it once."""
    iid = ctx.invocation.installation_id
    installation = ctx.store.installation(iid)
    if kit.offline_tokens is None or kit.client_for is None or installation is None:
        return _Offline(
            "warn",
            "Not checked: the installation is not stored yet. Reload the "
            "page and run the diagnosis again.",
            "Not checked yet: reload the page and run the diagnosis again.",
        )
    admin = installation.webhook_admin
    account = admin or ctx.account_id or ""
    who = f"the webhook admin {admin}" if admin else f"you ({account}; no webhook is set up yet)"
    # In plain words: the person webhook jobs act as, named by account id (the panel shows names).
    plain, named = (admin, (admin,)) if admin else ("you", ())
    cannot = "Webhook jobs cannot run."
    try:
        token = kit.offline_tokens.mint(installation, account)
    except OfflineTokenRefused as exc:
        return _Offline(
            "fail",
            f"The gateway refused an offline token for {who} with both "
            f"context ARI forms ({exc.reason}). Webhook jobs cannot run. "
            f"{_refusal_advice(exc.reason)}",
            f"Atlassian refused to let webhook jobs act as {plain}. {cannot} Check the app is "
            "installed here with its permissions; if it is, tell whoever runs Access Desk.",
            named,
        )
    except OfflineTokenError as exc:
        return _Offline(
            "fail",
            f"No offline token for {who}: {exc}. {_offline_advice(str(exc))}",
            f"Access Desk could not get a sign-in for webhook jobs acting as {plain}. {cannot} "
            "The details say what whoever runs Access Desk should check.",
            named,
        )
    form = ctx.store.context_form(iid) or "site"
    ari = context_ari(form, ctx.invocation.cloud_id)
    client = kit.client_for(token).offline().within(ctx.budget_seconds)
    probe = client.probe_admin()
    minted = f"freshly minted with the {form} context ARI form ({ari})"
    if probe.status is None or not 200 <= probe.status < 300:
        said = f"{probe.status or probe.reason}" + (f": {probe.message}" if probe.message else "")
        impersonation = probe.status in (401, 403)
        advice = (
            f"A refused fresh token usually means the scope is not allowed to impersonate: "
            f"{impersonation_advice()}."
            if impersonation
            else "Tell the operator (docs/platform.md, 'Offline user token')."
        )
        return _Offline(
            "fail",
            f"An offline token for {who} was {minted}, but Confluence refused it ({said}). "
            f"Webhook jobs would be refused too. {advice}",
            f"Confluence refused the sign-in for webhook jobs acting as {plain}. {cannot} "
            + (
                "Access Desk's app settings (manifest) may not allow acting for people while "
                "they are away: whoever deploys Access Desk should see the details."
                if impersonation
                else "Tell whoever runs Access Desk."
            ),
            named,
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
            f"Webhook jobs act as {admin}, who is no longer a Confluence administrator, so "
            "Confluence would refuse them. An administrator should create a new webhook secret "
            "(Webhook tab): jobs then act as them.",
            (admin,),
        )
    return _Offline(
        "ok",
        f"An offline token for {who} was {minted}; Confluence accepted it." + points(probe),
        f"Webhook jobs can act as {admin}."
        if admin
        else "No webhook is set up yet; webhook jobs would act as you, and that works.",
        named,
    )


def _refusal_advice(reason: str) -> str:
    if "imperson" in reason.lower():
        return f"The app may not impersonate users: {impersonation_advice()}."
    return (
        "Check the app is installed on this site with the read:app-system-token scope and that "
        f"offline calls are allowed ({impersonation_advice()}); if they are, tell the operator "
        "(docs/platform.md, 'Offline user token')."
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


def check(found: Any) -> Check:
    """The row for what ``try_token`` gave: its verdict, or why there is none."""
    name = "Offline token"
    if isinstance(found, _Offline):
        return Check(name, found.status, found.detail, found.summary, found.accounts)
    return unfinished(name, found)
