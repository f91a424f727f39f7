"""``POST /resolvers/<functionKey>``: verify the FIT, build the Context, run the resolver, JSON out.

Calls in flight are bounded per installation, per user and, for slow calls, per process
(``handlers.inflight``): over a bound the answer is 429 ``busy`` at once.

Each call also keeps the installation's record (and the system token Forge sends along) fresh, at
most every few minutes per process, so webhook jobs can act even before the first scheduled trigger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from access_desk.confluence.client import Client
from access_desk.forge.invocation import Invocation
from access_desk.forge.tokens import strip_bearer
from access_desk.quota.ledger import Payer
from handlers import Services, json_body, remember_installation, services, verified
from handlers.errors import PayloadTooLarge, UnknownResolver
from handlers.inflight import SLOW_RESOLVERS
from handlers.webhooks import post_in_process
from resolvers import RESOLVERS, Resolver
from resolvers.context import BadInput, Context, Diagnostics

bp = Blueprint("resolvers", __name__)

MAX_BODY = 500 * 1024  # Forge caps invokeRemote requests at 500 KB
REMEMBER_EVERY = 300.0  # seconds between installation refreshes per process


@bp.post("/resolvers/<key>")
def invoke(key: str) -> Response:
    svc = services()
    started = svc.clock()
    invocation = verified()
    resolver = RESOLVERS.get(key)
    if resolver is None:
        raise UnknownResolver(f"There is no resolver called {key!r}.", {"known": sorted(RESOLVERS)})
    iid, principal = invocation.installation_id, invocation.principal
    admin = svc.admins.known(iid, principal) if principal is not None else None
    with svc.inflight.slot(iid, principal, slow=key in SLOW_RESOLVERS, admin=admin):
        return _run(svc, invocation, key, resolver, started, admin)


def _run(
    svc: Services,
    invocation: Invocation,
    key: str,
    resolver: Resolver,
    started: float,
    admin: bool | None,
) -> Response:
    _remember(svc, invocation)
    user_token = strip_bearer(request.headers.get("x-forge-oauth-user"))

    payer = Payer(invocation.installation_id, invocation.principal or "")

    def client_for(token: str) -> Client:
        return svc.clients.for_site(invocation.api_base_url, token, payer)

    client = client_for(user_token) if user_token is not None else None
    ctx = Context(
        invocation=invocation,
        user_client=client,
        admins=svc.admins,
        store=svc.store,
        runner=svc.runner,
        ledger=svc.ledger,
        lookups=svc.lookups,
        public_base_url=svc.settings.public_base_url or request.host_url.rstrip("/"),
        budget_seconds=max(1.0, svc.settings.call_deadline_seconds - (svc.clock() - started) - 2),
        lookup_cache_seconds=svc.settings.lookup_cache_seconds,
        admin_known=admin,
        diagnostics=_diagnostics(svc, user_token, client_for) if key == "diagnose" else None,
        deliver=post_in_process if key == "sendTestWebhook" else None,
    )
    return jsonify(resolver(ctx, _payload()))


def _remember(svc: Services, invocation: Invocation) -> None:
    now = time.monotonic()
    last = svc.remembered.get(invocation.installation_id)
    if last is not None and now - last < REMEMBER_EVERY:
        return
    svc.remembered[invocation.installation_id] = now
    remember_installation(invocation)


def _diagnostics(
    svc: Services, user_token: str | None, client_for: Callable[[str], Client]
) -> Diagnostics:
    """What ``diagnose`` needs: this call's tokens, the offline token minter, a client factory."""
    return Diagnostics(
        user_token=user_token,
        system_token=strip_bearer(request.headers.get("x-forge-oauth-system")),
        received_at=time.time(),
        offline_tokens=svc.offline_tokens,
        client_for=client_for,
        report_days=float(svc.settings.personal_data_report_days),
    )


def _payload() -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge("The request body is larger than 500 KB.")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge("The request body is larger than 500 KB.")
    if not raw.strip():
        return {}
    payload = json_body(raw)
    if not isinstance(payload, dict):
        raise BadInput("The payload must be a JSON object.", {"body": "must be an object"})
    return payload
