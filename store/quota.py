"""The quota ledger's storage: Confluence's points pools as every worker and instance sees them.

One row per key in ``quota_pools``: the app's pool (key ``"app"``) and each site (key = its
``api_base_url``), which is also the site's own pool when it has one. A row keeps what the last
answer said (limit, remaining, reset, window, policy, near-limit), a hold (``held_until``, which
only ever extends) and, for a site, which pool it draws on (``scope``). Each method is one atomic
statement (or transaction). The rules (what an answer means, pacing, the reserve) live in
``ratelimit.py``; this is the ``quota_pools.QuotaStorage`` it builds on. When each installation's
job work last had a turn (``quota_turns``, for fair claims) is kept by ``store.leases``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from quota_pools import Pool
from store.base import StoreBase, dialect_insert
from tables import quota_pools

_FIELDS = ("scope", "policy", "limit", "remaining", "reset_at", "window")


class QuotaLedger(StoreBase):
    """Quota pools and their holds; see the module docstring."""

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        """The stored rows of ``keys`` (absent keys are left out)."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(quota_pools).where(quota_pools.c.key.in_(list(keys))))
            return {row.key: _pool(row) for row in rows}

    def all_quota_pools(self) -> list[Pool]:
        """Every stored row that is a pool (a limit or remaining points known)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(quota_pools).where(
                    sa.or_(quota_pools.c.limit.is_not(None), quota_pools.c.remaining.is_not(None))
                )
            )
            return [_pool(row) for row in rows]

    def record_quota(
        self, pool: Pool, *, site: str | None = None, scope: str | None = None
    ) -> None:
        """Write what an answer said about ``pool.key`` (see ``quota_pools.QuotaStorage``)."""
        values: dict[str, Any] = {
            "key": pool.key,
            "near_limit": pool.near_limit,
            "held_until": pool.held_until,
            "updated_at": pool.updated_at,
        }
        values.update({name: getattr(pool, name) for name in _FIELDS})
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, quota_pools).values(values)
            update: dict[str, Any] = {
                name: getattr(stmt.excluded, name)
                for name in _FIELDS
                if getattr(pool, name) is not None
            }
            update["near_limit"] = stmt.excluded.near_limit
            update["updated_at"] = stmt.excluded.updated_at
            update["held_until"] = sa.case(
                (quota_pools.c.held_until < stmt.excluded.held_until, stmt.excluded.held_until),
                else_=quota_pools.c.held_until,
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=update))
            if site is not None and scope is not None:
                conn.execute(
                    dialect_insert(conn, quota_pools)
                    .values(
                        key=site,
                        scope=scope,
                        near_limit=False,
                        held_until=0.0,
                        updated_at=pool.updated_at,
                    )
                    .on_conflict_do_update(index_elements=["key"], set_={"scope": scope})
                )

    def roll_quota_window(
        self, key: str, reset_at: float | None, new_reset_at: float | None
    ) -> None:
        """The window ending ``reset_at`` is over: full again; a no-op if rolled already."""
        same = (
            quota_pools.c.reset_at.is_(None)
            if reset_at is None
            else quota_pools.c.reset_at == reset_at
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(quota_pools)
                .where(quota_pools.c.key == key, same)
                .values(remaining=quota_pools.c.limit, reset_at=new_reset_at, near_limit=False)
            )

    def take_points(self, key: str, points: int, floor: int | None) -> bool:
        """Take ``points`` from ``remaining`` leaving at least ``floor`` (None: any, not below 0)."""
        row = quota_pools.c
        with self.engine.begin() as conn:
            if floor is None:
                left = sa.case((row.remaining > points, row.remaining - points), else_=0)
                conn.execute(
                    sa.update(quota_pools)
                    .where(row.key == key, row.remaining.is_not(None))
                    .values(remaining=left)
                )
                return True
            done = conn.execute(
                sa.update(quota_pools)
                .where(row.key == key, row.remaining - points >= floor)
                .values(remaining=row.remaining - points)
            )
            if done.rowcount == 1:
                return True
            known = conn.execute(
                sa.select(row.remaining).where(row.key == key, row.remaining.is_not(None))
            ).first()
            return known is None


def _pool(row: Any) -> Pool:
    return Pool(
        key=row.key,
        scope=row.scope,
        policy=row.policy,
        limit=row.limit,
        remaining=row.remaining,
        reset_at=row.reset_at,
        window=row.window,
        near_limit=bool(row.near_limit),
        held_until=float(row.held_until),
        updated_at=float(row.updated_at),
    )
