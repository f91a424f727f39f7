"""The store behind the panel's audit filters, webhook state and deliveries, on SQLite and (when
``TEST_POSTGRES_URL`` is set) PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from access_desk.store import Store, tables
from access_desk.store.tables import audit_subjects
from tests.support.stores import KEY, Clock

A = "ari:cloud:ecosystem::installation/aaaaaaaa-0000-4000-8000-000000000001"
B = "ari:cloud:ecosystem::installation/bbbbbbbb-0000-4000-8000-000000000002"


def entry(s: Store, action: str, actor: str, subjects: list[str], installation: str = A) -> None:
    s.add_audit(
        installation, actor=actor, action=action, source="panel", subjects=subjects, outcome="ok"
    )


def actions(s: Store, installation: str = A, **filters: object) -> list[str]:
    found, _ = s.list_audit(installation, 100, **filters)  # type: ignore[arg-type]
    return [e.action for e in found]


# -- audit filters ---------------------------------------------------------------------------------


def test_audit_filters_each_and_combined(store: Store, clock: Clock) -> None:
    t0 = clock()
    entry(store, "invite", "admin-1", ["Ann@Example.com", "bob@example.com"])
    clock.advance(60)
    entry(store, "invite.dryRun", "admin-2", ["ann@example.COM"])
    clock.advance(60)
    entry(store, "job.cancel", "admin-1", [])
    clock.advance(60)
    entry(store, "user.erased", "forge", ["557058:abc-DEF"])
    entry(store, "invite", "admin-1", ["ann@example.com"], installation=B)

    assert actions(store) == ["user.erased", "job.cancel", "invite.dryRun", "invite"]
    assert actions(store, action="invite") == ["invite"]
    assert actions(store, actor="admin-1") == ["job.cancel", "invite"]
    assert actions(store, subject="ANN@example.com") == ["invite.dryRun", "invite"]
    assert actions(store, subject="bob@example.com", actor="admin-2") == []
    assert actions(store, subject="557058:abc-DEF") == ["user.erased"]
    assert actions(store, subject="ann") == []  # whole subjects only
    assert actions(store, since=t0 + 60) == ["user.erased", "job.cancel", "invite.dryRun"]
    assert actions(store, until=t0 + 60) == ["invite"]  # until is exclusive
    assert actions(store, since=t0 + 60, until=t0 + 120.5, actor="admin-1") == ["job.cancel"]
    assert actions(store, B, subject="ann@example.com") == ["invite"]


def test_filtered_audit_pages_with_the_cursor(store: Store) -> None:
    for n in range(25):
        entry(store, "invite" if n % 3 == 0 else "other", "admin", [f"p{n}@example.com"])
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        found, before = store.list_audit(A, 4, before, action="invite")
        seen += [e.subjects[0] for e in found]
        pages += 1
        if before is None:
            break
    assert seen == [f"p{n}@example.com" for n in range(24, -1, -1) if n % 3 == 0]
    assert pages == 3


def test_a_finished_jobs_entry_is_found_by_its_emails(store: Store) -> None:
    job = store.create_job(
        A, source="panel", dry_run=False, created_by="admin", emails=["X@Example.com", "y@ex.co"]
    )
    assert store.claim_job("w", 60) is not None
    assert store.finish_job(A, job.id, "w", state="failed", error="boom")
    found, _ = store.list_audit(A, 10, subject="x@example.com")
    assert [(e.action, e.outcome["jobId"]) for e in found] == [("invite", job.id)]  # type: ignore[index]


def test_subject_rows_go_with_their_entry(store: Store) -> None:
    entry(store, "invite", "admin", ["a@example.com", "A@EXAMPLE.com", "b@example.com"])
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(audit_subjects.c.subject)).scalars().all()
        assert sorted(rows) == ["a@example.com", "b@example.com"]
        conn.execute(sa.text("DELETE FROM audit"))
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_subjects)).scalar() == 0


def test_upgrading_fills_the_subject_index_from_existing_entries(db_url: str, clock: Clock) -> None:
    s = Store(db_url, KEY, clock=clock)
    try:
        s.migrate("0002")
        with s.engine.begin() as conn:
            for n, subjects in enumerate([["Old@Example.com", "old@example.com"], [], None]):
                conn.execute(
                    sa.insert(tables.audit).values(
                        installation_id=A,
                        at=clock() + n,
                        actor="admin",
                        action="invite",
                        source="panel",
                        subjects=subjects,
                        outcome="ok",
                    )
                )
        s.migrate()
        found, _ = s.list_audit(A, 10, subject="old@EXAMPLE.com")
        assert len(found) == 1 and list(found[0].subjects) == ["Old@Example.com", "old@example.com"]
        assert len(s.list_audit(A, 10)[0]) == 3
    finally:
        s.close()


# -- webhook state and deliveries ------------------------------------------------------------------


def test_webhook_state_through_rotations(store: Store, clock: Clock) -> None:
    assert store.webhook_state(A).configured is False
    store.upsert_installation(A, cloud_id="c", api_base_url="https://api.example/c")
    none = store.webhook_state(A)
    assert (none.configured, none.rotated_at, none.acting_as, none.previous_valid_until) == (
        False,
        None,
        None,
        None,
    )
    store.set_webhook_secret(A, "whsec_one", "admin-1")
    first = store.webhook_state(A)
    assert (first.configured, first.rotated_at, first.acting_as) == (True, clock(), "admin-1")
    assert first.previous_valid_until is None
    clock.advance(100)
    store.set_webhook_secret(A, "whsec_two", "admin-2")
    second = store.webhook_state(A)
    assert second.acting_as == "admin-2" and second.previous_valid_until == clock() + 24 * 3600
    clock.advance(24 * 3600)
    assert store.webhook_state(A).previous_valid_until is None
    assert store.webhook_state(B).configured is False


def test_a_secret_that_no_longer_decrypts_is_not_configured(db_url: str, clock: Clock) -> None:
    from cryptography.fernet import Fernet

    s = Store(db_url, KEY, clock=clock)
    s.migrate()
    s.upsert_installation(A, cloud_id="c", api_base_url="https://api.example/c")
    s.set_webhook_secret(A, "whsec_one", "admin-1")
    s.close()
    other = Store(db_url, Fernet.generate_key().decode(), clock=clock)
    try:
        assert other.webhook_state(A).configured is False
    finally:
        other.close()


def test_replays_are_noted_once_per_delivery(store: Store, clock: Clock) -> None:
    first, new = store.create_webhook_job(
        A, "msg-1", dry_run=True, created_by="a", emails=["x@y.z"]
    )
    assert new
    clock.advance(1)
    second, _ = store.create_webhook_job(A, "msg-2", dry_run=True, created_by="a", emails=["x@y.z"])
    clock.advance(1)
    assert store.replay_delivery(A, "msg-1") == first
    clock.advance(1)
    assert store.replay_delivery(A, "msg-1") == first
    assert store.replay_delivery(A, "msg-3") is None
    assert store.replay_delivery(B, "msg-1") is None
    clock.advance(1)
    again, new = store.create_webhook_job(
        A, "msg-2", dry_run=True, created_by="a", emails=["q@y.z"]
    )
    assert (again, new) == (second, False)  # a concurrent repeat counts as a replay too

    recent = store.recent_deliveries(A, 20)
    t = clock()
    assert [(d.at - t, d.webhook_id, d.status, d.job_id) for d in recent] == [
        (0, "msg-2", "replayed", second),
        (-1, "msg-1", "replayed", first),  # the latest replay only
        (-3, "msg-2", "accepted", second),
        (-4, "msg-1", "accepted", first),
    ]
    assert [d.webhook_id for d in store.recent_deliveries(A, 2)] == ["msg-2", "msg-1"]
    assert store.recent_deliveries(B, 20) == []
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM webhook_deliveries")).scalar()
    assert rows == 2


def test_erasure_and_retention_take_the_subject_keys_too(store: Store, clock: Clock) -> None:
    entry(store, "user.looked.up", "admin", ["557058:Closed-One", "kept@example.com"])
    clock.advance(100)
    entry(store, "invite", "admin", ["late@example.com"])
    assert actions(store, subject="557058:closed-one") == ["user.looked.up"]

    assert store.erase_accounts(A, ["557058:Closed-One"]) == 1
    assert actions(store, subject="557058:Closed-One") == []
    assert actions(store, subject="kept@example.com") == ["user.looked.up"]

    store.apply_retention(A, clock() - 50)
    assert actions(store, subject="kept@example.com") == []
    assert actions(store, subject="late@example.com") == ["invite"]
    with store.engine.connect() as conn:
        keys = conn.execute(sa.select(audit_subjects.c.subject)).scalars().all()
    assert keys == ["late@example.com"]
