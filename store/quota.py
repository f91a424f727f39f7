"""The quota ledger's storage: rate-limit state shared by every worker and instance.

Today it holds, per key (the site's ``api_base_url``), a hold (calls wait until an epoch time,
learnt from ``Retry-After``) and the near-limit flag (``X-RateLimit-NearLimit``), in the
``rate_holds`` table. Holds only ever extend: a shorter hold never replaces a longer one stored.
This is the public API ``ratelimit.StoreGate`` builds on; the rules (caching, when to hold) live in
``ratelimit.py``, the storage lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from store.base import StoreBase, dialect_insert
from tables import rate_holds


@dataclass(frozen=True, slots=True)
class RateHold:
    """The shared rate-limit state of one key: calls wait until ``until`` (epoch; 0.0: no hold),
    and ``near_limit`` says the last answer carried ``X-RateLimit-NearLimit: true``."""

    until: float = 0.0
    near_limit: bool = False


class QuotaLedger(StoreBase):
    """Holds and near-limit flags per key, read and written in one statement each."""

    def rate_hold(self, key: str) -> RateHold:
        """The stored state of ``key`` (no hold and not near the limit when never written)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(rate_holds.c.until, rate_holds.c.near_limit).where(
                    rate_holds.c.key == key
                )
            ).first()
        return RateHold() if row is None else RateHold(float(row.until), bool(row.near_limit))

    def hold(self, key: str, until: float) -> None:
        """Calls for ``key`` wait until ``until`` (epoch); a later hold already stored stays."""
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, rate_holds).values(key=key, until=until, near_limit=False)
            later = sa.case(
                (rate_holds.c.until < stmt.excluded.until, stmt.excluded.until),
                else_=rate_holds.c.until,
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"until": later}))

    def held_until(self, key: str) -> float:
        """Epoch until which calls for ``key`` must wait (0.0: no hold)."""
        return self.rate_hold(key).until

    def set_near_limit(self, key: str, near: bool) -> None:
        """Store the near-limit flag of ``key`` (its hold stays as it is)."""
        with self.engine.begin() as conn:
            conn.execute(
                dialect_insert(conn, rate_holds)
                .values(key=key, until=0.0, near_limit=near)
                .on_conflict_do_update(index_elements=["key"], set_={"near_limit": near})
            )

    def is_near_limit(self, key: str) -> bool:
        return self.rate_hold(key).near_limit
