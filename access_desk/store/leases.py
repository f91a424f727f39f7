"""Leases on jobs: a worker claims one runnable job (fair turns between installations, the jobs of a
dormant installation or of a paused acting account skipped), renews its lease and releases it.

``claim_job`` atomically takes one runnable job (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a
conditional ``UPDATE`` checked by rowcount on SQLite). The background worker's claim first lists
the installations with work in turn (``store.turns``: one partial index, whatever the number of
jobs) and looks at the jobs of those whose turn comes first, so its cost follows the turns it
reads, not every queued job; the installations it finds without work it settles (``_settle``).
Every write to a job (``store.queue``,
``store.followups``, ``renew_lease``) happens only while the caller's lease holds (``lease_held``).
Releasing a job whose cancel was asked for ends it (``store.cancels``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.cancels import end_cancelled
from access_desk.store.jobs import ACTIVE, Jobs
from access_desk.store.queue import lease_held
from access_desk.store.records import Job
from access_desk.store.tables import account_refusals, installations, jobs, quota_turns
from access_desk.store.turns import served

CANDIDATES = 32  # runnable jobs, in claim order, one claim on PostgreSQL chooses among
TURN_ROWS = 64  # installations with work read, in turn, per claim
TURN_GROUPS = 4  # turns (installations served at the same time) tried before every job at once


def _turns_query() -> sa.Select[Any]:
    """The installations with job work due (``work_at``; dormant ones left out), by their turn,
    longest ago first (never served: 0); ``p_now``. Read from the partial index of those with
    work, so its cost follows the rows read, not the jobs queued."""
    work_at = quota_turns.c.work_at
    return (
        sa.select(quota_turns.c.installation_id, quota_turns.c.served_at)
        .where(
            work_at.is_not(None),
            work_at <= sa.bindparam("p_now"),
            quota_turns.c.installation_id.not_in(_dormant()),
        )
        .order_by(quota_turns.c.served_at, quota_turns.c.installation_id)
        .limit(TURN_ROWS)
    )


_OF_TURN = jobs.c.installation_id == quota_turns.c.installation_id
# of the installations ``p_group`` (their turn came and nothing was runnable), those with no
# queued or running job
_NO_JOB_WORK = (
    quota_turns.c.installation_id.in_(sa.bindparam("p_group", expanding=True)),
    sa.not_(sa.exists().where(_OF_TURN, jobs.c.state.in_(ACTIVE))),
)
_ENDED = sa.select(quota_turns.c.installation_id).where(*_NO_JOB_WORK)
# ... whose ``work_at`` becomes their next follow-up's time (None: no work)
_SETTLE = (
    sa.update(quota_turns)
    .where(*_NO_JOB_WORK)
    .values(work_at=sa.select(sa.func.min(jobs.c.follow_up_at)).where(_OF_TURN).scalar_subquery())
)


def _turns(conn: Connection, now: float) -> list[list[str]]:
    """``_TURNS`` grouped by turn (installations served at the same time): at most
    ``TURN_GROUPS`` groups, whole ones (empty when the first is not whole)."""
    rows = conn.execute(_TURNS, {"p_now": now}).all()
    groups: list[list[str]] = []
    last: float | None = None
    for installation, served_at in rows:
        if served_at != last:
            groups.append([])
            last = served_at
        groups[-1].append(installation)
    if len(rows) == TURN_ROWS:  # the last group may go on past the rows read
        groups.pop()
    return groups[:TURN_GROUPS]


def _dormant() -> sa.Select[tuple[str]]:
    """The quiet installations (dormant: Forge no longer invokes them)."""
    return sa.select(installations.c.installation_id).where(
        installations.c.dormant_since.is_not(None), installations.c.dormant_reason == "quiet"
    )


def _awake() -> sa.ColumnElement[bool]:
    """The job's installation is not quiet (dormant: Forge no longer invokes it), nor its acting
    account paused (``dormancy``; an installation dormant because its site refuses every call has
    all of its recent accounts paused, and another admin's job may still try)."""
    dormant = _dormant()
    paused = sa.exists().where(
        account_refusals.c.installation_id == jobs.c.installation_id,
        account_refusals.c.account_id == jobs.c.created_by,
        account_refusals.c.paused_since.is_not(None),
    )
    return sa.and_(jobs.c.installation_id.not_in(dormant), sa.not_(paused))


@dataclass(frozen=True)
class _Claim:
    """One variant of the claim's statements, built once (``_claim``): ``pick`` the candidates
    (PostgreSQL: the first one nobody holds, locked), ``take`` leases one (``p_id``)."""

    pick: Any
    take: Any


@functools.cache
def _claim(*, by_job: bool, by_installation: bool, in_group: bool, postgres: bool) -> _Claim:
    """The claim's statements for a job id given or not, an installation given or not, the
    installations of one turn (``p_group``) or not; parameters ``p_now``, ``p_worker``,
    ``p_until``, ``p_job``, ``p_iid``, ``p_group``, ``p_id``."""
    now: Any = sa.bindparam("p_now")
    free = sa.or_(
        jobs.c.lease_owner.is_(None), jobs.c.lease_until.is_(None), jobs.c.lease_until <= now
    )
    if by_job:
        free = sa.or_(free, jobs.c.lease_owner == sa.bindparam("p_worker"))
    runnable = sa.and_(
        sa.or_(jobs.c.state.in_(ACTIVE), jobs.c.follow_up_at <= now),  # work, or a follow-up
        sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
        free,
    )
    if by_installation:
        runnable = sa.and_(runnable, jobs.c.installation_id == sa.bindparam("p_iid"))
    if by_job:
        runnable = sa.and_(runnable, jobs.c.id == sa.bindparam("p_job"))
    else:  # the background worker: a dormant installation's jobs wait and spend nothing
        runnable = sa.and_(runnable, _awake())
    if in_group:
        runnable = sa.and_(
            runnable, jobs.c.installation_id.in_(sa.bindparam("p_group", expanding=True))
        )
    values: dict[str, Any] = {
        "lease_owner": sa.bindparam("p_worker"),
        "lease_until": sa.bindparam("p_until"),
        "state": sa.case((jobs.c.state == "queued", "running"), else_=jobs.c.state),
        "not_before": None,
        "wait_reason": None,
    }
    candidates = (
        sa.select(jobs.c.id, jobs.c.installation_id)
        .select_from(
            jobs.outerjoin(quota_turns, quota_turns.c.installation_id == jobs.c.installation_id)
        )
        .where(runnable)
        .order_by(sa.func.coalesce(quota_turns.c.served_at, 0.0), jobs.c.created_at, jobs.c.id)
    )
    by_id = jobs.c.id == sa.bindparam("p_id")
    if postgres:
        # The order is read without a lock (a top-N sort, nothing locked); then the first of
        # those candidates nobody else holds is locked (FOR UPDATE SKIP LOCKED over at most
        # CANDIDATES rows, read by key) and taken.
        top = candidates.limit(CANDIDATES).subquery()
        pick = (
            candidates.where(jobs.c.id.in_(sa.select(top.c.id)))
            .limit(1)
            .with_for_update(skip_locked=True, of=jobs)
        )
        return _Claim(pick, sa.update(jobs).where(by_id).values(values))
    # SQLite serializes writers: the conditional UPDATE is the atomic step, and rowcount says
    # whether we won.
    return _Claim(candidates.limit(8), sa.update(jobs).where(by_id, runnable).values(values))


_TURNS = _turns_query()
# PostgreSQL: the rows to settle locked first (in key order), so the settling statement's reads
# see every job whose transaction brought work_at forward (store.turns.note_work) before it
_LOCK_TURNS = (
    sa.select(quota_turns.c.installation_id)
    .where(quota_turns.c.installation_id.in_(sa.bindparam("p_group", expanding=True)))
    .order_by(quota_turns.c.installation_id)
    .with_for_update()
)


class Leases(Jobs):
    """Claiming, renewing and releasing the lease on a job."""

    def claim_job(
        self,
        worker_id: str,
        lease_seconds: float,
        *,
        installation_id: str | None = None,
        job_id: str | None = None,
    ) -> Job | None:
        """Lease ONE runnable job to ``worker_id`` and return it (without items): the job of the
        installation served longest ago (``quota_turns``: fair turns on a shared quota pool), then
        oldest first.

        Runnable: ``queued`` or ``running`` or a follow-up due, ``not_before`` passed, and no lease or
        an expired lease (a crashed worker's); when ``job_id`` is given, also a lease already held by
        ``worker_id`` (the claim then renews it). Without ``job_id`` (the background worker), jobs
        of a dormant installation, or acting as a paused account (``dormancy``), are not runnable.
        A ``queued`` job becomes ``running``, its ``not_before`` is cleared, and its installation is
        marked served now. None when nothing is runnable.
        """
        now = self._clock()
        params: dict[str, Any] = {
            "p_now": now,
            "p_worker": worker_id,
            "p_until": now + lease_seconds,
            "p_job": job_id,
            "p_iid": installation_id,
        }
        postgres = not self._sqlite

        def variant(in_group: bool) -> _Claim:
            by_job, by_installation = job_id is not None, installation_id is not None
            return _claim(
                by_job=by_job, by_installation=by_installation, in_group=in_group, postgres=postgres
            )

        # One connection and one transaction for the whole claim (on SQLite the transaction
        # begins with the first write, so its reads come first, unlocked).
        idle: list[str] = []  # installations whose turn came with nothing runnable
        with self.engine.begin() as conn:
            claimed: tuple[str, str] | None = None
            if job_id is None and installation_id is None:
                # The background worker: the installations with work, in turn, first (read
                # from an index), then the runnable jobs of the installations whose turn comes
                # first; only when the first few turns have nothing runnable (all held back,
                # say), every runnable job at once.
                for group in _turns(conn, now):
                    claimed = self._claim_first(conn, variant(True), {**params, "p_group": group})
                    if claimed is not None:
                        break
                    idle.extend(group)
            if claimed is None:
                claimed = self._claim_first(conn, variant(False), params)
            job = None if claimed is None else self._read_job(conn, *claimed, items=False)
        if idle:
            self._settle(idle)
        return job

    def _settle(self, installations: list[str]) -> None:
        """Installations whose work ended leave the turns (``store.turns``): in a transaction of
        its own, after the claim's. Those whose jobs are only held back (a hold, a lease) are
        read and left as they are."""
        with self.engine.begin() as conn:
            ended = conn.execute(_ENDED, {"p_group": installations}).scalars().all()
            if not ended:
                return
            if not self._sqlite:
                conn.execute(_LOCK_TURNS, {"p_group": ended})
            conn.execute(_SETTLE, {"p_group": ended})

    def _claim_first(
        self, conn: Connection, claim: _Claim, params: dict[str, Any]
    ) -> tuple[str, str] | None:
        """Lease the first runnable job in claim order (the installation served longest ago,
        then the oldest job); its (installation, id), or None."""
        rows = conn.execute(claim.pick, params).all()
        for row in rows:
            won = conn.execute(claim.take, {**params, "p_id": row.id})
            if won.rowcount == 1:
                turn = {"p_iid": row.installation_id, "p_now": params["p_now"]}
                conn.execute(served(conn.dialect.name), turn)
                return (row.installation_id, row.id)
        return None

    def waiting_elsewhere(self, installation_id: str) -> bool:
        """Whether another installation has a job the background worker could claim now (the
        worker then ends its step after the chunk in flight: turns go chunk by chunk). One
        statement of three probes, each read in an index's order (queued, running, follow-ups
        due), so it reads active jobs, never every job."""
        now = self._clock()
        claimable = (
            jobs.c.installation_id != installation_id,
            sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
            sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until <= now),
            _awake(),
        )
        probes = [
            sa.select(jobs.c.id)
            .where(jobs.c.state == state, *claimable)
            .order_by(jobs.c.state, jobs.c.created_at)
            .limit(1)
            .subquery()
            for state in ACTIVE
        ]
        probes.append(
            sa.select(jobs.c.id)
            .where(jobs.c.follow_up_at <= now, *claimable)
            .order_by(jobs.c.follow_up_at)
            .limit(1)
            .subquery()
        )
        found = sa.union_all(*(sa.select(p.c.id) for p in probes)).subquery()
        with self.engine.connect() as conn:
            return conn.execute(sa.select(found.c.id).limit(1)).first() is not None

    def renew_lease(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend a lease still held by ``worker_id``; False when it was lost (or expired)."""
        now = self._clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(lease_held(job_id, worker_id, now))
                .values(lease_until=now + lease_seconds)
            )
            return done.rowcount == 1

    def release_job(
        self,
        job_id: str,
        worker_id: str,
        *,
        not_before: float | None = None,
        wait_reason: str | None = None,
    ) -> bool:
        """Give up ``worker_id``'s lease; ``not_before`` (epoch) delays the next claim, and
        ``wait_reason`` says why (``Job.wait_reason``). A job whose cancel was asked for ends now
        (see ``request_cancel``)."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if not_before is not None:
            values["not_before"] = not_before
            values["wait_reason"] = wait_reason
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == worker_id)
                .values(values)
            )
            if done.rowcount != 1:
                return False
            end_cancelled(conn, job_id, self._clock(), sa.true(), self._follow_up_after[0])
            return True
