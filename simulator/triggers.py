"""Forge's trigger calls and external webhook senders, played against the backend (``remote_url``).

- ``lifecycle(event_type)``: ``POST {remote}/forge/lifecycle`` with the event (wrapped in ``payload``
  as Forge may do) and the headers Forge sends to a trigger endpoint: a FIT with no principal that
  names the trigger module of ``manifest.yml`` (``LIFECYCLE_TRIGGER``), and the system token;
- ``scheduled()``: ``POST {remote}/forge/scheduled`` (the hourly trigger, ``SCHEDULED_TRIGGER``);
- ``uninstall()``: ``POST {remote}/forge/uninstall``, the manifest's ``preUninstall`` module
  (``UNINSTALL_TRIGGER``) as Forge calls it when an admin uninstalls the app: a FIT with no
  principal and no token (the endpoint asks for none); then the uninstall goes ahead whatever the
  remote answered: the installation's tokens stop working and its scheduled triggers stop, until
  an ``installed`` event;
- ``Ticker``: ``installed`` once at start, then ``scheduled`` every ``interval`` seconds, in a daemon
  thread (``./dev`` runs one with a one-minute tick);
- ``send_webhook(secret, emails, dry_run)``: a Standard Webhooks delivery to
  ``{remote}/webhooks/<installation uuid>``, signed with the ``whsec_`` secret the panel showed.

Control API (mounted under ``/_sim``): ``POST /triggers/installed``, ``POST /triggers/scheduled``,
``POST /triggers/uninstall``, ``POST /webhooks`` ``{"secret", "emails", "dryRun"?, "webhookId"?}``;
each answers the backend's ``{"status", "body"}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from typing import Any

import requests
from flask import Blueprint, Response, request

from simulator.edge import error, json_response
from simulator.state import Installation, PlatformState

TIMEOUT = 5.0  # Forge's limit for trigger calls
# (module key, module type) of manifest.yml's trigger modules, as a trigger call's FIT names them
# (tests/forge/test_manifest.py checks the keys against manifest.yml).
LIFECYCLE_TRIGGER = ("access-desk-lifecycle-events", "core:trigger")
SCHEDULED_TRIGGER = ("access-desk-hourly", "core:scheduledTrigger")
UNINSTALL_TRIGGER = ("access-desk-pre-uninstall", "core:preUninstall")


def _post(platform: PlatformState, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    if not platform.remote_url:
        return {"status": 0, "body": {"error": "no remote_url set"}}
    try:
        answer = requests.post(
            platform.remote_url.rstrip("/") + path,
            data=json.dumps(body),
            headers={**headers, "content-type": "application/json"},
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return {"status": 0, "body": {"error": type(exc).__name__}}
    try:
        parsed: Any = answer.json()
    except ValueError:
        parsed = answer.text
    return {"status": answer.status_code, "body": parsed}


def lifecycle(
    platform: PlatformState, event_type: str, inst: Installation | None = None
) -> dict[str, Any]:
    inst = inst or platform.installation
    event = {
        "eventType": event_type,
        "id": inst.uuid,
        "installerAccountId": inst.site.admin_id,
        "app": {"id": platform.app_id},
        "environment": {"id": inst.environment_id},
    }
    if event_type == "avi:forge:installed:app":
        platform.uninstalled.discard(inst.id)
    headers = platform.trigger_headers(inst, *LIFECYCLE_TRIGGER)
    return _post(platform, "/forge/lifecycle", {"payload": event}, headers)


def scheduled(platform: PlatformState, inst: Installation | None = None) -> dict[str, Any]:
    inst = inst or platform.installation
    headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER)
    return _post(platform, "/forge/scheduled", {"payload": {}}, headers)


def uninstall(platform: PlatformState, inst: Installation | None = None) -> dict[str, Any]:
    inst = inst or platform.installation
    headers = platform.trigger_headers(inst, *UNINSTALL_TRIGGER, system=False)
    event = {"id": inst.uuid, "app": {"id": platform.app_id}}  # the body is undocumented
    answer = _post(platform, "/forge/uninstall", {"payload": event}, headers)
    platform.uninstalled.add(inst.id)  # it goes ahead whatever the remote answered
    platform.tokens.revoke_installation(inst.id)
    return answer


def send_webhook(
    platform: PlatformState,
    secret: str,
    emails: list[str],
    *,
    dry_run: bool = False,
    webhook_id: str | None = None,
    inst: Installation | None = None,
) -> dict[str, Any]:
    inst = inst or platform.installation
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time()))
    body = json.dumps({"type": "access.invite", "data": {"emails": emails, "dryRun": dry_run}})
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    return _post(platform, f"/webhooks/{inst.uuid}", json.loads(body), headers)


class Ticker:
    """``installed`` once, then ``scheduled`` every ``interval`` seconds, until ``stop()``."""

    def __init__(self, platform: PlatformState, interval: float = 60.0) -> None:
        self._platform = platform
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forge-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 1)

    def _run(self) -> None:
        lifecycle(self._platform, "avi:forge:installed:app")
        while not self._stop.wait(self._interval):
            if self._platform.installation.id not in self._platform.uninstalled:
                scheduled(self._platform)


def make_triggers_blueprint(platform: PlatformState) -> Blueprint:
    bp = Blueprint("sim_triggers", __name__)

    @bp.post("/triggers/installed")
    def fire_installed() -> Response:
        return json_response(lifecycle(platform, "avi:forge:installed:app"))

    @bp.post("/triggers/scheduled")
    def fire_scheduled() -> Response:
        return json_response(scheduled(platform))

    @bp.post("/triggers/uninstall")
    def fire_uninstall() -> Response:
        return json_response(uninstall(platform))

    @bp.post("/webhooks")
    def fire_webhook() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return error(400, "The body must be a JSON object.")
        secret, emails = body.get("secret"), body.get("emails")
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            return error(400, "'secret' must be the whsec_ secret the panel showed.")
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            return error(400, "'emails' must be a list of strings.")
        try:
            answer = send_webhook(
                platform,
                secret,
                emails,
                dry_run=bool(body.get("dryRun", False)),
                webhook_id=body.get("webhookId"),
            )
        except (ValueError, TypeError):
            return error(400, "'secret' is not valid base64 after whsec_.")
        return json_response(answer)

    return bp
