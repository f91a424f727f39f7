"""The store's queries rewritten for Marketplace scale (issue 18, ``bench/scale.py``) keep their
behaviour on every database: the fair-turn check sees every kind of claimable work and nothing
else, an installation never triggered turns quiet 72 hours after it was created, a claim skips a
job another transaction holds and takes the next in turn; and a panel call reads the admin check's
record once, a warm lookup the cache with one statement."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from access_desk.duties.dormancy import QUIET_SECONDS
from access_desk.store import Store
from access_desk.store.base import FOLLOW_UP_AFTER
from access_desk.store.tables import quota_turns
from tests.conftest import Backend
from tests.support.stores import KEY, Clock, fresh_database

A, B = "inst-a", "inst-b"


def job(store: Store, installation_id: str, email: str, created_by: str = "u") -> str:
    return store.create_job(
        installation_id, source="panel", dry_run=False, created_by=created_by, emails=[email]
    ).id


def test_the_fair_turn_check_sees_each_kind_of_claimable_work_elsewhere(
    store: Store, clock: Clock
) -> None:
    """Queued, running with its lease run out, a follow-up due: each counts when another
    installation has it; a lease held, a job waiting (not_before), a dormant installation's or
    a paused account's job, or only the asking installation's own work, does not."""
    job(store, A, "a@x.io")
    assert not store.waiting_elsewhere(A)  # only its own work
    assert store.waiting_elsewhere(B)

    queued = job(store, B, "b@x.io")
    assert store.waiting_elsewhere(A)
    held = store.claim_job("w", 60, job_id=queued)
    assert held is not None and held.state == "running"
    assert not store.waiting_elsewhere(A)  # running, its lease held
    clock.advance(61)
    assert store.waiting_elsewhere(A)  # running, its lease run out

    store.release_job(queued, "w", not_before=clock() + 30, wait_reason="rate_limited")
    assert not store.waiting_elsewhere(A)  # waiting
    clock.advance(31)
    assert store.waiting_elsewhere(A)

    store.upsert_installation(B, cloud_id="c-b", api_base_url="https://x.example/ex/confluence/b")
    clock.advance(QUIET_SECONDS + 1)
    store.note_scheduled_trigger(A, report_every_seconds=7 * 86400)
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == [B]
    assert not store.waiting_elsewhere(A)  # a dormant installation's job
    assert store.resume_installation(B)
    assert store.waiting_elsewhere(A)

    for _ in range(10):
        store.note_account_answer(
            B, "u", refused=True, refusals_to_pause=10, span_seconds=0, recent_seconds=86400
        )
    assert not store.waiting_elsewhere(A)  # a paused account's job


def test_a_follow_up_due_elsewhere_counts_as_claimable_work(store: Store, clock: Clock) -> None:
    done = job(store, B, "b@x.io")
    claimed = store.claim_job("w", 60, job_id=done)
    assert claimed is not None
    with store.engine.begin() as conn:  # the job ended and its follow-up comes in an hour
        conn.execute(
            sa.text(
                "UPDATE jobs SET state = 'done', pending = 0, lease_owner = NULL, "
                "lease_until = NULL, follow_up_at = :due WHERE id = :id"
            ),
            {"due": clock() + 3600, "id": done},
        )
    assert not store.waiting_elsewhere(A)
    clock.advance(3601)
    assert store.waiting_elsewhere(A)


def test_an_installation_never_triggered_turns_dormant_72_hours_after_it_was_created(
    store: Store, clock: Clock
) -> None:
    store.upsert_installation(A, cloud_id="c-a", api_base_url="https://x.example/ex/confluence/a")
    clock.advance(QUIET_SECONDS - 10)
    store.upsert_installation(B, cloud_id="c-b", api_base_url="https://x.example/ex/confluence/b")
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == []
    clock.advance(11)
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == [A]
    store.note_scheduled_trigger(B, report_every_seconds=7 * 86400)  # a trigger at last
    clock.advance(QUIET_SECONDS - 1)
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == []
    clock.advance(2)
    assert store.mark_quiet_installations_dormant(QUIET_SECONDS) == [B]


@pytest.fixture()
def postgres_store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    if not os.environ.get("TEST_POSTGRES_URL"):
        pytest.fail("TEST_POSTGRES_URL is not set: run ./test, which starts a private PostgreSQL")
    with fresh_database("postgres", tmp_path) as url:
        store = Store(url, KEY, clock=clock)
        store.migrate()
        try:
            yield store
        finally:
            store.close()


@pytest.mark.postgres
def test_a_claim_takes_the_next_job_in_turn_when_another_transaction_holds_the_first(
    postgres_store: Store, clock: Clock
) -> None:
    store = postgres_store
    first = job(store, A, "a@x.io")
    clock.advance(1)
    second = job(store, B, "b@x.io")
    with store.engine.connect() as other:  # another worker's claim in flight holds the first
        other.execute(sa.text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": first})
        claimed = store.claim_job("w", 60)
        assert claimed is not None and claimed.id == second
        other.rollback()
    again = store.claim_job("w2", 60)
    assert again is not None and again.id == first


def statements(backend: Backend) -> Counter[str]:
    """Counts, by table named, of the statements the app's store sends from now on."""
    engine = backend.client.application.extensions["access_desk"].store.engine
    seen: Counter[str] = Counter()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        for table in ("admin_checks", "lookup_cache", "lookup_misses"):
            if table in sql:
                seen[table] += 1
        seen["all"] += 1

    return seen


def test_a_panel_call_reads_the_admin_record_once_and_a_warm_lookup_the_cache_once(
    backend_on_each_db: Backend,
) -> None:
    """A process reads a caller's admin record once a second (``AdminCache.known``), so a warm
    lookup within it is one statement: the cache read."""
    backend = backend_on_each_db
    ids = backend.platform.installation.site.user_ids[:3]
    admins = backend.client.application.extensions["access_desk"].admins
    for key, payload in (("whoami", {}), ("lookupUsers", {"accountIds": ids})):
        assert backend.call(key, payload).status_code == 200  # the admin check, the cache filled
    seen = statements(backend)
    admins._memo.clear()  # as a second later
    answer = backend.call("whoami")
    assert answer.status_code == 200 and answer.get_json()["isAdmin"] is True
    assert seen["admin_checks"] == 1
    seen.clear()
    answer = backend.call("lookupUsers", {"accountIds": ids})
    assert answer.status_code == 200
    assert [u["accountId"] for u in answer.get_json()["users"]] == ids
    assert (seen["admin_checks"], seen["lookup_cache"], seen["all"]) == (0, 1, 1)


def test_a_claim_finds_runnable_work_behind_turns_that_have_none(
    store: Store, clock: Clock
) -> None:
    """The first turns (installations served longest ago) hold only jobs waiting out a hold: the
    claim goes on to an installation served later rather than finding nothing."""
    waiting = [job(store, f"inst-{n}", f"w{n}@x.io") for n in range(6)]
    for job_id in waiting:  # each served once, in turn, then held back
        clock.advance(1)
        claimed = store.claim_job("w", 60, job_id=job_id)
        assert claimed is not None
        store.release_job(job_id, "w", not_before=clock() + 3600, wait_reason="rate_limited")
    clock.advance(1)
    late = job(store, "inst-late", "late@x.io")
    claimed = store.claim_job("w", 60, job_id=late)  # served last of all
    assert claimed is not None
    store.release_job(late, "w")
    taken = store.claim_job("w", 60)
    assert taken is not None and taken.id == late


def test_among_many_installations_never_served_the_oldest_job_goes_first(
    store: Store, clock: Clock
) -> None:
    """Seventy installations, none served yet (one turn for all): the oldest job of all goes
    first, whichever installation it belongs to."""
    oldest = job(store, "inst-zz", "first@x.io")
    for n in range(70):
        clock.advance(1)
        job(store, f"inst-{n:02d}", f"later{n}@x.io")
    taken = store.claim_job("w", 60)
    assert taken is not None and taken.id == oldest
    store.release_job(oldest, "w")
    clock.advance(1)
    after = store.claim_job("w", 60)  # inst-zz was served now: the next oldest goes
    assert after is not None and after.installation_id == "inst-00"


def work_at(store: Store, installation_id: str) -> float | None:
    """From when the installation has job work, as its turn row says (``store.turns``)."""
    with store.engine.connect() as conn:
        found: float | None = conn.execute(
            sa.select(quota_turns.c.work_at).where(quota_turns.c.installation_id == installation_id)
        ).scalar_one_or_none()
        return found


def test_an_installation_leaves_the_turns_when_its_work_ends_and_comes_back_for_its_follow_ups(
    store: Store, clock: Clock
) -> None:
    """A new job brings its installation into the turns; once its work has ended, the first
    claim that finds nothing runnable there moves it to its next follow-up, or out."""
    made = clock()
    invited = job(store, A, "a@x.io")
    failed = job(store, B, "b@x.io")
    assert (work_at(store, A), work_at(store, B)) == (made, made)
    for installation, job_id, email, outcome in (
        (A, invited, "a@x.io", "invited"),
        (B, failed, "b@x.io", "failed"),
    ):
        assert store.claim_job("w", 60, job_id=job_id) is not None
        assert store.record_outcomes(installation, job_id, "w", {email: (outcome, None)})
        assert store.finish_job(installation, job_id, "w")
    first, second = FOLLOW_UP_AFTER
    assert (work_at(store, A), work_at(store, B)) == (made, made)  # not noticed yet

    assert store.claim_job("w", 60) is None
    assert work_at(store, A) == clock() + first  # its follow-up
    assert work_at(store, B) is None  # no work left

    clock.advance(first)
    follow_up = store.claim_job("w", 60)
    assert follow_up is not None and follow_up.id == invited
    due = clock()
    assert store.complete_follow_up(A, invited, "w") and store.release_job(invited, "w")
    assert store.claim_job("w", 60) is None
    assert work_at(store, A) == due + second - first  # the next follow-up
    clock.advance(second - first)
    follow_up = store.claim_job("w", 60)
    assert follow_up is not None and follow_up.id == invited
    assert store.complete_follow_up(A, invited, "w") and store.release_job(invited, "w")
    assert store.claim_job("w", 60) is None
    assert work_at(store, A) is None  # the last one done

    clock.advance(1)
    again = job(store, B, "b2@x.io")  # back with new work
    assert work_at(store, B) == clock()
    taken = store.claim_job("w", 60)
    assert taken is not None and taken.id == again


@pytest.mark.postgres
def test_settling_an_installation_keeps_the_work_another_transaction_is_making(
    postgres_store: Store, clock: Clock
) -> None:
    """A claim settles an installation whose work ended while another transaction makes it a new
    job: settling waits for that transaction (its turn row is locked), then sees the job."""
    store = postgres_store
    ended = job(store, A, "a@x.io")
    assert store.claim_job("w", 60, job_id=ended) is not None
    assert store.finish_job(A, ended, "w", state="failed", error="stopped")
    clock.advance(1)
    claims: list[object] = []
    with store.engine.connect() as other, store.engine.connect() as watch:
        store._insert_job(
            other, "new-job", A, source="panel", dry_run=False, created_by="u", emails=["n@x.io"]
        )
        settling = threading.Thread(target=lambda: claims.append(store.claim_job("w", 60)))
        settling.start()
        waiting = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
        for _ in range(1000):  # until the claim's settling waits for the new job's transaction
            if watch.execute(waiting).scalar_one():
                break
            watch.rollback()
            time.sleep(0.01)
        else:
            pytest.fail("the claim never waited for the transaction making work")
        other.commit()
        settling.join(30)
    assert claims == [None]  # the new job was not committed when the claim looked
    assert work_at(store, A) is not None  # still in the turns
    taken = store.claim_job("w", 60)
    assert taken is not None and taken.id == "new-job"
