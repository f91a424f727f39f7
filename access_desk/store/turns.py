"""Fair turns between installations on the shared quota pool (``quota_turns``): when each
installation's job work was last served, and when it next has job work (``work_at``).

``work_at`` lets the background worker's claim list the installations with work, in turn, from
one partial index, whatever the number of queued jobs (``store.leases``). It is kept so that it
is never later than the installation's work: every write that gives an installation work (a new
job; a follow-up set) brings it forward in the same transaction, after the job's own write. Work
that ends is noticed later, by the claim that finds nothing runnable there (``store.leases``
settles it), so no path that ends work has to remember it; until then the installation is only
looked at.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from access_desk.store.base import insert_for
from access_desk.store.tables import quota_turns


@functools.cache
def served(dialect: str) -> Any:
    """The statement that marks an installation's job work served now; parameters ``p_iid``,
    ``p_now``. Built once per dialect."""
    insert = insert_for(dialect, quota_turns)
    return insert.values(
        installation_id=sa.bindparam("p_iid"), served_at=sa.bindparam("p_now")
    ).on_conflict_do_update(
        index_elements=["installation_id"], set_={"served_at": insert.excluded.served_at}
    )


@functools.cache
def _work(dialect: str) -> Any:
    insert = insert_for(dialect, quota_turns)
    kept, new = quota_turns.c.work_at, insert.excluded.work_at
    return insert.values(
        installation_id=sa.bindparam("p_iid"), served_at=0.0, work_at=sa.bindparam("p_at")
    ).on_conflict_do_update(
        index_elements=["installation_id"],
        set_={"work_at": sa.case((sa.or_(kept.is_(None), new < kept), new), else_=kept)},
    )


def note_work(conn: Connection, installation_id: str, at: float) -> None:
    """The installation has job work from ``at`` on (a new job: now; a follow-up: when due):
    its ``work_at`` comes forward to ``at`` if later. Call it inside the transaction that wrote
    the work, after that write (settling relies on the order). An installation never
    served gets its row here, served at 0 (first in turn)."""
    conn.execute(_work(conn.dialect.name), {"p_iid": installation_id, "p_at": at})
