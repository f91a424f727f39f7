"""Twenty installations on one simulated app pool: a big invite job, a repeated big lookup and 18
small panel callers, spending Confluence's points quota side by side (docs/contract.md §6).

The simulated Confluence meters one pool for the app (``--points`` per ``--window`` seconds,
default 6,500 per 60 s: the hourly 65,000 scaled down). It runs in a forked child process, and the
backend is a real gunicorn (``gunicorn.conf.py``'s workers and threads unless ``--workers`` /
``--threads`` say otherwise, each worker with its background job worker polling every 0.2 s, the
store on SQLite), so this process, which makes the calls and times them, shares a GIL with neither.

- installation 1 queues a 10,000-email invite job (``inviteEmails``) at the start of a window;
  the background workers run it (check 100 emails at a time, then invite);
- installation 2 looks up the same 1,040 account ids (its site's 40 users plus 1,000 unknown ids:
  as many as the lookup cache keeps per caller, ``store.lookups.CALLER_MISSES``) again and again
  (``lookupUsers``), 2 s after each answer;
- installations 3..20 each make a small panel call every 3 s (``quota``, a 3-id ``lookupUsers``, a
  1-email ``checkAccess``, in turn) and their latency is recorded.

One run, one backend, one simulator, five phases: the 18 small callers alone for half of
``--baseline`` windows; a learning window; the two big ones until the job ends (from the next
window on); a noisy installation (``--noisy`` windows); alone again for the other half. The small
callers' latency alone (both quiet phases pooled) and with the big ones are printed side by side.

**Learning, then the estimate's accuracy.** Confluence says ``r`` only past 80% used, which the
busy phase never reaches on its own (fair shares and the reserve keep it under). So the learning
window first spends 80% of the pool as the app's other customers would (the simulator's control
API: ``POST /_sim/quota/spend``), then installation 21's admin makes 48 varied panel calls one at
a time (lookups of 1..24 of its users, checks of 1..16 emails): Confluence says ``r`` on each
answer and the ledger learns each operation's cost from how it moves (costs are unknown to the
product in advance: it starts from ``costs.py``'s estimates). From the next window on (the busy
phase: ``r`` absent again until 80%), the ledger's estimate of what is left is compared with the
simulator's true remaining, read consistently: the simulator read, then the ledger's row, then the
simulator again; a sample counts only when both simulator reads agree, nothing is in flight in
the ledger (``pending`` 0) and both are in the same window (never straddling a turn).

Prints: 429s received per 1,000 upstream requests in the busy phase (target <= 1); the big job's
time against the minimum the pool allows (target <= 1.15 x); the small callers' p95 latency
with the big ones against alone (target <= 1.5 x); the points the repeated lookups spent after
the first complete one (target 0); once the ledger has seen ``r`` move over 20 requests, its
estimate of what is left against the truth (target within 5% of the pool); the noisy
installation's points per window against everyone else's (every other installation keeps its
share); items lost, i.e. not ending invited / alreadyHasAccess / invalid (target 0).

The minimum: the job needs ``k = ceil(job points / points per window)`` windows' worth of points
(its ``estimatedPoints``, 20,200 for 10,000 new emails: k = 4 at 6,500). It starts at a window's
start and a window's points can all be spent in its first second (the simulated upstream is fast),
so it cannot finish before the k-th window starts: ``(k - 1)`` windows (60 s at ``--window 20``).
The issue's own yardstick, ``k`` whole windows (80 s), is printed too; jobs keep the last 20% of a
window for panel calls, and ceil(20,200 / 5,200) is also 4, so the reserve costs nothing here.

Run: .venv/bin/python -m bench.quota [--window 60] [--points 6500] [--emails 10000]
Short mode: ``--window 20`` (the same points per 20 s window: about five minutes in all).
``--costs writes``: the simulated Confluence charges the POSTs that read the base point only (the
other reading of Atlassian's table), which the product's starting estimates (2 points per user or
email) get wrong: it must learn them. The job then needs a window's points at most, so its time is
printed against the window instead of a minimum.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from access_desk.quota import rules as pool_rules
from access_desk.quota.costs import EMAILS_PER_REQUEST
from access_desk.quota.learning import learned, model
from access_desk.quota.pools import APP
from access_desk.store import Store
from access_desk.store.lookups import CALLER_MISSES
from bench import common
from bench.common import backend_env, ms, percentile, stop_server
from simulator import Platform
from simulator.quota import Quota, cost_of

UPSTREAM = ("users-bulk", "check-access", "invite", "user-current")
SMALL = 18
PAUSE = 3.0  # seconds between a small caller's calls
LOOK_PAUSE = 2.0  # seconds between the repeated big lookups
NOISY = 20  # the noisy installation's users
LAST_QUARTER = 0.25
LEARN_CALLS = 48  # the learning window's panel calls, one at a time
SEEN = 20  # r moved over this many requests: from then on the estimate is held to 5%


@dataclass
class Calls:
    """The small callers' latencies and failures, per phase."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, phase: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies.setdefault(phase, []).append(seconds)
            else:
                self.errors[f"{phase}: {error}"] += 1

    def of(self, *phases: str) -> list[float]:
        return [s for p in phases for s in self.latencies.get(p, [])]

    def failed(self, *phases: str) -> int:
        return sum(n for k, n in self.errors.items() if k.split(":")[0] in phases)


class Caller:
    """One installation's admin calling resolvers over HTTP with a FIT minted by the simulator."""

    def __init__(self, backend_url: str, sim_url: str, inst: Any, account: str = "") -> None:
        self.inst = inst
        self.url = backend_url
        self._fit = common.Fit(sim_url, account or inst.site.admin_id, inst.id)
        self._session = requests.Session()

    def call(self, key: str, payload: dict[str, Any]) -> tuple[float, requests.Response]:
        headers = self._fit.headers()  # minted (or not) before the clock starts
        began = time.perf_counter()
        response = self._session.post(
            f"{self.url}/resolvers/{key}", json=payload, headers=headers, timeout=60
        )
        return time.perf_counter() - began, response

    def close(self) -> None:
        self._session.close()


def small_caller(
    caller: Caller, index: int, phase: list[str], stop: threading.Event, calls: Calls
) -> None:
    turn = index  # callers start on different kinds of call
    stop.wait(index * PAUSE / SMALL)
    site = caller.inst.site
    while not stop.is_set():
        kind = turn % 3
        turn += 1
        if kind == 0:
            key, payload = "quota", {}
        elif kind == 1:
            key, payload = "lookupUsers", {"accountIds": site.user_ids[:3]}
        else:
            key, payload = "checkAccess", {"emails": [f"someone{turn}@example.com"]}
        current = phase[0]
        try:
            seconds, response = caller.call(key, payload)
        except requests.RequestException as exc:
            calls.add(current, 0.0, type(exc).__name__)
        else:
            body = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            if response.status_code != 200:
                calls.add(
                    current, seconds, f"{key} HTTP {response.status_code} {body.get('error')}"
                )
            elif body.get("failed"):
                calls.add(current, seconds, f"{key} failed entries")
            else:
                calls.add(current, seconds, None)
        stop.wait(PAUSE)


def next_window(window: float) -> float:
    """Seconds until just after the meter's next window starts (windows end at the clock's
    multiples of ``window``, as Confluence's do; wall clock, as the meter)."""
    return window - time.time() % window + 0.05


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=60, help="seconds per quota window")
    parser.add_argument("--points", type=int, default=6500, help="points per window")
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument(
        "--baseline",
        type=float,
        default=2.0,
        help="windows of the small callers alone, half before and half after the busy phase",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on the job after")
    parser.add_argument(
        "--noisy", type=float, default=2.0, help="windows of the noisy installation's phase"
    )
    parser.add_argument(
        "--costs",
        choices=("reads", "writes"),
        default="reads",
        help="how the simulated Confluence charges the POSTs that read (simulator/quota.py): per "
        "object, as the product's starting estimates do, or the base point only, which the product "
        "does not know in advance and must learn",
    )
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py)")
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: gunicorn.conf.py)"
    )
    args = parser.parse_args()

    platform = Platform(common.APP_ID, seed=True, seed_users=40, invite_delay=0.05)
    platform.meter.configure(Quota(args.points, args.window, "app", costs=args.costs))
    insts = [platform.installation] + [platform.add_installation() for _ in range(SMALL + 1)]
    platform.seed_users = 600  # the noisy installation: a big site, many users
    noisy_inst = platform.add_installation()
    stop_simulator, _ = common.serve_in_child(platform)  # the installations exist before the fork
    sim_url = platform.url
    config = common.gunicorn_config(args.workers, args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        workdir = Path(tmp)
        settings = common.settings_for(
            platform, workdir, background_worker=True, worker_poll_seconds=0.2
        )
        log = workdir / "gunicorn.log"
        env = backend_env(
            settings, BACKGROUND_WORKER="true", WORKER_POLL_SECONDS="0.2", LOG_LEVEL="INFO"
        )
        server = common.start_backend(env, log, workers=args.workers, threads=args.threads)
        store = Store(settings.database_url, settings.secret_key)
        callers = [Caller(server.url, sim_url, inst) for inst in insts]
        noisy = [
            Caller(server.url, sim_url, noisy_inst, a) for a in noisy_inst.site.user_ids[:NOISY]
        ]
        learner = Caller(server.url, sim_url, noisy_inst)
        try:
            result = measure(args, platform, sim_url, store, callers, noisy, learner)
        finally:
            for caller in [*callers, *noisy, learner]:
                caller.close()
            stop_server(server)
            stop_simulator()
            store.close()
        problems = common.warnings_in(log)
    report(args, config, result, problems)


def measure(
    args: argparse.Namespace,
    platform: Platform,
    sim_url: str,
    store: Store,
    callers: list[Caller],
    noisy_callers: list[Caller],
    learner: Caller,
) -> dict[str, Any]:
    inviter, looker, smalls = callers[0], callers[1], callers[2:]
    # Each installation is known, and its admin checked, before timing. The admin answer is cached
    # per gunicorn worker, so a few calls each: new connections land on different workers.
    for caller in callers:
        for _ in range(4):
            with requests.Session() as once:
                headers = common.mint_headers(
                    sim_url, caller.inst.site.admin_id, 60, caller.inst.id
                )
                once.post(f"{caller.url}/resolvers/quota", json={}, headers=headers, timeout=30)
    phase = ["before"]
    stop = threading.Event()
    calls = Calls()
    time.sleep(next_window(args.window))
    threads = [
        threading.Thread(target=small_caller, args=(c, i, phase, stop, calls), daemon=True)
        for i, c in enumerate(smalls)
    ]
    for t in threads:
        t.start()
    quiet = args.baseline / 2 * args.window
    try:
        time.sleep(max(0.0, quiet - 0.1))
        time.sleep(next_window(args.window))  # the learning phase starts a window
        phase[0] = "learn"
        learning = learn(args, sim_url, store, learner)
        time.sleep(next_window(args.window))  # the busy phase starts a window
        meter_before = common.sim_json(sim_url, "quota")
        phase[0] = "busy"
        busy = big_tenants(args, platform, sim_url, store, inviter, looker)
        meter_after = common.sim_json(sim_url, "quota")
        time.sleep(next_window(args.window))  # the noisy phase starts a window
        phase[0] = "noisy"
        noisy = noisy_tenant(args, sim_url, noisy_callers)
        phase[0] = "after"
        time.sleep(next_window(args.window))  # the quiet phase after starts a fresh window
        time.sleep(quiet)
    finally:
        stop.set()
        for t in threads:
            t.join(70)
    records = common.sim_json(sim_url, "requests")["requests"]
    in_busy = [
        r
        for r in records
        if r["endpoint"] in UPSTREAM and busy["started"] <= at(r["at"]) <= busy["finished"]
    ]
    refused = meter_after["total"]["refused"] - meter_before["total"]["refused"]
    # The looker's users-bulk calls after its first complete lookup, and the points they cost.
    repeats = [
        r
        for r in records
        if r["endpoint"] == "users-bulk"
        and r["installationId"] == looker.inst.id
        and busy["first_complete"] is not None
        and at(r["at"]) > busy["first_complete"]
    ]
    users = looker.inst.site.users
    repeat_points = sum(
        cost_of(
            "users-bulk",
            sum(1 for i in (r["body"] or {}).get("accountIds", []) if i in users),
            args.costs,
        )
        for r in repeats
        if r["status"] == 200
    )
    return {
        **busy,
        "learning": learning,
        "windows": per_window(args, in_busy, platform, inviter.inst.id, looker.inst.id),
        "upstream": len(in_busy),
        "upstream_429": sum(1 for r in in_busy if r["status"] == 429),
        "refused": refused,
        "repeat_requests": len(repeats),
        "repeat_points": repeat_points if busy["first_complete"] is not None else None,
        "calls": calls,
        "noisy": noisy,
        "noisy_windows": noisy_windows(args, records, noisy, platform),
    }


def learn(args: argparse.Namespace, sim_url: str, store: Store, learner: Caller) -> dict[str, Any]:
    """The learning window: 80% of the pool spent by the app's other customers (the simulator's
    control API), then ``LEARN_CALLS`` varied panel calls of installation 21's admin, one at a
    time, each answered with ``r``; what the ledger learned from them."""
    before = sum(s.samples for s in store.cost_sums().values())
    spend = {"points": int(args.points * 0.8), "installationId": learner.inst.id}
    requests.post(f"{sim_url}/_sim/quota/spend", json=spend, timeout=10).raise_for_status()
    rng = random.Random(14)
    ids = list(learner.inst.site.user_ids)
    rng.shuffle(ids)  # a fresh id each time: nothing answered from the lookup cache
    tally: Counter[str] = Counter()
    for n in range(LEARN_CALLS):
        if n % 2 == 0:
            wanted = [ids.pop() for _ in range(rng.randint(1, 24))]
            key, payload = "lookupUsers", {"accountIds": wanted}
        else:
            emails = [f"learn{n}.{k}@example.com" for k in range(rng.randint(1, 16))]
            key, payload = "checkAccess", {"emails": emails}
        _, response = learner.call(key, payload)
        body = response.json() if response.status_code == 200 else {}
        tally["calls"] += 1
        tally["failed"] += len(body.get("failed", [])) if response.status_code == 200 else 1
    tally["samples"] = sum(s.samples for s in store.cost_sums().values()) - before
    return dict(tally)


def noisy_tenant(args: argparse.Namespace, sim_url: str, noisy: list[Caller]) -> dict[str, Any]:
    """Installation 21's users, each looking up 40 random ids of its site every 0.2 s for
    ``--noisy`` windows; what they got and what they were refused."""
    stop = threading.Event()
    tally: Counter[str] = Counter()
    lock = threading.Lock()

    def user(caller: Caller, seed: int) -> None:
        rng = random.Random(seed)
        ids = caller.inst.site.user_ids
        while not stop.is_set():
            try:
                _, response = caller.call("lookupUsers", {"accountIds": rng.sample(ids, 40)})
                body = response.json() if response.status_code == 200 else {}
                with lock:
                    tally["calls"] += 1
                    tally["failed"] += len(body.get("failed", []))
                    tally["answered"] += len(body.get("users", [])) + len(body.get("notFound", []))
            except requests.RequestException:
                with lock:
                    tally["errors"] += 1
            stop.wait(0.2)

    started = time.time()
    threads = [threading.Thread(target=user, args=(c, n), daemon=True) for n, c in enumerate(noisy)]
    for t in threads:
        t.start()
    time.sleep(args.noisy * args.window)
    stop.set()
    for t in threads:
        t.join(70)
    return {"started": started, "finished": time.time(), "inst": noisy[0].inst.id, **tally}


def noisy_windows(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    noisy: dict[str, Any],
    platform: Platform,
) -> list[tuple[int, int, int]]:
    """Points per window of the noisy phase: (the noisy installation's, everyone else's, 429s)."""
    rows: dict[int, list[int]] = {}
    for r in records:
        if (
            r["endpoint"] not in UPSTREAM
            or not noisy["started"] <= at(r["at"]) <= noisy["finished"]
        ):
            continue
        row = rows.setdefault(int(at(r["at"]) // args.window), [0, 0, 0])
        row[0 if r["installationId"] == noisy["inst"] else 1] += points_of(r, platform, args.costs)
        row[2] += r["status"] == 429
    return [(a, b, c) for _, (a, b, c) in sorted(rows.items())]


def points_of(record: dict[str, Any], platform: Platform, costs: str) -> int:
    """What the simulated meter charged for one answered request (docs in simulator/quota.py)."""
    if not 200 <= record["status"] < 300:
        return 0
    endpoint, body = record["endpoint"], record["body"] or {}
    if endpoint == "users-bulk":
        inst = next(i for i in platform.installations if i.id == record["installationId"])
        found = sum(1 for i in body.get("accountIds", []) if i in inst.site.users)
        return cost_of(endpoint, found, costs)
    if endpoint == "check-access":
        return cost_of(endpoint, len({str(e).lower() for e in body.get("emails", [])}), costs)
    return cost_of(endpoint, 1 if endpoint == "user-current" else 0, costs)


def per_window(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    platform: Platform,
    job_inst: str,
    look_inst: str,
) -> list[tuple[int, int, int, int, int]]:
    """Points charged per quota window of the busy phase: (job, lookups, small callers, 429s,
    job requests), by the simulator's cost table."""
    rows: dict[int, list[int]] = {}
    for r in records:
        window = int(at(r["at"]) // args.window)
        row = rows.setdefault(window, [0, 0, 0, 0, 0])
        who = 0 if r["installationId"] == job_inst else 1 if r["installationId"] == look_inst else 2
        row[who] += points_of(r, platform, args.costs)
        row[3] += r["status"] == 429
        row[4] += who == 0
    return [(a, b, c, d, e) for _, (a, b, c, d, e) in sorted(rows.items())]


def big_tenants(
    args: argparse.Namespace,
    platform: Platform,
    sim_url: str,
    store: Store,
    inviter: Caller,
    looker: Caller,
) -> dict[str, Any]:
    emails = [f"new.person{n}@example.com" for n in range(args.emails)]
    ids = looker.inst.site.user_ids + [f"unknown-{n:05d}" for n in range(CALLER_MISSES)]
    done = threading.Event()
    looked: dict[str, Any] = {"lookups": 0, "with_failed": 0, "first_complete": None, "errors": 0}

    def look() -> None:
        while not done.is_set():
            try:
                _, response = looker.call("lookupUsers", {"accountIds": ids})
            except requests.RequestException:
                looked["errors"] += 1
            else:
                looked["lookups"] += 1
                body = response.json() if response.status_code == 200 else {}
                if response.status_code != 200:
                    looked["errors"] += 1
                elif body.get("failed"):
                    looked["with_failed"] += 1
                elif looked["first_complete"] is None:  # every id has been answered once
                    looked["first_complete"] = time.time()
            done.wait(LOOK_PAUSE)

    estimates: list[Estimate] = []

    def sample() -> None:
        while not done.is_set():
            found = consistent_sample(sim_url, store)
            if found is not None:
                estimates.append(found)
            done.wait(0.25)

    started = time.time()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds, response = inviter.call("inviteEmails", {"emails": emails})
    if response.status_code != 200:
        raise RuntimeError(f"inviteEmails answered {response.status_code}: {response.text[:500]}")
    job = response.json()["job"]
    looker_thread = threading.Thread(target=look, daemon=True)
    looker_thread.start()
    deadline = started + args.timeout
    state = store.job(inviter.inst.id, job["id"], items=False)
    try:
        while state is not None and state.state in ("queued", "running"):
            if time.time() > deadline:
                raise RuntimeError(f"the job did not finish in {args.timeout:g} s: {state}")
            time.sleep(0.5)
            state = store.job(inviter.inst.id, job["id"], items=False)
    finally:
        done.set()
        looker_thread.join(70)
        sampler.join(70)
    finished = time.time()
    assert state is not None
    counts = state.counts.to_json()
    lost = args.emails - (counts["invited"] + counts["alreadyHasAccess"] + counts["invalid"])
    requests_each = math.ceil(args.emails / EMAILS_PER_REQUEST)  # checks, then as many invites
    points = requests_each * (
        cost_of("check-access", EMAILS_PER_REQUEST, args.costs) + cost_of("invite", 0, args.costs)
    )  # what the simulator charges for the job (its estimatedPoints: the product's estimate)
    return {
        "started": started,
        "finished": finished,
        "invite_seconds": seconds,
        "job_state": state.state,
        "job_counts": counts,
        "job_seconds": float(state.updated_at) - started,
        "job_points": points,
        "estimated": job["estimatedPoints"],
        # one installation may spend at most 75% of a window (the last quarter stays for others)
        "minimum": (math.ceil(points / (args.points * (1 - LAST_QUARTER))) - 1) * args.window,
        "pool_minimum": (math.ceil(points / args.points) - 1) * args.window,
        "whole_windows": math.ceil(points / args.points) * args.window,
        "lost": lost,
        "ids": len(ids),
        "estimates": estimates,
        "learned": {op: (round(b, 2), round(p, 2)) for op, (b, p) in learned_model(store).items()},
        **looked,
    }


@dataclass(frozen=True)
class Estimate:
    """One consistent reading: the ledger's estimate of what is left and the truth, whether
    Confluence had said r this window, and the requests the ledger had seen r move over."""

    estimated: float
    truth: int
    silent: bool
    seen: int


def consistent_sample(sim_url: str, store: Store) -> Estimate | None:
    """The simulator's pool, the ledger's row, the simulator again (see the module docstring);
    None when the two simulator reads differ, the ledger has requests in flight, or the two are
    not in the same window."""
    first = common.sim_json(sim_url, "quota")["pools"]
    now = time.time()
    row = store.quota_pools([APP]).get(APP)
    then = common.sim_json(sim_url, "quota")["pools"]
    if not first or first != then or row is None or row.limit is None:
        return None
    pool = pool_rules.current(row, now)
    left = pool_rules.left(pool)
    if pool.pending > 0 or left is None or pool.window_end is None:
        return None
    if abs(pool.window_end - at(first[0]["reset"])) >= 1.0:
        return None  # a window turn between them (or a t that says otherwise)
    seen = sum(s.samples for s in store.cost_sums().values())
    return Estimate(left, int(first[0]["remaining"]), pool.reported is None, seen)


def learned_model(store: Store) -> dict[str, tuple[float, float]]:
    """The costs the backend learned (operations with enough samples only)."""
    sums = store.cost_sums()
    fitted = model(sums)
    return {op: fitted[op] for op in sorted(learned(sums))}


def report(
    args: argparse.Namespace, config: dict[str, Any], r: dict[str, Any], problems: list[str]
) -> None:
    calls: Calls = r["calls"]
    alone = calls.of("before", "after")
    busy = calls.of("busy")
    print(
        f"pool              {args.points:,} points per {args.window} s, one for the app; 20 "
        "installations; simulator in a forked child process"
    )
    print(
        f"backend           gunicorn {config['workers']} workers x {config['threads']} threads "
        f"(from {config['from']}), BACKGROUND_WORKER=true, WORKER_POLL_SECONDS=0.2, SQLite"
    )
    print(
        f"phases            small callers alone {args.baseline / 2:g} window(s), then with the big "
        f"ones until the job ends ({r['finished'] - r['started']:.1f} s), then alone "
        f"{args.baseline / 2:g} window(s) again"
    )
    print(
        f"big job           {args.emails:,} emails, {r['job_state']}, estimatedPoints "
        f"{r['estimated']:,}, {r['job_seconds']:.1f} s (inviteEmails sent -> store's finish); "
        f"minimum (ceil({r['job_points']:,} / 75% of {args.points:,}) - 1) x {args.window} s = "
        f"{r['minimum']} s (the last window it needs starts)"
    )
    print(f"                  counts {r['job_counts']}")
    print(
        f"repeated lookups  {r['lookups']} of {r['ids']:,} ids by installation 2 "
        f"({r['with_failed']} with entries failed while held, {r['errors']} errors); "
        f"users-bulk requests after the first complete one: {r['repeat_requests']}"
    )
    print(
        f"busy phase, points per {args.window} s window (reserve for panel calls: the last "
        f"{math.ceil(args.points * 0.2):,}):"
    )
    for n, (job, look, small, refused, job_requests) in enumerate(r["windows"], 1):
        print(
            f"  window {n}: job {job:,} ({job_requests} requests), lookups {look:,}, small "
            f"callers {small:,}, total {job + look + small:,} of {args.points:,}; 429s {refused}"
        )
    print()
    print(f"{'small callers':<18}{'calls':>7}{'errors':>8}{'p50':>11}{'p95':>11}{'p99':>11}")
    for label, values, errors in (
        ("alone", alone, calls.failed("before", "after")),
        ("with big ones", busy, calls.failed("busy")),
    ):
        print(
            f"{label:<18}{len(values):>7}{errors:>8}{percentile(values, 0.5) * 1000:>9.1f}ms"
            f"{percentile(values, 0.95) * 1000:>9.1f}ms{percentile(values, 0.99) * 1000:>9.1f}ms"
        )
    if calls.errors:
        print(f"small callers' errors: {dict(calls.errors)}")
    print()
    per_1000 = 1000 * r["refused"] / max(1, r["upstream"])
    p95_alone = percentile(alone, 0.95)
    ratio_p95 = percentile(busy, 0.95) / p95_alone if p95_alone else math.nan
    print(
        f"429s per 1,000 upstream requests: {per_1000:.2f} "
        f"({r['refused']} of {r['upstream']} in the busy phase)  target <= 1"
    )
    if r["minimum"] and r["pool_minimum"]:
        print(
            f"big job time / minimum:            {r['job_seconds'] / r['minimum']:.2f} x  target "
            f"<= 1.15; the minimum the rules allow: 75% of each window ({r['minimum']} s; the "
            f"pool alone: {r['pool_minimum']} s, {r['job_seconds'] / r['pool_minimum']:.2f} x) "
            f"({r['job_seconds'] / r['whole_windows']:.2f} x the issue's {r['whole_windows']} s: "
            "ceil(points / points per window) whole windows)"
        )
    else:
        print(
            f"big job time:                      {r['job_seconds']:.1f} s; its {r['job_points']:,} "
            f"points fit one window's 75%: no window turn to wait for (target: done within the "
            f"window it started in, {args.window} s)"
        )
    print(
        f"small callers' p95 / alone:        {ratio_p95:.2f} x  target <= 1.5 "
        f"({ms(percentile(busy, 0.95))} / {ms(p95_alone)})"
    )
    print(f"points spent on repeated lookups:  {r['repeat_points']}  target 0")
    learning = r["learning"]
    print(
        f"learning window:                   80% of the pool spent outside, then "
        f"{learning.get('calls', 0)} panel calls ({learning.get('failed', 0)} entries failed): "
        f"the ledger saw r move over {learning.get('samples', 0)} requests "
        f"(one cost sample each)"
    )
    seen: list[Estimate] = [e for e in r["estimates"] if e.seen >= SEEN]
    for label, chosen in (
        ("while Confluence was silent", [e for e in seen if e.silent]),
        ("while it said r", [e for e in seen if not e.silent]),
    ):
        misses = [abs(e.estimated - e.truth) / args.points for e in chosen]
        if misses:
            print(
                f"estimate of what is left, {label}: median "
                f"{statistics.median(misses) * 100:.2f}%, worst {max(misses) * 100:.2f}% of the "
                f"pool ({len(misses)} consistent samples in the busy phase)  target within 5%"
            )
        else:
            print(f"estimate of what is left, {label}: no consistent sample")
    if not seen:
        print(f"estimate of what is left: the ledger never saw r move over {SEEN} requests")
    print(f"learned costs (base, per object): {r['learned']}")
    n = r["noisy"]
    print(
        f"noisy installation ({NOISY} users, 40 random ids each every 0.2 s, {args.noisy:g} windows): "
        f"{n.get('calls', 0)} calls, {n.get('failed', 0)} ids refused (rate_limited), "
        f"{n.get('errors', 0)} errors"
    )
    most = math.floor(args.points * (1 - LAST_QUARTER))
    for k, (theirs, others, refused) in enumerate(r["noisy_windows"], 1):
        print(
            f"  window {k}: noisy {theirs:,} (at most {most:,}: never the last quarter), everyone "
            f"else {others:,} of {args.points:,}; left {args.points - theirs - others:,}; "
            f"429s {refused}"
        )
    noisy_failed = calls.failed("noisy")
    print(
        f"small callers during the noisy phase: {len(calls.of('noisy'))} calls, "
        f"{noisy_failed} failed  target 0 (every other installation keeps its share)"
    )
    print(f"items lost:                        {r['lost']}  target 0")
    if problems:
        print(f"backend warnings/errors: {len(problems)}; first: {problems[0][:300]}")


if __name__ == "__main__":
    main()
