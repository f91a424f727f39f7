"""The audit log: one entry per admin action or finished job, newest first, paged by cursor and
filtered by action, actor, subject and time.

``write_audit`` is the one way an entry is written, so a finished job's entry (``store.queue``)
and a resolver's entry (``add_audit``) have the same shape. It also keeps the keys of everyone
the entry is about, ASCII-lower-cased (``subject_key``), in ``audit_subjects`` for the ``subject``
filter: its ``subjects`` show at most the first 100 of a job's emails, its keys hold all of them
(``keys``: a job's end is found by any of its items' emails). Whatever redacts an entry's
subjects must delete its rows there too (``store.personal_data`` does). An entry's subjects are
emails, or account ids for ``ACCOUNT_SUBJECT_ACTIONS``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.base import StoreBase
from access_desk.store.paging import cursor, cursor_int, uncursor
from access_desk.store.records import AuditEntry
from access_desk.store.tables import audit, audit_subjects

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# Actions whose subjects are account ids (the installing or upgrading account, handlers.forge);
# the others' subjects are emails. The personal data report lists these (store.personal_data).
ACCOUNT_SUBJECT_ACTIONS = frozenset({"app.installed", "app.upgraded"})


def subject_key(subject: str) -> str:
    """How ``audit_subjects`` keeps a subject: ASCII letters lower-cased (emails compare so)."""
    return subject.translate(_LOWER)


_INSERT_ENTRY = sa.insert(audit).returning(audit.c.id)  # built once: every call writes one
_INSERT_KEYS = sa.insert(audit_subjects)


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
    keys: Iterable[str] | None = None,
) -> None:
    """Insert one audit entry, and the keys it is found by (``keys``, default its ``subjects``;
    an entry about more people than it shows gets all of them), inside the caller's
    transaction."""
    entry_id = conn.execute(
        _INSERT_ENTRY,
        {
            "installation_id": installation_id,
            "at": at,
            "actor": actor,
            "action": action,
            "source": source,
            "subjects": list(subjects),
            "outcome": outcome,
        },
    ).scalar_one()
    found = sorted({subject_key(s) for s in (subjects if keys is None else keys) if s})
    if found:
        conn.execute(
            _INSERT_KEYS,
            [
                {"audit_id": entry_id, "subject": k, "installation_id": installation_id}
                for k in found
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
        keys: Iterable[str] | None = None,
    ) -> None:
        """One entry (see ``write_audit``): ``subjects`` shown, ``keys`` (default: the subjects)
        it is found by."""
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
                keys=keys,
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
        source: str | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        """Entries newest first; pass the returned cursor as ``before`` for the next page (with the
        same filters). Filters combine: ``action``, ``actor`` and ``source`` exactly, ``subject``
        among the keys of the people the entry is about (all of a job's emails; ASCII letters
        case-insensitively), ``since`` <= at < ``until``. Each is served by an index."""
        query = sa.select(audit).where(audit.c.installation_id == installation_id)
        if before is not None:
            (entry_id,) = uncursor(before, "a", (cursor_int,))
            query = query.where(audit.c.id < entry_id)
        if action is not None:
            query = query.where(audit.c.action == action)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if source is not None:
            query = query.where(audit.c.source == source)
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
