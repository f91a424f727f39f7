"""``POST /forge/lifecycle``, ``POST /forge/scheduled`` and ``POST /forge/uninstall``: Forge's
trigger calls.

All three accept only trigger invocations: a verified FIT that names no ``principal`` (every UI call
names one: the UI endpoint has no route, so a panel could ``invokeRemote`` these paths) and whose
``app.module.key`` is the route's own trigger module from ``manifest.yml`` or the endpoint module that
trigger routes to (which of the two Forge names is not settled by its docs). Anything else is refused
with 403 ``not_allowed`` before anything is written.

They take the tenant from the FIT (never from the body, which may or may not be wrapped in
``payload``) and answer 200 at once: the work itself (jobs, erasure) is done by the background
worker. All are idempotent under Forge's redeliveries.

- lifecycle and scheduled store the installation with its fresh system token. A lifecycle event
  leaves one audit entry (not for redeliveries): actor ``forge``, the installing (or upgrading)
  account as its subject when the body names a well-formed account id. An ``installed`` event
  after an uninstall starts the installation afresh (``store.reinstall``);
- uninstall (the manifest's ``preUninstall`` module: an admin uninstalls the app; Forge goes on
  whatever it answers) stores nothing Forge sent: it stops the installation (``store.uninstall``:
  tokens and webhook secret dropped, jobs cancelled, its personal data queued for erasure).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from access_desk.account_ids import is_account_id
from access_desk.forge.invocation import Invocation
from handlers import json_body, remember_installation, services, verified
from resolvers.context import BadInput, NotAllowed

bp = Blueprint("forge", __name__)
log = logging.getLogger(__name__)

# The trigger modules of manifest.yml (tests/forge/test_manifest.py checks they match it). Which key a
# trigger's FIT names in ``app.module.key`` is not settled by Atlassian's docs (the trigger module's,
# or the endpoint module it routes to; docs/platform.md): each route accepts exactly those two of its
# own trigger, and nothing else.
LIFECYCLE_TRIGGER_KEY = "access-desk-lifecycle-events"
LIFECYCLE_ENDPOINT_KEY = "access-desk-lifecycle"
SCHEDULED_TRIGGER_KEY = "access-desk-hourly"
SCHEDULED_ENDPOINT_KEY = "access-desk-scheduled"
UNINSTALL_TRIGGER_KEY = "access-desk-pre-uninstall"
UNINSTALL_ENDPOINT_KEY = "access-desk-uninstall"
EVENTS = {"avi:forge:installed:app": "installed", "avi:forge:upgraded:app": "upgraded"}


@bp.post("/forge/lifecycle")
def lifecycle() -> Response:
    invocation = _trigger_only(LIFECYCLE_TRIGGER_KEY, LIFECYCLE_ENDPOINT_KEY)
    body = _body()
    event = body.get("payload") if isinstance(body.get("payload"), dict) else body
    assert isinstance(event, dict)
    action = EVENTS.get(str(event.get("eventType", "")), "")
    if not action:  # no eventType is documented: the account field tells the two events apart
        action = "upgraded" if "upgraderAccountId" in event else "installed"
    if action == "installed" and services().store.reinstall(invocation.installation_id):
        log.info("installation installed again after an uninstall")
    remember_installation(invocation)
    if not (event.get("retryContext") or body.get("retryContext")):
        account = event.get("installerAccountId") or event.get("upgraderAccountId")
        services().store.add_audit(
            invocation.installation_id,
            actor="forge",
            action=f"app.{action}",
            source="forge",
            subjects=[account] if isinstance(account, str) and is_account_id(account) else [],
            outcome="ok",
        )
    return jsonify({"status": "ok"})


@bp.post("/forge/scheduled")
def scheduled() -> Response:
    invocation = _trigger_invocation(SCHEDULED_TRIGGER_KEY, SCHEDULED_ENDPOINT_KEY)
    svc = services()
    svc.store.note_scheduled_trigger(  # queues the personal data duty for the worker when due
        invocation.installation_id,
        report_every_seconds=svc.settings.personal_data_report_days * 24 * 3600.0,
    )
    return jsonify({"status": "ok"})


@bp.post("/forge/uninstall")
def uninstall() -> Response:
    invocation = _trigger_only(UNINSTALL_TRIGGER_KEY, UNINSTALL_ENDPOINT_KEY)
    cancelled = services().store.uninstall(invocation.installation_id)
    log.info(
        "installation uninstalled",
        extra={"known": cancelled is not None, "jobsCancelled": cancelled or 0},
    )
    return jsonify({"status": "ok"})


def _trigger_invocation(*module_keys: str) -> Invocation:
    """The verified FIT of a trigger call naming one of ``module_keys``, its installation stored;
    raises ``NotAllowed`` (nothing stored) for a user's call or another module's."""
    invocation = _trigger_only(*module_keys)
    remember_installation(invocation)
    return invocation


def _trigger_only(*module_keys: str) -> Invocation:
    """The verified FIT of a trigger call naming one of ``module_keys`` (nothing stored); raises
    ``NotAllowed`` for a user's call or another module's."""
    invocation = verified()
    if invocation.principal is not None or invocation.module_key not in module_keys:
        raise NotAllowed("Only Forge's trigger for this route may call it.")
    return invocation


def _body() -> dict[str, Any]:
    """The trigger's JSON object, or ``{}``: the tenant comes from the token, so a body Forge
    might change never stops the 200."""
    try:
        body = json_body(request.get_data(cache=False))
    except BadInput:
        return {}
    return body if isinstance(body, dict) else {}
