"""Simulated Atlassian GraphQL gateway (``POST /graphql``): the ``offlineUserAuthToken`` mutation.

Needs ``Authorization: Bearer <system token>`` (anything else: 401). The mutation takes
``input.contextIds`` (one context ARI of the system token's own site, in either form:
``ari:cloud:confluence::site/<cloudId>`` or ``ari:cloud:confluence:<cloudId>:workspace/<cloudId>``)
and ``input.userId`` (a non-closed account of that site); it answers a fresh user token for that
user with ``ttl`` = ``platform.offline_ttl`` seconds. A wrong site or unknown user gives
``success: false`` with ``errors``. A query without that mutation gets GraphQL ``errors``.

Offline user impersonation must be allowed by the deployed manifest (``platform.impersonation``, the
scopes ``manifest.yml`` flags ``allowImpersonation: true``, read by ``simulator.manifest``): with no
such scope the mint fails (``success: false``, ``IMPERSONATION_REFUSED``; the real wording is
unverified), and the tokens it mints are offline grants, which Confluence refuses on an endpoint
whose scope is not flagged (``simulator.confluence``).

Which form works is unverified on the real platform, so ``platform.context_ari`` picks one of
``CONTEXT_ARI_MODES``: ``any`` (both forms work; the default), ``site`` or ``workspace`` (only
that form works), ``none`` (neither). A refused form fails as a developer-community thread reports
for the site form: ``success: false`` with "Could not load permissions for app user". The control
API sets it: ``PUT /_sim/switches {"contextAri": mode}``.

Forge allows an app 1,000 offline token mints a minute (``platform.mints``, a ``MintLimit`` of
``simulator.mints``: minutes on the clock, the whole app together): past it the mutation answers
429 with ``Retry-After`` (the seconds to the next minute) and mints nothing.
``platform.mints.limit`` lowers it for tests.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response

from simulator.edge import Call, answer, json_response
from simulator.state import PlatformState

SITE_ARI = "ari:cloud:confluence::site/"
CONTEXT_ARI_MODES = ("any", "site", "workspace", "none")
REFUSED_CONTEXT = "Could not load permissions for app user"
IMPERSONATION_REFUSED = (
    "The app is not allowed to impersonate users: no scope has allowImpersonation (simulated)"
)


def context_form(contexts: Any, cloud_id: str) -> str | None:
    """``site`` or ``workspace`` when ``contexts`` is one context ARI of that site, else None."""
    if not isinstance(contexts, list) or len(contexts) != 1:
        return None
    forms = {
        SITE_ARI + cloud_id: "site",
        f"ari:cloud:confluence:{cloud_id}:workspace/{cloud_id}": "workspace",
    }
    return forms.get(contexts[0]) if isinstance(contexts[0], str) else None


def _graphql_error(message: str, status: int = 200) -> Response:
    return json_response({"data": None, "errors": [{"message": message}]}, status)


def _failure(message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"message": message}], "authToken": None}


def make_gateway_blueprint(platform: PlatformState) -> Blueprint:
    bp = Blueprint("simulated_gateway", __name__)

    def exchange(call: Call) -> Response:
        if call.grant is None or not call.grant.is_system:
            return json_response(
                {"errors": [{"message": "Unauthorized", "extensions": {"statusCode": 401}}]}, 401
            )
        body = call.body
        if not call.body_ok or not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _graphql_error("The body must be a JSON object with a 'query' string.", 400)
        if "offlineUserAuthToken" not in body["query"]:
            return _graphql_error("This simulated gateway only knows offlineUserAuthToken.")
        variables = body.get("variables") or {}
        given = variables.get("input") if isinstance(variables, dict) else None
        if not isinstance(given, dict):
            return _graphql_error("Variable '$input' of type 'OfflineUserAuthTokenInput!' is null.")
        wait = platform.mints.take()
        if wait > 0:
            return json_response(
                {"errors": [{"message": "Too many offline token requests for this app"}]},
                429,
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return json_response({"data": {"offlineUserAuthToken": mint(call, given)}})

    def mint(call: Call, given: dict[str, Any]) -> dict[str, Any]:
        assert call.grant is not None
        inst = platform.installation_by_id(call.grant.installation_id)
        contexts, user_id = given.get("contextIds"), given.get("userId")
        if inst is None:
            return _failure("The installation is gone.")
        form = context_form(contexts, inst.cloud_id)
        if form is None:
            return _failure("contextIds must name this installation's site.")
        if platform.context_ari not in ("any", form):
            return _failure(REFUSED_CONTEXT)
        if not platform.impersonation:
            return _failure(IMPERSONATION_REFUSED)
        user = inst.site.users.get(user_id) if isinstance(user_id, str) else None
        if user is None or user["accountStatus"] == "closed":
            return _failure("Unknown user for this site.")
        ttl = platform.offline_ttl
        token = platform.tokens.issue(inst.id, user["accountId"], ttl, offline=True)
        return {"success": True, "errors": None, "authToken": {"token": token, "ttl": ttl}}

    @bp.post("/graphql")
    def graphql() -> Response:
        return answer(platform, "graphql", exchange)

    return bp
