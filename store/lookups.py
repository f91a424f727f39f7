"""The lookup cache: user objects a caller was shown, per (installation, caller account).

``lookupUsers`` answers ids fetched for the same caller in the last ``LOOKUP_CACHE_SECONDS`` from
here, shared by every worker and instance, without asking Confluence again (docs/contract.md §6).
Rows are keyed by installation, caller and account id, and read only with all three: one person's
lookup is never answered with what another person was shown (Confluence enforces profile
visibility per caller). A row with ``user`` null remembers an id Confluence did not find.
Expired rows are deleted on every write; ``store.personal_data.erase_accounts`` deletes the rows of erased
accounts (as the looked-up user or as the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from store.base import StoreBase, dialect_insert
from tables import lookup_cache

_BATCH = 500  # ids per IN (...) query


class LookupCache(StoreBase):
    """Cached user objects per (installation, caller); see the module docstring."""

    def cached_users(
        self, installation_id: str, caller: str, account_ids: Sequence[str], max_age: float
    ) -> dict[str, dict[str, Any] | None]:
        """The cached answers younger than ``max_age`` seconds for these ids (id -> user object,
        or None for "not found"); ids without one are left out."""
        if max_age <= 0 or not account_ids:
            return {}
        since = self._clock() - max_age
        found: dict[str, dict[str, Any] | None] = {}
        ids = list(dict.fromkeys(account_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _BATCH):
                rows = conn.execute(
                    sa.select(lookup_cache.c.account_id, lookup_cache.c.user).where(
                        lookup_cache.c.installation_id == installation_id,
                        lookup_cache.c.caller == caller,
                        lookup_cache.c.account_id.in_(ids[start : start + _BATCH]),
                        lookup_cache.c.cached_at > since,
                    )
                )
                for row in rows:
                    found[row.account_id] = row.user if isinstance(row.user, dict) else None
        return found

    def cache_users(
        self,
        installation_id: str,
        caller: str,
        users: Sequence[dict[str, Any]],
        not_found: Sequence[str],
        max_age: float,
    ) -> None:
        """Remember what ``caller`` was shown (users by their ``accountId``, and ids not found),
        and drop every row older than ``max_age``."""
        if max_age <= 0:
            return
        now = self._clock()
        rows: dict[str, dict[str, Any] | None] = {}
        for user in users:
            account_id = user.get("accountId")
            if isinstance(account_id, str) and account_id:
                rows.setdefault(account_id, user)
        for account_id in not_found:
            rows.setdefault(account_id, None)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(lookup_cache).where(lookup_cache.c.cached_at <= now - max_age))
            if not rows:
                return
            stmt = dialect_insert(conn, lookup_cache)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["installation_id", "caller", "account_id"],
                    set_={"user": stmt.excluded.user, "cached_at": stmt.excluded.cached_at},
                ),
                [
                    {
                        "installation_id": installation_id,
                        "caller": caller,
                        "account_id": account_id,
                        "user": user,
                        "cached_at": now,
                    }
                    for account_id, user in rows.items()
                ],
            )
