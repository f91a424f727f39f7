"""Platform duties: what Forge and Atlassian expect of a Marketplace app, per installation.

The offline token context form that worked and the last exchange error (``atlassian``); dormancy
(last scheduled trigger, consecutive refusals, dormant since: ``store.queue``'s ``claim_job`` skips a
dormant installation's jobs for the background worker); the personal data duty (queued by a
scheduled trigger, leased like a job), the reported account ids, their erasure and the retention
watermark (``privacy``). ``installation_health`` reads all of it in one record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from records import InstallationHealth
from store.audit import subject_key
from store.base import StoreBase
from tables import audit, audit_subjects, installations, job_items, jobs, offline_tokens

ERASED = "erased"  # what an erased (closed) account id reads as
# audit actors that are not account ids: never reported, never erased
NON_ACCOUNTS = frozenset({"forge", "webhook", "panel", "privacy", ERASED})


class PlatformDuties(StoreBase):
    """Offline-token form, dormancy and personal data state of each installation."""

    def context_form(self, installation_id: str) -> str | None:
        """The offline token context ARI form that last worked here (``site``/``workspace``)."""
        with self.engine.connect() as conn:
            found: str | None = conn.execute(
                sa.select(installations.c.context_form).where(
                    installations.c.installation_id == installation_id
                )
            ).scalar()
        return found

    def offline_token_minted(self, installation_id: str, form: str) -> None:
        """An offline token was minted with the ``form`` context ARI: remember it, clear the error."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(installations)
                .where(installations.c.installation_id == installation_id)
                .values(context_form=form, offline_token_error=None, offline_token_error_at=None)
            )

    def offline_token_failed(self, installation_id: str, message: str) -> None:
        """The last offline token exchange failed with ``message`` (no token in it)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(installations)
                .where(installations.c.installation_id == installation_id)
                .values(offline_token_error=message[:1000], offline_token_error_at=self._clock())
            )

    def drop_offline_token(self, installation_id: str, account_id: str) -> bool:
        """Forget the cached offline token of the user (Confluence refused it); False if none."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.delete(offline_tokens).where(
                    offline_tokens.c.installation_id == installation_id,
                    offline_tokens.c.account_id == account_id,
                )
            )
        return done.rowcount == 1

    def note_scheduled_trigger(
        self,
        installation_id: str,
        *,
        report_every_seconds: float,
        housekeeping_every_seconds: float = 24 * 3600.0,
    ) -> bool:
        """Record a scheduled trigger, and queue the personal data duty when the last report is
        ``report_every_seconds`` old (0: always) or housekeeping last ran a day ago. True when the
        duty was queued now (a duty already queued, or waiting to retry, is left as it is)."""
        now = self._clock()
        c = installations.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id)
                .values(last_scheduled_at=now)
            )
            stale = sa.or_(
                c.last_report_at.is_(None),
                c.last_report_at <= now - report_every_seconds,
                c.housekept_at.is_(None),
                c.housekept_at <= now - housekeeping_every_seconds,
            )
            queued = conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id, c.duty_due_at.is_(None), stale)
                .values(duty_due_at=now)
            )
        return queued.rowcount == 1

    def claim_privacy_duty(self, worker_id: str, lease_seconds: float) -> str | None:
        """Lease ONE installation whose personal data duty is due; its id, or None."""
        now = self._clock()
        c = installations.c
        runnable = sa.and_(
            c.duty_due_at <= now,
            sa.or_(c.duty_lease_owner.is_(None), c.duty_lease_until <= now),
        )
        with self.engine.connect() as conn:
            candidates = conn.execute(
                sa.select(c.installation_id).where(runnable).order_by(c.duty_due_at).limit(8)
            ).scalars()
            found = list(candidates)
        for installation_id in found:
            with self.engine.begin() as conn:
                won = conn.execute(
                    sa.update(installations)
                    .where(c.installation_id == installation_id, runnable)
                    .values(duty_lease_owner=worker_id, duty_lease_until=now + lease_seconds)
                )
            if won.rowcount == 1:
                return str(installation_id)
        return None

    def finish_privacy_duty(
        self,
        installation_id: str,
        worker_id: str,
        *,
        housekept: bool,
        reported: bool,
        error: str | None = None,
        retry_at: float | None = None,
    ) -> bool:
        """End ``worker_id``'s duty lease: record what was done, the error (if any) and when to
        try again (``retry_at``; None: when a scheduled trigger queues it next)."""
        now = self._clock()
        values: dict[str, Any] = {
            "duty_lease_owner": None,
            "duty_lease_until": None,
            "duty_due_at": retry_at,
        }
        if housekept:
            values["housekept_at"] = now
        if reported:
            values.update(last_report_at=now, report_error=None, report_error_at=None)
        if error is not None:
            values.update(report_error=error[:1000], report_error_at=now)
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.duty_lease_owner == worker_id,
                )
                .values(values)
            )
        return done.rowcount == 1

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
        act for it), the webhook loses its acting admin, offline tokens are deleted. One audit
        entry (``personalData.erase``, counts only) records it. Returns how many ids were erased.
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

    def resume_installation(self, installation_id: str) -> bool:
        """A valid invocation arrived: a dormant installation is awake again (True if it was)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.dormant_since.is_not(None),
                )
                .values(dormant_since=None, dormant_reason=None, resumed_at=self._clock())
            )
        return done.rowcount == 1

    def note_site_answer(
        self,
        installation_id: str,
        *,
        refused: bool,
        refusals_to_dormant: int,
        span_seconds: float,
    ) -> bool:
        """Count a background call the site refused (401/403/404), or reset the count on an
        answer. The installation turns dormant (``refused``) once at least
        ``refusals_to_dormant`` consecutive refusals span ``span_seconds``; True when it did now.
        """
        now = self._clock()
        c = installations.c
        where = c.installation_id == installation_id
        with self.engine.begin() as conn:
            if not refused:
                conn.execute(
                    sa.update(installations)
                    .where(where, c.refusals > 0)
                    .values(refusals=0, first_refusal_at=None)
                )
                return False
            conn.execute(
                sa.update(installations)
                .where(where)
                .values(
                    refusals=c.refusals + 1,
                    first_refusal_at=sa.func.coalesce(c.first_refusal_at, now),
                )
            )
            became = conn.execute(
                sa.update(installations)
                .where(
                    where,
                    c.dormant_since.is_(None),
                    c.refusals >= refusals_to_dormant,
                    c.first_refusal_at <= now - span_seconds,
                )
                .values(dormant_since=now, dormant_reason="refused")
            )
        return became.rowcount == 1

    def mark_quiet_installations_dormant(self, quiet_seconds: float) -> list[str]:
        """Installations with no scheduled trigger (nor a resuming invocation) for
        ``quiet_seconds`` become dormant (``quiet``); returns their ids."""
        now = self._clock()
        cutoff = now - quiet_seconds
        c = installations.c
        quiet = sa.and_(
            c.dormant_since.is_(None),
            sa.func.coalesce(c.last_scheduled_at, c.created_at) < cutoff,
            sa.or_(c.resumed_at.is_(None), c.resumed_at < cutoff),
        )
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.update(installations)
                .where(quiet)
                .values(dormant_since=now, dormant_reason="quiet")
                .returning(c.installation_id)
            ).scalars()
            return sorted(found)

    def count_dormant_installations(self) -> int:
        """How many installations are dormant (for the metrics gauge)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(installations.c.dormant_since.is_not(None))
                ).scalar_one()
            )

    def installation_health(self, installation_id: str) -> InstallationHealth | None:
        """Dormancy, the offline token context form and error, the last scheduled trigger and
        the personal data cycle of one installation (``diagnose`` reads this)."""
        c = installations.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(installations).where(c.installation_id == installation_id)
            ).first()
        if row is None:
            return None
        return InstallationHealth(
            installation_id=row.installation_id,
            last_scheduled_at=row.last_scheduled_at,
            dormant_since=row.dormant_since,
            dormant_reason=row.dormant_reason,
            resumed_at=row.resumed_at,
            refusals=int(row.refusals or 0),
            first_refusal_at=row.first_refusal_at,
            context_form=row.context_form,
            offline_token_error=row.offline_token_error,
            offline_token_error_at=row.offline_token_error_at,
            last_report_at=row.last_report_at,
            report_error=row.report_error,
            report_error_at=row.report_error_at,
            duty_due_at=row.duty_due_at,
            housekept_at=row.housekept_at,
        )


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
