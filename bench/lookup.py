"""10,000 distinct account ids through the ``lookupUsers`` resolver on a real gunicorn.

The simulated Confluence answers every request after 50 ms. The backend splits the ids into
chunks of 250 and keeps ``UPSTREAM_CONCURRENCY`` (4) users-bulk requests in flight, so the floor
is ceil(10000 / 250) / 4 x 50 ms = 0.5 s. Measured side by side in one run: a plain sequential
client that posts the same 250-id chunks straight to the simulator, one after another.

``lookupUsers`` answers ids the same caller looked up in the last ``LOOKUP_CACHE_SECONDS`` from the
store's lookup cache, without asking Confluence. The figures above are about the lookup that does ask
(the first one), so the cache is emptied before every measured run (each run then also pays for
writing 10,000 cache rows); one more run right after the last, with the cache full, is printed
separately: what a repeat of the same lookup costs.

Run: .venv/bin/python -m bench.lookup [--ids 10000] [--runs 3] [--fill-site]
Targets: wall time <= 1.3 x the floor; >= 3 x faster than the sequential chunked client;
the answer well inside Forge's 25 s timeout and 5 MB response cap.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from access_desk.store.batched_lookups import FLUSH_SECONDS
from access_desk.store.tables import lookup_cache, lookup_misses
from bench import common
from bench.common import backend_env, ms, stop_server
from simulator import Platform
from simulator.site import account_id

CHUNK = 250
CONCURRENCY = 4
LATENCY = 0.05
FORGE_TIMEOUT = 25.0
FORGE_RESPONSE_CAP = 5 * 1024 * 1024


def account_ids(platform: Platform, count: int, fill: bool) -> tuple[list[str], int]:
    """``count`` distinct ids, shuffled: every user of the site first, then unknown ids.

    With ``fill`` the site first gets synthetic users (copies of seeded ones under new ids) so
    that every id is found. Returns the ids and how many of them the site knows.
    """
    site = platform.installation.site
    rng = random.Random("access-desk-bench-lookup")
    if fill:
        templates = [site.users[u] for u in site.user_ids]
        while len(site.users) < count:
            uid = account_id(rng)
            site.users[uid] = dict(templates[len(site.users) % len(templates)], accountId=uid)
    known = list(site.users)[:count]
    ids = list(known)
    seen = set(ids)
    while len(ids) < count:
        uid = account_id(rng)
        if uid not in seen:
            seen.add(uid)
            ids.append(uid)
    rng.shuffle(ids)
    return ids, len(known)


def sequential(platform: Platform, ids: list[str], token: str) -> tuple[float, int, int]:
    """The baseline: 250-id chunks posted straight to users-bulk, one after another."""
    url = platform.installation.api_base_url + "/wiki/api/v2/users-bulk"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    found = 0
    with requests.Session() as session:
        session.post(url, json={"accountIds": ids[:1]}, headers=headers, timeout=10)  # warm
        started = time.perf_counter()
        calls = 0
        for i in range(0, len(ids), CHUNK):
            response = session.post(
                url, json={"accountIds": ids[i : i + CHUNK]}, headers=headers, timeout=10
            )
            response.raise_for_status()
            found += len(response.json()["results"])
            calls += 1
        return time.perf_counter() - started, calls, found


def concurrent(platform: Platform, ids: list[str], token: str) -> float:
    """What the harness allows: the same chunks from a plain 4-thread client (no backend)."""
    url = platform.installation.api_base_url + "/wiki/api/v2/users-bulk"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    sessions = [requests.Session() for _ in range(CONCURRENCY)]

    def post(n: int) -> int:
        response = sessions[n % CONCURRENCY].post(
            url, json={"accountIds": chunks[n]}, headers=headers, timeout=10
        )
        response.raise_for_status()
        return len(response.json()["results"])

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(post, range(CONCURRENCY)))  # warm the connections
        started = time.perf_counter()
        list(pool.map(post, range(len(chunks))))
        wall = time.perf_counter() - started
    for session in sessions:
        session.close()
    return wall


def through_backend(
    platform: Platform, backend_url: str, ids: list[str], headers: dict[str, str]
) -> dict[str, Any]:
    platform.clear_requests()
    with requests.Session() as session:
        started, epoch = time.perf_counter(), time.time()
        response = session.post(
            backend_url + "/resolvers/lookupUsers",
            json={"accountIds": ids},
            headers=headers,
            timeout=60,
        )
        ended = time.perf_counter()
    if response.status_code != 200:
        raise RuntimeError(f"lookupUsers answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    calls = [r for r in platform.requests if r.endpoint == "users-bulk"]
    answered = sorted(r.at.timestamp() for r in calls)  # when the simulator answered each
    return {
        "first": answered[0] - epoch if answered else math.nan,
        "window": answered[-1] - answered[0] if answered else math.nan,
        "after": epoch + (ended - started) - answered[-1] if answered else math.nan,
        "wall": ended - started,
        "calls": len(calls),
        "statuses": sorted({r.status for r in calls}),
        "bytes": len(response.content),
        "users": len(body["users"]),
        "not_found": len(body["notFound"]),
        "failed": len(body["failed"]),
        "body": body,
    }


def empty_lookup_cache(database_url: str) -> None:
    """Delete every row of the backend's lookup cache, users and not-found ids (the store the
    gunicorn workers share), once the last answers' cache writes have landed (each worker writes
    them in batches, within 0.1 s: ``store.batched_lookups``)."""
    time.sleep(10 * FLUSH_SECONDS)
    engine = sa.create_engine(database_url, connect_args={"timeout": 30})
    try:
        with engine.begin() as conn:
            conn.execute(sa.delete(lookup_cache))
            conn.execute(sa.delete(lookup_misses))
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="measurements of each side")
    parser.add_argument(
        "--fill-site",
        action="store_true",
        help="add synthetic users to the simulated site so that every id is found",
    )
    args = parser.parse_args()

    seed_users = common.max_seed_users(args.ids)
    platform = Platform(app_id=common.APP_ID, seed=True, seed_users=seed_users, latency=LATENCY)
    sim = platform.serve("127.0.0.1", 0)
    ids, known = account_ids(platform, args.ids, args.fill_site)
    inst = platform.installation
    admin = inst.site.admin_id
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        workdir = Path(tmp)
        settings = common.settings_for(platform, workdir)
        log = workdir / "gunicorn.log"
        env = backend_env(settings, BACKGROUND_WORKER="false", LOG_LEVEL="INFO")
        server = common.start_backend(env, log, workers=2, threads=4)
        try:
            # Warm both workers (JWKS, installation record, connection pool) before measuring.
            for _ in range(6):
                warm = platform.invocation_headers(inst, admin, lifetime=300)
                requests.post(
                    server.url + "/resolvers/lookupUsers",
                    json={"accountIds": ids[:300]},
                    headers=warm,
                    timeout=30,
                ).raise_for_status()
            backend_runs: list[dict[str, Any]] = []
            sequential_runs: list[tuple[float, int, int]] = []
            concurrent_runs: list[float] = []
            token = platform.user_token(inst, admin)
            for _ in range(args.runs):  # interleaved, so both sides see the same machine noise
                empty_lookup_cache(settings.database_url)  # every measured run asks Confluence
                headers = platform.invocation_headers(inst, admin, lifetime=300)
                backend_runs.append(through_backend(platform, server.url, ids, headers))
                sequential_runs.append(sequential(platform, ids, token))
                concurrent_runs.append(concurrent(platform, ids, token))
            headers = platform.invocation_headers(inst, admin, lifetime=300)
            repeat = through_backend(platform, server.url, ids, headers)  # the cache is full
        finally:
            stop_server(server)
            sim.stop()
        problems = common.warnings_in(log)

    report(args, seed_users, known, backend_runs, sequential_runs, concurrent_runs, problems)
    print(
        f"repeat, from the cache    {repeat['wall']:.3f} s, {repeat['calls']} users-bulk calls: "
        "the same ids again by the same caller right after the last run (LOOKUP_CACHE_SECONDS; "
        "the runs above start with the cache emptied)"
    )
    if problems:
        print(f"backend warnings/errors   {len(problems)}; first: {problems[0][:300]}")


def report(
    args: argparse.Namespace,
    seed_users: int,
    known: int,
    backend_runs: list[dict[str, Any]],
    sequential_runs: list[tuple[float, int, int]],
    concurrent_runs: list[float],
    problems: list[str],
) -> None:
    chunks = math.ceil(args.ids / CHUNK)
    floor = chunks / CONCURRENCY * LATENCY
    walls = [r["wall"] for r in backend_runs]
    seq_walls = [s[0] for s in sequential_runs]
    wall, seq_wall = statistics.median(walls), statistics.median(seq_walls)
    last = backend_runs[-1]
    size = last["bytes"]
    users = last["body"]["users"]
    per_user = len(json.dumps(users, separators=(",", ":"))) / len(users) if users else float("nan")
    per_missing = (
        len(json.dumps(last["body"]["notFound"], separators=(",", ":"))) / last["not_found"]
        if last["not_found"]
        else 0.0
    )
    projected = size + last["not_found"] * (per_user - per_missing)

    print(f"account ids               {args.ids:,} distinct, shuffled")
    if args.fill_site:
        print(f"simulated site            {known:,} users ({seed_users} seeded + synthetic copies)")
    elif known < args.ids:
        print(
            f"simulated site            {known:,} users: the simulator seeds at most {seed_users:,}"
            f" ordinary users (fixed name lists), so {args.ids - known:,} ids are unknown"
        )
    else:
        print(f"simulated site            {known:,} users")
    print(f"upstream latency          {LATENCY * 1000:.0f} ms per request (simulator)")
    print(
        f"runs                      {args.runs} of each side, interleaved; medians below; the "
        "backend's lookup cache emptied before each run"
    )
    print(f"backend wall times        {', '.join(f'{w:.3f}' for w in walls)} s")
    print(f"backend wall time         {wall:.3f} s   (Forge timeout {FORGE_TIMEOUT:.0f} s)")
    print(
        f"answer                    {last['users']:,} users, {last['not_found']:,} notFound, "
        f"{last['failed']} failed (sum {last['users'] + last['not_found'] + last['failed']:,})"
    )
    calls = sorted({r["calls"] for r in backend_runs})
    statuses = sorted({s for r in backend_runs for s in r["statuses"]})
    print(f"upstream users-bulk calls {'/'.join(map(str, calls))} per run (statuses {statuses})")
    print(
        f"floor                     ceil({args.ids}/{CHUNK}) = {chunks} calls / {CONCURRENCY}"
        f" x {LATENCY * 1000:.0f} ms = {floor:.3f} s"
    )
    print(f"ratio to floor            {wall / floor:.2f}x   target <= 1.3x")
    best = min(backend_runs, key=lambda r: float(r["wall"]))
    print(
        f"fastest run, by phase     {ms(best['first'])} to the first upstream answer "
        f"(ideal {ms(LATENCY)}), {ms(best['window'])} between first and last answer "
        f"(ideal {ms((chunks / CONCURRENCY - 1) * LATENCY)}), {ms(best['after'])} from the last "
        "answer to the full response read"
    )
    conc = statistics.median(concurrent_runs)
    print(
        f"plain 4-thread client     {conc:.3f} s = {conc / floor:.2f}x the floor: the same chunks "
        "straight to the simulator (what this machine and simulator allow; no backend)"
    )
    print(f"backend over that client  {wall / conc:.2f}x")
    print(f"sequential client         {', '.join(f'{w:.3f}' for w in seq_walls)} s")
    print(
        f"sequential wall time      {seq_wall:.3f} s ({sequential_runs[-1][1]} calls, "
        f"{sequential_runs[-1][2]:,} users found)"
    )
    print(f"speed-up vs sequential    {seq_wall / wall:.2f}x   target >= 3x")
    print(
        f"response size             {size:,} bytes = {size / FORGE_RESPONSE_CAP:.0%} of Forge's "
        f"5 MB cap ({per_user:,.0f} bytes per user)"
    )
    if last["not_found"]:
        print(
            f"projected, all found      {projected:,.0f} bytes = "
            f"{projected / FORGE_RESPONSE_CAP:.0%} of the cap if all {args.ids:,} ids were users"
        )


if __name__ == "__main__":
    main()
