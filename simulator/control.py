"""The control API under ``/_sim/``, for ./dev and for tests driving a backend in another process.

- ``GET /state``: URLs, installations (ids, cloudIds, apiBaseUrls) and a summary of each site;
- ``POST /installations``: add a tenant; answers its entry as in ``/state``;
- ``POST /tokens`` ``{"installationId"?, "accountId"?, "lifetime"?, "icLabel"?}``: ``{"fit",
  "userToken", "systemToken", "headers"}`` (``userToken`` is null without an account; with
  ``icLabel``, the FIT of that Isolated Cloud environment, signed by its own keys published at
  ``/ic/<label>/.well-known/jwks.json``);
- ``POST /faults`` ``{"endpoint", "kind", "times"?, "retryAfter"?, "delayMs"?, "headers"?}``,
  ``GET /faults``, ``DELETE /faults``;
- ``PUT /latency`` ``{"ms"}``;
- ``PUT /switches`` ``{"nearLimit"?, "apiDisabled"?, "installationId"?, "contextAri"?,
  "impersonation"?}`` (``apiDisabled``: the site's email API answers 503 without Retry-After;
  ``contextAri``: which offline token context ARI form the gateway accepts, see
  ``simulator.gateway``; ``impersonation``: the scopes the deployed manifest allows to impersonate
  users with, a list; ``[]`` refuses every offline token, see ``simulator.manifest``);
- ``GET /requests`` (account ids only, never tokens), ``DELETE /requests``;
- ``GET /quota``: the points meter (``simulator.quota``): its quota (null when off), each pool
  now, points spent / requests charged / 429s sent per installation and in total;
- ``PUT /quota`` ``{"points"?, "seconds"?, "mode"?, "spelling"?, "costs"?}`` (65000, 3600,
  ``"app"`` or ``"site"``, ``"enforced"`` or ``"beta"``, ``"reads"`` or ``"writes"``): meter
  from now on, with full pools and counts at zero; answers as ``GET``;
- ``DELETE /quota``: stop metering; answers the meter as it was just before;
- ``POST /quota/spend`` ``{"points", "installationId"?}``: spend up to ``points`` of that
  installation's pool as the app's tenants outside the simulator would; answers the pool.

Bad input answers 400 ``{"error", "message"}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator.edge import json_response
from simulator.gateway import CONTEXT_ARI_MODES
from simulator.quota import DEFAULT_POINTS, DEFAULT_SECONDS, Quota
from simulator.state import Installation, PlatformState


class BadInput(Exception):
    pass


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise BadInput("The body must be a JSON object.")
    return body


def _number(body: dict[str, Any], key: str, default: float | None) -> float | None:
    value = body.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadInput(f"'{key}' must be a number.")
    return value


def describe(inst: Installation) -> dict[str, Any]:
    site = inst.site
    return {
        "id": inst.id,
        "uuid": inst.uuid,
        "cloudId": inst.cloud_id,
        "apiBaseUrl": inst.api_base_url,
        "siteUrl": site.url,
        "site": {
            "adminId": site.admin_id,
            "userIds": site.user_ids,
            "externalIds": site.external_ids,
            "closedIds": site.closed_ids,
            "inactiveIds": site.inactive_ids,
            "hiddenEmailIds": site.hidden_email_ids,
            "userCount": len(site.users),
            "emailsWithAccess": site.users_with_access_emails(),
            "sampleNewEmails": site.sample_new_emails,
            "invited": sorted(site.invited.values()),
            "apiDisabled": site.api_disabled,
        },
    }


def make_control_blueprint(platform: PlatformState) -> Blueprint:
    bp = Blueprint("simulator_control", __name__)

    @bp.errorhandler(BadInput)
    def bad_input(exc: BadInput) -> Response:
        return json_response({"error": "bad_input", "message": str(exc)}, 400)

    def installation(body: dict[str, Any]) -> Installation:
        wanted = body.get("installationId")
        if wanted is None:
            return platform.installation
        found = platform.installation_by_id(wanted) if isinstance(wanted, str) else None
        if found is None:
            raise BadInput(f"Unknown installation {wanted!r}.")
        return found

    @bp.get("/state")
    def state() -> Response:
        return json_response(
            {
                "appId": platform.app_id,
                "url": platform.url,
                "jwksUrl": platform.jwks_url,
                "graphqlUrl": platform.graphql_url,
                "allowlistPrefix": platform.allowlist_prefix,
                "latencyMs": round(platform.latency * 1000, 3),
                "nearLimit": platform.near_limit,
                "contextAri": platform.context_ari,
                "impersonation": sorted(platform.impersonation),
                "personalDataUrl": platform.personal_data_url,
                "installations": [describe(i) for i in platform.installations],
                "faults": [f.to_json() for f in platform.faults.pending()],
                "quota": platform.meter.quota.to_json() if platform.meter.quota else None,
            }
        )

    @bp.post("/installations")
    def add_installation() -> Response:
        return json_response(describe(platform.add_installation()), 201)

    @bp.post("/tokens")
    def tokens() -> Response:
        body = _body()
        inst = installation(body)
        account = body.get("accountId")
        if account is not None and not isinstance(account, str):
            raise BadInput("'accountId' must be a string.")
        lifetime = int(_number(body, "lifetime", 25) or 25)
        label = body.get("icLabel")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise BadInput("'icLabel' must be a non-empty string.")
        headers = platform.invocation_headers(inst, account, lifetime=lifetime)
        if label is not None:
            fit = platform.mint_fit(inst, account, lifetime=lifetime, ic_label=label)
            headers["authorization"] = f"Bearer {fit}"
        return json_response(
            {
                "fit": headers["authorization"].removeprefix("Bearer "),
                "userToken": headers.get("x-forge-oauth-user"),
                "systemToken": headers["x-forge-oauth-system"],
                "headers": headers,
            }
        )

    @bp.post("/faults")
    def add_fault() -> Response:
        body = _body()
        times, retry_after = _number(body, "times", 1), _number(body, "retryAfter", None)
        headers = body.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BadInput("'headers' must be an object of strings.")
        try:
            fault = platform.faults.add(
                str(body.get("endpoint")),
                str(body.get("kind")),
                times=None if times is None else int(times),
                retry_after=None if retry_after is None else int(retry_after),
                delay=(_number(body, "delayMs", 0) or 0) / 1000,
                headers=headers,
            )
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
        return json_response({"fault": fault.to_json()}, 201)

    @bp.get("/faults")
    def list_faults() -> Response:
        return json_response({"faults": [f.to_json() for f in platform.faults.pending()]})

    @bp.delete("/faults")
    def clear_faults() -> Response:
        return json_response({"cleared": platform.faults.clear()})

    @bp.put("/latency")
    def latency() -> Response:
        ms = _number(_body(), "ms", None)
        if ms is None or ms < 0:
            raise BadInput("'ms' must be a number >= 0.")
        platform.latency = ms / 1000
        return json_response({"ms": ms})

    @bp.put("/switches")
    def switches() -> Response:
        body = _body()
        for key in ("nearLimit", "apiDisabled"):
            if key in body and not isinstance(body[key], bool):
                raise BadInput(f"'{key}' must be true or false.")
        if "nearLimit" in body:
            platform.near_limit = body["nearLimit"]
        if "apiDisabled" in body:
            installation(body).site.api_disabled = body["apiDisabled"]
        if "contextAri" in body:
            if body["contextAri"] not in CONTEXT_ARI_MODES:
                raise BadInput(f"'contextAri' must be one of {CONTEXT_ARI_MODES}.")
            platform.context_ari = body["contextAri"]
        if "impersonation" in body:
            scopes = body["impersonation"]
            if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
                raise BadInput("'impersonation' must be a list of scopes.")
            platform.impersonation = frozenset(scopes)
        return json_response(
            {
                "nearLimit": platform.near_limit,
                "contextAri": platform.context_ari,
                "impersonation": sorted(platform.impersonation),
            }
        )

    @bp.get("/quota")
    def quota() -> Response:
        return json_response(platform.meter.snapshot())

    @bp.put("/quota")
    def set_quota() -> Response:
        body = _body()
        try:
            chosen = Quota(
                body.get("points", DEFAULT_POINTS),
                body.get("seconds", DEFAULT_SECONDS),
                body.get("mode", "app"),
                body.get("spelling", "enforced"),
                body.get("costs", "reads"),
            )
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
        platform.meter.configure(chosen)
        return json_response(platform.meter.snapshot())

    @bp.delete("/quota")
    def stop_quota() -> Response:
        last = platform.meter.snapshot()
        platform.meter.configure(None)
        return json_response(last)

    @bp.post("/quota/spend")
    def spend() -> Response:
        body = _body()
        points = body.get("points")
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            raise BadInput("'points' must be a whole number >= 0.")
        reading = platform.meter.spend(installation(body).cloud_id, points)
        if reading is None:
            raise BadInput("Metering is off: PUT /_sim/quota first.")
        return json_response(reading.to_json())

    @bp.get("/requests")
    def requests_log() -> Response:
        return json_response({"requests": [r.to_json() for r in platform.requests]})

    @bp.delete("/requests")
    def clear_requests() -> Response:
        platform.clear_requests()
        return json_response({"cleared": True})

    return bp
