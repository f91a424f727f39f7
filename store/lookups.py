"""The lookup cache: user objects a caller was shown, per (installation, caller account).

``lookupUsers`` answers ids fetched for the same caller in the last ``LOOKUP_CACHE_SECONDS`` from
here, shared by every worker and instance, without asking Confluence again (docs/contract.md §6).
Rows are keyed by installation, caller and account id, and read only with all three: one person's
lookup is never answered with what another person was shown (Confluence enforces profile
visibility per caller). A row with ``user`` null remembers an id Confluence did not find.
Expired rows are never read; a write deletes them when this store has not done so for a minute
(or for ``max_age``, when shorter); ``store.personal_data.erase_accounts`` deletes the rows of erased
accounts (as the looked-up user or as the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from store.base import StoreBase, dialect_insert
from tables import lookup_cache

_BATCH = 500  # ids per IN (...) query
_SWEEP_SECONDS = 60.0  # a store deletes expired rows at most this often (and once per max_age)


class LookupCache(StoreBase):
    """Cached user objects per (installation, caller); see the module docstring."""

    _lookup_swept_at = float("-inf")  # when this store last deleted expired rows (its clock)

    def cached_users(
        self, installation_id: str, caller: str, account_ids: Sequence[str], max_age: float
    ) -> dict[str, dict[str, Any] | None]:
        """The cached answers younger than ``max_age`` seconds for these ids (id -> user object,
        or None for "not found"); ids without one are left out.

        One indexed query first lists the caller's fresh ids (at most one more than asked for):
        a caller with none (a cold cache) costs that one query, and a caller with fewer fresh rows
        than ids asked for has only the ids in both read back. Otherwise the ids are read in
        ``IN (...)`` batches."""
        if max_age <= 0 or not account_ids:
            return {}
        since = self._clock() - max_age
        ids = list(dict.fromkeys(account_ids))
        mine = (
            lookup_cache.c.installation_id == installation_id,
            lookup_cache.c.caller == caller,
            lookup_cache.c.cached_at > since,
        )
        found: dict[str, dict[str, Any] | None] = {}
        with self.engine.connect() as conn:
            fresh = conn.execute(
                sa.select(lookup_cache.c.account_id).where(*mine).limit(len(ids) + 1)
            ).scalars()
            known = set(fresh)
            if len(known) <= len(ids):  # every fresh id of this caller: read only the overlap
                ids = [i for i in ids if i in known]
            for start in range(0, len(ids), _BATCH):
                rows = conn.execute(
                    sa.select(lookup_cache.c.account_id, lookup_cache.c.user).where(
                        *mine, lookup_cache.c.account_id.in_(ids[start : start + _BATCH])
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
        sweep = now - self._lookup_swept_at >= min(max_age, _SWEEP_SECONDS)
        if not rows and not sweep:
            return
        with self.engine.begin() as conn:
            if sweep:
                self._lookup_swept_at = now
                conn.execute(
                    sa.delete(lookup_cache).where(lookup_cache.c.cached_at <= now - max_age)
                )
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
