"""50 concurrent panel clients against gunicorn + the simulator, and the same mix sent directly.

Each client is a thread with its own ``requests.Session`` and its own pre-minted Forge headers
(FIT, user and system token; the FIT lives the 300 s the backend accepts at most and is minted again,
outside the timed part, before it runs out), cycling whoami / lookupUsers (5 ids) / checkAccess
(5 emails) as the site admin. The admin check is cached per gunicorn worker
(``ADMIN_CACHE_SECONDS``, 60 s), so after the warm-up whoami makes no upstream call and lookupUsers
and checkAccess make exactly one each (checkAccess also writes one audit row).

lookupUsers is answered from the lookup cache (``LOOKUP_CACHE_SECONDS``) for ids the same caller
looked up before, with no upstream call. To measure what the backend adds to an upstream call, every
lookupUsers call asks for 5 ids never asked for before in the run (synthetic users added to the
simulated site, ``--id-pool`` of them), so each one reads the cache, misses, calls users-bulk and
writes the cache. Should the pool run out, ids are reused and those calls are counted and printed.

The direct phase runs the same clients, mix and duration with the backend taken out: lookupUsers
becomes POST users-bulk and checkAccess POST check-access-by-email straight to the simulator, and
whoami is skipped (it has no upstream call to compare with). "Added" latency is the backend's
percentile minus the direct percentile of the same kind of call.

The bounds of calls in flight (one installation never takes every thread of a process) are raised
as far as the threads allow; a call answered 429 ``busy`` beyond them is sent again 50 ms later,
and its latency counts from its first try.

Run: .venv/bin/python -m bench.load [--seconds 30] [--clients 50] [--workers N] [--threads N]
Targets: no errors; <= 3 ms p50 added by the backend to an upstream call.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from access_desk.forge.invocation import MAX_LIFETIME
from bench import common
from bench.common import backend_env, ms, percentile, stop_server
from simulator import Platform
from simulator.site import account_id

LATENCY = 0.05
KINDS = ("whoami", "lookupUsers", "checkAccess")
UPSTREAM = {"lookupUsers": "users-bulk", "checkAccess": "check-access"}
LOOKUP_IDS = 5
BUSY_PAUSE, BUSY_TRIES = 0.05, 100  # a 429 busy (calls-in-flight bound) is sent again


class FreshIds:
    """Hands out ``LOOKUP_IDS`` ids at a time from a pool, each once until the pool runs out
    (then from the start again: ``reused`` counts those hand-outs)."""

    def __init__(self, pool: list[str]) -> None:
        self._pool = pool
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.reused = 0

    def take(self) -> list[str]:
        with self._lock:
            start = next(self._next) * LOOKUP_IDS
            if start + LOOKUP_IDS > len(self._pool):
                self.reused += 1
        return [self._pool[(start + i) % len(self._pool)] for i in range(LOOKUP_IDS)]


@dataclass
class Samples:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: Counter[str] = field(default_factory=Counter)
    made: int = 0  # every call, warm-up included
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies[kind].append(seconds)
            else:
                self.errors[f"{kind}: {error}"] += 1

    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())


# A request: (session, kind, client number) -> error text or None.
Send = Callable[[requests.Session, str, int], "str | None"]


def run_clients(
    clients: int,
    warmup: float,
    seconds: float,
    send: Send,
    kinds: tuple[str, ...],
    prepare: Callable[[int], object] = lambda n: None,
) -> tuple[Samples, float]:
    """``clients`` threads calling ``send`` in a loop (``prepare(n)`` first, untimed); only calls
    started in the window count."""
    samples = Samples()
    start = time.perf_counter() + warmup
    stop = start + seconds

    def client(n: int) -> None:
        with requests.Session() as session:
            i = n  # clients start at different points of the mix
            while True:
                prepare(n)
                began = time.perf_counter()
                if began >= stop:
                    return
                kind = kinds[i % len(kinds)]
                i += 1
                try:
                    error = send(session, kind, n)
                except requests.RequestException as exc:
                    error = type(exc).__name__
                ended = time.perf_counter()
                with samples.lock:
                    samples.made += 1
                if began >= start:
                    samples.add(kind, ended - began, error)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=warmup + seconds + 60)
    return samples, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time of each phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured start of each phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--probe", type=int, default=40, help="calls of each kind by one client alone, first"
    )
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py)")
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: gunicorn.conf.py)"
    )
    parser.add_argument(
        "--id-pool",
        type=int,
        default=100_000,
        help="synthetic users on the site, so that every lookupUsers call asks for new ids",
    )
    args = parser.parse_args()

    platform = Platform(app_id=common.APP_ID, seed=True, seed_users=40, latency=LATENCY)
    inst = platform.installation
    site = inst.site
    rng = random.Random("access-desk-bench-load")
    templates = [site.users[u] for u in site.user_ids]
    pool: list[str] = []
    while len(pool) < args.id_pool:  # before the fork, so the simulator's child has them too
        uid = account_id(rng)
        if uid not in site.users:
            site.users[uid] = dict(templates[len(pool) % len(templates)], accountId=uid)
            pool.append(uid)
    stop_simulator, simulator_pid = common.serve_in_child(platform)
    simulator_pids = [simulator_pid]
    sim_url = platform.url
    admin = site.admin_id
    fits = [common.Fit(sim_url, admin) for _ in range(args.clients)]
    token = fits[0].headers()["x-forge-oauth-user"]
    known_emails = [site.emails[u] for u in site.user_ids if u in site.emails]
    email_sets = [
        rng.sample(known_emails, 3) + [f"load.new{n}@example.com", f"load.other{n}@example.org"]
        for n in range(args.clients)
    ]
    payloads: dict[str, list[dict[str, Any]]] = {
        "whoami": [{} for _ in range(args.clients)],
        "checkAccess": [{"emails": emails} for emails in email_sets],
    }
    fresh = FreshIds(pool)  # through the backend (the direct phase has no cache: any ids do)
    direct_ids = FreshIds(pool)

    def payload(kind: str, n: int, ids: FreshIds) -> dict[str, Any]:
        return {"accountIds": ids.take()} if kind == "lookupUsers" else payloads[kind][n]

    config = common.gunicorn_config(args.workers, args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        workdir = Path(tmp)
        settings = common.settings_for(platform, workdir)
        log = workdir / "gunicorn.log"
        # Fifty panels of one admin on one site: raise the per-installation and per-user bounds of
        # calls in flight as far as the threads allow (all but one per process: call_limits.py);
        # a call answered 429 busy beyond them is sent again after BUSY_PAUSE, its time counted.
        most = str(max(1, int(config["threads"]) - 1))
        env = backend_env(
            settings,
            BACKGROUND_WORKER="false",
            LOG_LEVEL="INFO",
            MAX_CALLS_PER_INSTALLATION=most,
            MAX_CALLS_PER_USER=most,
        )
        server = common.start_backend(env, log, workers=args.workers, threads=args.threads)
        booted = log.read_text(errors="replace").count("Booting worker")
        try:

            def via_backend(session: requests.Session, kind: str, n: int) -> str | None:
                body = payload(kind, n, fresh)
                for _ in range(BUSY_TRIES):
                    response = session.post(
                        f"{server.url}/resolvers/{kind}",
                        json=body,
                        headers=fits[n].headers(),
                        timeout=30,
                    )
                    if response.status_code != 429:
                        break
                    time.sleep(BUSY_PAUSE)
                return None if response.status_code == 200 else f"HTTP {response.status_code}"

            base = inst.api_base_url + "/wiki/api/v2"
            direct_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            paths = {
                "lookupUsers": "/users-bulk",
                "checkAccess": "/user/access/check-access-by-email",
            }

            def direct(session: requests.Session, kind: str, n: int) -> str | None:
                response = session.post(
                    base + paths[kind],
                    json=payload(kind, n, direct_ids),
                    headers=direct_headers,
                    timeout=30,
                )
                return None if response.status_code == 200 else f"HTTP {response.status_code}"

            # One client alone first (no contention), then the loaded phases: direct first, then
            # through the backend, with the same clients, mix and duration.
            alone: dict[str, dict[str, list[float]]] = {"backend": {}, "direct": {}}
            with requests.Session() as one:
                for side, send in (("backend", via_backend), ("direct", direct)):
                    for kind in KINDS if side == "backend" else tuple(UPSTREAM):
                        taken = alone[side].setdefault(kind, [])
                        for i in range(args.probe + 5):
                            fits[0].headers()
                            began = time.perf_counter()
                            error = send(one, kind, 0)
                            if i >= 5 and error is None:  # the first few warm up
                                taken.append(time.perf_counter() - began)
            common.upstream_counts(sim_url, clear=True)
            direct_cpu = time.process_time(), common.cpu_seconds(simulator_pids)
            direct_started = time.perf_counter()
            direct_samples, _ = run_clients(
                args.clients, args.warmup, args.seconds, direct, ("lookupUsers", "checkAccess")
            )
            direct_wall = time.perf_counter() - direct_started
            direct_cpu = (
                time.process_time() - direct_cpu[0],
                common.cpu_seconds(simulator_pids) - direct_cpu[1],
            )
            direct_calls = common.upstream_counts(sim_url, clear=True)
            gunicorn_pids = common.group_pids(server.process.pid)
            cpu_before = (
                common.cpu_seconds(gunicorn_pids),
                time.process_time(),
                common.cpu_seconds(simulator_pids),
            )
            started = time.perf_counter()
            reused_before = fresh.reused
            backend_samples, _ = run_clients(
                args.clients,
                args.warmup,
                args.seconds,
                via_backend,
                KINDS,
                lambda n: fits[n].headers(),
            )
            reused = fresh.reused - reused_before
            backend_wall = time.perf_counter() - started
            cpu_used = (
                common.cpu_seconds(gunicorn_pids) - cpu_before[0],
                time.process_time() - cpu_before[1],
                common.cpu_seconds(simulator_pids) - cpu_before[2],
            )
            backend_calls = common.upstream_counts(sim_url)
        finally:
            stop_server(server)
            stop_simulator()
        problems = common.warnings_in(log)

    print(
        f"gunicorn                  {booted or config['workers']} workers x {config['threads']} "
        f"threads ({config['worker_class']}, from {config['from']}) on 127.0.0.1; "
        "BACKGROUND_WORKER=false, SQLite store, LOG_LEVEL=INFO"
    )
    print(
        f"clients                   {args.clients} threads, own Session and pre-minted FIT each "
        f"(lifetime {MAX_LIFETIME} s, minted again untimed before it runs out); all act as the "
        "site admin"
    )
    print(
        f"mix                       whoami / lookupUsers ({LOOKUP_IDS} ids) / checkAccess "
        f"(5 emails), round robin; upstream latency {LATENCY * 1000:.0f} ms"
    )
    print(
        f"lookupUsers ids           {LOOKUP_IDS} never asked for before on every call (from "
        f"{len(pool):,} synthetic users), so none is answered from the lookup cache: each call "
        "reads the cache, calls users-bulk and writes the cache"
        + (
            f"; the pool ran out: {reused:,} backend-phase calls reused ids (partly cached)"
            if reused
            else ""
        )
    )
    print(
        "simulator                 in its own forked process (the load generator's threads "
        "do not share its GIL)"
    )
    print(
        f"phases                    {args.warmup:g} s warm-up + {args.seconds:g} s measured, each"
    )
    print(f"backend phase wall        {backend_wall:.1f} s")
    for label, samples in (("backend", backend_samples), ("direct", direct_samples)):
        total = samples.count()
        errors = sum(samples.errors.values())
        print(
            f"{label:<9} throughput       {total / args.seconds:,.0f} req/s ({total:,} requests), "
            f"errors {errors}" + (f" {dict(samples.errors)}" if errors else "")
        )
    print(
        f"{'':<26}{'backend p50':>12}{'p99':>10}{'direct p50':>12}{'p99':>10}{'added p50':>11}"
        f"{'p99':>10}"
    )
    pooled_backend: list[float] = []
    pooled_direct: list[float] = []
    for kind in KINDS:
        b = backend_samples.latencies[kind]
        d = direct_samples.latencies.get(kind, []) if kind in UPSTREAM else []
        if kind in UPSTREAM:
            pooled_backend += b
            pooled_direct += d
        row = f"{kind:<26}{percentile(b, 0.5) * 1000:>10.1f}ms{percentile(b, 0.99) * 1000:>8.1f}ms"
        if kind in UPSTREAM:
            row += f"{percentile(d, 0.5) * 1000:>10.1f}ms{percentile(d, 0.99) * 1000:>8.1f}ms"
            row += f"{(percentile(b, 0.5) - percentile(d, 0.5)) * 1000:>9.1f}ms"
            row += f"{(percentile(b, 0.99) - percentile(d, 0.99)) * 1000:>8.1f}ms"
        else:
            row += f"{'(no upstream call: all backend time)':>52}"
        print(row)
    if args.probe:
        single = alone["backend"]
        cells = [f"whoami {ms(percentile(single['whoami'], 0.5))}"]
        for kind in UPSTREAM:
            added = percentile(single[kind], 0.5) - percentile(alone["direct"][kind], 0.5)
            cells.append(
                f"{kind} {ms(percentile(single[kind], 0.5))} (direct "
                f"{ms(percentile(alone['direct'][kind], 0.5))}, added {ms(added)})"
            )
        print(f"one client alone, p50     {'; '.join(cells)}   ({args.probe} calls each)")
    added50 = percentile(pooled_backend, 0.5) - percentile(pooled_direct, 0.5)
    added99 = percentile(pooled_backend, 0.99) - percentile(pooled_direct, 0.99)
    print(
        f"added by the backend      p50 {ms(added50)}, p99 {ms(added99)} over the same upstream "
        "call (lookupUsers + checkAccess pooled)   target <= 3 ms p50"
    )
    every = sum(len(v) for v in backend_samples.latencies.values())
    print(
        f"all backend calls         p50 {ms(percentile(sum(backend_samples.latencies.values(), []), 0.5))}"
        f", p99 {ms(percentile(sum(backend_samples.latencies.values(), []), 0.99))} ({every:,} ok)"
    )
    print(
        f"upstream requests         backend phase {dict(backend_calls)}; "
        f"direct phase {dict(direct_calls)}"
    )
    cores = os.cpu_count() or 1
    served = backend_samples.made
    print(
        f"CPU, backend phase        gunicorn {cpu_used[0]:.1f} s "
        f"({cpu_used[0] / max(1, served) * 1000:.2f} ms per call, warm-up included), load generator "
        f"{cpu_used[1]:.1f} s, simulator {cpu_used[2]:.1f} s, of {cores * backend_wall:.1f} "
        f"core-seconds ({cores} cores x {backend_wall:.1f} s)"
    )
    print(
        f"CPU, direct phase         load generator {direct_cpu[0]:.1f} s, simulator "
        f"{direct_cpu[1]:.1f} s, of {cores * direct_wall:.1f} core-seconds"
    )
    if problems:
        print(f"backend warnings/errors   {len(problems)}; first: {problems[0][:300]}")


if __name__ == "__main__":
    main()
