"""Helpers of the tests that run the app's code against the simulated platform: a Confluence client
for it and its installation as the store keeps it."""

from __future__ import annotations

import requests

from access_desk.confluence.client import Client
from access_desk.confluence.transport import Policy
from access_desk.quota.ledger import MemoryLedger
from access_desk.store import Store
from simulator import Platform


def client(
    platform: Platform, session: requests.Session, base: str, token: str, *, max_retries: int = 2
) -> Client:
    """A client for ``base`` acting with ``token``, allowlisted for the simulator, with its own
    rate ledger and no real sleeping."""
    return Client(
        session,
        base,
        token,
        policy=Policy(deadline_seconds=10, timeout_seconds=5, max_retries=max_retries),
        allowlist=(platform.allowlist_prefix,),
        sleep=lambda seconds: None,
        ledger=MemoryLedger(),
    )


def store_installation(platform: Platform, store: Store, token_expires_at: float | None) -> str:
    """Store the simulated installation with its system token, valid until ``token_expires_at``
    (without one when that is None); returns its id."""
    inst = platform.installation
    store.upsert_installation(
        inst.id,
        cloud_id=inst.cloud_id,
        api_base_url=inst.api_base_url,
        system_token=platform.system_token(inst) if token_expires_at is not None else None,
        system_token_expires_at=token_expires_at,
    )
    return inst.id
