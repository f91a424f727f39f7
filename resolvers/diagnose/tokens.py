"""The checks of what Forge sent with this call: the ``Forge invocation token`` (what the verified
FIT says: installation, site, environment), the ``User token`` and the ``System token`` (whether
they came, when they expire: ``forge.tokens.token_expiry``, a JWT's ``exp``, otherwise 2 hours; or the
stored system token). Advice: enable ``auth.appUserToken`` / ``auth.appSystemToken`` and their
scopes in manifest.yml and redeploy; an expired token means reload the page or check the clock.
"""

from __future__ import annotations

from access_desk.forge.tokens import FALLBACK_TOKEN_SECONDS, token_expiry
from access_desk.store.records import iso
from resolvers.context import Context, Diagnostics
from resolvers.diagnose.check import REDEPLOY, Check, span


def fit(ctx: Context) -> Check:
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
    if inv.ic_label:
        parts.append(f"Isolated Cloud environment {inv.ic_label} (its own signing keys)")
    return Check(
        "Forge invocation token",
        "ok",
        "Verified (RS256, signed by Forge, for this app) for " + ", ".join(parts) + ".",
        "Forge signed this call for Access Desk on this site, and the signature checks out.",
    )


def _valid_for(expires: float, now: float) -> str:
    """``for another 54 minutes``: how long a token stays valid, in words."""
    return f"for another {span(expires - now)}"


def _lifetime(token: str, received_at: float, now: float) -> tuple[float, str]:
    """(expiry, words): when the token expires and how that was read (``forge.tokens.token_expiry``)."""
    expires = token_expiry(token, received_at)
    assert expires is not None
    if expires == received_at + FALLBACK_TOKEN_SECONDS:
        how = (
            "not a JWT with an exp claim, so taken as valid for "
            f"{span(FALLBACK_TOKEN_SECONDS)} (Atlassian's documented minimum)"
        )
    else:
        how = "a JWT; its exp claim says valid"
    return expires, f"{how} until {iso(expires)} ({span(expires - now)} from now)"


def user_token(kit: Diagnostics, now: float) -> Check:
    name = "User token"
    if not kit.user_token:
        return Check(
            name,
            "fail",
            "Forge sent no user token (x-forge-oauth-user): enable "
            "auth.appUserToken on the access-desk-ui endpoint in manifest.yml and the "
            f"read:app-user-token scope, then {REDEPLOY}.",
            "Forge did not send your sign-in with this call, so Access Desk cannot act for you. "
            "Whoever deploys Access Desk must allow it in the app's manifest (see the details).",
        )
    expires, words = _lifetime(kit.user_token, kit.received_at or now, now)
    if expires <= now:
        return Check(
            name,
            "fail",
            f"Received, but already expired ({words}). Reload the page; "
            "if it stays so, the server's clock may be wrong (the operator should "
            "check NTP).",
            "Your sign-in had already expired when it arrived. Reload the page; if it keeps "
            "happening, whoever runs Access Desk should check the server's clock.",
        )
    return Check(
        name,
        "ok",
        f"Received with this call: {words}.",
        f"Forge sends your sign-in with each call (this one is valid {_valid_for(expires, now)}).",
    )


def system_token(ctx: Context, kit: Diagnostics, now: float) -> Check:
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
                "The app's own sign-in had already expired when it arrived. Whoever runs Access "
                "Desk should check the server's clock.",
            )
        return Check(
            name,
            "ok",
            f"Received with this call: {words}.{kept}",
            "Forge sends the app's own sign-in, which webhook and background jobs need.",
        )
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
            "Forge did not send the app's own sign-in with this call, but the one it sent "
            "earlier is still valid, so background work goes on.",
        )
    return Check(
        name,
        "fail",
        "Forge sent no system token, and none valid is stored: webhook "
        f"and background jobs cannot act. To fix it, {enable}.",
        "Forge sent no sign-in for the app itself and none is kept: webhook and background jobs "
        "cannot run. Whoever deploys Access Desk must allow it in the app's manifest.",
    )
