"""The health of an installation's platform duties: the offline token context form that worked and
the last exchange error (``atlassian``), and dormancy (consecutive refusals, dormant since, resumed
at; ``store.leases``' ``claim_job`` skips a dormant installation's jobs for the background worker,
and ``dormancy`` runs the rules). ``installation_health`` reads all of it, with the last scheduled
trigger and the personal data cycle (``store.privacy``), in one record.
"""

from __future__ import annotations

import sqlalchemy as sa

from records import InstallationHealth
from store.base import StoreBase
from tables import installations, offline_tokens


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
            report_cycle_seconds=row.report_cycle_seconds,
        )
