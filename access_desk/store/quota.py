"""The quota ledger's storage: Confluence's points pools as every worker and instance sees them.

One row per key in ``quota.pools`` (``quota.pools.Pool``): the app's pool (``"app"``), each site
(its ``api_base_url``, also its own pool when it has one) and the offline token mints. A row is
changed atomically by ``change_pool``: read, apply the ledger's rule, write back only if nobody
changed the row meanwhile (its ``version``), else read again and re-apply (optimistic concurrency:
no lock is held while a rule runs, on SQLite and PostgreSQL alike). ``quota_spend`` keeps what each
installation and each of its users spent in a pool's window (atomic additions); ``quota_costs``
the learned costs' sums (atomic additions) and per-object caps (atomic, only ever lower). The
rules live in ``quota.ledger`` and ``quota.rules``; this is the ``quota.pools.QuotaStorage`` they build
on. When each installation's job work last had a turn (``quota_turns``, for fair claims) is kept
by ``store.leases``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import sqlalchemy as sa

from access_desk.quota.pools import (
    MINTS,
    Change,
    CostSums,
    Pool,
    SpendKey,
    Written,
)
from access_desk.store.base import StoreBase, dialect_insert
from access_desk.store.tables import quota_costs, quota_pools, quota_spend

_SUMS = ("kk", "kx", "xx", "kd", "xd")
MAX_ATTEMPTS = 50


_COLUMNS = [f.name for f in fields(Pool)]
# built once (the ledger reads them every call, and writes a row a batch)
_UPDATE = (
    sa.update(quota_pools)
    .where(
        quota_pools.c.key == sa.bindparam("v_key"),
        quota_pools.c.version == sa.bindparam("w_version"),
    )
    .values({name: sa.bindparam(f"v_{name}") for name in _COLUMNS if name != "key"})
    .returning(quota_pools.c.key)
)
_POOLS = sa.select(quota_pools).where(quota_pools.c.key.in_(sa.bindparam("keys", expanding=True)))
_SPEND = sa.select(quota_spend.c.account_id, quota_spend.c.points).where(
    quota_spend.c.pool == sa.bindparam("pool"),
    quota_spend.c.window_id == sa.bindparam("window_id"),
    quota_spend.c.installation_id == sa.bindparam("iid"),
    quota_spend.c.account_id.in_(sa.bindparam("accounts", expanding=True)),
)


class ConcurrentChange(RuntimeError):
    """A quota row kept changing under ``change_pool`` for ``MAX_ATTEMPTS`` tries."""


class StoredQuota(StoreBase):
    """Quota pools, spend per window and learned costs; see the module docstring."""

    def quota_pools(self, keys: Sequence[str]) -> dict[str, Pool]:
        """The stored rows of ``keys`` (absent keys are left out)."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(_POOLS, {"keys": list(keys)})
            return {row.key: _pool(row) for row in rows}

    def all_quota_pools(self) -> list[Pool]:
        """Every stored row that is a pool (a limit or r known)."""
        c = quota_pools.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(quota_pools).where(
                    c.key != MINTS, sa.or_(c.limit.is_not(None), c.reported.is_not(None))
                )
            )
            return [_pool(row) for row in rows]

    def change_pool(
        self, key: str, change: Change, *, replay: Change | None = None, then: Written | None = None
    ) -> Pool:
        """Apply ``change`` to the row of ``key`` atomically (see the module docstring); then
        ``then`` with the row as it stands. ``replay`` is for storages that write later."""
        pool = self._change_pool(key, change)
        if then is not None:
            then(pool)
        return pool

    def _change_pool(self, key: str, change: Change) -> Pool:
        c = quota_pools.c
        for _ in range(MAX_ATTEMPTS):
            with self.engine.connect() as conn:  # read apart: the write below checks the version
                row = conn.execute(_POOLS, {"keys": [key]}).first()
            old = _pool(row) if row is not None else Pool(key)
            new = change(old)
            if new is None:
                return old
            new = replace(new, key=key, version=old.version + 1)
            values = _row(new)
            with self.engine.begin() as conn:
                if row is None:
                    written = conn.execute(
                        dialect_insert(conn, quota_pools)
                        .values(values)
                        .on_conflict_do_nothing(index_elements=["key"])
                        .returning(c.key)
                    ).first()
                else:
                    written = conn.execute(
                        _UPDATE,
                        {f"v_{k}": v for k, v in values.items()} | {"w_version": old.version},
                    ).first()
            if written is not None:
                return new
        raise ConcurrentChange(f"the quota row {key!r} kept changing")

    def add_spends(self, changes: Mapping[SpendKey, float]) -> None:
        """Add each row's points (``quota.pools.spend_rows``), in one transaction."""
        if not changes:
            return
        now = self._clock()
        rows = [
            {
                "pool": pool,
                "window_id": window_id,
                "installation_id": installation_id,
                "account_id": account_id,
                "points": points,
                "spent_at": now,
            }
            for (pool, window_id, installation_id, account_id), points in sorted(changes.items())
        ]
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, quota_spend)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["pool", "window_id", "installation_id", "account_id"],
                    set_={
                        "points": quota_spend.c.points + stmt.excluded.points,
                        "spent_at": stmt.excluded.spent_at,
                    },
                ),
                rows,
            )

    def spend_of(
        self, pool: str, window_id: int, installation_id: str, account_id: str
    ) -> tuple[float, float]:
        """This window's spend of the installation and of its user ``account_id``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                _SPEND,
                {
                    "pool": pool,
                    "window_id": window_id,
                    "iid": installation_id,
                    "accounts": ["", account_id],
                },
            ).all()
        found = {account: float(points) for account, points in rows}
        return found.get("", 0.0), found.get(account_id, 0.0) if account_id else 0.0

    def drop_spend_before(self, pool: str, window_id: int) -> None:
        """Forget the spend of ``pool``'s windows before ``window_id``."""
        c = quota_spend.c
        with self.engine.begin() as conn:
            conn.execute(sa.delete(quota_spend).where(c.pool == pool, c.window_id < window_id))

    def cost_sums(self) -> dict[str, CostSums]:
        """The learned costs' sums, per operation."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(quota_costs)).all()
        return {
            row.operation: CostSums(
                samples=row.samples,
                **{s: float(getattr(row, s)) for s in _SUMS},
                cap=None if row.cap is None else float(row.cap),
            )
            for row in rows
        }

    def add_cost_sample(self, operation: str, k: float, x: float, d: float) -> None:
        """One more learned-cost sample of ``operation`` (atomic additions)."""
        one = CostSums().add(k, x, d)
        values: dict[str, Any] = {"operation": operation, "samples": 1}
        values.update({s: getattr(one, s) for s in _SUMS})
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, quota_costs).values(values)
            add = {
                name: getattr(quota_costs.c, name) + getattr(stmt.excluded, name)
                for name in ("samples", *_SUMS)
            }
            conn.execute(stmt.on_conflict_do_update(index_elements=["operation"], set_=add))

    def lower_cost_caps(self, caps: Mapping[str, float]) -> None:
        """Lower each operation's per-object cap to the one given (atomic; a cap never rises)."""
        c = quota_costs.c
        with self.engine.begin() as conn:
            for operation, cap in sorted(caps.items()):
                values: dict[str, Any] = {"operation": operation, "samples": 0, "cap": cap}
                values.update(dict.fromkeys(_SUMS, 0.0))
                stmt = dialect_insert(conn, quota_costs).values(values)
                lower = sa.case(
                    (sa.or_(c.cap.is_(None), c.cap > stmt.excluded.cap), stmt.excluded.cap),
                    else_=c.cap,
                )
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=["operation"], set_={"cap": lower})
                )

    def flush(self) -> bool:
        """Nothing is kept back: every change is written at once."""
        return True

    def forget(self) -> None:
        """Nothing is held apart from the rows."""


def _row(pool: Pool) -> dict[str, Any]:
    values = {name: getattr(pool, name) for name in _COLUMNS}
    values["window_counts"] = json.dumps([list(c) for c in pool.window_counts])
    return values


def _pool(row: Any) -> Pool:
    values = {name: getattr(row, name) for name in _COLUMNS}
    for name in ("spent", "pending", "held_until", "updated_at"):
        values[name] = float(values[name] or 0.0)
    values["spend_scale"] = float(values["spend_scale"] if values["spend_scale"] is not None else 1)
    for name in ("without_r", "near_limit"):
        values[name] = bool(values[name])
    counts = json.loads(values["window_counts"] or "[]")
    values["window_counts"] = tuple((str(op), int(k), int(x)) for op, k, x in counts)
    return Pool(**values)
