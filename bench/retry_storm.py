"""An invite job of 2,000 new emails under a 429 storm, run by the backend's own job machinery.

gunicorn runs with its background worker (BACKGROUND_WORKER=true, WORKER_POLL_SECONDS=0.2); the
job is queued through the ``inviteEmails`` resolver (which also stores the installation's system
token, so the worker can get an offline token for the admin) and then advanced by the workers
alone; this script only reads the job's state from the store.

The storm: bursts of consecutive 429 answers with ``Retry-After: 2`` start at given request numbers
on check-access and invite (one burst is longer than the client's 1 + 4 attempts, so the job itself
has to wait and resume). Every 429 of a burst is used up by whichever request comes next, so none
can be avoided, and after each one the site must be left alone for the 2 s it asked for; the job
works one chunk at a time, so the holds cannot overlap. Hence the minimums:

- upstream requests: 20 check chunks + 20 invite chunks (2,000 / 100) + every 429 of the storm;
- time: the sum of those holds (429s x 2 s) + one 50 ms round trip per minimum request.

Run: .venv/bin/python -m bench.retry_storm [--emails 2000] [--retry-after 2]
Targets: job time <= 1.1 x the minimum; upstream requests <= 1.1 x the minimum.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from access_desk.store import Store
from bench import common
from bench.common import backend_env, stop_server
from simulator import Faults, Platform, RequestRecord
from simulator.faults import Fault

LATENCY = 0.05
CHUNK = 100
# endpoint -> {number of the request to that endpoint that starts a burst: 429s in the burst}
BURSTS = {"check-access": {1: 2, 10: 2}, "invite": {3: 6, 15: 2}}


class Storm(Faults):
    """Faults that start a burst of ``n`` 429s at the k-th request to an endpoint."""

    def __init__(self, bursts: dict[str, dict[int, int]], retry_after: int) -> None:
        super().__init__()
        self._bursts = bursts
        self._retry_after = retry_after
        self._seen: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def take(self, endpoint: str) -> Fault | None:
        with self._count_lock:
            self._seen[endpoint] += 1
            burst = self._bursts.get(endpoint, {}).get(self._seen[endpoint])
        if burst:
            self.add(endpoint, "429", times=burst, retry_after=self._retry_after)
        return super().take(endpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--retry-after", type=int, default=2, help="seconds, on every 429")
    parser.add_argument("--timeout", type=float, default=100.0, help="give up on the job after")
    args = parser.parse_args()

    platform = Platform(
        app_id=common.APP_ID, seed=True, seed_users=40, latency=LATENCY, invite_delay=0.05
    )
    platform.faults = Storm(BURSTS, args.retry_after)
    sim = platform.serve("127.0.0.1", 0)
    inst = platform.installation
    admin = inst.site.admin_id
    emails = [f"storm.hire{n:05d}@example.com" for n in range(args.emails)]
    assert not any(inst.site.has_access(e) for e in emails)
    with tempfile.TemporaryDirectory(prefix="bench-retry-storm-") as tmp:
        workdir = Path(tmp)
        settings = common.settings_for(platform, workdir, background_worker=True)
        log = workdir / "gunicorn.log"
        env = backend_env(
            settings, BACKGROUND_WORKER="true", WORKER_POLL_SECONDS="0.2", LOG_LEVEL="INFO"
        )
        server = common.start_backend(env, log, workers=2, threads=4)
        store = Store(settings.database_url, settings.secret_key)
        try:
            platform.clear_requests()
            headers = platform.invocation_headers(inst, admin, lifetime=300)
            queued_at = time.time()
            response = requests.post(
                server.url + "/resolvers/inviteEmails",
                json={"emails": emails},
                headers=headers,
                timeout=30,
            )
            if response.status_code != 200:
                raise RuntimeError(f"inviteEmails answered {response.status_code}: {response.text}")
            job_id = response.json()["job"]["id"]
            deadline = time.monotonic() + args.timeout
            job = store.job(inst.id, job_id, items=False)
            while job is not None and job.state in ("queued", "running"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the job did not finish in {args.timeout:g} s: {job}")
                time.sleep(0.1)
                job = store.job(inst.id, job_id, items=False)
            seen_done = time.time()
            assert job is not None
            records = platform.requests
        finally:
            stop_server(server)
            sim.stop()
            store.close()
        problems = common.warnings_in(log)

    report(args, job, records, queued_at, seen_done, problems)


def report(
    args: argparse.Namespace,
    job: Any,  # store's Job
    records: list[RequestRecord],
    queued_at: float,
    seen_done: float,
    problems: list[str],
) -> None:
    confluence = [r for r in records if r.endpoint in ("check-access", "invite")]
    by = Counter((r.endpoint, r.status) for r in confluence)
    other = Counter(r.endpoint for r in records if r.endpoint not in ("check-access", "invite"))
    storm = sum(n for bursts in BURSTS.values() for n in bursts.values())
    chunks = math.ceil(args.emails / CHUNK)
    minimum_requests = 2 * chunks + storm
    holds = storm * args.retry_after
    minimum_time = holds + minimum_requests * LATENCY
    job_time = float(job.updated_at - job.created_at)
    made = len(confluence)
    answered_429 = sum(n for (_, status), n in by.items() if status == 429)

    # After each 429: how long until the next request went out (its answer minus the latency).
    times = sorted((r.at.timestamp(), r.status) for r in confluence)
    waits = [
        (times[i + 1][0] - LATENCY) - times[i][0]
        for i in range(len(times) - 1)
        if times[i][1] == 429
    ]
    gaps = [
        (times[i + 1][0] - LATENCY) - times[i][0]
        for i in range(len(times) - 1)
        if times[i][1] != 429
    ]
    print(
        f"job                       {args.emails:,} new emails, invite (not a dry run), "
        f"state {job.state}, counts {job.counts.to_json()}"
    )
    print(
        "machinery                 gunicorn 2 workers x 4 threads, each with its background job "
        "worker (WORKER_POLL_SECONDS=0.2, JOB_STEP_SECONDS=15, UPSTREAM_MAX_RETRIES=4)"
    )
    bursts = "; ".join(
        f"{endpoint} " + ", ".join(f"{n} from request #{k}" for k, n in sorted(b.items()))
        for endpoint, b in BURSTS.items()
    )
    print(
        f"storm                     {storm} x 429 with Retry-After {args.retry_after} s in bursts: "
        f"{bursts}; upstream latency {LATENCY * 1000:.0f} ms"
    )
    print(
        f"job time                  {job_time:.2f} s (store: created -> finished); "
        f"{seen_done - queued_at:.2f} s as seen by this script polling every 0.1 s"
    )
    print(
        f"minimum time              {minimum_time:.2f} s = {storm} holds x {args.retry_after} s "
        f"+ {minimum_requests} requests x {LATENCY * 1000:.0f} ms (one chunk at a time)"
    )
    print(f"ratio to the minimum      {job_time / minimum_time:.3f}x   target <= 1.1x")
    print(
        f"ratio to the holds alone  {job_time / holds:.3f}x   (sum of unavoidable holds "
        f"{holds:.0f} s; the round trips alone make this >= {minimum_time / holds:.3f}x)"
    )
    print(
        f"upstream requests         {made} = check-access {by[('check-access', 200)]} ok + "
        f"{by[('check-access', 429)]} x 429, invite {by[('invite', 200)]} ok + "
        f"{by[('invite', 429)]} x 429"
        + (
            f", other statuses {dict(by)}"
            if made != sum(by[k] for k in by if k[1] in (200, 429))
            else ""
        )
    )
    print(
        f"minimum requests          {minimum_requests} = {chunks} check chunks + {chunks} invite "
        f"chunks + {storm} x 429 (each burst's 429s go to whichever requests come next)"
    )
    print(f"ratio to the minimum      {made / minimum_requests:.3f}x   target <= 1.1x")
    print(f"429 answers               {answered_429} (storm had {storm})")
    if waits:
        print(
            f"wait after each 429       min {min(waits):.2f} s, max {max(waits):.2f} s, "
            f"total {sum(waits):.2f} s for {holds:.0f} s asked (extra {sum(waits) - holds:+.2f} s)"
        )
    if gaps:
        print(
            f"gap after each 200        median {common.percentile(gaps, 0.5) * 1000:.1f} ms, "
            f"max {max(gaps) * 1000:.1f} ms, total {sum(gaps):.2f} s (job bookkeeping between "
            "chunks: store writes, lease renewals, next chunk)"
        )
    if times:
        print(
            f"before the first request  {times[0][0] - LATENCY - job.created_at:.2f} s after the "
            f"job was queued; after the last answer {job.updated_at - times[-1][0]:.2f} s to done"
        )
    print(f"other upstream requests   {dict(other)} (admin check, offline token)")
    if problems:
        print(f"backend warnings/errors   {len(problems)}; first: {problems[0][:300]}")


if __name__ == "__main__":
    main()
