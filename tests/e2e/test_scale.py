"""Two gunicorn instances on one PostgreSQL database share the invite jobs (the way several servers
behind a load balancer would), with upstream latency on the Confluence calls.

- Every job ends ``done`` with every item final, no email is invited twice (no lease ran out, so
  each email is in exactly one invite request), both instances' workers did work, no job is left
  leased.
- One instance killed with SIGKILL mid-way: its jobs are taken over by the other once their
  leases run out, and everything finishes (at most the chunks in flight at the kill are re-sent).

Only the background workers advance the jobs here: progress is read from the database, not with
``getJob`` (which would advance a panel job itself).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from access_desk.store import Store
from bench.common import LiveServer, backend_env, stop_server
from tests.conftest import start_gunicorn
from tests.support.stores import fresh_database

pytestmark = pytest.mark.e2e

LEASE = 4.0  # JOB_LEASE_SECONDS: longer than twice a step (settings), short enough to wait out
INVITE_LATENCY = 0.3
CHECK_LATENCY = 0.05


@pytest.fixture()
def shared_db(tmp_path: Path) -> Iterator[str]:
    if not os.environ.get("TEST_POSTGRES_URL"):
        pytest.fail(
            "TEST_POSTGRES_URL is not set: these tests need PostgreSQL shared by two instances. "
            "Run them with ./test, which starts a private PostgreSQL cluster and exports it."
        )
    with fresh_database("postgres", tmp_path) as url:
        yield url


@pytest.fixture()
def store(shared_db: str, settings) -> Iterator[Store]:
    s = Store(shared_db, settings.secret_key)
    try:
        yield s
    finally:
        s.close()


def scale_env(settings, shared_db: str, step_seconds: float) -> dict[str, str]:
    assert Fernet(settings.secret_key.encode())  # the instances share one key and one database
    return backend_env(
        settings,
        DATABASE_URL=shared_db,
        BACKGROUND_WORKER="true",
        WORKER_POLL_SECONDS="0.2",
        JOB_LEASE_SECONDS=str(LEASE),
        JOB_STEP_SECONDS=str(step_seconds),
    )


@contextmanager
def two_servers(env: dict[str, str], tmp_path: Path) -> Iterator[list[LiveServer]]:
    servers: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            servers.append(start_gunicorn(env, tmp_path / f"{name}.log", workers=2))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def call(server: LiveServer, platform: Any, key: str, payload: Any) -> Any:
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    response = requests.post(
        f"{server.url}/resolvers/{key}", json=payload, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def create_jobs(
    servers: list[LiveServer], platform: Any, jobs: int, size: int
) -> dict[str, list[str]]:
    """``jobs`` invite jobs of ``size`` new emails each, created alternately on each instance."""
    created: dict[str, list[str]] = {}
    for n in range(jobs):
        emails = [f"scale{n}.{i}@newcomers.example" for i in range(size)]
        job = call(servers[n % len(servers)], platform, "inviteEmails", {"emails": emails})["job"]
        assert job["state"] == "queued" and job["total"] == size
        created[job["id"]] = emails
    return created


def wait_all_done(store: Store, platform: Any, job_ids: list[str], timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [store.job(platform.installation.id, jid) for jid in job_ids]
        if all(j is not None and j.state in ("done", "failed") for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            states = {j.id: (j.state, j.counts, j.lease_owner) for j in jobs if j is not None}
            raise AssertionError(f"jobs stuck after {timeout} s: {states}")
        time.sleep(0.2)


def log_lines(server: LiveServer) -> list[dict[str, Any]]:
    lines = []
    for raw in server.output().splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


def advanced(server: LiveServer) -> set[str]:
    """Jobs this instance's workers advanced (its "job advanced" log lines)."""
    return {line["job"] for line in log_lines(server) if line.get("msg") == "job advanced"}


def worker_ids(server: LiveServer) -> set[str]:
    return {line["worker"] for line in log_lines(server) if line.get("msg") == "job worker started"}


def invites(platform: Any) -> Counter[str]:
    return Counter(e for r in platform.requests if r.endpoint == "invite" for e in r.body["emails"])


def assert_all_invited(jobs: list[Any], created: dict[str, list[str]]) -> None:
    for job in jobs:
        assert job.state == "done", (job.id, job.state, job.error)
        assert job.lease_owner is None, f"job {job.id} is still leased"
        assert [item.email for item in job.items] == created[job.id]
        assert {item.outcome for item in job.items} == {"invited"}
        assert job.counts.pending == 0 and job.counts.invited == len(created[job.id])


def test_two_instances_share_the_jobs_and_invite_each_email_once(
    settings, shared_db, store, platform, tmp_path
):
    platform.faults.add("invite", "latency", times=None, delay=INVITE_LATENCY)
    platform.faults.add("check-access", "latency", times=None, delay=CHECK_LATENCY)
    # Short steps: jobs change hands between workers and instances several times.
    with two_servers(scale_env(settings, shared_db, step_seconds=1.0), tmp_path) as servers:
        created = create_jobs(servers, platform, jobs=6, size=300)
        jobs = wait_all_done(store, platform, list(created), timeout=120)
        a, b = servers

    assert_all_invited(jobs, created)
    sent = invites(platform)
    everyone = {e for emails in created.values() for e in emails}
    assert set(sent) == everyone
    twice = {e: n for e, n in sent.items() if n > 1}
    assert not twice, f"{len(twice)} emails invited more than once, e.g. {list(twice)[:3]}"
    assert all(len(r.body["emails"]) <= 100 for r in platform.requests if r.endpoint == "invite")
    assert advanced(a) and advanced(b), "one instance did no work"
    assert advanced(a) | advanced(b) == set(created)


def test_a_killed_instance_s_jobs_are_taken_over_after_the_lease(
    settings, shared_db, store, platform, tmp_path
):
    platform.faults.add("invite", "latency", times=None, delay=0.5)
    platform.faults.add("check-access", "latency", times=None, delay=CHECK_LATENCY)
    iid = platform.installation.id
    # Longer steps (three invite chunks): a worker keeps its job while inviting, so the kill finds
    # A holding jobs.
    with two_servers(scale_env(settings, shared_db, step_seconds=1.9), tmp_path) as servers:
        a, b = servers
        created = create_jobs(servers, platform, jobs=4, size=600)

        # Kill A while one of its workers holds a job that has started inviting.
        deadline = time.monotonic() + 60
        while not held_by(store, iid, created, worker_ids(a), inviting=True):
            assert time.monotonic() < deadline, "instance A never held a job mid-way"
            time.sleep(0.05)
        stop_server(a, signal.SIGKILL)
        assert a.process.poll() is not None
        orphans = held_by(store, iid, created, worker_ids(a), inviting=False)
        assert orphans, "A let go of its jobs before the kill landed"

        jobs = wait_all_done(store, platform, list(created), timeout=120)
        assert requests.get(b.url + "/healthz", timeout=5).status_code == 200

    assert_all_invited(jobs, created)
    assert orphans <= advanced(b), "B did not take over A's jobs"
    sent = invites(platform)
    assert set(sent) == {e for emails in created.values() for e in emails}
    # Only the chunks in flight when A died (one per worker of A, at most 100 each) may repeat.
    twice = [e for e, n in sent.items() if n > 1]
    assert len(twice) <= 2 * 100 and all(n <= 2 for n in sent.values())


def held_by(
    store: Store, iid: str, created: dict[str, list[str]], workers: set[str], *, inviting: bool
) -> set[str]:
    """Running jobs leased by one of ``workers`` (and, with ``inviting``, already inviting)."""
    held = set()
    for job_id in created:
        job = store.job(iid, job_id, items=False)
        assert job is not None
        if job.state == "running" and job.lease_owner in workers:
            if not inviting or job.counts.invited > 0:
                held.add(job_id)
    return held
