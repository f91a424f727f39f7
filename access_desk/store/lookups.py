"""The lookup cache: user objects a caller was shown, and ids not found, per (installation, caller).

``lookupUsers`` answers ids fetched for the same caller in the last ``LOOKUP_CACHE_SECONDS`` from
here, shared by every worker and instance, without asking Confluence again (docs/contract.md §6).
Rows are keyed by installation, caller and account id, and read only with all three: one person's
lookup is never answered with what another person was shown (Confluence enforces profile
visibility per caller).

Bounded per caller, so no caller can make the database grow (``CacheRoom``): at most
``CALLER_USERS`` fresh user objects (``lookup_cache``) and ``CALLER_MISSES`` fresh ids Confluence
did not find (``lookup_misses``: the id alone, no user object); what does not fit is not cached
(it is asked again next time). A store counts a caller's rows in full once a minute, and in
between only the rows written since (``_room``: a caller's count costs what they wrote lately,
not the up to 20,000 rows they have). The resolver checks an id's form before anything reaches here.

When Confluence refuses a caller (401/403/404), ``drop_cached_lookups`` deletes the caller's rows, so
nothing they were shown before is served again. Expired rows are never read; a write deletes them
when this store has not done so for a minute (or for ``max_age``, when shorter);
``store.personal_data.erase_accounts`` deletes the rows of erased accounts (as the looked-up user or
as the caller). Nothing is written for an uninstalled installation, whose erasure may have run
(``_uninstalled``). A cache write the database refuses is logged and skipped: the answer stands.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.base import StoreBase, dialect_insert
from access_desk.store.tables import installations, lookup_cache, lookup_misses

log = logging.getLogger(__name__)

_BATCH = 500  # ids per IN (...) query
_RECOUNT_SECONDS = 60.0  # a caller's fresh rows are counted in full at most this often per store
# how much earlier than the write a written row's time may be: an answer kept back for a batch
# (store.batched_lookups), another host's clock
_COUNT_SLACK = 30.0
_SWEEP_SECONDS = 60.0  # a store deletes expired rows at most this often (and once per max_age)
CALLER_USERS = 20_000  # fresh user objects cached per caller
CALLER_MISSES = 1_000  # fresh not-found ids cached per caller


def _fresh_query() -> sa.Select[Any]:
    """How many user objects and not-found ids a caller (``p_iid``, ``p_caller``) has cached
    after ``p_since``: read from the index by caller and time alone."""

    def fresh(table: sa.Table) -> sa.ScalarSelect[Any]:
        return (
            sa.select(sa.func.count())
            .where(
                table.c.installation_id == sa.bindparam("p_iid"),
                table.c.caller == sa.bindparam("p_caller"),
                table.c.cached_at > sa.bindparam("p_since"),
            )
            .scalar_subquery()
        )

    return sa.select(fresh(lookup_cache), fresh(lookup_misses))


_FRESH = _fresh_query()


@dataclass(slots=True)
class CacheRoom:
    """How many more user objects and not-found ids one caller may have cached now (a write
    takes what it writes from it)."""

    users: int
    misses: int


@dataclass(slots=True)
class CallerAnswers:
    """What one caller was shown at ``now``: user objects by id (``found``) and ids not found
    (``missing``: none of them in ``found``)."""

    installation_id: str
    caller: str
    found: dict[str, dict[str, Any]]
    missing: list[str]
    now: float

    @classmethod
    def of(
        cls,
        installation_id: str,
        caller: str,
        users: Sequence[dict[str, Any]],
        not_found: Sequence[str],
        now: float,
    ) -> CallerAnswers:
        found: dict[str, dict[str, Any]] = {}
        for user in users:
            account_id = user.get("accountId")
            if isinstance(account_id, str) and account_id:
                found.setdefault(account_id, user)
        missing = [a for a in dict.fromkeys(not_found) if a not in found]
        return cls(installation_id, caller, found, missing, now)


def _by_key(table: sa.Table, user: Any, miss: bool) -> sa.Select[Any]:
    return sa.select(
        table.c.account_id, user, table.c.cached_at, sa.literal(miss).label("miss")
    ).where(
        table.c.installation_id == sa.bindparam("iid"),
        table.c.caller == sa.bindparam("caller"),
        table.c.account_id.in_(sa.bindparam("ids", expanding=True)),
    )


# built once (a panel's lookup reads it every call): both tables by key alone (the freshness is
# checked by the reader: a condition on cached_at would let a database read the caller's fresh
# rows instead of the ids asked for)
_BY_KEY = sa.union_all(
    _by_key(lookup_cache, lookup_cache.c.user, False),
    _by_key(lookup_misses, sa.null(), True),
)


class LookupCache(StoreBase):
    """Cached user objects and not-found ids per (installation, caller); see the module docstring."""

    _lookup_swept_at = float("-inf")  # when this store last deleted expired rows (its clock)

    def cached_users(
        self, installation_id: str, caller: str, account_ids: Sequence[str], max_age: float
    ) -> dict[str, dict[str, Any] | None]:
        """The cached answers younger than ``max_age`` seconds for these ids (id -> user object,
        or None for "not found"); ids without one are left out.

        Up to ``_BATCH`` distinct ids (a panel's lookup): one query reads both tables by key.
        More (a bulk lookup): one indexed query first lists the caller's fresh not-found ids and
        fresh user ids (at most one more than asked for): a caller with none (a cold cache)
        costs that one query, and a caller with fewer fresh rows than ids asked for has only
        the ids in both read back. Otherwise the ids are read by key in ``IN (...)`` batches."""
        if max_age <= 0 or not account_ids:
            return {}
        since = self._clock() - max_age
        ids = list(dict.fromkeys(account_ids))
        found: dict[str, dict[str, Any] | None] = {}
        if len(ids) <= _BATCH:  # by key alone (_BY_KEY), the freshness checked here
            misses: list[str] = []
            with self.engine.connect() as conn:
                keys = {"iid": installation_id, "caller": caller, "ids": ids}
                for account_id, user, cached_at, miss in conn.execute(_BY_KEY, keys):
                    if cached_at <= since:
                        continue
                    if miss:
                        misses.append(account_id)
                    elif isinstance(user, dict):
                        found[account_id] = user
            for account_id in misses:  # a not-found answer stands over a user object
                found[account_id] = None
            return found
        mine = (
            lookup_cache.c.installation_id == installation_id,
            lookup_cache.c.caller == caller,
            lookup_cache.c.cached_at > since,
        )
        missed_where = (
            lookup_misses.c.installation_id == installation_id,
            lookup_misses.c.caller == caller,
            lookup_misses.c.cached_at > since,
        )
        missed = sa.select(lookup_misses.c.account_id, sa.literal(True).label("miss")).where(
            *missed_where
        )
        fresh = sa.select(lookup_cache.c.account_id).where(*mine).limit(len(ids) + 1).subquery()
        listed = sa.union_all(
            missed, sa.select(fresh.c.account_id, sa.literal(False).label("miss"))
        )
        with self.engine.connect() as conn:
            known: set[str] = set()
            wanted = set(ids)
            for account_id, miss in conn.execute(listed):
                if not miss:
                    known.add(account_id)
                elif account_id in wanted:
                    found[account_id] = None
            complete = len(known) <= len(ids)  # every fresh user id of this caller was listed
            ids = [i for i in ids if i not in found]
            if complete:  # read only the overlap
                ids = [i for i in ids if i in known]
            for start in range(0, len(ids), _BATCH):
                rows = conn.execute(  # by key, freshness checked here (as above)
                    sa.select(
                        lookup_cache.c.account_id, lookup_cache.c.user, lookup_cache.c.cached_at
                    ).where(*mine[:2], lookup_cache.c.account_id.in_(ids[start : start + _BATCH]))
                )
                for row in rows:
                    if row.cached_at > since and isinstance(row.user, dict):
                        found[row.account_id] = row.user
        return found

    def _room(
        self, conn: Connection, installation_id: str, caller: str, max_age: float, oldest: float
    ) -> CacheRoom:
        """The caller's room, from a count of their fresh rows that is never short. In full at
        most every ``_RECOUNT_SECONDS`` per store (it reads every fresh row of the caller: up to
        ``CALLER_USERS``); in between, that count plus the rows written since it, read from the
        index by time (a row written since carries a time at most ``_COUNT_SLACK`` earlier, or
        ``oldest``, the oldest answer this write holds). Rows that expired or were deleted
        since are still counted until the next full count: room is only ever underestimated."""
        now = self._clock()
        key = (installation_id, caller)
        counted = self._counted
        known = counted.get(key)
        if known is None or now - known[0] >= _RECOUNT_SECONDS:
            users, misses = self._fresh(conn, installation_id, caller, now - max_age)
            counted[key] = (now, users, misses)
        else:
            at, users, misses = known
            since = max(min(at - _COUNT_SLACK, oldest), now - max_age)
            new_users, new_misses = self._fresh(conn, installation_id, caller, since)
            users, misses = users + new_users, misses + new_misses
        return CacheRoom(max(0, CALLER_USERS - users), max(0, CALLER_MISSES - misses))

    @functools.cached_property
    def _counted(self) -> dict[tuple[str, str], tuple[float, int, int]]:
        """The last full count of each caller's fresh rows: (when, users, misses)."""
        return {}

    def _fresh(
        self, conn: Connection, installation_id: str, caller: str, since: float
    ) -> tuple[int, int]:
        """How many user objects and not-found ids the caller has cached after ``since``."""
        users, misses = conn.execute(
            _FRESH, {"p_iid": installation_id, "p_caller": caller, "p_since": since}
        ).one()
        return int(users), int(misses)

    def cache_users(
        self,
        installation_id: str,
        caller: str,
        users: Sequence[dict[str, Any]],
        not_found: Sequence[str],
        max_age: float,
    ) -> None:
        """Remember what ``caller`` was shown now (users by their ``accountId``, and ids not
        found) as far as their room allows, in a batch of its own (``cache_batch``). Never raises
        for the database's sake: a refused write is logged."""
        answers = CallerAnswers.of(installation_id, caller, users, not_found, self._clock())
        try:
            self.cache_batch([answers], max_age)
        except sa.exc.SQLAlchemyError:
            log.exception("lookup cache write failed", extra={"installation": installation_id})

    def drop_cached_lookups(self, installation_id: str, caller: str) -> int:
        """Forget everything ``caller`` was shown (Confluence refused them); how many rows went."""
        dropped = 0
        with self.engine.begin() as conn:
            for table in (lookup_cache, lookup_misses):
                done = conn.execute(
                    sa.delete(table).where(
                        table.c.installation_id == installation_id, table.c.caller == caller
                    )
                )
                dropped += int(done.rowcount)
        return dropped

    def cache_batch(self, batch: Sequence[CallerAnswers], max_age: float) -> None:
        """Write several callers' answers in one transaction (``store.batched_lookups``), each
        as far as its caller's room allows (counted here), each at its own ``cached_at``; and
        delete expired rows when due. Raises for the database's sake (the caller logs it)."""
        if max_age <= 0 or not batch:
            return
        oldest = min(answers.now for answers in batch)
        with self.engine.begin() as conn:
            gone = self._uninstalled(conn, {answers.installation_id for answers in batch})
            self._sweep(conn, max_age)
            for answers in batch:
                if answers.installation_id not in gone and (answers.found or answers.missing):
                    room = self._room(
                        conn, answers.installation_id, answers.caller, max_age, oldest
                    )
                    self._write(conn, answers, room)

    def _uninstalled(self, conn: Connection, installation_ids: set[str]) -> set[str]:
        """Which of these installations are uninstalled: their answers are not written, since
        the erasure that follows an uninstall may already have run. On PostgreSQL the rows are
        locked for share until the write commits, so an uninstall waits for it (and its erasure
        then finds what it wrote)."""
        rows = conn.execute(
            sa.select(installations.c.installation_id, installations.c.uninstalled_at)
            .where(installations.c.installation_id.in_(installation_ids))
            .order_by(installations.c.installation_id)
            .with_for_update(read=True)
        )
        return {row.installation_id for row in rows if row.uninstalled_at is not None}

    def _sweep(self, conn: Connection, max_age: float) -> None:
        """Delete expired rows, when this store has not for a minute (or for ``max_age``)."""
        now = self._clock()
        if now - self._lookup_swept_at < min(max_age, _SWEEP_SECONDS):
            return
        self._lookup_swept_at = now
        counted = self._counted
        for key, (at, _, _) in list(counted.items()):
            if now - at >= _RECOUNT_SECONDS:
                del counted[key]
        for table in (lookup_cache, lookup_misses):
            conn.execute(sa.delete(table).where(table.c.cached_at <= now - max_age))

    def _write(self, conn: Connection, answers: CallerAnswers, room: CacheRoom) -> None:
        """One caller's answers, as far as ``room`` allows (which they then take from)."""
        found = dict(list(answers.found.items())[: room.users])
        missing = answers.missing[: room.misses]
        room.users -= len(found)
        room.misses -= len(missing)
        installation_id, caller = answers.installation_id, answers.caller
        key = {"installation_id": installation_id, "caller": caller, "cached_at": answers.now}
        index = ["installation_id", "caller", "account_id"]
        # an id is either found or not: its other row (an older answer) goes
        for table, ids in ((lookup_misses, list(found)), (lookup_cache, missing)):
            for start in range(0, len(ids), _BATCH):
                conn.execute(
                    sa.delete(table).where(
                        table.c.installation_id == installation_id,
                        table.c.caller == caller,
                        table.c.account_id.in_(ids[start : start + _BATCH]),
                    )
                )
        if found:
            stmt = dialect_insert(conn, lookup_cache)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=index,
                    set_={"user": stmt.excluded.user, "cached_at": stmt.excluded.cached_at},
                ),
                [{**key, "account_id": a, "user": u} for a, u in found.items()],
            )
        if missing:
            stmt = dialect_insert(conn, lookup_misses)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=index, set_={"cached_at": stmt.excluded.cached_at}
                ),
                [{**key, "account_id": a} for a in missing],
            )
