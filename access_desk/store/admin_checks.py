"""The shared record of the admin check: is this user a Confluence site administrator.

One row per (installation, account) in ``admin_checks``: the last answer Confluence gave
(``is_admin``, ``checked_at``) and, while one caller asks Confluence, until when that caller holds
the check (``checking_until``), so every process and instance together makes at most one upstream
check at a time per user (``claim_admin_check`` is one atomic statement). Scoped by installation.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from access_desk.store.base import StoreBase, dialect_insert
from access_desk.store.tables import admin_checks


@dataclass(frozen=True, slots=True)
class AdminRecord:
    """The last answer (``is_admin`` None: none yet) and whether a check is being made."""

    is_admin: bool | None
    checked_at: float | None
    checking_until: float | None
    operations: str | None = None  # the operations Confluence reported, e.g. "use/application"


_c = admin_checks.c
# built once (every call reads it): one record by key
_RECORD = sa.select(_c.is_admin, _c.checked_at, _c.checking_until, _c.operations).where(
    _c.installation_id == sa.bindparam("iid"), _c.account_id == sa.bindparam("account")
)


class AdminChecks(StoreBase):
    """The admin check record; see the module docstring."""

    def admin_check(self, installation_id: str, account_id: str) -> AdminRecord | None:
        """The record of ``account_id`` in the installation, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(_RECORD, {"iid": installation_id, "account": account_id}).first()
        if row is None:
            return None
        return AdminRecord(
            None if row.is_admin is None else bool(row.is_admin),
            row.checked_at,
            row.checking_until,
            row.operations,
        )

    def claim_admin_check(self, installation_id: str, account_id: str, until: float) -> bool:
        """Take the check of ``account_id`` until ``until`` unless someone holds it now; True
        when taken (the caller then asks Confluence and records the answer)."""
        now = self.now()
        c = admin_checks.c
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, admin_checks).values(
                installation_id=installation_id, account_id=account_id, checking_until=until
            )
            taken = conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["installation_id", "account_id"],
                    set_={"checking_until": until},
                    where=sa.or_(c.checking_until.is_(None), c.checking_until <= now),
                ).returning(c.account_id)
            ).first()
            return taken is not None

    def record_admin_check(
        self,
        installation_id: str,
        account_id: str,
        is_admin: bool | None,
        *,
        hold_until: float,
        operations: str | None = None,
    ) -> None:
        """Store Confluence's answer (None: no answer, the old one stays) and let the check go:
        nobody checks again before ``hold_until`` (a failed check is not retried at once)."""
        now = self.now()
        values: dict[str, object] = {"checking_until": hold_until if hold_until > now else None}
        if is_admin is not None:
            values.update(is_admin=is_admin, checked_at=now, operations=(operations or "")[:1024])
        c = admin_checks.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(admin_checks)
                .where(c.installation_id == installation_id, c.account_id == account_id)
                .values(values)
            )
