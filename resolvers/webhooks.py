"""``rotateWebhookSecret``, ``webhookStatus``, ``sendTestWebhook`` and the work behind
``POST /webhooks/<installation>``.

A webhook job runs as the administrator who last rotated the secret. The secret is shown once; the
one it replaces keeps working for 24 h unless the rotation revokes it (``revokePrevious``). Every
delivery is recorded with its job: a repeated ``webhook-id`` does nothing new but is noted as a
replay (its latest one), so ``webhookStatus`` can list the recent ones, with the refused ones. A
delivery's one audit entry is its job's end (``store.queue``: source ``webhook``, its
``webhookId``).

``sendTestWebhook`` signs a harmless delivery (a preview of one address on a reserved domain) with
the current secret and sends it through the real webhook route of this server, in process
(``Context.deliver``): it never posts to a host, so it cannot be pointed anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from access_desk.store import Store
from access_desk.store.records import iso
from resolvers.context import BadInput, Context
from resolvers.inputs import entry_list, only_fields, optional_bool

EVENT_TYPE = "access.invite"
RECENT_DELIVERIES = 20
RECENT_REFUSALS = 20
TEST_EMAIL = "access-desk-webhook-test@example.com"  # a reserved domain: nobody gets an email


def rotate_secret(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """A new secret; the previous one keeps verifying for 24 h, or stops at once with
    ``revokePrevious`` (a leaked secret)."""
    only_fields(payload, {"revokePrevious"})
    revoke = optional_bool(payload, "revokePrevious")
    ctx.require_admin()
    inv = ctx.invocation
    assert ctx.account_id is not None
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    ctx.store.upsert_installation(
        inv.installation_id, cloud_id=inv.cloud_id, api_base_url=inv.api_base_url
    )
    ctx.store.set_webhook_secret(
        inv.installation_id, secret, ctx.account_id, revoke_previous=revoke
    )
    ctx.store.add_audit(
        inv.installation_id,
        actor=ctx.account_id,
        action="webhook.rotateSecret",
        source="panel",
        subjects=[],
        outcome={"revokedPrevious": revoke},
    )
    uuid = inv.installation_id.rsplit("/", 1)[-1]
    return {"url": f"{ctx.public_base_url}/webhooks/{uuid}", "secret": secret}


def status(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """The webhook's URL and secret state (never the secret), its last 20 deliveries and its last
    20 refused ones (when, why, the ``webhook-id``)."""
    only_fields(payload, set())
    ctx.require_admin()
    iid = ctx.invocation.installation_id
    state = ctx.store.webhook_state(iid)
    deliveries = ctx.store.recent_deliveries(iid, RECENT_DELIVERIES)
    refusals = ctx.store.recent_refusals(iid, RECENT_REFUSALS)
    return {
        "url": _url(ctx),
        "configured": state.configured,
        "rotatedAt": _iso(state.rotated_at),
        "actingAs": state.acting_as,
        "previousValidUntil": _iso(state.previous_valid_until),
        "recentDeliveries": [d.to_json() for d in deliveries],
        "recentRefusals": [r.to_json() for r in refusals],
    }


def send_test(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """Sign a test delivery (a preview of ``TEST_EMAIL``: nobody is invited) with the current
    secret and send it through this server's own webhook route; answer what the route answered:
    ``{"url", "webhookId", "email", "status", "answer"}``. Audited as ``webhook.test`` by the
    caller (the delivery's job has its own entry). 400 ``bad_input`` while no secret is set."""
    only_fields(payload, set())
    ctx.require_admin()
    assert ctx.account_id is not None and ctx.deliver is not None
    iid = ctx.invocation.installation_id
    current = ctx.store.webhook_secrets(iid)
    if not current:
        raise BadInput(
            "Create a webhook secret first: the test delivery is signed with it.",
            {"secret": "not set"},
        )
    body = json.dumps(
        {"type": EVENT_TYPE, "data": {"emails": [TEST_EMAIL], "dryRun": True}},
        separators=(",", ":"),
    ).encode()
    webhook_id = f"msg_test_{secrets.token_hex(12)}"
    timestamp = str(int(ctx.store.now()))
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign(current[0], webhook_id, timestamp, body),
    }
    uuid = ctx.invocation.installation_id.rsplit("/", 1)[-1]
    status_code, answer = ctx.deliver(f"/webhooks/{uuid}", body, headers)
    ctx.store.add_audit(
        iid,
        actor=ctx.account_id,
        action="webhook.test",
        source="panel",
        subjects=[],
        outcome={"webhookId": webhook_id, "status": status_code, **_job_of(answer)},
    )
    return {
        "url": _url(ctx),
        "webhookId": webhook_id,
        "email": TEST_EMAIL,
        "status": status_code,
        "answer": answer,
    }


def _job_of(answer: Any) -> dict[str, str]:
    job_id = answer.get("jobId") if isinstance(answer, dict) else None
    return {"jobId": job_id} if isinstance(job_id, str) else {}


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``) of a delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _url(ctx: Context) -> str:
    """Where senders post, as ``rotateWebhookSecret`` shows it."""
    uuid = ctx.invocation.installation_id.rsplit("/", 1)[-1]
    return f"{ctx.public_base_url}/webhooks/{uuid}"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def queue_invite(
    store: Store, installation_id: str, webhook_id: str, body: Mapping[str, Any]
) -> str:
    """Queue the invite job a verified webhook asks for; a repeated ``webhook_id`` returns its job
    (and is noted as a replay). The delivery's one audit entry comes when its job ends."""
    existing = store.replay_delivery(installation_id, webhook_id)
    if existing is not None:
        return existing
    if body.get("type") != EVENT_TYPE:
        raise BadInput(
            f"Unknown event type; the only one is {EVENT_TYPE!r}.", {"type": "unknown type"}
        )
    only_fields(body, {"type", "data"})
    data = body.get("data")
    if not isinstance(data, dict):
        raise BadInput("'data' must be an object.", {"data": "must be an object"})
    only_fields(data, {"emails", "dryRun"})
    emails = entry_list(data, "emails", "email")
    dry_run = optional_bool(data, "dryRun")
    admin = store.webhook_admin(installation_id)
    job_id, _ = store.create_webhook_job(
        installation_id, webhook_id, dry_run=dry_run, created_by=admin, emails=emails
    )
    return job_id
