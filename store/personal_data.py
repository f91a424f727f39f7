"""The personal data an installation stores, for the personal data duty (``privacy``): the account
ids to report (``personal_data_accounts``), their erasure once Atlassian says an account closed
(``erase_accounts``), and the retention of emails and audit subjects (``apply_retention``).

``ERASED`` is what an erased account id reads as; ``NON_ACCOUNTS`` are the audit actors that are
not account ids (never reported, never erased).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from store.audit import subject_key
from store.base import StoreBase
from tables import (
    audit,
    audit_subjects,
    installations,
    job_items,
    jobs,
    lookup_cache,
    offline_tokens,
)

ERASED = "erased"  # what an erased (closed) account id reads as
# audit actors that are not account ids: never reported, never erased
NON_ACCOUNTS = frozenset({"forge", "webhook", "panel", "privacy", ERASED})


class StoredPersonalData(StoreBase):
    """Account ids, emails and audit subjects of each installation: listed, erased, redacted."""

    def personal_data_accounts(self, installation_id: str) -> list[tuple[str, float]]:
        """Every account id stored for the installation with when its data was last stored
        (audit actors, job creators, the webhook admin, offline-token users), by account id."""
        latest: dict[str, float] = {}

        def add(account_id: Any, at: Any) -> None:
            if isinstance(account_id, str) and account_id and account_id not in NON_ACCOUNTS:
                when = float(at or 0.0)
                latest[account_id] = max(when, latest.get(account_id, when))

        now = self._clock()
        with self.engine.connect() as conn:
            for actor, at in conn.execute(
                sa.select(audit.c.actor, sa.func.max(audit.c.at))
                .where(audit.c.installation_id == installation_id)
                .group_by(audit.c.actor)
            ):
                add(actor, at)
            for creator, at in conn.execute(
                sa.select(jobs.c.created_by, sa.func.max(jobs.c.created_at))
                .where(jobs.c.installation_id == installation_id, jobs.c.created_by.is_not(None))
                .group_by(jobs.c.created_by)
            ):
                add(creator, at)
            for admin, at in conn.execute(
                sa.select(
                    installations.c.webhook_admin, installations.c.webhook_secret_rotated_at
                ).where(installations.c.installation_id == installation_id)
            ):
                add(admin, at)
            for account_id, expires in conn.execute(
                sa.select(offline_tokens.c.account_id, offline_tokens.c.expires_at).where(
                    offline_tokens.c.installation_id == installation_id
                )
            ):
                add(account_id, min(float(expires), now))
        return sorted(latest.items())

    def erase_accounts(self, installation_id: str, account_ids: Sequence[str]) -> int:
        """Erase what the installation stores of these (closed) accounts, in one transaction.

        Audit actors become ``"erased"``, and so does the id wherever it appears in an entry's
        subjects or outcome; jobs lose their creator (an unfinished one then fails: nobody can
        act for it), the webhook loses its acting admin, offline tokens and cached user
        objects (as the looked-up user or as the caller) are deleted. One audit entry
        (``personalData.erase``, counts only) records it. Returns how many ids were erased.
        """
        ids = sorted({a for a in account_ids if a and a not in NON_ACCOUNTS})
        if not ids:
            return 0
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(audit)
                .where(audit.c.installation_id == installation_id, audit.c.actor.in_(ids))
                .values(actor=ERASED)
            )
            mentions = [
                sa.cast(column, sa.Text).like(f'%"{_like_escape(a)}"%', escape="\\")
                for a in ids
                for column in (audit.c.subjects, audit.c.outcome)
            ]
            rows = conn.execute(
                sa.select(audit.c.id, audit.c.subjects, audit.c.outcome).where(
                    audit.c.installation_id == installation_id, sa.or_(*mentions)
                )
            ).all()
            erased = set(ids)
            conn.execute(  # the subject filter's keys of these ids (store.audit)
                sa.delete(audit_subjects).where(
                    audit_subjects.c.installation_id == installation_id,
                    audit_subjects.c.subject.in_(sorted({subject_key(a) for a in ids})),
                )
            )
            for row in rows:
                conn.execute(
                    sa.update(audit)
                    .where(audit.c.id == row.id)
                    .values(
                        subjects=_scrub(row.subjects, erased), outcome=_scrub(row.outcome, erased)
                    )
                )
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.installation_id == installation_id, jobs.c.created_by.in_(ids))
                .values(created_by=None)
            )
            conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.webhook_admin.in_(ids),
                )
                .values(webhook_admin=None)
            )
            conn.execute(
                sa.delete(offline_tokens).where(
                    offline_tokens.c.installation_id == installation_id,
                    offline_tokens.c.account_id.in_(ids),
                )
            )
            conn.execute(
                sa.delete(lookup_cache).where(
                    lookup_cache.c.installation_id == installation_id,
                    sa.or_(lookup_cache.c.account_id.in_(ids), lookup_cache.c.caller.in_(ids)),
                )
            )
            conn.execute(
                sa.insert(audit).values(
                    installation_id=installation_id,
                    at=now,
                    actor="privacy",
                    action="personalData.erase",
                    source="privacy",
                    subjects=[],
                    outcome={"accounts": len(ids)},
                )
            )
        return len(ids)

    def apply_retention(self, installation_id: str, cutoff: float) -> tuple[int, int]:
        """Redact personal data older than ``cutoff`` (epoch): the emails of jobs that finished
        before it (items keep their outcome; the email becomes ``redacted-<n>``; counts stay) and
        the subjects of audit entries written before it. Each run starts where the last one
        stopped (a watermark), so nothing is rewritten twice. Returns (jobs, audit entries)."""
        c = installations.c
        with self.engine.begin() as conn:
            start = conn.execute(
                sa.select(c.retention_until).where(c.installation_id == installation_id)
            ).scalar()
            if start is not None and start >= cutoff:
                return 0, 0
            finished = sa.and_(
                jobs.c.installation_id == installation_id,
                jobs.c.state.in_(("done", "failed")),
                jobs.c.updated_at < cutoff,
            )
            entries = sa.and_(audit.c.installation_id == installation_id, audit.c.at < cutoff)
            if start is not None:
                finished = sa.and_(finished, jobs.c.updated_at >= start)
                entries = sa.and_(entries, audit.c.at >= start)
            job_ids = list(conn.execute(sa.select(jobs.c.id).where(finished)).scalars())
            position = sa.cast(job_items.c.position, sa.String)
            number = sa.cast(job_items.c.position + 1, sa.String)
            for i in range(0, len(job_ids), 500):
                chunk = job_ids[i : i + 500]
                # two passes keep (job_id, email) unique at every step: inputs are trimmed, so
                # no stored email starts with a space
                for value in (sa.literal(" ") + position, sa.literal("redacted-") + number):
                    conn.execute(
                        sa.update(job_items)
                        .where(job_items.c.job_id.in_(chunk))
                        .values(email=value)
                    )
            conn.execute(  # the subject filter's keys go with the subjects (store.audit)
                sa.delete(audit_subjects).where(
                    audit_subjects.c.audit_id.in_(sa.select(audit.c.id).where(entries))
                )
            )
            redacted = conn.execute(sa.update(audit).where(entries).values(subjects=[]))
            conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id)
                .values(retention_until=cutoff)
            )
        return len(job_ids), int(redacted.rowcount)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scrub(value: Any, ids: set[str]) -> Any:
    """``value`` (decoded JSON) with every string equal to one of ``ids`` replaced by ERASED."""
    if isinstance(value, str):
        return ERASED if value in ids else value
    if isinstance(value, list):
        return [_scrub(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, ids) for k, v in value.items()}
    return value
