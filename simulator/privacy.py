"""Simulated personal data reporting API (``POST /app/report-accounts/``) and its controls.

As documented for apps that store personal data: called as the app (``Authorization: Bearer
<system token>``; anything else: 401) with ``{"accounts": [{"accountId", "updatedAt"}]}``, 1 to 90
accounts (else 400). It answers 204 when none of them changed, or 200 ``{"accounts": [{"accountId",
"status"}]}`` naming each that is ``closed`` (closed on the caller's site, or marked closed) or
``updated`` (marked updated after the ``updatedAt`` it was given).

Every answer carries ``Cycle-Period`` when ``cycle_period`` is set (the reporting cycle Atlassian
asks an app to follow instead of its own; its format is not documented: the simulator sends
whatever it is given). The literal account id ``unknown`` is refused (400): Atlassian asks apps
never to report it.

Control API (under ``/_sim``): ``GET /privacy`` -> ``{"reports": [...], "marks": {...},
"cyclePeriod"}`` (each report: installation, the account ids sent, what was answered);
``PUT /privacy/accounts`` ``{"accountId", "status": "closed" | "updated" | null}`` marks (null:
unmarks) an account; ``PUT /privacy/cycle`` ``{"cyclePeriod": str | null}`` sets the header;
``DELETE /privacy`` forgets the reports. Faults apply as endpoint ``report-accounts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request

from simulator.edge import Call, answer, error, json_response
from simulator.state import PlatformState

MAX_ACCOUNTS = 90


def _accounts(body: Any) -> list[tuple[str, float]] | str:
    """(account id, updatedAt epoch) pairs, or what is wrong with the body."""
    given = body.get("accounts") if isinstance(body, dict) else None
    if not isinstance(given, list) or not 1 <= len(given) <= MAX_ACCOUNTS:
        return f"'accounts' must be a list of 1 to {MAX_ACCOUNTS} entries."
    pairs = []
    for entry in given:
        account_id = entry.get("accountId") if isinstance(entry, dict) else None
        updated = entry.get("updatedAt") if isinstance(entry, dict) else None
        if not isinstance(account_id, str) or not account_id or not isinstance(updated, str):
            return "Each account needs a string 'accountId' and 'updatedAt'."
        try:
            pairs.append((account_id, datetime.fromisoformat(updated).timestamp()))
        except ValueError:
            return f"'updatedAt' {updated!r} is not an ISO 8601 time."
    return pairs


def make_privacy_blueprint(platform: PlatformState) -> Blueprint:
    bp = Blueprint("simulated_privacy", __name__)

    def report(call: Call) -> Response:
        if call.grant is None or not call.grant.is_system:
            return error(401, "The app's system token is required.")
        if not call.body_ok:
            return error(400, "The body is not JSON.")
        pairs = _accounts(call.body)
        if isinstance(pairs, str):
            return error(400, pairs)
        if any(a == "unknown" for a, _ in pairs):
            return error(400, "'unknown' is not an account id: never report it.")
        cycle = platform.account_reports.cycle_period
        headers = {"Cycle-Period": cycle} if cycle else None
        inst = platform.installation_by_id(call.grant.installation_id)
        closed = set(inst.site.closed_ids) if inst is not None else set()
        found = platform.account_reports.statuses(pairs, closed)
        platform.account_reports.record(
            call.grant.installation_id, [a for a, _ in pairs], found or None
        )
        if not found:
            empty = Response(b"", status=204)
            empty.headers.update(headers or {})
            return empty
        return json_response({"accounts": found}, 200, headers)

    @bp.post("/app/report-accounts/")
    @bp.post("/app/report-accounts")
    def report_accounts() -> Response:
        return answer(platform, "report-accounts", report)

    @bp.get("/_sim/privacy")
    def state() -> Response:
        return json_response(platform.account_reports.to_json())

    @bp.delete("/_sim/privacy")
    def clear() -> Response:
        platform.account_reports.clear()
        return json_response({"cleared": True})

    @bp.put("/_sim/privacy/cycle")
    def cycle() -> Response:
        body = request.get_json(silent=True)
        value = body.get("cyclePeriod") if isinstance(body, dict) else ""
        if value is not None and not isinstance(value, str):
            return json_response(
                {"error": "bad_input", "message": "'cyclePeriod' must be a string or null."}, 400
            )
        platform.account_reports.cycle_period = value or None
        return json_response(platform.account_reports.to_json())

    @bp.put("/_sim/privacy/accounts")
    def mark() -> Response:
        body = request.get_json(silent=True)
        account_id = body.get("accountId") if isinstance(body, dict) else None
        if not isinstance(account_id, str) or not account_id:
            return json_response({"error": "bad_input", "message": "'accountId' is required."}, 400)
        try:
            platform.account_reports.mark(account_id, body.get("status"))  # type: ignore[union-attr]
        except ValueError as exc:
            return json_response({"error": "bad_input", "message": str(exc)}, 400)
        return json_response(platform.account_reports.to_json())

    return bp
