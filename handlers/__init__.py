"""The HTTP edge: the only package that imports Flask.

``Services`` holds the long-lived objects ``create_app`` builds once; handlers reach them through
``services()``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request

from access_desk import logs
from access_desk.confluence.client import Clients
from access_desk.forge.invocation import Invocation, Verifier
from access_desk.forge.offline_tokens import OfflineTokens
from access_desk.forge.tokens import strip_bearer, token_expiry
from access_desk.jobs.runner import JobRunner
from access_desk.jobs.worker import Worker
from access_desk.quota.ledger import Ledger
from access_desk.settings import Settings
from access_desk.store import Store
from access_desk.store.batched_lookups import BatchedLookups
from handlers.inflight import InFlight
from handlers.refusals import RefusalNotes
from resolvers.context import AdminCache, BadInput


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    verifier: Verifier
    clients: Clients  # a Confluence client per call: the edge passes the site and the token
    offline_tokens: OfflineTokens
    ledger: Ledger
    admins: AdminCache
    clock: Callable[[], float]
    store: Store
    runner: JobRunner
    worker: Worker | None
    refusals: RefusalNotes  # refused webhook deliveries, stored off the request's path
    lookups: BatchedLookups  # the lookup cache, its writes off the request's path
    inflight: InFlight = field(default_factory=InFlight)  # resolver calls per installation, user
    remembered: dict[str, float] = field(default_factory=dict)  # installation -> last refresh

    def close(self) -> None:
        """Stop the background worker, write what this process keeps back (refusals, the ledger's
        and the lookup cache's batches), then close the store's connections: nothing touches the
        database afterwards (a test's app before its database is dropped; a process's shutdown)."""
        if self.worker is not None:
            self.worker.stop(10)
        self.refusals.flush()
        self.ledger.flush()
        self.lookups.flush()
        self.store.close()


def services() -> Services:
    found = current_app.extensions["access_desk"]
    assert isinstance(found, Services)
    return found


def verified() -> Invocation:
    """The request's verified FIT (raises ``forge.invocation.AuthError``); tags the log context
    with its tenant."""
    invocation = services().verifier.verify(request.headers.get("Authorization"))
    logs.installation.set(invocation.installation_id)
    return invocation


def remember_installation(invocation: Invocation) -> None:
    """Store the installation and the system token Forge sent (expiring per
    ``forge.tokens.token_expiry``); a dormant installation wakes up (a verified invocation is
    the sign it is in use again). An uninstalled installation gets no token (only an ``installed``
    event revives it: ``store.uninstalls``)."""
    token = strip_bearer(request.headers.get("x-forge-oauth-system"))
    store = services().store
    if token is not None and store.is_uninstalled(invocation.installation_id):
        token = None
    store.upsert_installation(
        invocation.installation_id,
        cloud_id=invocation.cloud_id,
        api_base_url=invocation.api_base_url,
        system_token=token,
        system_token_expires_at=token_expiry(token, time.time()),
    )
    if store.resume_installation(invocation.installation_id):
        logging.getLogger(__name__).info("installation resumed from dormancy")


def json_body(raw: bytes) -> Any:
    """``raw`` parsed as JSON; ``BadInput`` (400) when it is not JSON, however it fails (deep
    nesting raises ``RecursionError``, not ``ValueError``)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadInput("The request body is not valid JSON.", {"body": "invalid JSON"}) from exc
