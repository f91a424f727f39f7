"""``POST /forge/lifecycle`` and ``POST /forge/scheduled``: Forge's trigger calls.

Both verify the FIT, take the tenant from it (never from the body, which may or may not be wrapped in
``payload``), store the installation with its fresh system token, and answer 200 at once: the work
itself (jobs) is done by the background worker. Both are idempotent under Forge's redeliveries.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from auth import Invocation
from handlers import json_body, remember_installation, services, verified
from resolvers.context import BadInput

bp = Blueprint("forge", __name__)

EVENTS = {"avi:forge:installed:app": "installed", "avi:forge:upgraded:app": "upgraded"}


@bp.post("/forge/lifecycle")
def lifecycle() -> Response:
    invocation = _remember_installation()
    body = _body()
    event = body.get("payload") if isinstance(body.get("payload"), dict) else body
    assert isinstance(event, dict)
    action = EVENTS.get(str(event.get("eventType", "")), "lifecycle")
    if not (event.get("retryContext") or body.get("retryContext")):
        installer = event.get("installerAccountId")
        services().store.add_audit(
            invocation.installation_id,
            actor=installer
            if isinstance(installer, str) and 0 < len(installer) <= 128
            else "forge",
            action=f"app.{action}",
            source="forge",
            subjects=[],
            outcome="ok",
        )
    return jsonify({"status": "ok"})


@bp.post("/forge/scheduled")
def scheduled() -> Response:
    invocation = _remember_installation()
    svc = services()
    svc.store.note_scheduled_trigger(  # queues the personal data duty for the worker when due
        invocation.installation_id,
        report_every_seconds=svc.settings.personal_data_report_days * 24 * 3600.0,
    )
    return jsonify({"status": "ok"})


def _remember_installation() -> Invocation:
    invocation = verified()
    remember_installation(invocation)
    return invocation


def _body() -> dict[str, Any]:
    """The trigger's JSON object, or ``{}``: the tenant comes from the token, so a body Forge
    might change never stops the 200."""
    try:
        body = json_body(request.get_data(cache=False))
    except BadInput:
        return {}
    return body if isinstance(body, dict) else {}
