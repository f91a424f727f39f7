"""Every account id the schema can hold is reported, erased and aged out (issue 16, item 3), on every
database: ``store.personal_data.ACCOUNT_COLUMNS`` is checked against ``store/tables.py`` by name and type,
so a new account id column cannot be forgotten, and each declared column is exercised."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests
import sqlalchemy as sa

from access_desk.account_ids import ACCOUNT_ID_MAX
from access_desk.duties.personal_data import PersonalData
from access_desk.quota.pools import spend_rows
from access_desk.store import ERASED, Store, tables
from access_desk.store.personal_data import (
    ACCOUNT_COLUMNS,
    KEPT_WHILE_IN_USE,
    NOT_ACCOUNT_COLUMNS,
    SUBJECT_COLUMNS,
)
from simulator import Platform
from simulator.triggers import LIFECYCLE_TRIGGER
from tests.conftest import Backend
from tests.support.simulated import store_installation
from tests.support.stores import Clock

IID = "ari:cloud:ecosystem::installation/7a1c0f6e-5a8e-4c3b-9d2e-1f0a2b3c4d5e"
DAY = 24 * 3600.0
# Names that say "an account id" (an actor, a caller, an admin, who did something, a subject).
ACCOUNTISH = re.compile(
    r"(^|_)(account|actor|caller|admin|principal|user|owner|subject)s?(_|$)|_by$"
)


def declared() -> set[tuple[str, str]]:
    return {(spec.table.name, spec.name) for spec in ACCOUNT_COLUMNS}


def test_every_account_id_column_of_the_schema_is_declared() -> None:
    known = declared() | NOT_ACCOUNT_COLUMNS | SUBJECT_COLUMNS
    missing = []
    for table in tables.metadata.sorted_tables:
        for column in table.columns:
            sized = isinstance(column.type, sa.String) and column.type.length == ACCOUNT_ID_MAX
            if (sized or ACCOUNTISH.search(column.name)) and (table.name, column.name) not in known:
                missing.append(f"{table.name}.{column.name}")
    assert not missing, f"declare these in store.personal_data.ACCOUNT_COLUMNS: {missing}"
    for spec in ACCOUNT_COLUMNS:  # one limit: every account id column holds exactly 128
        column = tables.metadata.tables[spec.table.name].c[spec.name]
        assert isinstance(column.type, sa.String) and column.type.length == ACCOUNT_ID_MAX
        assert spec.erase in ("null", "mark", "delete") and spec.stored_at in spec.table.c
        assert "installation_id" in spec.table.c  # every duty is scoped by installation


def place(store: Store, clock: Clock) -> dict[tuple[str, str], Callable[[str], None]]:
    """How to store an account id in each declared column (a finished job where it matters)."""

    def finished_job(created_by: str | None) -> str:
        job = store.create_job(
            IID, source="panel", dry_run=True, created_by=created_by, emails=["a@b.co"]
        )
        assert store.claim_job("w", 60, installation_id=IID, job_id=job.id) is not None
        assert store.finish_job(IID, job.id, "w")
        return job.id

    def cancelled(account: str) -> None:
        job = store.create_job(
            IID, source="panel", dry_run=True, created_by=None, emails=["c@d.co"]
        )
        assert store.request_cancel(IID, job.id, account) is not None

    def refused(account: str) -> None:
        store.note_account_answer(
            IID, account, refused=True, refusals_to_pause=10, span_seconds=3600, recent_seconds=DAY
        )

    def admin_record(account: str) -> None:
        assert store.claim_admin_check(IID, account, clock() + 10)
        store.record_admin_check(IID, account, True, hold_until=0.0, operations="administer")

    return {
        ("audit", "actor"): lambda a: store.add_audit(
            IID, actor=a, action="checkAccess", source="panel", subjects=[], outcome={}
        ),
        ("jobs", "created_by"): lambda a: None if finished_job(a) else None,
        ("jobs", "cancelled_by"): cancelled,
        ("installations", "webhook_admin"): lambda a: store.set_webhook_secret(IID, "whsec_x", a),
        ("offline_tokens", "account_id"): lambda a: store.save_offline_token(
            IID, a, "usr.token", clock() + 60
        ),
        ("lookup_cache", "caller"): lambda a: store.cache_users(
            IID, a, [{"accountId": "557058:someone"}], [], 300
        ),
        ("lookup_cache", "account_id"): lambda a: store.cache_users(
            IID, "557058:looker", [{"accountId": a}], [], 300
        ),
        ("lookup_misses", "caller"): lambda a: store.cache_users(
            IID, a, [], ["557058:nobody"], 300
        ),
        ("lookup_misses", "account_id"): lambda a: store.cache_users(
            IID, "557058:looker", [], [a], 300
        ),
        ("account_refusals", "account_id"): refused,
        ("admin_checks", "account_id"): admin_record,
        ("quota_spend", "account_id"): lambda a: store.add_spends(
            spend_rows("app", 1, IID, a, 3.0)
        ),
    }


def holding(store: Store, account: str) -> list[str]:
    """The declared columns, audit subjects and outcomes that still hold ``account``."""
    found = []
    with store.engine.connect() as conn:
        for spec in ACCOUNT_COLUMNS:
            n = conn.execute(
                sa.select(sa.func.count()).select_from(spec.table).where(spec.column == account)
            ).scalar_one()
            if n:
                found.append(f"{spec.table.name}.{spec.name}")
        for subjects, outcome in conn.execute(
            sa.select(tables.audit.c.subjects, tables.audit.c.outcome)
        ):
            if account in (subjects or ()) or f'"{account}"' in str(outcome).replace("'", '"'):
                found.append("audit.subjects/outcome")
    return found


def store_everywhere(store: Store, clock: Clock, prefix: str) -> dict[str, str]:
    """A distinct account id in every declared column, and one as an upgrader's audit subject;
    (column or "subject") -> account id."""
    store.upsert_installation(IID, cloud_id="c", api_base_url="https://api.example/ex/confluence/c")
    placed = {}
    ways = place(store, clock)
    for spec in ACCOUNT_COLUMNS:
        key = (spec.table.name, spec.name)
        account = f"557058:{prefix}-{spec.table.name}-{spec.name}".replace("_", "-")
        ways[key](account)  # a KeyError here: teach ``place`` how to store the new column
        placed[f"{spec.table.name}.{spec.name}"] = account
    upgrader = f"557058:{prefix}-upgrader"
    store.add_audit(
        IID, actor="forge", action="app.upgraded", source="forge", subjects=[upgrader], outcome="ok"
    )
    placed["subject"] = upgrader
    return placed


def test_every_declared_account_id_is_reported_and_erased(store: Store, clock: Clock) -> None:
    placed = store_everywhere(store, clock, "closed")
    reported = {a for a, _ in store.personal_data_accounts(IID)}
    assert set(placed.values()) <= reported
    assert store.erase_accounts(IID, list(placed.values())) == len(placed)
    for where, account in placed.items():
        assert holding(store, account) == [], f"{where}: still stored after erasure"
    entries, _ = store.list_audit(IID, 50, subject=placed["subject"])
    assert entries == []
    upgraded = [e for e in store.list_audit(IID, 50)[0] if e.action == "app.upgraded"]
    assert upgraded[0].subjects == (ERASED,)
    assert not {a for a, _ in store.personal_data_accounts(IID)} & set(placed.values())


def test_every_declared_account_id_is_aged_out_by_retention(store: Store, clock: Clock) -> None:
    placed = store_everywhere(store, clock, "old")
    clock.advance(91 * DAY)
    store.apply_retention(IID, clock() - 90 * DAY)
    for where, account in placed.items():
        kept = holding(store, account)
        if tuple(where.split(".")) in KEPT_WHILE_IN_USE:
            assert kept == [where], f"{where}: in use, it stays"
        else:
            assert kept == [], f"{where}: still stored after retention"
    assert store.list_audit(IID, 50, subject=placed["subject"])[0] == []


def test_the_upgrader_and_who_cancelled_are_reported_and_erased(
    backend_on_each_db: Backend, platform: Platform, session: requests.Session
) -> None:
    """``jobs.cancelled_by`` kept a closed account's id, the upgrader of an ``app.upgraded``
    entry was neither reported nor erased, and ``listAudit {"subject"}`` still found it."""
    backend = backend_on_each_db
    app: Any = backend.client.application
    store: Store = app.extensions["access_desk"].store
    inst, site = platform.installation, platform.installation.site
    upgrader, canceller = site.user_ids[6], site.user_ids[7]
    event = {"upgraderAccountId": upgrader, "app": {"id": "x"}}
    headers = platform.trigger_headers(inst, *LIFECYCLE_TRIGGER)
    assert backend.client.post("/forge/lifecycle", json=event, headers=headers).status_code == 200
    job = store.create_job(
        inst.id, source="panel", dry_run=True, created_by=site.admin_id, emails=["q@x.co"]
    )
    store.request_cancel(inst.id, job.id, canceller)
    store_installation(platform, store, store.now() + 7200)
    found = backend.call("listAudit", {"subject": upgrader}).get_json()["entries"]
    assert [e["action"] for e in found] == ["app.upgraded"]
    for account in (upgrader, canceller):
        platform.account_reports.mark(account, "closed")
    PersonalData(
        session, platform.personal_data_url, store, allowlist=(platform.allowlist_prefix,)
    ).report(inst.id)
    assert backend.call("listAudit", {"subject": upgrader}).get_json()["entries"] == []
    with store.engine.connect() as conn:
        who = conn.execute(
            sa.select(tables.jobs.c.cancelled_by).where(tables.jobs.c.id == job.id)
        ).scalar()
    assert who is None
