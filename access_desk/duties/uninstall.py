"""The erasure of an uninstalled installation's personal data: a background worker chore.

Forge's preUninstall trigger (``POST /forge/uninstall``) stops the installation at once and queues
its erasure (``store.uninstalls``). ``Erasures.run_due`` leases one installation whose erasure is
due, asks any job still queued or running to stop (``request_cancel``: a job nobody holds ends at
once), and, once none is left (a worker's chunk in flight ends first: it is tried again after
``retry_seconds``), erases what it stored keeping only counts (``Store.erase_installation``).
"""

from __future__ import annotations

import logging
import uuid

from access_desk.store import Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0
RETRY_SECONDS = 5.0


class Erasures:
    """Runs due erasures of uninstalled installations (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        worker_id: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._store = store
        self._worker_id = worker_id or f"erasure-{uuid.uuid4().hex[:12]}"
        self._lease = lease_seconds
        self._retry = retry_seconds

    def __repr__(self) -> str:
        return f"Erasures(worker_id={self._worker_id!r})"

    def run_due(self) -> bool:
        """Claim one due erasure and do it (or put it off while a job still runs); False when
        none was due."""
        store = self._store
        installation_id = store.claim_erasure(self._worker_id, self._lease)
        if installation_id is None:
            return False
        for job_id in store.active_jobs(installation_id):
            store.request_cancel(installation_id, job_id, "forge")
        if store.active_jobs(installation_id):
            store.finish_erasure(
                installation_id, self._worker_id, done=False, retry_at=store.now() + self._retry
            )
            return True
        erased = store.erase_installation(installation_id)
        store.finish_erasure(installation_id, self._worker_id, done=True)
        log.info(
            "uninstalled installation erased",
            extra={
                "installation": installation_id,
                "accounts": erased.accounts,
                "jobs": erased.jobs,
                "auditEntries": erased.audit_entries,
            },
        )
        return True
