"""``POST /webhooks/<installation-uuid>``: Standard Webhooks signatures, dedupe by ``webhook-id``.

The signature is ``v1,<base64 HMAC-SHA256>`` over ``"{webhook-id}.{webhook-timestamp}.{body}"`` keyed
with the installation's ``whsec_`` secret; several space-separated signatures are allowed (rotation),
and the previous secret still verifies for a while after a rotation. Every failure — missing or
malformed headers, a stale timestamp (over 5 minutes off), a wrong signature, an unknown installation,
no secret set — gets the same 401 ``invalid_signature``, so nothing is revealed; and it takes as long:
one query for the installation's webhook secrets, which alone are decrypted (stand-ins where there
are none), and always two signature checks. An uninstalled installation (Forge's preUninstall
trigger, docs/contract.md §7) has no webhook any more: 404 ``not_found``.

A refusal for a known installation is kept for its admins (``webhookStatus``: when, why, the
``webhook-id``; never the body or the signature): it is queued once the answer has been sent and
written by a background thread in batches (``handlers.refusals``), so the answer and its timing are
the same whether or not anything is kept. Refusals for unknown installations are not kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from secrets import token_bytes
from typing import Any

from flask import Blueprint, Response, after_this_request, current_app, jsonify, request

from handlers import json_body, services
from handlers.errors import InvalidSignature, PayloadTooLarge
from resolvers.context import BadInput, NotFound
from resolvers.webhooks import queue_invite

bp = Blueprint("webhooks", __name__)

MAX_BODY = 1024 * 1024
TOLERANCE_SECONDS = 5 * 60
MAX_ID_LENGTH = 255  # webhook-id is stored (webhook_deliveries.webhook_id)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds, ASCII digits only
# Checked in place of a secret the installation does not have (or of an unknown installation's), so
# every refusal takes as long as any other. Random, so that nobody can sign with it.
_NO_SECRET = "whsec_" + base64.b64encode(token_bytes(32)).decode()
_WEBHOOK_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII: it is stored
KEPT_ID_LENGTH = 64  # a refused delivery's webhook-id is kept this long (webhook_refusals)


@bp.post("/webhooks/<installation_uuid>")
def receive(installation_uuid: str) -> tuple[Response, int]:
    if (request.content_length or 0) > MAX_BODY:
        raise PayloadTooLarge("The webhook body is larger than 1 MiB.")
    body = request.get_data(cache=False)
    if len(body) > MAX_BODY:
        raise PayloadTooLarge("The webhook body is larger than 1 MiB.")
    store = services().store
    installation_id, secrets, uninstalled = store.webhook_target(installation_uuid)
    webhook_id = request.headers.get("webhook-id", "")
    timestamp = request.headers.get("webhook-timestamp", "")
    signature = request.headers.get("webhook-signature", "")
    checked = secrets + [_NO_SECRET] * (2 - len(secrets))  # always two HMACs, known or not
    reason = refusal(checked, webhook_id, timestamp, signature, body, now=time.time())
    if uninstalled:
        raise NotFound("This installation was uninstalled: its webhook is gone.")
    if installation_id is None or not secrets or reason is not None:
        # The same steps whether the installation is known or not; only a known one is kept.
        _keep_refusal(installation_id, "no_secret" if not secrets else reason, webhook_id)
        raise InvalidSignature("The webhook signature could not be verified.")
    payload = json_body(body)
    if not isinstance(payload, dict):
        raise BadInput("The body must be a JSON object.", {"body": "must be an object"})
    job_id = queue_invite(store, installation_id, webhook_id, payload)
    return jsonify({"jobId": job_id}), 202


def _keep_refusal(installation_id: str | None, reason: str | None, webhook_id: str) -> None:
    """Keep this refusal of a known installation (``installation_id``) once its answer has been sent
    (``handlers.refusals``: queued, then stored by a background thread); an unknown one is not."""
    kept_id = webhook_id[:KEPT_ID_LENGTH] if _WEBHOOK_ID.fullmatch(webhook_id) else None
    notes = services().refusals

    def keep() -> None:
        if installation_id is not None:
            notes.note(installation_id, reason or "bad_signature", kept_id)

    @after_this_request
    def when_sent(response: Response) -> Response:
        response.call_on_close(keep)
        return response


def verified(
    secrets: Iterable[str], msg_id: str, timestamp: str, signatures: str, body: bytes, *, now: float
) -> bool:
    """True when a fresh timestamp and one ``v1`` signature match one of ``secrets``."""
    return refusal(secrets, msg_id, timestamp, signatures, body, now=now) is None


def refusal(
    secrets: Iterable[str], msg_id: str, timestamp: str, signatures: str, body: bytes, *, now: float
) -> str | None:
    """Why a delivery is refused (``missing_headers``: a header missing or malformed;
    ``stale_timestamp``: over 5 minutes off; ``bad_signature``: no ``v1`` signature matches one
    of ``secrets``), or None when it is verified."""
    if not (msg_id and timestamp and signatures) or len(msg_id) > MAX_ID_LENGTH:
        return "missing_headers"
    if not _WEBHOOK_ID.fullmatch(msg_id):
        return "missing_headers"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "missing_headers"
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return "stale_timestamp"
    given = []
    for part in signatures.split():
        version, _, sig = part.partition(",")
        if version == "v1":
            try:
                given.append(base64.b64decode(sig, validate=True))
            except (binascii.Error, ValueError):
                continue
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    matched = False
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        matched = any(hmac.compare_digest(expected, g) for g in given) or matched
    return None if matched else "bad_signature"


def post_in_process(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST ``body`` to this app's own route ``path`` in process, through the whole request
    handling (routing, hooks, the handler, error answers) but no network, so it reaches this
    server and nothing else; the answer's status and JSON (None when not JSON)."""
    if not path.startswith("/webhooks/"):
        raise ValueError("only the webhook route is posted to in process")
    with current_app.test_client() as client:
        answer = client.post(path, data=body, headers=headers, buffered=True)  # closed, as sent
        return answer.status_code, answer.get_json(silent=True)
