"""``rotateWebhookSecret``, ``webhookStatus`` and the work behind ``POST /webhooks/<installation>``.

A webhook job runs as the administrator who last rotated the secret. The secret is shown once; the
one it replaces keeps working for 24 h unless the rotation revokes it (``revokePrevious``). Every
delivery is recorded with its job: a repeated ``webhook-id`` does nothing new but is noted as a
replay (its latest one), so ``webhookStatus`` can list the recent ones.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from records import iso
from resolvers.context import BadInput, Context
from resolvers.inputs import entry_list, only_fields, optional_bool
from store import Store

EVENT_TYPE = "access.invite"
RECENT_DELIVERIES = 20


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
    """The webhook's URL and secret state (never the secret) and its last 20 deliveries."""
    only_fields(payload, set())
    ctx.require_admin()
    iid = ctx.invocation.installation_id
    state = ctx.store.webhook_state(iid)
    deliveries = ctx.store.recent_deliveries(iid, RECENT_DELIVERIES)
    return {
        "url": _url(ctx),
        "configured": state.configured,
        "rotatedAt": _iso(state.rotated_at),
        "actingAs": state.acting_as,
        "previousValidUntil": _iso(state.previous_valid_until),
        "recentDeliveries": [d.to_json() for d in deliveries],
    }


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
    (and is noted as a replay)."""
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
    job_id, new = store.create_webhook_job(
        installation_id, webhook_id, dry_run=dry_run, created_by=admin, emails=emails
    )
    if new:
        store.add_audit(
            installation_id,
            actor=admin or "webhook",
            action="webhook.delivery",
            source="webhook",
            subjects=emails[:100],
            outcome={"jobId": job_id, "webhookId": webhook_id, "emails": len(emails)},
        )
    return job_id
