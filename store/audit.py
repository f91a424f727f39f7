"""The audit log: one entry per admin action or finished job, newest first, paged by cursor and
filtered by action, actor, subject and time.

``write_audit`` is the one way an entry is written, so a finished job's entry (``store.queue``)
and a resolver's entry (``add_audit``) have the same shape. It also keeps each entry's subjects,
ASCII-lower-cased (``subject_key``), in ``audit_subjects`` for the ``subject`` filter; whatever
redacts an entry's subjects must delete its rows there too (``store.personal_data`` does). An
entry's subjects are emails, or account ids for ``ACCOUNT_SUBJECT_ACTIONS``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from records import AuditEntry
from store.base import StoreBase
from store.paging import cursor, cursor_int, uncursor
from tables import audit, audit_subjects

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# Actions whose subjects are account ids (the installing or upgrading account, handlers.forge);
# the others' subjects are emails. The personal data report lists these (store.personal_data).
ACCOUNT_SUBJECT_ACTIONS = frozenset({"app.installed", "app.upgraded"})


def subject_key(subject: str) -> str:
    """How ``audit_subjects`` keeps a subject: ASCII letters lower-cased (emails compare so)."""
    return subject.translate(_LOWER)


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
    """Insert one audit entry, and its subjects' keys, inside the caller's transaction."""
    entry_id = conn.execute(
        sa.insert(audit)
        .values(
            installation_id=installation_id,
            at=at,
            actor=actor,
            action=action,
            source=source,
            subjects=list(subjects),
            outcome=outcome,
        )
        .returning(audit.c.id)
    ).scalar_one()
    keys = sorted({subject_key(s) for s in subjects if s})
    if keys:
        conn.execute(
            sa.insert(audit_subjects),
            [
                {"audit_id": entry_id, "subject": k, "installation_id": installation_id}
                for k in keys
            ],
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
        self,
        installation_id: str,
        limit: int,
        before: str | None = None,
        *,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        """Entries newest first; pass the returned cursor as ``before`` for the next page (with the
        same filters). Filters combine: ``action`` and ``actor`` exactly, ``subject`` among the
        entry's subjects (ASCII letters case-insensitively), ``since`` <= at < ``until``."""
        query = sa.select(audit).where(audit.c.installation_id == installation_id)
        if before is not None:
            (entry_id,) = uncursor(before, "a", (cursor_int,))
            query = query.where(audit.c.id < entry_id)
        if action is not None:
            query = query.where(audit.c.action == action)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if subject is not None:
            query = query.where(
                audit.c.id.in_(
                    sa.select(audit_subjects.c.audit_id).where(
                        audit_subjects.c.installation_id == installation_id,
                        audit_subjects.c.subject == subject_key(subject),
                    )
                )
            )
        if since is not None:
            query = query.where(audit.c.at >= since)
        if until is not None:
            query = query.where(audit.c.at < until)
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
