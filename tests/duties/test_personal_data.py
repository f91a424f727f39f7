"""Personal data: reporting stored account ids, erasing closed accounts, retention; on SQLite and
PostgreSQL against the simulated reporting API."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from access_desk.duties.personal_data import (
    BATCH,
    RETRY_SECONDS,
    PersonalData,
    ReportError,
    _statuses,
    cycle_seconds,
)
from access_desk.store import ERASED, Store
from access_desk.store.records import iso
from simulator import Platform
from simulator.triggers import SCHEDULED_TRIGGER
from tests.conftest import Backend
from tests.support.simulated import store_installation
from tests.support.stores import Clock

DAY = 24 * 3600.0


def install(platform: Platform, store: Store, clock: Clock) -> str:
    return store_installation(platform, store, clock() + 7200)


def duties(platform: Platform, store: Store, session: requests.Session, **kw: Any) -> PersonalData:
    args: dict[str, Any] = {"allowlist": (platform.allowlist_prefix,), "worker_id": "w"}
    args.update(kw)
    return PersonalData(session, platform.personal_data_url, store, **args)


def reports(platform: Platform) -> list[Any]:
    return [r for r in platform.requests if r.endpoint == "report-accounts"]


def populate(store: Store, iid: str, clock: Clock, admin: str, user: str) -> dict[str, str]:
    """Account ids in every place the store keeps them; returns the jobs made."""
    store.add_audit(
        iid, actor="forge", action="app.installed", source="forge", subjects=[], outcome="ok"
    )
    clock.advance(10)
    store.add_audit(
        iid,
        actor=user,
        action="checkAccess",
        source="panel",
        subjects=["a@example.com", admin],
        outcome={"emails": 2, "actingAs": admin},
    )
    clock.advance(10)
    done = store.create_job(iid, source="panel", dry_run=True, created_by=admin, emails=["x@y.co"])
    claimed = store.claim_job("w", 60, installation_id=iid, job_id=done.id)
    assert claimed is not None and store.finish_job(iid, done.id, "w")  # audit actor: admin
    clock.advance(10)
    open_job = store.create_job(
        iid, source="webhook", dry_run=False, created_by=admin, emails=["new@example.com"]
    )
    store.set_webhook_secret(iid, "whsec_x", admin)
    store.save_offline_token(iid, admin, "usr.token", clock() + 3600)
    store.save_offline_token(iid, user, "usr.other", clock() + 60)
    return {"done": done.id, "open": open_job.id}


def test_every_stored_account_id_is_collected_with_its_latest_time(
    platform: Platform, store: Store, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    site = platform.installation.site
    admin, user = site.admin_id, site.user_ids[0]
    start = clock()
    populate(store, iid, clock, admin, user)
    store.add_audit(
        "ari:cloud:ecosystem::installation/other",
        actor="someone-else",
        action="x",
        source="panel",
        subjects=[],
        outcome="ok",
    )
    # the admin's latest: the webhook rotation; the user's: the offline token (valid until later)
    assert store.personal_data_accounts(iid) == sorted([(admin, clock()), (user, clock())])
    store.save_offline_token(iid, user, "usr.other", start)  # expired long ago
    assert store.personal_data_accounts(iid) == sorted([(admin, clock()), (user, start + 10)])


def test_reports_in_batches_of_90_as_the_app(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    ids = [f"5b10ac8d82e05b22cc7d{n:04x}" for n in range(2 * BATCH + 20)]
    for account_id in ids:
        store.add_audit(
            iid, actor=account_id, action="checkAccess", source="panel", subjects=[], outcome={}
        )
    report = duties(platform, store, session).report(iid)
    assert (report.accounts, report.requests, report.closed, report.updated) == (200, 3, (), ())
    sent = reports(platform)
    assert [len(r.body["accounts"]) for r in sent] == [90, 90, 20]
    assert {r.account_id for r in sent} == {"system"} and {r.status for r in sent} == {204}
    assert sent[0].body["accounts"][0] == {"accountId": ids[0], "updatedAt": iso(clock())}
    assert sorted(a["accountId"] for r in sent for a in r.body["accounts"]) == sorted(ids)


def test_closed_accounts_are_erased_everywhere_and_others_kept(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    site = platform.installation.site
    admin, user = site.admin_id, site.user_ids[0]
    made = populate(store, iid, clock, admin, user)
    platform.account_reports.mark(admin, "closed")
    platform.account_reports.mark(user, "updated")
    clock.advance(-3600)  # the user's data is older than the mark: "updated"

    report = duties(platform, store, session).report(iid)
    assert report.closed == (admin,) and report.updated == (user,)

    entries, _ = store.list_audit(iid, 50)
    assert admin not in {e.actor for e in entries}
    check = next(e for e in entries if e.action == "checkAccess")
    assert check.actor == user  # the updated account keeps its data
    assert check.subjects == ("a@example.com", ERASED)
    assert check.outcome == {"emails": 2, "actingAs": ERASED}
    assert next(e for e in entries if e.action == "invite.dryRun").actor == ERASED
    erase = entries[0]
    assert (erase.action, erase.actor, erase.subjects, erase.outcome) == (
        "personalData.erase",
        "privacy",
        (),
        {"accounts": 1},
    )
    for job_id in made.values():
        job = store.job(iid, job_id, items=False)
        assert job is not None and job.created_by is None
    assert store.webhook_admin(iid) is None
    assert store.offline_token(iid, admin) is None
    assert store.offline_token(iid, user) == ("usr.other", clock() + 3600 + 60)
    assert [a for a, _ in store.personal_data_accounts(iid)] == [user]


def test_the_open_job_of_an_erased_account_fails_in_the_worker(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    from tests.jobs.test_runner import make_worker

    iid = install(platform, store, clock)
    site = platform.installation.site
    made = populate(store, iid, clock, site.admin_id, site.user_ids[0])
    assert store.erase_accounts(iid, [site.admin_id, "forge", ERASED]) == 1
    assert make_worker(platform, store, session, clock).run_once()
    job = store.job(iid, made["open"])
    assert job is not None and job.state == "failed" and job.items is not None
    assert job.items[0].error == "no acting admin: rotate the webhook secret to choose one"
    assert not [r for r in platform.requests if r.endpoint in ("graphql", "check-access")]


def test_only_ids_of_the_batch_are_taken_from_an_answer() -> None:
    answer = {
        "accounts": [
            {"accountId": "sent", "status": "closed"},
            {"accountId": "not-sent", "status": "closed"},
            {"accountId": "sent-too", "status": "unknown"},
            "junk",
        ]
    }
    assert _statuses(answer, {"sent", "sent-too"}) == {"sent": "closed"}
    with pytest.raises(ReportError):
        _statuses({"nothing": []}, {"sent"})


@pytest.mark.parametrize(
    ("fault", "retry"), [("500", RETRY_SECONDS), ("429", 120.0), ("drop", RETRY_SECONDS)]
)
def test_a_failed_report_is_recorded_and_tried_again_later(
    platform: Platform,
    store: Store,
    session: requests.Session,
    clock: Clock,
    fault: str,
    retry: float,
) -> None:
    iid = install(platform, store, clock)
    store.add_audit(iid, actor="acc-1", action="x", source="panel", subjects=[], outcome={})
    platform.faults.add("report-accounts", fault, retry_after=120 if fault == "429" else None)
    personal = duties(platform, store, session)
    assert store.note_scheduled_trigger(iid, report_every_seconds=7 * DAY)
    assert personal.run_due() is True
    health = store.installation_health(iid)
    assert health is not None and health.last_report_at is None
    assert health.report_error is not None and health.report_error_at == clock()
    assert health.duty_due_at == clock() + retry
    assert personal.run_due() is False  # not before the retry time
    clock.advance(retry)
    assert personal.run_due() is True
    health = store.installation_health(iid)
    assert health is not None and health.last_report_at == clock() and health.report_error is None
    assert health.duty_due_at is None


@pytest.mark.parametrize("problem", ["host", "token", "expired"])
def test_no_report_without_an_allowlisted_url_and_a_usable_system_token(
    platform: Platform, store: Store, session: requests.Session, clock: Clock, problem: str
) -> None:
    inst = platform.installation
    store.upsert_installation(inst.id, cloud_id=inst.cloud_id, api_base_url=inst.api_base_url)
    if problem != "token":
        install(platform, store, clock)
    if problem == "expired":
        clock.advance(7200)
    allowlist = ("https://api.atlassian.com/",) if problem == "host" else None
    personal = duties(platform, store, session, **({"allowlist": allowlist} if allowlist else {}))
    store.add_audit(inst.id, actor="acc-1", action="x", source="panel", subjects=[], outcome={})
    with pytest.raises(ReportError):
        personal.report(inst.id)
    assert reports(platform) == []


def test_the_scheduled_trigger_queues_the_duty_at_the_configured_pace(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    store.add_audit(iid, actor="acc-1", action="x", source="panel", subjects=[], outcome={})
    personal = duties(platform, store, session, report_days=7)
    every = personal.report_every_seconds
    assert every == 7 * DAY
    assert personal.run_due() is False  # nothing queued yet
    assert store.note_scheduled_trigger(iid, report_every_seconds=every)
    assert store.note_scheduled_trigger(iid, report_every_seconds=every) is False  # queued once
    assert personal.run_due() and len(reports(platform)) == 1
    clock.advance(3600)
    assert store.note_scheduled_trigger(iid, report_every_seconds=every) is False
    clock.advance(DAY)  # housekeeping (retention) daily, the report weekly
    install(platform, store, clock)
    assert store.note_scheduled_trigger(iid, report_every_seconds=every)
    assert personal.run_due() and len(reports(platform)) == 1
    health = store.installation_health(iid)
    assert health is not None and health.housekept_at == clock()
    clock.advance(6 * DAY)
    install(platform, store, clock)
    assert store.note_scheduled_trigger(iid, report_every_seconds=every)
    assert personal.run_due() and len(reports(platform)) == 2
    assert store.installation_health(iid).last_report_at == clock()  # type: ignore[union-attr]

    always = duties(platform, store, session, report_days=0)
    for n in range(3):
        clock.advance(60)
        assert store.note_scheduled_trigger(iid, report_every_seconds=0)
        assert always.run_due() and len(reports(platform)) == 3 + n


def test_a_duty_is_leased_to_one_worker(platform: Platform, store: Store, clock: Clock) -> None:
    iid = install(platform, store, clock)
    store.note_scheduled_trigger(iid, report_every_seconds=0)
    assert store.claim_privacy_duty("a", 300) == iid
    assert store.claim_privacy_duty("b", 300) is None
    assert store.finish_privacy_duty(iid, "b", housekept=True, reported=True) is False
    clock.advance(301)  # a crashed holder's lease runs out
    assert store.claim_privacy_duty("b", 300) == iid
    assert store.finish_privacy_duty(iid, "b", housekept=True, reported=True)
    assert store.claim_privacy_duty("c", 300) is None


def test_retention_redacts_old_emails_and_subjects_but_keeps_counts(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    emails = ["redacted-2", "a@example.com", "b@example.com"]  # an input may look like a marker
    old = store.create_job(iid, source="panel", dry_run=False, created_by="acc", emails=emails)
    store.claim_job("w", 60, installation_id=iid, job_id=old.id)
    store.record_outcomes(
        iid, old.id, "w", {"a@example.com": ("invited", None), "b@example.com": ("failed", "x")}
    )
    store.finish_job(iid, old.id, "w")
    running = store.create_job(iid, source="panel", dry_run=True, created_by="acc", emails=emails)
    other = "ari:cloud:ecosystem::installation/other"
    store.add_audit(other, actor="x", action="y", source="panel", subjects=["o@x.co"], outcome={})
    clock.advance(89 * DAY)
    recent = store.create_job(
        iid, source="panel", dry_run=True, created_by="acc", emails=["r@x.co"]
    )
    store.claim_job("w", 60, installation_id=iid, job_id=recent.id)
    store.finish_job(iid, recent.id, "w")
    clock.advance(DAY + 1)

    personal = duties(platform, store, session, retention_days=90)
    assert personal.apply_retention(iid) == (1, 1)
    redacted = store.job(iid, old.id)
    assert redacted is not None and redacted.items is not None
    assert [(i.email, i.outcome, i.error) for i in redacted.items] == [
        ("redacted-1", "pending", None),
        ("redacted-2", "invited", None),
        ("redacted-3", "failed", "x"),
    ]
    assert redacted.counts == old.counts.__class__(pending=1, invited=1, failed=1)
    assert redacted.total == 3
    untouched = store.job(iid, running.id)
    assert untouched is not None and [i.email for i in untouched.items or ()] == emails
    kept = store.job(iid, recent.id)
    assert kept is not None and [i.email for i in kept.items or ()] == ["r@x.co"]
    entries, _ = store.list_audit(iid, 10)
    assert [(e.action, e.subjects) for e in entries] == [
        ("invite.dryRun", ("r@x.co",)),
        ("invite", ()),
    ]
    assert entries[1].outcome["invited"] == 1  # type: ignore[index]
    assert store.list_audit(other, 10)[0][0].subjects == ("o@x.co",)  # another installation

    assert personal.apply_retention(iid) == (0, 0)  # the watermark: nothing twice
    clock.advance(88 * DAY)
    assert personal.apply_retention(iid) == (0, 0)
    clock.advance(DAY)
    assert personal.apply_retention(iid) == (1, 1)
    assert [i.email for i in store.job(iid, recent.id).items or ()] == ["redacted-1"]  # type: ignore[union-attr]


def test_the_scheduled_trigger_only_queues_and_the_worker_reports(
    backend: Backend, platform: Platform, session: requests.Session
) -> None:
    app: Any = backend.client.application
    svc = app.extensions["access_desk"]
    store: Store = svc.store
    inst = platform.installation
    backend.call("whoami")
    store.add_audit(inst.id, actor="acc-1", action="x", source="panel", subjects=[], outcome={})
    headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER)
    assert backend.client.post("/forge/scheduled", json={}, headers=headers).status_code == 200
    assert reports(platform) == []  # nothing inline: the trigger answers at once
    health = store.installation_health(inst.id)
    assert health is not None and health.duty_due_at is not None
    assert health.last_scheduled_at is not None

    settings = svc.settings
    personal = PersonalData(
        session,
        settings.personal_data_url,
        store,
        allowlist=settings.api_base_url_allowlist,
        report_days=settings.personal_data_report_days,
    )
    assert personal.run_due()
    (sent,) = reports(platform)
    assert sent.account_id == "system" and sent.installation_id == inst.id
    # the audit actor, and the caller of whoami (its admin check record holds their account id)
    assert sorted(a["accountId"] for a in sent.body["accounts"]) == sorted(
        ["acc-1", inst.site.admin_id]
    )


def test_the_cycle_period_atlassian_asks_for_is_followed(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    store.add_audit(iid, actor="acc-1", action="x", source="panel", subjects=[], outcome={})
    personal = duties(platform, store, session, report_days=7)
    every = personal.report_every_seconds
    platform.account_reports.cycle_period = "P2D"  # Atlassian asks for a report every 2 days
    assert store.note_scheduled_trigger(iid, report_every_seconds=every)
    assert personal.run_due() and len(reports(platform)) == 1
    health = store.installation_health(iid)
    assert health is not None and health.report_cycle_seconds == 2 * DAY
    clock.advance(2 * DAY - 60)
    install(platform, store, clock)
    store.note_scheduled_trigger(iid, report_every_seconds=every)
    personal.run_due()  # housekeeping only: not 2 days yet
    assert len(reports(platform)) == 1
    clock.advance(60)
    install(platform, store, clock)
    assert store.note_scheduled_trigger(iid, report_every_seconds=every)
    assert personal.run_due() and len(reports(platform)) == 2  # after 2 days, not 7
    platform.account_reports.cycle_period = "1209600"  # then every 14 days, in seconds
    clock.advance(2 * DAY)
    install(platform, store, clock)
    store.note_scheduled_trigger(iid, report_every_seconds=every)
    personal.run_due()
    assert len(reports(platform)) == 3  # the 2-day cycle was still the one asked for
    health = store.installation_health(iid)
    assert health is not None and health.report_cycle_seconds == 14 * DAY
    clock.advance(7 * DAY)
    install(platform, store, clock)
    store.note_scheduled_trigger(iid, report_every_seconds=every)
    personal.run_due()
    assert len(reports(platform)) == 3  # 7 days (PERSONAL_DATA_REPORT_DAYS) is not enough now


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("604800", 7 * DAY),
        ("P7D", 7 * DAY),
        ("PT12H", 12 * 3600.0),
        ("P1W", 7 * DAY),
        ("10", 3600.0),
        ("P9999D", 365 * DAY),
        ("weekly", None),
        ("", None),
        ("-5", None),
    ],
)
def test_a_cycle_period_is_read_in_seconds_or_as_an_iso_duration(
    header: str, seconds: float | None
) -> None:
    assert cycle_seconds(header) == seconds


def test_the_literal_id_unknown_is_never_reported(
    platform: Platform, store: Store, session: requests.Session, clock: Clock
) -> None:
    iid = install(platform, store, clock)
    for actor in ("unknown", "acc-1", "Unknown"):
        store.add_audit(iid, actor=actor, action="x", source="panel", subjects=[], outcome={})
    report = duties(platform, store, session).report(iid)
    sent = [a for r in reports(platform) for a in (e["accountId"] for e in r.body["accounts"])]
    assert sent == ["acc-1"] and report.accounts == 1
