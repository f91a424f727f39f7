"""An invite's items are claimed before the request goes (issue 16, item 5): two workers whose lease
runs out in the middle of a slow step never both send an item."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from access_desk.confluence.client import Client
from access_desk.forge.offline_tokens import OfflineTokens
from access_desk.jobs.runner import JobRunner
from access_desk.jobs.worker import Worker
from access_desk.store import Store
from access_desk.store.records import Installation
from simulator import Platform
from tests.support.simulated import client, store_installation
from tests.support.stores import KEY

LEASE = 0.3  # JOB_LEASE_SECONDS far shorter than an invite takes: every chunk outlives its lease
INVITE_SECONDS = 1.0


@pytest.fixture()
def two_stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two processes' stores on one database, on the real clock."""
    a, b = Store(db_url, KEY), Store(db_url, KEY)
    a.migrate()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def background(name: str, store: Store, platform: Platform, session: requests.Session) -> Worker:
    def make_client(installation: Installation, token: str) -> Client:
        return client(platform, session, installation.api_base_url, token)

    tokens = OfflineTokens(session, platform.graphql_url, store)
    runner = JobRunner(store, lease_seconds=LEASE, chunk_size=50)
    return Worker(
        store,
        runner,
        make_client,
        tokens,
        worker_id=f"worker-{name}",
        poll_seconds=0.02,
        lease_seconds=LEASE,
        step_seconds=10.0,
    )


def test_a_lost_lease_never_sends_an_invitation_twice(
    two_stores: tuple[Store, Store], platform: Platform, session: requests.Session
) -> None:
    a, b = two_stores
    iid = store_installation(platform, a, time.time() + 7200)
    emails = [f"claimed{n}@newcomers.example" for n in range(150)]
    job = a.create_job(
        iid,
        source="webhook",
        dry_run=False,
        created_by=platform.installation.site.admin_id,
        emails=emails,
    )
    platform.faults.add("invite", "latency", times=None, delay=INVITE_SECONDS)
    workers = [background("a", a, platform, session), background("b", b, platform, session)]
    stop = threading.Event()

    def finished() -> bool:
        current = a.job(iid, job.id, items=False)
        return current is not None and current.state == "done"

    def sent() -> Counter[str]:
        return Counter(
            e for r in platform.requests if r.endpoint == "invite" for e in r.body["emails"]
        )

    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 60
        while not finished() and max(sent().values(), default=0) < 2:
            assert time.monotonic() < deadline, "the job did not finish"
            stop.wait(0.05)
    finally:
        for w in workers:
            w.stop(10)
    twice = {e: n for e, n in sent().items() if n > 1}
    assert not twice, f"{len(twice)} invitations sent more than once, e.g. {list(twice)[:3]}"
    assert set(sent()) == set(emails)
    done = a.job(iid, job.id, items=False)
    assert done is not None and done.counts.invited == 150 and done.counts.pending == 0
    senders = {r.account_id for r in platform.requests if r.endpoint == "invite"}
    assert senders == {platform.installation.site.admin_id}
