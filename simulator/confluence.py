"""Simulated Confluence under ``/ex/confluence/<cloudId>``: users-bulk, the two email endpoints and
``user/current``, per docs/platform.md and the OpenAPI document.

Every call needs ``Authorization: Bearer <token>`` issued for the installation owning that cloudId:
missing, unknown, expired or other-site tokens get 401. The app's system token acts as the app
itself (it may call everything; ``user/current`` answers an app account). External collaborators
get 404 from all three v2 endpoints. ``site.api_disabled`` makes the email endpoints answer 503
without ``Retry-After`` (Atlassian's OpenAPI document: "Returned if API is disabled on site").

Each endpoint needs its scope (``ENDPOINT_SCOPES``, from docs/platform.md). An offline user token
(minted by the gateway: impersonation) is refused on an endpoint whose scope the deployed manifest
does not flag ``allowImpersonation: true`` (``platform.impersonation``) with the gateway's
missing-scope answer, 401 ``{"code": 401, "message": "Unauthorized; scope does not match"}`` (which
answer a real site gives is unverified).

When ``platform.meter`` is on, each answer to a known installation is metered (``simulator.quota``):
it counts against its site's burst limit (``X-RateLimit-*``; 429 past it) and spends points of the
installation's pool, carrying the quota headers, or is refused with 429 when the pool cannot pay.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from simulator.edge import SCOPE_MISMATCH, Call, answer, error, json_response
from simulator.quota import Refusal
from simulator.site import Site, is_valid_email
from simulator.state import Installation, PlatformState

BASE = "/ex/confluence/<cloud_id>/wiki"
MAX_IDS = 250
MAX_EMAILS = 100
ENDPOINT_SCOPES = {
    "users-bulk": "read:user:confluence",
    "check-access": "read:configuration:confluence",
    "invite": "read:configuration:confluence",
    "user-current": "read:content-details:confluence",
}


def _strings(call: Call, key: str, limit: int) -> list[str] | Response:
    if not call.body_ok or not isinstance(call.body, dict):
        return error(400, "The request body must be a JSON object.")
    values = call.body.get(key)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return error(400, f"'{key}' must be a list of strings.")
    if not 1 <= len(values) <= limit:
        return error(400, f"'{key}' must hold between 1 and {limit} entries, not {len(values)}.")
    return values


def _unique(values: list[str], fold: bool) -> list[str]:
    seen: set[str] = set()
    kept = []
    for value in values:
        key = value.lower() if fold else value
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def make_confluence_blueprint(platform: PlatformState) -> Blueprint:
    bp = Blueprint("simulated_confluence", __name__)

    def site_of(cloud_id: str, call: Call, endpoint: str) -> tuple[Installation, str] | Response:
        """The installation and caller (account id or "system"), or a 401 answer (an offline
        token on an endpoint whose scope does not allow impersonation included)."""
        inst = platform.installation_for_cloud(cloud_id)
        if call.grant is None or inst is None or call.grant.installation_id != inst.id:
            return error(401, "The token is missing, unknown, expired or not valid for this site.")
        if call.grant.offline and ENDPOINT_SCOPES[endpoint] not in platform.impersonation:
            return json_response({"code": 401, "message": SCOPE_MISMATCH}, 401)
        return inst, call.grant.account_id

    def external(site: Site, caller: str) -> bool:
        return caller in site.external_ids

    @bp.post(f"{BASE}/api/v2/users-bulk")
    def users_bulk(cloud_id: str) -> Response:
        def handle(call: Call) -> Response:
            found = site_of(cloud_id, call, "users-bulk")
            if isinstance(found, Response):
                return found
            inst, caller = found
            if external(inst.site, caller):
                return error(404, "You do not have permission to view user profiles.")
            ids = _strings(call, "accountIds", MAX_IDS)
            if isinstance(ids, Response):
                return ids
            users = inst.site.users
            results = [dict(users[i]) for i in _unique(ids, fold=False) if i in users]
            base = f"{inst.site.url}/wiki"
            links = {"Link": f'<{base}>; rel="base"'}
            return json_response({"results": results, "_links": {"base": base}}, 200, links)

        return answer(platform, "users-bulk", metered(platform, cloud_id, "users-bulk", handle))

    def email_endpoint(cloud_id: str, endpoint: str) -> Response:
        def handle(call: Call) -> Response:
            found = site_of(cloud_id, call, endpoint)
            if isinstance(found, Response):
                return found
            inst, caller = found
            if external(inst.site, caller):
                return error(404, "You do not have permission to manage access on this site.")
            if inst.site.api_disabled:
                return error(503, "This API is disabled on the site.")
            emails = _strings(call, "emails", MAX_EMAILS)
            if isinstance(emails, Response):
                return emails
            if endpoint == "invite":
                for email in _unique(emails, fold=True):
                    inst.site.invite(email)
                return Response(b"", status=200)
            return json_response(_access_report(platform, inst.site, _unique(emails, fold=True)))

        return answer(platform, endpoint, metered(platform, cloud_id, endpoint, handle))

    @bp.post(f"{BASE}/api/v2/user/access/check-access-by-email")
    def check_access(cloud_id: str) -> Response:
        return email_endpoint(cloud_id, "check-access")

    @bp.post(f"{BASE}/api/v2/user/access/invite-by-email")
    def invite(cloud_id: str) -> Response:
        return email_endpoint(cloud_id, "invite")

    @bp.get(f"{BASE}/rest/api/user/current")
    def user_current(cloud_id: str) -> Response:
        def handle(call: Call) -> Response:
            found = site_of(cloud_id, call, "user-current")
            if isinstance(found, Response):
                return found
            inst, caller = found
            user = _current_user(platform, inst, caller)
            expand = {e.strip() for e in request.args.get("expand", "").split(",")}
            if "operations" in expand:
                ops = [{"operation": "use", "targetType": "application"}]
                if caller == inst.site.admin_id:
                    ops.insert(0, {"operation": "administer", "targetType": "application"})
                user["operations"] = ops
            return json_response(user)

        return answer(platform, "user-current", metered(platform, cloud_id, "user-current", handle))

    return bp


def _objects(endpoint: str, call: Call, response: Response) -> int:
    """The objects a 2xx answer involves (see ``simulator.quota.COSTS``)."""
    if endpoint == "users-bulk":
        return len(json.loads(response.get_data())["results"])
    if endpoint == "check-access":
        return len(_unique(call.body["emails"], fold=True))
    return 1 if endpoint == "user-current" else 0


def metered(
    platform: PlatformState, cloud_id: str, endpoint: str, handle: Callable[[Call], Response]
) -> Callable[[Call], Response]:
    """``handle`` behind the points meter: the base point is reserved first (a spent pool refuses
    before any side effect), the rest is charged once the answer is known; a refused call is free.
    Calls without a valid token for this site, and every call while metering is off, pass as is."""

    def run(call: Call) -> Response:
        if not platform.meter.enabled:
            return handle(call)
        inst = platform.installation_for_cloud(cloud_id)
        if inst is None or call.grant is None or call.grant.installation_id != inst.id:
            return handle(call)
        burst = platform.meter.burst(inst.cloud_id)
        if burst is None:
            return _burst_refused(platform)
        ticket = platform.meter.admit(inst.id, inst.cloud_id, endpoint)
        if ticket is None:
            return handle(call)
        if isinstance(ticket, Refusal):
            return _with_burst(_refused(ticket), burst)
        response = handle(call)
        if 200 <= response.status_code < 300:
            reading = platform.meter.settle(ticket, _objects(endpoint, call, response))
        else:
            reading = platform.meter.release(ticket)
        if isinstance(reading, Refusal):
            return _with_burst(_refused(reading), burst)
        for name, value in reading.headers().items() if reading else ():
            response.headers[name] = value
        return _with_burst(response, burst)

    return run


def _with_burst(response: Response, burst: tuple[int, int]) -> Response:
    """The burst limit's headers (``X-RateLimit-*``: this site's calls this second)."""
    limit, left = burst
    if limit:
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(left)
    return response


def _burst_refused(platform: PlatformState) -> Response:
    quota = platform.meter.quota
    limit = quota.burst if quota is not None else 0
    headers = {"Retry-After": "1", "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
    return error(429, "Too many requests this second (simulated burst limit).", headers)


def _refused(refusal: Refusal) -> Response:
    detail = "Rate limit exceeded: the call costs more points than the pool has left (simulated)."
    return error(429, detail, refusal.headers())


def _access_report(platform: PlatformState, site: Site, emails: list[str]) -> dict[str, list[str]]:
    """Which emails lack access and which are invalid; an empty list is left out every other
    time (docs/platform.md: either key may be missing), or always/never per ``platform.omit_empty``."""
    invalid = [e for e in emails if not is_valid_email(e)]
    without = [e for e in emails if is_valid_email(e) and not site.has_access(e)]
    omit = platform.omit_empty
    if omit is None:
        omit = platform.next_sequence() % 2 == 1
    report = {"emailsWithoutAccess": without, "invalidEmails": invalid}
    return {k: v for k, v in report.items() if v or not omit}


def _current_user(platform: PlatformState, inst: Installation, caller: str) -> dict[str, Any]:
    """The v1 user object of the caller (the app's own account for the system token)."""
    base = f"{inst.site.url}/wiki"
    if caller in inst.site.users:
        user: dict[str, Any] = {"type": "known", **inst.site.users[caller]}
    else:
        user = {
            "type": "app",
            "accountId": platform.app_account_id,
            "accountType": "app",
            "accountStatus": "active",
            "displayName": "Access Desk",
            "publicName": "Access Desk",
            "email": "",
            "timeZone": None,
            "isExternalCollaborator": False,
            "profilePicture": None,
        }
    user.pop("personalSpaceId", None)
    user["_links"] = {"self": f"{base}/rest/api/user?accountId={user['accountId']}", "base": base}
    return user
