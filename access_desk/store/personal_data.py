"""The personal data an installation stores, for the personal data duty (``duties.personal_data``): the
account ids to report (``personal_data_accounts``), their erasure once Atlassian says an account closed
(``erase_accounts``), and the retention of emails, account ids and audit subjects
(``apply_retention``).

``ACCOUNT_COLUMNS`` declares every column of the schema (``store/tables.py``) that holds an account id
and what erasure does to it; all three duties go by it, and a test checks it against the schema,
so a new account id column cannot be forgotten. Audit entries may also name account ids among
their subjects (``ACCOUNT_SUBJECT_ACTIONS``: the installing or upgrading account) and, now and
then, in their outcome: erasure scrubs every mention, retention keeps only an outcome's numbers
and job references.

``ERASED`` is what an erased account id reads as, ``REDACTED`` what one aged out by retention reads
as; ``NON_ACCOUNTS`` are the audit actors that are not account ids (never reported, never erased).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from access_desk.store.audit import ACCOUNT_SUBJECT_ACTIONS, subject_key
from access_desk.store.base import StoreBase
from access_desk.store.tables import (
    account_refusals,
    admin_checks,
    audit,
    audit_subjects,
    installations,
    job_items,
    jobs,
    lookup_cache,
    lookup_misses,
    offline_tokens,
    quota_spend,
)

ERASED = "erased"  # what an erased (closed) account id reads as
REDACTED = "redacted"  # what an account id aged out by retention reads as
# audit actors that are not account ids: never reported, never erased
NON_ACCOUNTS = frozenset({"forge", "webhook", "panel", "privacy", ERASED, REDACTED})
FINISHED = ("done", "failed")


@dataclass(frozen=True, slots=True)
class AccountColumn:
    """A column holding account ids: its table, name, what erasing one does (``null``: the column
    is cleared; ``mark``: it reads ``ERASED``; ``delete``: the row goes), and the table's column
    telling when the data was last stored (reported as ``updatedAt``)."""

    table: sa.Table
    name: str
    erase: str
    stored_at: str

    @property
    def column(self) -> sa.Column[Any]:
        return self.table.c[self.name]


# Every column that holds account ids. Retention ages each of them out (see ``apply_retention``)
# except ``KEPT_WHILE_IN_USE``: the webhook's acting admin stays until the secret is rotated.
ACCOUNT_COLUMNS = (
    AccountColumn(audit, "actor", "mark", "at"),
    AccountColumn(jobs, "created_by", "null", "updated_at"),
    AccountColumn(jobs, "cancelled_by", "null", "updated_at"),
    AccountColumn(installations, "webhook_admin", "null", "webhook_secret_rotated_at"),
    AccountColumn(offline_tokens, "account_id", "delete", "expires_at"),
    AccountColumn(lookup_cache, "caller", "delete", "cached_at"),
    AccountColumn(lookup_cache, "account_id", "delete", "cached_at"),
    AccountColumn(lookup_misses, "caller", "delete", "cached_at"),
    AccountColumn(lookup_misses, "account_id", "delete", "cached_at"),
    AccountColumn(account_refusals, "account_id", "delete", "last_call_at"),
    AccountColumn(admin_checks, "account_id", "delete", "checked_at"),
    AccountColumn(quota_spend, "account_id", "delete", "spent_at"),
)
KEPT_WHILE_IN_USE = frozenset({("installations", "webhook_admin")})
# Columns that look like account ids (by type or name) but hold something else: worker ids (the
# lease and claim holders), a quota policy's name; and a cached user object, which goes with its
# row (keyed by the looked-up account id and the caller, both declared above).
NOT_ACCOUNT_COLUMNS = frozenset(
    {
        ("jobs", "lease_owner"),
        ("installations", "duty_lease_owner"),
        ("installations", "erase_lease_owner"),
        ("job_items", "claim_owner"),
        ("quota_pools", "policy"),
        ("lookup_cache", "user"),
        ("admin_checks", "is_admin"),
    }
)
# Audit subjects (emails, or account ids for ACCOUNT_SUBJECT_ACTIONS) and their filter's keys: an
# erased id is scrubbed from them, retention empties them.
SUBJECT_COLUMNS = frozenset({("audit", "subjects"), ("audit_subjects", "subject")})
# What an aged-out audit outcome keeps besides numbers and booleans: references, no one's data.
OUTCOME_REFERENCES = frozenset({"jobId", "retryOf", "webhookId", "state", "error"})


class StoredPersonalData(StoreBase):
    """Account ids, emails and audit subjects of each installation: listed, erased, redacted."""

    def personal_data_accounts(self, installation_id: str) -> list[tuple[str, float]]:
        """Every account id stored for the installation (each of ``ACCOUNT_COLUMNS``, and the
        account ids audit entries name as subjects) with when its data was last stored, by
        account id (for an audit actor: the time of its latest entry). An offline token counts
        until it expires, but never later than now."""
        latest: dict[str, float] = {}

        def add(account_id: Any, at: Any) -> None:
            if isinstance(account_id, str) and account_id and account_id not in NON_ACCOUNTS:
                when = float(at or 0.0)
                latest[account_id] = max(when, latest.get(account_id, when))

        now = self._clock()
        with self.engine.connect() as conn:
            for spec in ACCOUNT_COLUMNS:
                mine = (spec.table.c.installation_id == installation_id, spec.column.is_not(None))
                if spec.table is audit:
                    # each actor's latest entry (its id from the index on installation, actor and
                    # id alone: the audit log is the store's biggest table), then that entry's time
                    latest_ids = (
                        sa.select(sa.func.max(audit.c.id)).where(*mine).group_by(spec.column)
                    )
                    query = sa.select(audit.c.actor, audit.c.at).where(audit.c.id.in_(latest_ids))
                else:
                    stored_at = sa.func.max(spec.table.c[spec.stored_at])
                    query = sa.select(spec.column, stored_at).where(*mine).group_by(spec.column)
                for account_id, at in conn.execute(query):
                    add(account_id, min(float(at or 0.0), now))
            for subjects, at in conn.execute(
                sa.select(audit.c.subjects, audit.c.at).where(
                    audit.c.installation_id == installation_id,
                    audit.c.action.in_(sorted(ACCOUNT_SUBJECT_ACTIONS)),
                )
            ):
                for subject in subjects or ():
                    add(subject, at)
        return sorted(latest.items())

    def erase_accounts(self, installation_id: str, account_ids: Sequence[str]) -> int:
        """Erase what the installation stores of these (closed) accounts, in one transaction.

        In every column of ``ACCOUNT_COLUMNS`` the id is cleared, marked ``"erased"`` (audit
        actors) or its row deleted (offline tokens, cached lookups as the looked-up user or as
        the caller, refusal counts); it becomes ``"erased"`` wherever it appears in an audit
        entry's subjects or outcome, and ``listAudit``'s subject filter no longer finds it. Jobs
        losing their creator fail when next claimed (nobody can act for them); the webhook loses
        its acting admin. One audit entry (``personalData.erase``, counts only) records it.
        Returns how many ids were erased.
        """
        ids = sorted({a for a in account_ids if a and a not in NON_ACCOUNTS})
        if not ids:
            return 0
        now = self._clock()
        with self.engine.begin() as conn:
            for spec in ACCOUNT_COLUMNS:
                where = sa.and_(
                    spec.table.c.installation_id == installation_id, spec.column.in_(ids)
                )
                if spec.erase == "delete":
                    conn.execute(sa.delete(spec.table).where(where))
                else:
                    value = ERASED if spec.erase == "mark" else None
                    conn.execute(sa.update(spec.table).where(where).values({spec.name: value}))
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
        """Redact personal data older than ``cutoff`` (epoch): jobs that finished before it lose
        their emails (items keep their outcome; the email becomes ``redacted-<n>``; counts stay)
        and their account ids (creator, who cancelled); audit entries written before it lose
        their subjects, their actor (``"redacted"``) and their outcome's strings but job
        references; offline tokens expired, lookups cached and refusal counts last changed
        before it are deleted. Each run starts where the last one stopped (a watermark), so
        nothing is rewritten twice. Returns (jobs, audit entries)."""
        c = installations.c
        with self.engine.begin() as conn:
            start = conn.execute(
                sa.select(c.retention_until).where(c.installation_id == installation_id)
            ).scalar()
            if start is not None and start >= cutoff:
                return 0, 0
            finished = sa.and_(
                jobs.c.installation_id == installation_id,
                jobs.c.state.in_(FINISHED),
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
                conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id.in_(chunk))
                    .values(created_by=None, cancelled_by=None)
                )
            conn.execute(  # the subject filter's keys go with the subjects (store.audit)
                sa.delete(audit_subjects).where(
                    audit_subjects.c.audit_id.in_(sa.select(audit.c.id).where(entries))
                )
            )
            aged = conn.execute(sa.select(audit.c.id, audit.c.outcome).where(entries)).all()
            for row in aged:
                kept = _aged_outcome(row.outcome)
                if kept != row.outcome:
                    conn.execute(sa.update(audit).where(audit.c.id == row.id).values(outcome=kept))
            redacted = conn.execute(
                sa.update(audit)
                .where(entries)
                .values(
                    subjects=[],
                    actor=sa.case(
                        (audit.c.actor.in_(sorted(NON_ACCOUNTS)), audit.c.actor), else_=REDACTED
                    ),
                )
            )
            for table, at in (
                (offline_tokens, offline_tokens.c.expires_at),
                (lookup_cache, lookup_cache.c.cached_at),
                (lookup_misses, lookup_misses.c.cached_at),
                (account_refusals, account_refusals.c.last_call_at),
                (admin_checks, sa.func.coalesce(admin_checks.c.checked_at, 0.0)),
                (quota_spend, quota_spend.c.spent_at),
            ):
                conn.execute(
                    sa.delete(table).where(table.c.installation_id == installation_id, at < cutoff)
                )
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


def _aged_outcome(value: Any) -> Any:
    """An audit outcome past retention: its numbers, booleans and ``OUTCOME_REFERENCES``; a plain
    string outcome (``"ok"``) stays."""
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool | int | float) or item is None:
            kept[key] = item
        elif isinstance(item, str) and key in OUTCOME_REFERENCES:
            kept[key] = item
        elif isinstance(item, dict):
            kept[key] = _aged_outcome(item)
    return kept
