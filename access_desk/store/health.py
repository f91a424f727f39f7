"""The health of an installation's platform duties: the offline token context form that worked and
the last exchange error (``forge.offline_tokens``), and dormancy (dormant since, resumed at, and the
consecutive background refusals per acting account, ``account_refusals``; ``store.leases``'
``claim_job`` skips a dormant installation's jobs, and a paused account's, for the background
worker, and ``dormancy`` runs the rules). ``installation_health`` reads all of it, with the last scheduled
trigger and the personal data cycle (``store.personal_data_duty``), in one record.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from access_desk.store.base import StoreBase, dialect_insert
from access_desk.store.records import AccountRefusals, InstallationHealth
from access_desk.store.tables import account_refusals, installations, offline_tokens


class PlatformHealth(StoreBase):
    """Offline-token form and error, and dormancy, of each installation."""

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

    def resume_installation(self, installation_id: str) -> bool:
        """A valid invocation arrived: a dormant installation is awake again (True if it was), and
        its paused accounts' jobs may run again (their refusal counts are kept, so an account
        Confluence still refuses is paused again by its next refused call)."""
        now = self._clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.dormant_since.is_not(None),
                )
                .values(dormant_since=None, dormant_reason=None, resumed_at=now)
            )
            conn.execute(
                sa.update(account_refusals)
                .where(
                    account_refusals.c.installation_id == installation_id,
                    account_refusals.c.paused_since.is_not(None),
                )
                .values(paused_since=None)
            )
        return done.rowcount == 1

    def note_account_answer(
        self,
        installation_id: str,
        account_id: str,
        *,
        refused: bool,
        refusals_to_pause: int,
        span_seconds: float,
        recent_seconds: float,
    ) -> tuple[bool, bool]:
        """Count a background call acting as ``account_id`` that Confluence refused (401/403/404),
        or reset the account's count on an answer. The account is paused (the worker no longer
        claims the jobs acting as it) once at least ``refusals_to_pause`` consecutive refusals
        span ``span_seconds``; the installation turns dormant (``refused``: its site refuses every
        call) when that leaves no account with a background call in the last ``recent_seconds``
        unpaused, and an answer to any of its accounts ends that. Returns (the account was paused
        now, the installation turned dormant now)."""
        now = self._clock()
        c = account_refusals.c
        mine = sa.and_(c.installation_id == installation_id, c.account_id == account_id)
        counted: dict[str, Any] = (
            {
                "refusals": c.refusals + 1,
                "first_refusal_at": sa.func.coalesce(c.first_refusal_at, now),
            }
            if refused
            else {"refusals": 0, "first_refusal_at": None}
        )
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, account_refusals).values(
                installation_id=installation_id,
                account_id=account_id,
                refusals=1 if refused else 0,
                first_refusal_at=now if refused else None,
                last_call_at=now,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["installation_id", "account_id"],
                    set_={**counted, "last_call_at": now},
                )
            )
            if not refused:  # the site answers: it is not refusing every call
                conn.execute(
                    sa.update(installations)
                    .where(
                        installations.c.installation_id == installation_id,
                        installations.c.dormant_reason == "refused",
                    )
                    .values(dormant_since=None, dormant_reason=None)
                )
                return False, False
            paused = conn.execute(
                sa.update(account_refusals)
                .where(
                    mine,
                    c.paused_since.is_(None),
                    c.refusals >= refusals_to_pause,
                    c.first_refusal_at <= now - span_seconds,
                )
                .values(paused_since=now)
            )
            if paused.rowcount != 1:
                return False, False
            awake = conn.execute(
                sa.select(c.account_id)
                .where(
                    c.installation_id == installation_id,
                    c.paused_since.is_(None),
                    c.last_call_at > now - recent_seconds,
                )
                .limit(1)
            ).first()
            if awake is not None:
                return True, False
            dormant = conn.execute(
                sa.update(installations)
                .where(
                    installations.c.installation_id == installation_id,
                    installations.c.dormant_since.is_(None),
                )
                .values(dormant_since=now, dormant_reason="refused")
            )
        return True, dormant.rowcount == 1

    def refused_accounts(self, installation_id: str) -> list[AccountRefusals]:
        """The installation's accounts whose background calls Confluence refused (paused, or
        counting towards it), by account id."""
        c = account_refusals.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(account_refusals)
                .where(
                    c.installation_id == installation_id,
                    sa.or_(c.refusals > 0, c.paused_since.is_not(None)),
                )
                .order_by(c.account_id)
            ).all()
        return [
            AccountRefusals(r.account_id, int(r.refusals), r.first_refusal_at, r.paused_since)
            for r in rows
        ]

    def mark_quiet_installations_dormant(self, quiet_seconds: float) -> list[str]:
        """Installations with no scheduled trigger (nor a resuming invocation) for
        ``quiet_seconds`` become dormant (``quiet``); returns their ids."""
        now = self._clock()
        cutoff = now - quiet_seconds
        c = installations.c
        quiet = sa.and_(
            c.dormant_since.is_(None),
            # coalesce(last_scheduled_at, created_at) < cutoff, written so that the index on
            # last_scheduled_at finds the few quiet ones instead of reading every installation
            sa.or_(
                c.last_scheduled_at < cutoff,
                sa.and_(c.last_scheduled_at.is_(None), c.created_at < cutoff),
            ),
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
            accounts_refused=tuple(self.refused_accounts(installation_id)),
            context_form=row.context_form,
            offline_token_error=row.offline_token_error,
            offline_token_error_at=row.offline_token_error_at,
            last_report_at=row.last_report_at,
            report_error=row.report_error,
            report_error_at=row.report_error_at,
            duty_due_at=row.duty_due_at,
            housekept_at=row.housekept_at,
            report_cycle_seconds=row.report_cycle_seconds,
        )
