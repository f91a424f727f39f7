"""Twenty installations on one simulated app pool: a big invite job, a repeated big lookup and 18
small panel callers, spending Confluence's points quota side by side (docs/contract.md §6).

The simulated Confluence meters one pool for the app (``--points`` per ``--window`` seconds,
default 6,500 per 60 s: the hourly 65,000 scaled down). One in-process backend (its background
worker polling every 0.2 s, the store on SQLite) serves every installation:

- installation 1 queues a 10,000-email invite job (``inviteEmails``) at the start of a window;
  the background worker runs it (check 100 emails at a time, then invite);
- installation 2 looks up the same 10,000 account ids (its site's users plus unknown ids) again and
  again (``lookupUsers``);
- installations 3..20 each make a small panel call every few seconds (``quota``, a 3-id
  ``lookupUsers``, a 1-email ``checkAccess``, in turn) and their latency is recorded.

First a baseline with the 18 small callers alone for ``--baseline`` windows, then everything.
Prints: 429s received per 1,000 upstream requests (target <= 1); the big job's time against the
minimum the pool allows, ceil(job points / points per window) windows (target <= 1.15 x); the small
callers' p95 latency against the baseline (target <= 1.5 x); the points the repeated lookups spent
after the first (target 0); items lost, i.e. not ending invited / alreadyHasAccess / invalid
(target 0).

Run: .venv/bin/python bench/quota.py [--window 60] [--points 6500] [--emails 10000]
Short mode: ``--window 20`` (the same points per 20 s window: about two minutes in all).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from app import create_app  # noqa: E402
from costs import invite_job_points  # noqa: E402
from simulator import Platform  # noqa: E402
from simulator.quota import Quota  # noqa: E402

UPSTREAM = ("users-bulk", "check-access", "invite", "user-current")
SMALL = 18
PAUSE = 3.0  # seconds between a small caller's calls


@dataclass
class Calls:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, ok: bool) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.errors += 0 if ok else 1


def call(app: Any, platform: Platform, inst: Any, key: str, payload: dict[str, Any]) -> Any:
    headers = platform.invocation_headers(inst, inst.site.admin_id)
    return app.test_client().post(f"/resolvers/{key}", json=payload, headers=headers)


def small_caller(
    app: Any, platform: Platform, inst: Any, index: int, stop: threading.Event, calls: Calls
) -> None:
    turn = index  # callers start on different kinds of call
    stop.wait(index * PAUSE / SMALL)
    while not stop.is_set():
        kind = turn % 3
        turn += 1
        if kind == 0:
            key, payload = "quota", {}
        elif kind == 1:
            key, payload = "lookupUsers", {"accountIds": inst.site.user_ids[:3]}
        else:
            key, payload = "checkAccess", {"emails": [f"someone{turn}@example.com"]}
        began = time.perf_counter()
        response = call(app, platform, inst, key, payload)
        body = response.get_json(silent=True) or {}
        ok = response.status_code == 200 and not body.get("failed")
        calls.add(time.perf_counter() - began, ok)
        stop.wait(PAUSE)


def until_next_window(window: float) -> None:
    time.sleep(window - time.time() % window + 0.05)


def run(
    args: argparse.Namespace, workdir: Path, *, big: bool, seconds: float | None
) -> dict[str, Any]:
    platform = Platform(common.APP_ID, seed=True, seed_users=40, invite_delay=0.05)
    platform.meter.configure(Quota(args.points, args.window, "app"))
    sim = platform.serve("127.0.0.1", 0)
    insts = [platform.installation] + [platform.add_installation() for _ in range(SMALL + 1)]
    settings = common.settings_for(
        platform,
        workdir,
        database_url=f"sqlite:///{workdir / ('full' if big else 'base')}.sqlite3",
        background_worker=True,
        worker_poll_seconds=0.2,
    )
    app = create_app(settings)
    stop = threading.Event()
    calls = Calls()
    result: dict[str, Any] = {}
    try:
        for inst in insts:  # each installation is known (and its admin checked) before timing
            call(app, platform, inst, "quota", {})
        until_next_window(args.window)
        threads = [
            threading.Thread(
                target=small_caller, args=(app, platform, inst, i, stop, calls), daemon=True
            )
            for i, inst in enumerate(insts[2:])
        ]
        for t in threads:
            t.start()
        if not big:
            assert seconds is not None
            time.sleep(seconds)
        else:
            result.update(big_tenants(args, app, platform, insts[0], insts[1]))
        stop.set()
        for t in threads:
            t.join(30)
        requests_seen = [r for r in platform.requests if r.endpoint in UPSTREAM]
        snapshot = platform.meter.snapshot()
        result.update(
            upstream=len(requests_seen),
            refused=snapshot["total"]["refused"],
            p95=common.percentile(calls.latencies, 0.95),
            p50=common.percentile(calls.latencies, 0.5),
            small_calls=len(calls.latencies),
            small_errors=calls.errors,
        )
    finally:
        stop.set()
        worker = app.extensions["access_desk"].worker
        if worker is not None:
            worker.stop(5.0)
        app.extensions["access_desk"].store.close()
        sim.stop()
    return result


def big_tenants(
    args: argparse.Namespace, app: Any, platform: Platform, inviter: Any, looker: Any
) -> dict[str, Any]:
    emails = [f"new.person{n}@example.com" for n in range(args.emails)]
    ids = looker.site.user_ids + [f"unknown-{n:05d}" for n in range(10_000)]
    ids = ids[:10_000]
    started = time.time()
    response = call(app, platform, inviter, "inviteEmails", {"emails": emails})
    job = response.get_json()["job"]
    spent_first: int | None = None
    lookups = 0
    lookup_errors = 0
    deadline = started + args.timeout
    state = job
    while time.time() < deadline:
        found = call(app, platform, looker, "lookupUsers", {"accountIds": ids}).get_json()
        lookups += 1
        if found.get("failed"):
            lookup_errors += 1
        elif spent_first is None:  # every id has been answered once
            spent_first = platform.meter.spent_by(looker.id)
        store = app.extensions["access_desk"].store
        current = store.job(inviter.id, job["id"], items=False)
        state = current.to_json(items=False) if current is not None else state
        if state["state"] in ("done", "failed"):
            break
        time.sleep(2.0)
    finished = time.time()
    counts = state["counts"]
    lost = args.emails - (counts["invited"] + counts["alreadyHasAccess"] + counts["invalid"])
    points = invite_job_points(args.emails, dry_run=False)
    return {
        "job_state": state["state"],
        "job_seconds": finished - started,
        "job_points": points,
        "estimated": job["estimatedPoints"],
        "minimum": math.ceil(points / args.points) * args.window,
        "lost": lost,
        "lookups": lookups,
        "lookup_errors": lookup_errors,
        "repeat_points": (
            platform.meter.spent_by(looker.id) - spent_first if spent_first is not None else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=60, help="seconds per quota window")
    parser.add_argument("--points", type=int, default=6500, help="points per window")
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--baseline", type=float, default=2.0, help="baseline length, windows")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on the job after")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(
            f"pool: {args.points:,} points per {args.window} s, one for the app; 20 installations"
        )
        base = run(args, workdir, big=False, seconds=args.baseline * args.window)
        print(
            f"baseline (18 small callers alone): {base['small_calls']} calls, "
            f"p50 {common.ms(base['p50'])}, p95 {common.ms(base['p95'])}, "
            f"errors {base['small_errors']}"
        )
        full = run(args, workdir, big=True, seconds=None)

    per_1000 = 1000 * full["refused"] / max(1, full["upstream"])
    ratio_job = full["job_seconds"] / full["minimum"]
    ratio_p95 = full["p95"] / base["p95"] if base["p95"] else math.nan
    print(
        f"big job: {args.emails:,} emails, {full['job_state']}, estimatedPoints "
        f"{full['estimated']:,}, {full['job_seconds']:.1f} s; minimum "
        f"ceil({full['job_points']:,} / {args.points:,}) x {args.window} s = {full['minimum']} s"
    )
    print(
        f"small callers: {full['small_calls']} calls, p50 {common.ms(full['p50'])}, "
        f"p95 {common.ms(full['p95'])}, errors {full['small_errors']}"
    )
    print(
        f"repeated lookups: {full['lookups']} of 10,000 ids ({full['lookup_errors']} with "
        f"entries failed while held)"
    )
    print()
    print(
        f"429s per 1,000 upstream requests: {per_1000:.2f} "
        f"({full['refused']} of {full['upstream']})  target <= 1"
    )
    print(f"big job time / minimum:            {ratio_job:.2f} x  target <= 1.15")
    print(f"small callers' p95 / baseline p95: {ratio_p95:.2f} x  target <= 1.5")
    print(f"points spent on repeated lookups:  {full['repeat_points']}  target 0")
    print(f"items lost:                        {full['lost']}  target 0")


if __name__ == "__main__":
    main()
