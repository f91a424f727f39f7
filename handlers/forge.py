"""``POST /forge/lifecycle`` and ``POST /forge/scheduled``: Forge's trigger calls.

Both verify the FIT, take the tenant from it (never from the body, which may or may not be wrapped in
``payload``), store the installation with its fresh system token, and answer 200 at once: the work
itself (jobs) is done by the background worker. Both are idempotent under Forge's redeliveries.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from auth import Invocation
from handlers import remember_installation, services, verified

bp = Blueprint("forge", __name__)

# A system token sent to a trigger endpoint has at least 2 h left (PLATFORM.md).
TRIGGER_TOKEN_SECONDS = 2 * 3600
EVENTS = {"avi:forge:installed:app": "installed", "avi:forge:upgraded:app": "upgraded"}


@bp.post("/forge/lifecycle")
def lifecycle() -> Response:
    invocation = _remember_installation()
    event = _event()
    action = EVENTS.get(str(event.get("eventType", "")), "lifecycle")
    retry = event.get("retryContext") or (request.get_json(silent=True) or {}).get("retryContext")
    if not retry:
        services().store.add_audit(
            invocation.installation_id,
            actor=str(event.get("installerAccountId") or "forge"),
            action=f"app.{action}",
            source="forge",
            subjects=[],
            outcome="ok",
        )
    return jsonify({"status": "ok"})


@bp.post("/forge/scheduled")
def scheduled() -> Response:
    _remember_installation()
    return jsonify({"status": "ok"})


def _remember_installation() -> Invocation:
    invocation = verified()
    remember_installation(invocation, TRIGGER_TOKEN_SECONDS)
    return invocation


def _event() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {}
    inner = body.get("payload")
    return inner if isinstance(inner, dict) else body
