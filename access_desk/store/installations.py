"""Installations and their secrets: the system token, the webhook secret (current and previous)
and the admins' offline user tokens.

Every secret is stored Fernet-encrypted and kept out of every ``repr``; a system token replaces the
stored one only when it expires later, and a rotated webhook secret keeps verifying for 24 h (unless
the rotation revokes it).
"""

from __future__ import annotations

import base64
import functools
from typing import Any, NamedTuple

import sqlalchemy as sa

from access_desk.store.base import StoreBase, dialect_insert
from access_desk.store.errors import UnknownInstallation
from access_desk.store.records import Installation, WebhookState
from access_desk.store.tables import installations, offline_tokens

WEBHOOK_PREVIOUS_SECRET_SECONDS = 24 * 3600


def claim_installation_lease(
    store: StoreBase, duty: str, worker_id: str, lease_seconds: float
) -> str | None:
    """Lease ONE installation whose ``duty`` is due (the columns ``{duty}_due_at``,
    ``{duty}_lease_owner`` and ``{duty}_lease_until``: ``duty`` for the personal data duty,
    ``erase`` for an uninstalled installation's erasure); its id, or None. The earliest due of a
    few candidates whose lease is free or lapsed, each taken by a conditional update."""
    now = store.now()
    c = installations.c
    due, owner, until = (c[f"{duty}_{name}"] for name in ("due_at", "lease_owner", "lease_until"))
    runnable = sa.and_(due <= now, sa.or_(owner.is_(None), until <= now))
    with store.engine.connect() as conn:
        found = list(
            conn.execute(
                sa.select(c.installation_id).where(runnable).order_by(due).limit(8)
            ).scalars()
        )
    for installation_id in found:
        with store.engine.begin() as conn:
            won = conn.execute(
                sa.update(installations)
                .where(c.installation_id == installation_id, runnable)
                .values({owner: worker_id, until: now + lease_seconds})
            )
        if won.rowcount == 1:
            return str(installation_id)
    return None


class WebhookTarget(NamedTuple):
    """What ``POST /webhooks/<uuid>`` needs of its installation (``webhook_target``)."""

    installation_id: str | None
    secrets: list[str]
    uninstalled: bool


def installation_uuid(installation_id: str) -> str:
    """``ari:cloud:ecosystem::installation/<uuid>`` -> ``<uuid>`` (a bare id stays as it is)."""
    return installation_id.rsplit("/", 1)[-1]


class Installations(StoreBase):
    """Installations, system tokens, webhook secrets and offline user tokens."""

    def upsert_installation(
        self,
        installation_id: str,
        *,
        cloud_id: str,
        api_base_url: str,
        system_token: str | None = None,
        system_token_expires_at: float | None = None,
    ) -> None:
        """Create or refresh an installation; idempotent.

        A ``system_token`` replaces the stored one only when it expires later (a token without an
        expiry only fills an empty or expired slot), so a late redelivery cannot go backwards.
        """
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(
                dialect_insert(conn, installations)
                .values(
                    installation_id=installation_id,
                    uuid=installation_uuid(installation_id),
                    cloud_id=cloud_id,
                    api_base_url=api_base_url,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["installation_id"])
            )
            conn.execute(
                sa.update(installations)
                .where(installations.c.installation_id == installation_id)
                .values(cloud_id=cloud_id, api_base_url=api_base_url, updated_at=now)
            )
            if system_token:
                stored = installations.c.system_token_expires_at
                newer = sa.or_(installations.c.system_token_enc.is_(None), stored.is_(None))
                if system_token_expires_at is not None:
                    newer = sa.or_(newer, stored < system_token_expires_at)
                else:
                    newer = sa.or_(newer, stored <= now)
                conn.execute(
                    sa.update(installations)
                    .where(installations.c.installation_id == installation_id, newer)
                    .values(
                        system_token_enc=self._encrypt(system_token),
                        system_token_expires_at=system_token_expires_at,
                    )
                )

    def installation(self, installation_id: str) -> Installation | None:
        where = installations.c.installation_id == installation_id
        return self._installation_where(where)

    def installation_by_uuid(self, uuid: str) -> Installation | None:
        """By the tail of ``ari:cloud:ecosystem::installation/<uuid>`` (webhook URLs carry it)."""
        return self._installation_where(installations.c.uuid == uuid)

    def _installation_where(self, where: sa.ColumnElement[bool]) -> Installation | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(installations).where(where)).first()
        if row is None:
            return None
        return Installation(
            installation_id=row.installation_id,
            uuid=row.uuid,
            cloud_id=row.cloud_id,
            api_base_url=row.api_base_url,
            system_token=self._decrypt(row.system_token_enc),
            system_token_expires_at=row.system_token_expires_at,
            webhook_admin=row.webhook_admin,
            webhook_secret_rotated_at=row.webhook_secret_rotated_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- webhook secrets -----------------------------------------------------------------------

    def set_webhook_secret(
        self,
        installation_id: str,
        secret: str,
        admin_account_id: str,
        *,
        revoke_previous: bool = False,
    ) -> None:
        """Make ``secret`` current; the one it replaces keeps verifying for 24 h, or stops at once
        with ``revoke_previous``."""
        now = self._clock()
        previous = None if revoke_previous else installations.c.webhook_secret_enc
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(installations)
                .where(installations.c.installation_id == installation_id)
                .values(
                    webhook_secret_prev_enc=previous,
                    webhook_secret_enc=self._encrypt(secret),
                    webhook_admin=admin_account_id,
                    webhook_secret_rotated_at=now,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                raise UnknownInstallation("store the installation before its webhook secret")

    def webhook_secrets(self, installation_id: str) -> list[str]:
        """The current secret, then the previous one while it is under 24 h old; [] if never set."""
        row = self._webhook_row(installations.c.installation_id == installation_id)
        if row is None:
            return []
        found = [self._decrypt(row.webhook_secret_enc)]
        rotated = row.webhook_secret_rotated_at or 0.0
        if self._clock() < rotated + WEBHOOK_PREVIOUS_SECRET_SECONDS:
            found.append(self._decrypt(row.webhook_secret_prev_enc))
        return [s for s in found if s]

    @functools.cached_property
    def _stand_in(self) -> str:
        """Decrypted where no webhook secret is stored, so that path costs what a stored one does."""
        return self._encrypt("whsec_" + base64.b64encode(bytes(32)).decode())

    def webhook_secrets_by_uuid(self, uuid: str) -> tuple[str | None, list[str]]:
        """For ``POST /webhooks/<uuid>``: the installation id (None when unknown) and its secrets
        as ``webhook_secrets`` lists them (see ``webhook_target``)."""
        target = self.webhook_target(uuid)
        return target.installation_id, target.secrets

    def webhook_target(self, uuid: str) -> WebhookTarget:
        """For ``POST /webhooks/<uuid>``: the installation id (None when unknown), its secrets as
        ``webhook_secrets`` lists them and whether it was uninstalled, in one query that decrypts
        the two webhook secret slots and nothing else. An unknown installation, an empty slot and
        a uuid no database can hold (NUL) decrypt a stand-in instead, so the answer takes as long
        either way."""
        row = None if "\x00" in uuid else self._webhook_row(installations.c.uuid == uuid)
        current, previous = (
            (row.webhook_secret_enc, row.webhook_secret_prev_enc) if row else (None, None)
        )
        rotated = (row.webhook_secret_rotated_at if row else None) or 0.0
        fresh = self._clock() < rotated + WEBHOOK_PREVIOUS_SECRET_SECONDS
        found = [
            self._decrypt(current or self._stand_in),
            self._decrypt(previous or self._stand_in),
        ]
        kept = [found[0] if current else None, found[1] if previous and fresh else None]
        return WebhookTarget(
            row.installation_id if row else None,
            [s for s in kept if s],
            uninstalled=row is not None and row.uninstalled_at is not None,
        )

    def _webhook_row(self, where: sa.ColumnElement[bool]) -> Any:
        """The row of webhook columns (still encrypted) of the installation matching ``where``, or
        None."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(
                    installations.c.installation_id,
                    installations.c.webhook_secret_enc,
                    installations.c.webhook_secret_prev_enc,
                    installations.c.webhook_secret_rotated_at,
                    installations.c.webhook_admin,
                    installations.c.uninstalled_at,
                ).where(where)
            ).first()

    def webhook_admin(self, installation_id: str) -> str | None:
        """The admin who last rotated the webhook secret: webhook jobs act as them."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(installations.c.webhook_admin).where(
                    installations.c.installation_id == installation_id
                )
            ).scalar()

    # -- offline user tokens -------------------------------------------------------------------

    def webhook_state(self, installation_id: str) -> WebhookState:
        """Whether a current secret is set (and decrypts), when and by whom it was last rotated,
        and until when the previous one still verifies (None once it stopped or was revoked)."""
        row = self._webhook_row(installations.c.installation_id == installation_id)
        if row is None:
            return WebhookState(False, None, None, None)
        until = None
        if row.webhook_secret_prev_enc is not None and row.webhook_secret_rotated_at is not None:
            until = row.webhook_secret_rotated_at + WEBHOOK_PREVIOUS_SECRET_SECONDS
            if until <= self._clock():
                until = None
        return WebhookState(
            configured=self._decrypt(row.webhook_secret_enc) is not None,
            rotated_at=row.webhook_secret_rotated_at,
            acting_as=row.webhook_admin,
            previous_valid_until=until,
        )

    def offline_token(self, installation_id: str, account_id: str) -> tuple[str, float] | None:
        """The stored offline token of the user and when it expires (it may have expired)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(offline_tokens.c.token_enc, offline_tokens.c.expires_at).where(
                    offline_tokens.c.installation_id == installation_id,
                    offline_tokens.c.account_id == account_id,
                )
            ).first()
        token = self._decrypt(row.token_enc) if row is not None else None
        return (token, row.expires_at) if row is not None and token else None

    def save_offline_token(
        self, installation_id: str, account_id: str, token: str, expires_at: float
    ) -> None:
        values = {"token_enc": self._encrypt(token), "expires_at": expires_at}
        with self.engine.begin() as conn:
            conn.execute(
                dialect_insert(conn, offline_tokens)
                .values(installation_id=installation_id, account_id=account_id, **values)
                .on_conflict_do_update(
                    index_elements=["installation_id", "account_id"], set_=values
                )
            )
