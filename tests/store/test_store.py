"""store.Store on SQLite (a temp file) and, when ``TEST_POSTGRES_URL`` is set, on PostgreSQL (a
fresh database per test)."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet

from access_desk.store import BadCursor, Store, UnknownInstallation, tables
from access_desk.store.base import MIGRATIONS
from tests.support.stores import KEY, Clock

A = "ari:cloud:ecosystem::installation/aaaaaaaa-0000-4000-8000-000000000001"
B = "ari:cloud:ecosystem::installation/bbbbbbbb-0000-4000-8000-000000000002"


def head() -> str | None:
    """The newest revision in migrations/."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config).get_current_head()


def make_job(s: Store, installation: str = A, n: int = 3, **kw: object) -> str:
    emails = [f"user{i}@example.com" for i in range(n)]
    args: dict[str, object] = {"source": "panel", "dry_run": False, "created_by": "admin-1"}
    args.update(kw)
    return s.create_job(installation, emails=emails, **args).id  # type: ignore[arg-type]


# -- migrations ------------------------------------------------------------------------------------


def test_migrate_from_empty_then_again_is_a_no_op(db_url: str) -> None:
    s = Store(db_url, KEY)
    try:
        s.migrate()
        s.migrate()
        with s.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [head()]
        assert s.ping()
    finally:
        s.close()


def test_upgrading_an_older_schema_keeps_the_data(db_url: str) -> None:
    s = Store(db_url, KEY)
    try:
        s.migrate("0001")
        s.upsert_installation(
            A,
            cloud_id="c",
            api_base_url="https://api.example/ex/confluence/c",
            system_token="sys-token",
        )
        with s.engine.begin() as conn:  # a job as the first schema stored it
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (id, installation_id, kind, source, dry_run, state, "
                    "created_at, created_by, updated_at, total, pending, invited, "
                    "already_has_access, invalid, failed) VALUES ('j1', :a, 'invite', 'panel', "
                    "false, 'queued', 1, 'admin', 1, 2, 2, 0, 0, 0, 0)"
                ),
                {"a": A},
            )
            for n, email in enumerate(["a@x.co", "b@x.co"]):
                conn.execute(
                    sa.text(
                        "INSERT INTO job_items (job_id, position, email, outcome, checked) "
                        "VALUES ('j1', :n, :e, 'pending', false)"
                    ),
                    {"n": n, "e": email},
                )
        s.migrate()
        with s.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []
        kept = s.job(A, "j1")
        assert kept is not None and [i.email for i in kept.items or ()] == ["a@x.co", "b@x.co"]
        installation = s.installation(A)
        assert installation is not None and installation.system_token == "sys-token"
    finally:
        s.close()


def test_upgrading_to_platform_duties_counts_the_last_refresh_as_the_last_trigger(
    db_url: str, clock: Clock
) -> None:
    s = Store(db_url, KEY, clock=clock)
    try:
        s.migrate("0002")
        s.upsert_installation(A, cloud_id="c", api_base_url="https://api.example/ex/confluence/c")
        s.migrate()
        health = s.installation_health(A)
        assert health is not None and health.last_scheduled_at == clock()
        assert (health.dormant, health.accounts_refused, health.context_form) == (False, (), None)
    finally:
        s.close()


def test_migrate_from_several_processes_at_once(db_url: str) -> None:
    stores = [Store(db_url, KEY) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def run(s: Store) -> None:
        start.wait()
        try:
            s.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert make_job(stores[0])
    finally:
        for s in stores:
            s.close()


def test_default_sqlite_url_creates_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = Store("sqlite:///var/access-desk.sqlite3", KEY)
    try:
        s.migrate()
        assert (tmp_path / "var" / "access-desk.sqlite3").is_file()
        with s.engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        s.close()


# -- installations and secrets ---------------------------------------------------------------------


def test_secrets_are_encrypted_at_rest_and_kept_out_of_repr(store: Store, clock: Clock) -> None:
    system, offline, webhook = (
        "sys-TOKEN-123456",
        "offline-TOKEN-7890",
        "whsec_c2VjcmV0LXdlYmhvb2s=",
    )
    store.upsert_installation(
        A,
        cloud_id="cloud-a",
        api_base_url="https://api.example/ex/confluence/cloud-a",
        system_token=system,
        system_token_expires_at=clock() + 3600,
    )
    store.set_webhook_secret(A, webhook, "admin-1")
    store.save_offline_token(A, "admin-1", offline, clock() + 600)

    with store.engine.connect() as conn:
        raw = [
            repr(tuple(row))
            for table in ("installations", "offline_tokens")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        ]
    dump = "\n".join(raw)
    for secret in (system, offline, webhook, "c2VjcmV0LXdlYmhvb2s"):
        assert secret not in dump

    inst = store.installation(A)
    assert inst is not None and inst.system_token == system
    assert system not in repr(inst)
    assert store.offline_token(A, "admin-1") == (offline, clock() + 600)
    assert store.webhook_secrets(A) == [webhook]

    other_key = Store(
        store.engine.url.render_as_string(hide_password=False), Fernet.generate_key().decode()
    )
    try:
        assert other_key.webhook_secrets(A) == []
        assert other_key.offline_token(A, "admin-1") is None
        inst = other_key.installation(A)
        assert inst is not None and inst.system_token is None
    finally:
        other_key.close()


def test_upsert_installation_is_idempotent_and_keeps_the_later_token(
    store: Store, clock: Clock
) -> None:
    base = "https://api.example/ex/confluence/cloud-a"
    store.upsert_installation(A, cloud_id="cloud-a", api_base_url=base)
    store.upsert_installation(A, cloud_id="cloud-a", api_base_url=base)
    inst = store.installation(A)
    assert inst is not None and inst.system_token is None and inst.uuid == A.rsplit("/", 1)[1]

    store.upsert_installation(
        A, cloud_id="cloud-a", api_base_url=base, system_token="t2", system_token_expires_at=2000.0
    )
    store.upsert_installation(  # a late redelivery of an older token changes nothing
        A, cloud_id="cloud-a", api_base_url=base, system_token="t1", system_token_expires_at=1000.0
    )
    inst = store.installation(A)
    assert inst is not None and (inst.system_token, inst.system_token_expires_at) == ("t2", 2000.0)

    store.upsert_installation(
        A,
        cloud_id="cloud-a",
        api_base_url=base + "/",
        system_token="t3",
        system_token_expires_at=3000.0,
    )
    inst = store.installation(A)
    assert inst is not None and inst.system_token == "t3" and inst.api_base_url == base + "/"
    assert store.installation_by_uuid(A.rsplit("/", 1)[1]) == inst
    assert store.installation_by_uuid("no-such-uuid") is None


def test_webhook_secret_rotation_keeps_the_previous_secret_for_a_day(
    store: Store, clock: Clock
) -> None:
    with pytest.raises(UnknownInstallation):
        store.set_webhook_secret(A, "whsec_a", "admin-1")
    store.upsert_installation(A, cloud_id="c", api_base_url="https://api.example/")
    assert store.webhook_secrets(A) == [] and store.webhook_admin(A) is None
    store.set_webhook_secret(A, "whsec_one", "admin-1")
    clock.advance(60)
    store.set_webhook_secret(A, "whsec_two", "admin-2")
    assert store.webhook_secrets(A) == ["whsec_two", "whsec_one"]
    assert store.webhook_admin(A) == "admin-2"
    clock.advance(24 * 3600 + 1)
    assert store.webhook_secrets(A) == ["whsec_two"]


def test_another_installation_sees_nothing(store: Store) -> None:
    store.upsert_installation(A, cloud_id="c", api_base_url="https://api.example/")
    store.upsert_installation(B, cloud_id="d", api_base_url="https://api.example/")
    store.set_webhook_secret(A, "whsec_a", "admin-1")
    store.save_offline_token(A, "admin-1", "tok", 10**10)
    job_id, _ = store.create_webhook_job(
        A,
        "msg-1",
        dry_run=False,
        created_by="admin-1",
        emails=[f"user{i}@example.com" for i in range(3)],
    )
    store.add_audit(
        A, actor="admin-1", action="checkAccess", source="panel", subjects=[], outcome="ok"
    )

    assert store.job(B, job_id) is None
    assert store.list_jobs(B, 10) == ([], None)
    assert store.list_audit(B, 10) == ([], None)
    assert store.webhook_secrets(B) == []
    assert store.webhook_admin(B) is None
    assert store.offline_token(B, "admin-1") is None
    assert store.delivery_job(B, "msg-1") is None
    assert store.next_items(B, job_id, checked=False) == []
    assert store.claim_job("w", 60, installation_id=B) is None
    assert store.claim_job("w", 60, installation_id=B, job_id=job_id) is None
    claimed = store.claim_job("w", 60, installation_id=A, job_id=job_id)
    assert claimed is not None and claimed.id == job_id
    assert store.record_outcomes(B, job_id, "w", {"user0@example.com": ("invited", None)}) is False
    assert store.finish_job(B, job_id, "w") is False
    job = store.job(A, job_id)
    assert job is not None and job.counts.pending == 3 and job.state == "running"


# -- jobs ------------------------------------------------------------------------------------------


def test_create_job_gives_the_contract_shape(store: Store) -> None:
    created = store.create_job(
        A, source="webhook", dry_run=True, created_by="admin-1", emails=["a@x.io", "B@x.io"]
    )
    loaded = store.job(A, created.id)
    assert loaded is not None
    assert created.to_json() == loaded.to_json()
    body = loaded.to_json()
    assert set(body) == {
        "id",
        "kind",
        "source",
        "dryRun",
        "state",
        "createdAt",
        "createdBy",
        "updatedAt",
        "total",
        "estimatedPoints",
        "notBefore",
        "paused",
        "waitReason",
        "counts",
        "checked",
        "retriedAs",
        "items",
    }
    # a dry run checks 2 emails in one request: 1 + 2 * 2 points; it is not held
    assert body["estimatedPoints"] == 5 and body["notBefore"] is None and body["paused"] is None
    assert body["kind"] == "invite" and body["source"] == "webhook" and body["dryRun"] is True
    assert body["state"] == "queued" and body["total"] == 2
    assert body["createdAt"] == "2025-06-15T15:06:40.000Z"
    assert body["counts"] == {
        "pending": 2,
        "invited": 0,
        "alreadyHasAccess": 0,
        "invalid": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert body["items"] == [
        {"email": "a@x.io", "outcome": "pending"},
        {"email": "B@x.io", "outcome": "pending"},
    ]
    summary = store.job(A, created.id, items=False)
    assert summary is not None and "items" not in summary.to_json(items=False)
    with pytest.raises(ValueError):
        summary.to_json(items=True)


def test_record_outcomes_updates_items_counts_and_state(store: Store) -> None:
    job_id = make_job(store, n=4)
    assert store.claim_job("w1", 60) is not None
    assert store.next_items(A, job_id, checked=False, limit=3) == [
        "user0@example.com",
        "user1@example.com",
        "user2@example.com",
    ]
    ok = store.record_outcomes(
        A,
        job_id,
        "w1",
        {
            "user0@example.com": ("alreadyHasAccess", None),
            "user1@example.com": ("invalid", None),
            "user2@example.com": ("pending", None),
        },
        checked=True,
    )
    assert ok
    assert store.next_items(A, job_id, checked=False) == ["user3@example.com"]
    assert store.next_items(A, job_id, checked=True) == ["user2@example.com"]
    store.record_outcomes(A, job_id, "w1", {"user2@example.com": ("failed", "rejected: no")})
    store.record_outcomes(A, job_id, "w1", {"user0@example.com": ("invited", None)})  # final stays
    job = store.job(A, job_id)
    assert job is not None and job.state == "running"
    assert job.counts.to_json() == {
        "pending": 1,
        "invited": 0,
        "alreadyHasAccess": 1,
        "invalid": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert job.items is not None
    assert [(i.outcome, i.error, i.checked) for i in job.items] == [
        ("alreadyHasAccess", None, True),
        ("invalid", None, True),
        ("failed", "rejected: no", True),
        ("pending", None, False),
    ]
    with pytest.raises(ValueError):
        store.record_outcomes(A, job_id, "w1", {"user3@example.com": ("maybe", None)})


def test_claim_is_oldest_first_and_respects_not_before(store: Store, clock: Clock) -> None:
    first = make_job(store)
    clock.advance(1)
    second = make_job(store)
    job = store.claim_job("w1", 60)
    assert job is not None and job.id == first and job.state == "running"
    assert job.lease_owner == "w1" and job.lease_until == clock() + 60
    job = store.claim_job("w2", 60)
    assert job is not None and job.id == second
    assert store.claim_job("w3", 60) is None
    again = store.claim_job("w1", 60, job_id=first)  # the holder may claim again (renews)
    assert again is not None and again.id == first

    assert store.release_job(first, "w1", not_before=clock() + 30)
    assert store.release_job(first, "w1") is False
    assert store.claim_job("w3", 60) is None
    clock.advance(30)
    job = store.claim_job("w3", 60)
    assert job is not None and job.id == first


def test_expired_lease_is_taken_over_and_the_old_holder_writes_nothing(
    store: Store, clock: Clock
) -> None:
    job_id = make_job(store)
    assert store.claim_job("w1", 60) is not None
    assert store.claim_job("w2", 60) is None
    clock.advance(30)
    assert store.renew_lease(job_id, "w1", 60)
    clock.advance(59)
    assert store.claim_job("w2", 60) is None
    clock.advance(2)
    taken = store.claim_job("w2", 60)
    assert taken is not None and taken.id == job_id and taken.lease_owner == "w2"

    assert store.record_outcomes(A, job_id, "w1", {"user0@example.com": ("invited", None)}) is False
    assert store.renew_lease(job_id, "w1", 60) is False
    assert store.finish_job(A, job_id, "w1") is False
    assert store.release_job(job_id, "w1") is False
    job = store.job(A, job_id)
    assert job is not None and job.counts.pending == 3 and job.lease_owner == "w2"
    assert store.record_outcomes(A, job_id, "w2", {"user0@example.com": ("invited", None)})


def test_a_lease_that_ran_out_cannot_write_even_before_a_takeover(
    store: Store, clock: Clock
) -> None:
    job_id = make_job(store)
    assert store.claim_job("w1", 10) is not None
    clock.advance(11)
    assert store.record_outcomes(A, job_id, "w1", {"user0@example.com": ("invited", None)}) is False


@pytest.mark.parametrize("two_stores", [False, True], ids=["threads", "two-stores"])
def test_claims_race_but_never_share_a_job(
    store: Store, db_url: str, clock: Clock, two_stores: bool
) -> None:
    job_ids = {make_job(store, n=1) for _ in range(24)}
    other = Store(db_url, KEY, clock=clock) if two_stores else store
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def work(n: int) -> None:
        s = other if n % 2 else store
        start.wait()
        while (job := s.claim_job(f"w{n}", 600)) is not None:
            with lock:
                claimed.append((job.id, f"w{n}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if two_stores:
        other.close()
    ids = [job_id for job_id, _ in claimed]
    assert sorted(ids) == sorted(job_ids)  # each exactly once
    for job_id, worker in claimed:
        job = store.job(A, job_id, items=False)
        assert job is not None and job.lease_owner == worker


def test_finish_writes_exactly_one_audit_entry(store: Store, clock: Clock) -> None:
    job_id = make_job(store, n=2, dry_run=True)
    assert store.claim_job("w1", 60) is not None
    store.record_outcomes(
        A,
        job_id,
        "w1",
        {"user0@example.com": ("pending", None), "user1@example.com": ("invalid", None)},
        checked=True,
    )
    clock.advance(5)
    assert store.finish_job(A, job_id, "w1")
    assert store.finish_job(A, job_id, "w1") is False
    assert store.claim_job("w1", 60) is None  # done jobs are never claimed
    job = store.job(A, job_id)
    assert job is not None and job.state == "done" and job.lease_owner is None
    assert job.counts.pending == 1 and job.counts.invalid == 1
    entries, _ = store.list_audit(A, 10)
    assert [e.to_json() for e in entries] == [
        {
            "at": "2025-06-15T15:06:45.000Z",
            "actor": "admin-1",
            "action": "invite.dryRun",
            "source": "panel",
            "subjects": ["user0@example.com", "user1@example.com"],
            "outcome": {
                "jobId": job_id,
                "state": "done",
                "pending": 1,
                "invited": 0,
                "alreadyHasAccess": 0,
                "invalid": 1,
                "failed": 0,
                "cancelled": 0,
            },
        }
    ]


def test_failing_a_job_fails_its_pending_items(store: Store) -> None:
    job_id = make_job(store, n=3)
    assert store.claim_job("w1", 60) is not None
    store.record_outcomes(A, job_id, "w1", {"user0@example.com": ("invited", None)}, checked=True)
    assert store.finish_job(A, job_id, "w1", state="failed", error="no_token")
    job = store.job(A, job_id)
    assert job is not None and job.state == "failed" and job.error == "no_token"
    assert job.items is not None
    assert [(i.outcome, i.error) for i in job.items] == [
        ("invited", None),
        ("failed", "no_token"),
        ("failed", "no_token"),
    ]
    with pytest.raises(ValueError):
        store.finish_job(A, job_id, "w1", state="running")


def test_count_jobs_by_state(store: Store) -> None:
    assert store.count_jobs_by_state() == {}
    first = make_job(store)
    make_job(store, B)
    assert store.claim_job("w1", 60, job_id=first) is not None
    assert store.count_jobs_by_state() == {"running": 1, "queued": 1}


# -- webhooks and rate limits ----------------------------------------------------------------------


def webhook_job(store: Store, installation: str, webhook_id: str) -> tuple[str, bool]:
    return store.create_webhook_job(
        installation, webhook_id, dry_run=False, created_by="admin-1", emails=["a@example.com"]
    )


def job_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar_one())


def test_a_replayed_delivery_returns_the_first_job_and_makes_no_other(store: Store) -> None:
    assert store.delivery_job(A, "msg-1") is None
    first, new = webhook_job(store, A, "msg-1")
    assert new is True and store.delivery_job(A, "msg-1") == first
    assert webhook_job(store, A, "msg-1") == (first, False)
    assert job_count(store) == 1
    other, new = webhook_job(store, B, "msg-1")  # ids are per installation
    assert new is True and other != first and job_count(store) == 2
    job = store.job(A, first)
    assert job is not None and job.source == "webhook" and job.total == 1


def test_concurrent_deliveries_agree_on_one_job(store: Store) -> None:
    results: list[tuple[str, bool]] = []
    start = threading.Barrier(6)

    def deliver() -> None:
        start.wait()
        results.append(webhook_job(store, A, "msg-race"))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len({job_id for job_id, _ in results}) == 1
    assert [new for _, new in results].count(True) == 1
    assert job_count(store) == 1


def _raw_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


HOSTILE_CURSORS = {
    "audit id past 64 bits": ("audit", _raw_cursor(["a", 2**63])),
    "audit id far past 64 bits": ("audit", _raw_cursor(["a", 10**30])),
    "audit id negative": ("audit", _raw_cursor(["a", -1])),
    "audit id as bool": ("audit", _raw_cursor(["a", True])),
    "audit deep nesting": (
        "audit",
        base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("="),
    ),
    "job time overflow": ("jobs", _raw_cursor(["j", 10**400, "x"])),
    "job time NaN": ("jobs", base64.urlsafe_b64encode(b'["j",NaN,"x"]').decode()),
    "job time infinite": ("jobs", base64.urlsafe_b64encode(b'["j",Infinity,"x"]').decode()),
    "job id lone surrogate": ("jobs", _raw_cursor(["j", 1.0, "\ud800"])),
    "job id NUL": ("jobs", _raw_cursor(["j", 1.0, "\u0000"])),
    "job id too long": ("jobs", _raw_cursor(["j", 1.0, "x" * 500])),
    "job cursor for audit": ("audit", _raw_cursor(["j", 1.0, "x"])),
    "not base64": ("jobs", "!!!"),
    "not JSON": ("jobs", base64.urlsafe_b64encode(b"{").decode()),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CURSORS))
def test_hostile_cursors_are_bad_cursor_not_a_database_error(store: Store, case: str) -> None:
    listing, cursor = HOSTILE_CURSORS[case]
    make_job(store)
    with pytest.raises(BadCursor):
        if listing == "audit":
            store.list_audit(A, 10, before=cursor)
        else:
            store.list_jobs(A, 10, before=cursor)
