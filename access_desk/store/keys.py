"""Forge's signing keys, shared by every server process and instance (``forge.keys.KeySet``'s shelf): the
last good JWKS of each key URL and when it was fetched. Not tenant data: one row per URL.
"""

from __future__ import annotations

import sqlalchemy as sa

from access_desk.store.base import StoreBase, dialect_insert
from access_desk.store.tables import signing_keys


class SigningKeys(StoreBase):
    """The last good key set of each JWKS URL."""

    def signing_keys(self, url: str) -> tuple[str, float] | None:
        """The stored JWKS document (JSON text) of ``url`` and when it was fetched, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(signing_keys.c.jwks, signing_keys.c.fetched_at).where(
                    signing_keys.c.url == url
                )
            ).first()
        return (row.jwks, float(row.fetched_at)) if row is not None else None

    def save_signing_keys(self, url: str, jwks: str, fetched_at: float) -> None:
        """Keep ``jwks`` as the key set of ``url``, unless a later fetch is already stored."""
        with self.engine.begin() as conn:
            conn.execute(
                dialect_insert(conn, signing_keys)
                .values(url=url, jwks=jwks, fetched_at=fetched_at)
                .on_conflict_do_update(
                    index_elements=["url"],
                    set_={"jwks": jwks, "fetched_at": fetched_at},
                    where=signing_keys.c.fetched_at < fetched_at,
                )
            )
