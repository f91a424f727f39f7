"""Business logic behind ``POST /resolvers/<functionKey>``: plain functions ``(ctx, payload) -> dict``.

``RESOLVERS`` is the one explicit registry of function keys (docs/contract.md §4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resolvers import access, audit, diagnose, jobs, quota, users, webhooks
from resolvers.context import Context

Resolver = Callable[[Context, dict[str, Any]], dict[str, Any]]

RESOLVERS: dict[str, Resolver] = {
    "whoami": users.whoami,
    "lookupUsers": users.lookup,
    "checkAccess": access.check,
    "inviteEmails": jobs.invite,
    "getJob": jobs.get,
    "listJobs": jobs.list_jobs,
    "listAudit": audit.list_entries,
    "rotateWebhookSecret": webhooks.rotate_secret,
    "cancelJob": jobs.cancel,
    "retryJob": jobs.retry,
    "webhookStatus": webhooks.status,
    "sendTestWebhook": webhooks.send_test,
    "quota": quota.quota,
    "diagnose": diagnose.diagnose,
}
