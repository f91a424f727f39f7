"""Uninstalls (Forge's preUninstall trigger, docs/contract.md §7): an installation stops at once and
its personal data is erased by the background worker (``duties.uninstall.Erasures``) once its jobs ended.

- ``uninstall``: in one transaction, the system token, the webhook secrets (and its acting admin)
  and every offline token are dropped (``/webhooks/<uuid>`` then answers 404), follow-ups and the
  personal data duty stop, and the erasure is queued; one ``app.uninstalled`` audit entry (actor
  ``forge``) records it, not again for Forge's redeliveries. Then every queued or running job is
  cancelled through ``request_cancel`` (``store.cancels``: a held job ends when its holder lets go).
  While uninstalled, no system token is stored (``handlers.remember_installation`` asks
  ``is_uninstalled``): no call may revive it;
- ``reinstall``: an ``installed`` event starts the installation afresh (its erasure, when not done
  yet, still runs: what was stored before the uninstall goes);
- ``claim_erasure`` / ``erase_installation`` / ``finish_erasure``: the erasure, leased like the
  personal data duty. It reuses the personal data erasure (``store.personal_data``): every stored
  account id is erased as a closed account would be, then retention runs up to now (job emails
  redacted, audit subjects cleared; jobs keep their counts), and the lookup cache and the kept
  webhook refusals are emptied.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from access_desk.store.audit import write_audit
from access_desk.store.cancels import Cancels
from access_desk.store.installations import claim_installation_lease
from access_desk.store.jobs import ACTIVE
from access_desk.store.personal_data import StoredPersonalData
from access_desk.store.tables import (
    installations,
    jobs,
    lookup_cache,
    lookup_misses,
    offline_tokens,
    webhook_refusals,
)


@dataclass(frozen=True, slots=True)
class Erased:
    """What one erasure did: account ids erased, finished jobs and audit entries redacted."""

    accounts: int
    jobs: int
    audit_entries: int


class Uninstalls(Cancels, StoredPersonalData):
    """Stopping an uninstalled installation and erasing what it stored."""

    def uninstall(self, installation_id: str) -> int | None:
        """Stop acting for the installation and cancel its jobs (see the module doc); how many
        jobs were asked to stop, None when the installation was never stored. Idempotent."""
        now = self._clock()
        c = installations.c
        with self.engine.begin() as conn:
            first = conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id, c.uninstalled_at.is_(None))
                .values(uninstalled_at=now, erase_due_at=now, updated_at=now)
            )
            known = conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id)
                .values(
                    system_token_enc=None,
                    system_token_expires_at=None,
                    webhook_secret_enc=None,
                    webhook_secret_prev_enc=None,
                    webhook_secret_rotated_at=None,
                    webhook_admin=None,
                    duty_due_at=None,
                )
            )
            if known.rowcount != 1:
                return None
            conn.execute(
                sa.delete(offline_tokens).where(offline_tokens.c.installation_id == installation_id)
            )
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.installation_id == installation_id, jobs.c.follow_up_at.is_not(None))
                .values(follow_up_at=None)
            )
            active = self._active_jobs(conn, installation_id)
            if first.rowcount == 1:
                write_audit(
                    conn,
                    installation_id,
                    at=now,
                    actor="forge",
                    action="app.uninstalled",
                    source="forge",
                    subjects=[],
                    outcome={"jobsCancelled": len(active)},
                )
        for job_id in active:
            self.request_cancel(installation_id, job_id, "forge")
        return len(active)

    def is_uninstalled(self, installation_id: str) -> bool:
        """Whether Forge's preUninstall trigger came and no ``installed`` event since."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(installations.c.uninstalled_at).where(
                    installations.c.installation_id == installation_id
                )
            ).scalar()
        return found is not None

    def reinstall(self, installation_id: str) -> bool:
        """An ``installed`` event after an uninstall: the installation acts again (True if it
        was uninstalled). A pending erasure still runs."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.uninstalled_at.is_not(None),
                )
                .values(uninstalled_at=None)
            )
        return done.rowcount == 1

    def claim_erasure(self, worker_id: str, lease_seconds: float) -> str | None:
        """Lease ONE installation whose erasure is due; its id, or None."""
        return claim_installation_lease(self, "erase", worker_id, lease_seconds)

    def active_jobs(self, installation_id: str) -> list[str]:
        """The ids of the installation's queued and running jobs, oldest first."""
        with self.engine.connect() as conn:
            return self._active_jobs(conn, installation_id)

    def erase_installation(self, installation_id: str) -> Erased:
        """Erase the personal data the installation stores, keeping counts (see the module doc);
        call it once its jobs have ended (job emails are redacted only in finished jobs)."""
        accounts = [a for a, _ in self.personal_data_accounts(installation_id)]
        erased = self.erase_accounts(installation_id, accounts)
        redacted_jobs, redacted_entries = self.apply_retention(installation_id, self._clock() + 1)
        with self.engine.begin() as conn:
            for table in (lookup_cache, lookup_misses, webhook_refusals):
                conn.execute(sa.delete(table).where(table.c.installation_id == installation_id))
        return Erased(erased, redacted_jobs, redacted_entries)

    def finish_erasure(
        self, installation_id: str, worker_id: str, *, done: bool, retry_at: float | None = None
    ) -> bool:
        """End ``worker_id``'s erasure lease: erased (``done``), or to be tried at ``retry_at``."""
        values: dict[str, float | str | None] = {
            "erase_lease_owner": None,
            "erase_lease_until": None,
        }
        if done:
            values.update(erase_due_at=None, erased_at=self._clock())
        else:
            values["erase_due_at"] = retry_at
        with self.engine.begin() as conn:
            ended = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.erase_lease_owner == worker_id,
                )
                .values(values)
            )
        return ended.rowcount == 1

    def _active_jobs(self, conn: sa.Connection, installation_id: str) -> list[str]:
        return list(
            conn.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.installation_id == installation_id, jobs.c.state.in_(ACTIVE))
                .order_by(jobs.c.created_at, jobs.c.id)
            ).scalars()
        )
