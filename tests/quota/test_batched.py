"""The quota ledger's writes in batches (``quota.batched``), on SQLite and, when
``TEST_POSTGRES_URL`` is set, on PostgreSQL. "Two processes" are two ``BatchedQuota`` objects over
two ``Store`` objects on one database, as two gunicorn workers are.

- A process's reservations reach the store at its flush, once per row, and the store then holds
  exactly what writing each change at once would have: rows, spend, learned costs.
- Another process sees them after that flush; holds, and every change of a pool close to a line
  the rules draw (under 40% left), are written at once.
- What could not be written is kept and written later, exactly once; ``then`` runs on the row as
  written (learning reads the shared row, not a view).
- The flushing thread writes without being asked and ends when idle; a process's exit writes
  what is kept back.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from access_desk import flusher
from access_desk.quota import batched
from access_desk.quota.batched import BatchedQuota
from access_desk.quota.ledger import Ledger, Payer
from access_desk.quota.pools import APP, Pool
from access_desk.store import Store
from tests.support.stores import KEY, Clock

SITE = "https://api.example.test/ex/confluence/site-1"
OTHER = "https://api.example.test/ex/confluence/site-2"
ADMIN = Payer("inst-1", "admin-1")


def headers(r: int | None = None, q: int = 100_000) -> dict[str, str]:
    """An answer's quota headers: the app pool of ``q`` points an hour, ``r`` when given."""
    state = '"global-app-quota"' + (f";r={r}" if r is not None else "") + ";t=600"
    return {"RateLimit-Policy": f'"global-app-quota";q={q};w=3600', "RateLimit": state}


def ledger_on(storage: Any, clock: Clock) -> Ledger:
    return Ledger(storage, clock=clock, cache_seconds=0.0)


def calls(ledger: Ledger, n: int, r: int | None = None) -> None:
    """``n`` panel lookups of 10 users, each admitted and settled (answers with ``r`` if given)."""
    for _ in range(n):
        admission = ledger.admit(SITE, "users_bulk", 10, background=False, payer=ADMIN)
        assert admission.wait == 0.0
        ledger.settle(SITE, admission, 200, headers(r), 10)


def state(store: Store) -> tuple[Pool, tuple[float, float]]:
    row = store.quota_pools([APP])[APP]
    window = row.window_id
    return replace(row, version=0, updated_at=0.0), store.spend_of(APP, window, "inst-1", "admin-1")


def test_a_batch_writes_what_writing_each_change_at_once_would(
    db_url: str, clock: Clock, store: Store, tmp_path: Path
) -> None:
    at_once = Store(f"sqlite:///{tmp_path / 'at-once.sqlite3'}", KEY, clock=clock)
    at_once.migrate()
    try:
        for target in (store, at_once):
            ledger_on(target, clock).settle(SITE, None, 200, headers())  # the pool is known
        kept = BatchedQuota(store, background=False)
        batched_ledger, direct = ledger_on(kept, clock), ledger_on(at_once, clock)
        for ledger in (batched_ledger, direct):
            calls(ledger, 5)
        before = store.quota_pools([APP])[APP]
        assert before.spent == 0.0 and before.pending == 0.0  # nothing written yet
        assert kept.has_kept()
        assert kept.flush() and not kept.has_kept()
        assert store.quota_pools([APP])[APP].version == before.version + 1  # one write a row
        assert state(store) == state(at_once)
        assert state(store)[0].spent > 0 and state(store)[1][0] > 0
    finally:
        at_once.close()


def two_processes(store: Store, second: Store, clock: Clock) -> tuple[Any, Ledger, Ledger, Clock]:
    """This process's batches (``mine``), and two ledgers: this process's and another's; their
    batches' own clock (``ticks``: how old a read of the shared rows is)."""
    ticks = Clock(0.0)
    mine = BatchedQuota(store, background=False, clock=ticks)
    theirs = BatchedQuota(second, background=False, clock=ticks)
    return mine, ledger_on(mine, clock), ledger_on(theirs, clock), ticks


def test_another_process_sees_the_reservations_once_written_and_read(
    clock: Clock, store: Store, second: Store
) -> None:
    ledger_on(store, clock).settle(SITE, None, 200, headers())
    mine, a, b, ticks = two_processes(store, second, clock)
    admission = a.admit(SITE, "users_bulk", 10, background=False, payer=ADMIN)
    assert a.view(SITE, "inst-1").spent == admission.reserved > 0  # its own calls see it at once
    assert b.view(SITE, "inst-1").spent == 0 and b.view(SITE).remaining == 100_000  # not written
    assert mine.flush()
    assert b.view(SITE).remaining == 100_000  # written; b read the row less than 0.1 s ago
    ticks.now += batched.FLUSH_SECONDS  # read again once its read is that old
    assert b.view(SITE).remaining == 100_000 - admission.reserved
    assert b.view(SITE, "inst-1").spent == admission.reserved


def test_a_hold_is_written_at_once(clock: Clock, store: Store, second: Store) -> None:
    mine, a, b, ticks = two_processes(store, second, clock)
    a.settle(SITE, None, 200, headers())
    assert b.wait_seconds(OTHER) == 0.0
    a.hold(OTHER, 50.0)  # a burst 429's pause of one site; no flush asked for
    ticks.now += batched.FLUSH_SECONDS
    assert b.wait_seconds(OTHER) == pytest.approx(50.0) and b.wait_seconds(SITE) == 0.0
    a.settle(SITE, None, 429, {**headers(r=0), "Retry-After": "30"})  # a quota 429
    ticks.now += batched.FLUSH_SECONDS
    assert b.wait_seconds(SITE) == a.wait_seconds(SITE) > 0
    assert not mine.has_kept()


def test_close_to_a_line_every_change_is_written_and_read_at_once(
    clock: Clock, store: Store, second: Store
) -> None:
    ledger_on(store, clock).settle(SITE, None, 200, headers(r=50_000))  # far from the lines
    mine, a, b, ticks = two_processes(store, second, clock)
    calls(a, 1, r=49_980)
    assert b.view(SITE).remaining == 50_000 and mine.has_kept()  # kept back
    a.settle(SITE, None, 200, headers(r=39_000))  # under 40% left
    admission = a.admit(SITE, "users_bulk", 10, background=False, payer=ADMIN)
    assert not mine.has_kept()  # rows and spend: written at once
    ticks.now += batched.FLUSH_SECONDS  # b's view was far from the lines: read again
    assert b.view(SITE).remaining == 39_000 - admission.reserved  # written at once
    assert b.view(SITE, "inst-1").spent == a.view(SITE, "inst-1").spent == 42  # spend: both calls
    again = a.admit(SITE, "users_bulk", 10, background=False, payer=ADMIN)
    assert b.view(SITE).remaining == 39_000 - admission.reserved - again.reserved  # close: fresh


@pytest.mark.parametrize("reported, decided_on", [(300, 50.0), (90_000, 0.0)])
def test_near_a_line_a_change_decides_on_the_shared_row(
    store: Store, second: Store, reported: int, decided_on: float
) -> None:
    """Under 40% left, a change (an admission's decision) is made on the shared row itself,
    atomically: two processes never both take the last points on what each saw. Far from the
    lines it is made on this process's view (another process's change comes at the next read)."""
    limit = 1_000 if reported < 1_000 else 100_000
    store.change_pool(APP, lambda p: replace(p, limit=limit, reported=reported))
    kept = BatchedQuota(store, background=False)
    kept.quota_pools([APP])  # this process's view
    second.change_pool(APP, lambda p: replace(p, pending=p.pending + 50))  # another's, meanwhile
    seen: list[float] = []

    def take(row: Pool) -> Pool:
        seen.append(row.pending)
        return replace(row, pending=row.pending + 1)

    kept.change_pool(APP, take)
    assert seen[0] == decided_on
    assert kept.flush() and store.quota_pools([APP])[APP].pending == 51.0  # both, either way


def test_a_process_keeps_back_at_most_one_percent_of_a_pool(
    clock: Clock, store: Store, second: Store
) -> None:
    ledger_on(store, clock).settle(SITE, None, 200, headers(q=4_000))  # 1%: 40 points
    mine, a, b, ticks = two_processes(store, second, clock)
    first = a.admit(SITE, "users_bulk", 10, background=False, payer=ADMIN)  # 21 points
    assert b.view(SITE).remaining == 4_000 and mine.has_kept()
    second_call = a.admit(SITE, "users_bulk", 10, background=False, payer=ADMIN)  # 42 kept: over
    ticks.now += batched.FLUSH_SECONDS
    assert b.view(SITE).remaining == 4_000 - first.reserved - second_call.reserved
    assert b.view(SITE, "inst-1").spent == first.reserved  # the second's spend: the next flush


class Flaky:
    """A storage whose writes fail while ``down`` (as a database that went away would)."""

    def __init__(self, store: Store) -> None:
        self.store, self.down = store, True

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if name in ("change_pool", "add_spends", "add_cost_sample", "lower_cost_caps"):

            def failing(*args: Any, **kwargs: Any) -> Any:
                if self.down:
                    raise ConnectionError("the database went away")
                return found(*args, **kwargs)

            return failing
        return found


def test_what_could_not_be_written_is_kept_and_written_once(
    clock: Clock, store: Store, tmp_path: Path
) -> None:
    at_once = Store(f"sqlite:///{tmp_path / 'at-once.sqlite3'}", KEY, clock=clock)
    at_once.migrate()
    try:
        for target in (store, at_once):
            ledger_on(target, clock).settle(SITE, None, 200, headers())
        flaky = Flaky(store)
        kept = BatchedQuota(flaky, background=False)
        calls(ledger_on(kept, clock), 3)
        calls(ledger_on(at_once, clock), 3)
        assert not kept.flush() and kept.has_kept()  # nothing lost...
        calls(ledger_on(kept, clock), 2)  # ...and more kept meanwhile
        calls(ledger_on(at_once, clock), 2)
        flaky.down = False
        assert kept.flush() and not kept.has_kept()
        assert state(store) == state(at_once)  # ...and nothing written twice
        flaky.down = True  # and what r teaches, kept back while writes fail
        for r in (99_900, 99_800, 99_750):
            calls(ledger_on(kept, clock), 1, r=r)
            calls(ledger_on(at_once, clock), 1, r=r)
        assert not kept.flush()
        flaky.down = False
        assert kept.flush() and not kept.has_kept()
        assert store.cost_sums() == at_once.cost_sums() != {}  # learnt once, from the same rows
    finally:
        at_once.close()


def test_then_runs_on_the_row_as_written(clock: Clock, store: Store, second: Store) -> None:
    kept = BatchedQuota(store, background=False)
    seen: list[float] = []
    shown: list[float] = []

    def add_one(row: Pool) -> Pool:
        seen[:] = [row.spent]  # a side output: what the row held when the change was applied
        return replace(row, spent=row.spent + 1)

    kept.change_pool(APP, add_one, then=lambda row: shown.append(seen[0]))
    assert seen == [0.0] and shown == []  # applied to the view; not written yet
    second.change_pool(APP, lambda row: replace(row, spent=row.spent + 10))  # another process
    assert kept.flush()
    assert shown == [10.0]  # its last application was to the shared row, as written
    assert store.quota_pools([APP])[APP].spent == 11.0


def wait_for(done: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Whether ``done`` came true within ``seconds`` (polled; no timing is asserted)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if done():
            return True
        time.sleep(0.02)
    return done()


def test_the_flushing_thread_writes_unasked_and_ends_when_idle(
    clock: Clock, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flusher, "IDLE_SECONDS", 0.3)
    ledger_on(store, clock).settle(SITE, None, 200, headers())
    kept = BatchedQuota(store, flush_seconds=0.05)
    calls(ledger_on(kept, clock), 2)
    assert wait_for(lambda: store.quota_pools([APP])[APP].spent > 0)
    assert wait_for(lambda: not kept.flusher.running)  # idle: it ended
    calls(ledger_on(kept, clock), 1)  # the next change starts it again
    assert kept.flusher.running
    spent = store.quota_pools([APP])[APP].spent
    assert wait_for(lambda: store.quota_pools([APP])[APP].spent > spent)


def test_a_process_exit_writes_what_is_kept_back(db_url: str, store: Store) -> None:
    ledger_on(store, Clock()).settle(SITE, None, 200, headers())
    script = textwrap.dedent(
        f"""
        from access_desk.quota.batched import BatchedQuota
        from access_desk.quota.ledger import Ledger, Payer
        from access_desk.store import Store
        from tests.support.stores import KEY, Clock

        store = Store({db_url!r}, KEY)
        kept = BatchedQuota(store, flush_seconds=3600.0)  # no flush before the exit
        ledger = Ledger(kept, clock=Clock(), cache_seconds=0.0)
        admission = ledger.admit({SITE!r}, "users_bulk", 10, background=False, payer=Payer("i", "u"))
        assert kept.has_kept()
        """
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=60)
    assert store.quota_pools([APP])[APP].pending > 0  # the reservation reached the store
