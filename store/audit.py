"""The audit log: one entry per admin action or finished job, newest first, paged by cursor.

``write_audit`` is the one way an entry is written, so a finished job's entry (``store.queue``)
and a resolver's entry (``add_audit``) have the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from records import AuditEntry
from store.base import StoreBase
from store.paging import cursor, cursor_int, uncursor
from tables import audit


def write_audit(
    conn: Connection,
    installation_id: str,
    *,
    at: float,
    actor: str,
    action: str,
    source: str,
    subjects: Sequence[str],
    outcome: dict[str, Any] | str,
) -> None:
    """Insert one audit entry inside the caller's transaction."""
    conn.execute(
        sa.insert(audit).values(
            installation_id=installation_id,
            at=at,
            actor=actor,
            action=action,
            source=source,
            subjects=list(subjects),
            outcome=outcome,
        )
    )


class Audit(StoreBase):
    """Audit entries, scoped by installation."""

    def add_audit(
        self,
        installation_id: str,
        *,
        actor: str,
        action: str,
        source: str,
        subjects: Sequence[str],
        outcome: dict[str, Any] | str,
    ) -> None:
        with self.engine.begin() as conn:
            write_audit(
                conn,
                installation_id,
                at=self._clock(),
                actor=actor,
                action=action,
                source=source,
                subjects=subjects,
                outcome=outcome,
            )

    def list_audit(
        self, installation_id: str, limit: int, before: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Entries newest first; pass the returned cursor as ``before`` for the next page."""
        query = sa.select(audit).where(audit.c.installation_id == installation_id)
        if before is not None:
            (entry_id,) = uncursor(before, "a", (cursor_int,))
            query = query.where(audit.c.id < entry_id)
        query = query.order_by(audit.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            found = [
                AuditEntry(
                    id=r.id,
                    installation_id=r.installation_id,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    source=r.source,
                    subjects=tuple(r.subjects or ()),
                    outcome=r.outcome,
                )
                for r in conn.execute(query)
            ]
        if len(found) <= limit:
            return found, None
        return found[:limit], cursor("a", found[limit - 1].id)
