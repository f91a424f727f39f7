"""The backend's CPU per panel call against the floor of its stack, side by side in one run.

Five servers run at once under the same gunicorn configuration (``gunicorn.conf.py``'s workers,
threads and worker class), against the same simulated platform (``simulator.Platform`` in a forked
child process, Confluence's points quota metered as since 2026 with a pool too big to run out) and
driven by the same load generator:

- the product: ``gunicorn 'access_desk.app:create_app()'`` (SQLite store, ``BACKGROUND_WORKER=false``);
- the floor apps of ``bench/floor_apps.py``: (a) bare Flask answering JSON; (a)+q: (a) plus one
  indexed query on the product's store; (b): (a) plus one ``requests`` call to the simulated
  Confluence, the one the product makes for that call kind; (c): (b) plus a PyJWT RS256
  verification of the FIT.

Every call carries a FIT of its own (minted in this process with the simulated Forge's key, which
the forked simulator shares), so the product verifies every FIT in full, as floor (c) does; the
user token comes from the simulator's control API (one per client). The call kinds, each measured
on every server in turn, round after round (``--rounds``, ``--calls`` calls each, ``--clients``
threads with a session each): ``whoami`` (the admin check's record is fresh: no upstream call),
``lookupUsers`` of 5 ids never asked before (a cold lookup cache: read, users-bulk, write),
``lookupUsers`` of the client's same 5 ids (a warm cache: no upstream call; looked up once
untimed before each phase), ``checkAccess`` of 5 emails (the admin check's record, check-access,
one audit entry). A warm lookup with a FIT repeated (Forge's bridge re-sends a FIT while it lives;
the verifier then answers from memory) is measured on the product alone.

CPU per call is the servers' own CPU time (``/proc/<pid>/stat`` of the gunicorn master and its
workers, reaped workers included) over the phase, divided by its calls. The figures are each
round's and their median; the ratios are the product's to floor (c) per call kind, and the
warm-cache lookup against floor (a) plus one indexed query.

Then the product runs once more wrapped by ``bench.floor_apps:counted()`` (``--profile-calls``
calls of each kind; 0 skips it): every call answers how many store statements, transactions and
connections it used and the CPU its thread spent inside the app, and a second pass profiles each
call with ``cProfile`` on the thread's CPU clock, split into the parts of the call path.

Run: .venv/bin/python -m bench.floor [--calls 400] [--rounds 3] [--clients 4] [--profile-calls 200]
Targets: lookupUsers (cold cache) and checkAccess <= 1.25 x floor (c); lookupUsers (warm cache)
<= floor (a) plus one indexed query.
"""

from __future__ import annotations

import argparse
import pstats
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import common
from bench.common import LiveServer, backend_env, percentile, stop_server
from simulator import Platform
from simulator.quota import Quota
from simulator.site import account_id

IDS = 5
EMAILS = 5
BUSY_PAUSE, BUSY_TRIES = 0.02, 200
FLOORS = ("a", "aq", "b", "c")
APPS = ("product", *FLOORS)
NAMES = {"product": "product", "a": "(a)", "aq": "(a)+q", "b": "(b)", "c": "(c)"}


@dataclass(frozen=True)
class Kind:
    label: str
    key: str  # the resolver
    body: Callable[[int], dict[str, Any]]  # client number -> payload
    fresh_fit: bool = True
    product_only: bool = False
    warm: bool = False  # look the client's ids up once, untimed, before the phase


@dataclass
class Phase:
    cpu: float
    calls: int
    busy: int
    errors: Counter[str] = field(default_factory=Counter)
    replies: list[requests.Response] = field(default_factory=list)

    @property
    def per_call(self) -> float:
        return self.cpu / self.calls if self.calls else float("nan")


class FreshIds:
    """``IDS`` ids at a time, each handed out once (then from the start again)."""

    def __init__(self, pool: list[str]) -> None:
        self._pool = pool
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> list[str]:
        with self._lock:
            start, self._next = self._next, self._next + IDS
        return [self._pool[(start + i) % len(self._pool)] for i in range(IDS)]


def run_phase(
    url: str,
    kind: Kind,
    clients: list[dict[str, str]],
    fits: list[str],
    pgid: int,
    *,
    extra: dict[str, str] | None = None,
    keep: bool = False,
    cpu: Callable[[], float] | None = None,
) -> Phase:
    """``len(fits)`` calls of ``kind`` from ``len(clients)`` threads; the CPU the server (process
    group ``pgid``) used over them, or what ``cpu`` counts."""
    measure = cpu or (lambda: common.group_cpu_seconds(pgid))
    calls = len(fits)
    errors: Counter[str] = Counter()
    replies: list[requests.Response] = []
    busy = [0]
    lock = threading.Lock()

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(n, calls, len(clients)):
                headers = dict(clients[n], authorization=f"Bearer {fits[i]}", **(extra or {}))
                body = kind.body(n)
                try:
                    for _ in range(BUSY_TRIES):
                        reply = session.post(
                            f"{url}/resolvers/{kind.key}", json=body, headers=headers, timeout=30
                        )
                        if reply.status_code != 429:
                            break
                        with lock:
                            busy[0] += 1
                        time.sleep(BUSY_PAUSE)
                except requests.RequestException as exc:
                    with lock:
                        errors[type(exc).__name__] += 1
                    continue
                with lock:
                    if reply.status_code != 200:
                        errors[f"HTTP {reply.status_code}"] += 1
                    if keep:
                        replies.append(reply)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(clients))]
    before = measure()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = measure() - before
    return Phase(used, calls - sum(errors.values()), busy[0], errors, replies)


def warm_lookups(
    url: str, kind: Kind, clients: list[dict[str, str]], fit: Callable[[], str]
) -> None:
    """Each client's warm ids looked up once (untimed), so the phase reads them from the cache."""
    with requests.Session() as session:
        for n, headers in enumerate(clients):
            session.post(
                f"{url}/resolvers/{kind.key}",
                json=kind.body(n),
                headers=dict(headers, authorization=f"Bearer {fit()}"),
                timeout=30,
            ).raise_for_status()


# -- the profile: which part of a call costs what ----------------------------------------------


def _parts() -> list[tuple[str, list[tuple[str, str]]]]:
    """(label, [(file suffix, function name)]) of the parts of the call path, in order."""
    return [
        ("FIT verification (Verifier.verify)", [("access_desk/forge/invocation.py", "verify")]),
        (
            "admin check record (AdminCache.known/.is_admin)",
            [("admins.py", "known"), ("admins.py", "is_admin")],
        ),
        ("installation refresh (_remember)", [("handlers/resolvers.py", "_remember")]),
        (
            "Client built per call (Client.__init__)",
            [("access_desk/confluence/client.py", "__init__")],
        ),
        (
            "quota ledger: hold check (wait_seconds)",
            [("access_desk/quota/ledger.py", "wait_seconds")],
        ),
        ("quota ledger: admit + fair-share spend", [("access_desk/quota/ledger.py", "admit")]),
        ("quota ledger: settle", [("access_desk/quota/ledger.py", "settle")]),
        ("upstream HTTP request (requests)", [("requests/sessions.py", "request")]),
        ("lookup cache read (cached_users)", [("access_desk/store/lookups.py", "cached_users")]),
        (
            "lookup cache write, kept for a batch (cache_users)",
            [("access_desk/store/batched_lookups.py", "cache_users")],
        ),
        ("audit insert (add_audit)", [("access_desk/store/audit.py", "add_audit")]),
        ("JSON in (_payload)", [("handlers/resolvers.py", "_payload")]),
        ("JSON out (jsonify)", [("flask/json/__init__.py", "jsonify")]),
        ("log lines (logging)", [("logging/__init__.py", "_log")]),
        (
            "metrics (prometheus, multiprocess files)",
            [("prometheus_client/metrics.py", "inc"), ("prometheus_client/metrics.py", "observe")],
        ),
    ]


def behind_per_call(replies: list[requests.Response]) -> tuple[float, float]:
    """Statements and transactions per call of the threads that write in batches (quota, lookup
    cache), from each worker's running totals over these replies (``X-Bench-Behind``)."""
    seen: dict[str, list[tuple[int, int]]] = {}
    for reply in replies:
        pid, done, began = reply.headers["X-Bench-Behind"].split(":")
        seen.setdefault(pid, []).append((int(done), int(began)))
    statements = sum(max(s for s, _ in v) - min(s for s, _ in v) for v in seen.values())
    transactions = sum(max(t for _, t in v) - min(t for _, t in v) for v in seen.values())
    return statements / len(replies), transactions / len(replies)


def profile_parts(files: list[Path]) -> tuple[float, int, list[tuple[str, float]]]:
    """The profiled calls' total in-app CPU (s), how many, and each part's CPU (s)."""
    stats = pstats.Stats(*(str(f) for f in files))
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total, calls = 0.0, 0
    for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in table.items():
        if filename.endswith("flask/app.py") and name == "wsgi_app":
            total += ct
            calls += nc
    found = []
    for label, wanted in _parts():
        spent = sum(
            ct
            for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in table.items()
            if any(filename.endswith(suffix) and name == fn for suffix, fn in wanted)
        )
        found.append((label, spent))
    return total, calls, found


# -- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per kind, server and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument(
        "--profile-calls",
        type=int,
        default=200,
        help="calls per kind counted and profiled (0: none)",
    )
    parser.add_argument(
        "--keep-profiles",
        type=Path,
        help="a folder to copy the profiles to, one file per call kind (for pstats, snakeviz)",
    )
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py)")
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: gunicorn.conf.py)"
    )
    args = parser.parse_args()

    # A pool far bigger than the run spends: Confluence's quota headers on every answer, never a 429.
    platform = Platform(
        app_id=common.APP_ID, seed=True, seed_users=40, quota=Quota(points=10**9, seconds=60)
    )
    inst = platform.installation
    site = inst.site
    rng = random.Random("access-desk-bench-floor")
    templates = [site.users[u] for u in site.user_ids]
    pool: list[str] = []
    cold_calls = args.rounds * args.calls * len(APPS) + args.profile_calls * 2
    needed = (cold_calls + 100 * args.clients * len(APPS)) * IDS
    while len(pool) < needed:  # before the fork, so that the simulator's child has them too
        uid = account_id(rng)
        if uid not in site.users:
            site.users[uid] = dict(templates[len(pool) % len(templates)], accountId=uid)
            pool.append(uid)
    stop_simulator, _ = common.serve_in_child(platform)
    admin = site.admin_id
    clients = []
    for _ in range(args.clients):
        minted = common.mint_headers(platform.url, admin, 300)
        clients.append({k: v for k, v in minted.items() if k.lower() != "authorization"})
    known_emails = [site.emails[u] for u in site.user_ids if u in site.emails]
    emails = [
        rng.sample(known_emails, 3) + [f"floor.new{n}@example.com", f"floor.other{n}@example.org"]
        for n in range(args.clients)
    ]
    warm_ids = [pool[n * IDS : (n + 1) * IDS] for n in range(args.clients)]
    fresh = FreshIds(pool[args.clients * IDS :])

    def fit() -> str:
        return platform.mint_fit(inst, admin, lifetime=300)

    kinds = [
        Kind("whoami", "whoami", lambda n: {}),
        Kind("lookupUsers, cold cache", "lookupUsers", lambda n: {"accountIds": fresh.take()}),
        Kind(
            "lookupUsers, warm cache",
            "lookupUsers",
            lambda n: {"accountIds": warm_ids[n]},
            warm=True,
        ),
        Kind("checkAccess", "checkAccess", lambda n: {"emails": emails[n]}),
        Kind(
            "lookupUsers, warm cache, FIT repeated",
            "lookupUsers",
            lambda n: {"accountIds": warm_ids[n]},
            fresh_fit=False,
            product_only=True,
            warm=True,
        ),
    ]
    config = common.gunicorn_config(args.workers, args.threads)
    most = str(max(1, int(config["threads"]) - 1))
    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    busy: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    counted: dict[str, list[requests.Response]] = {}
    profiled: dict[str, tuple[float, int, list[tuple[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        workdir = Path(tmp)
        settings = common.settings_for(platform, workdir)
        base_env = backend_env(
            settings,
            BACKGROUND_WORKER="false",
            LOG_LEVEL="INFO",
            MAX_CALLS_PER_INSTALLATION=most,
            MAX_CALLS_PER_USER=most,
            FLOOR_API_BASE=inst.api_base_url,
            FLOOR_JWKS_URL=platform.jwks_url,
            FLOOR_DATABASE_URL=settings.database_url,
        )
        servers: dict[str, LiveServer] = {}

        def start(name: str, app: str, **extra: str) -> LiveServer:
            metrics_dir = workdir / f"metrics-{name}"
            metrics_dir.mkdir()
            env = dict(base_env, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), **extra)
            return common.start_backend(
                env, workdir / f"{name}.log", workers=args.workers, threads=args.threads, app=app
            )

        try:
            servers["product"] = start(
                "product", "access_desk.app:create_app()"
            )  # migrates the store first
            for level in FLOORS:
                servers[level] = start(level, "bench.floor_apps:create()", FLOOR_LEVEL=level)
            for name, server in servers.items():  # JWKS, pools, admin record, imports
                for kind in kinds:
                    if kind.product_only and name != "product":
                        continue
                    warm = [fit() for _ in range(8 * args.clients)]
                    run_phase(server.url, kind, clients, warm, server.process.pid)
            for round_no in range(args.rounds):
                for kind in kinds:
                    if kind.fresh_fit:
                        fits = [fit() for _ in range(args.calls)]
                    else:  # one FIT per client, repeated
                        fits = [fit() for _ in range(args.clients)] * (args.calls // args.clients)
                    for name in APPS:
                        if kind.product_only and name != "product":
                            continue
                        server = servers[name]
                        if kind.warm:
                            warm_lookups(server.url, kind, clients, fit)
                        done = run_phase(server.url, kind, clients, fits, server.process.pid)
                        cpu[(name, kind.label)].append(done.per_call)
                        busy[name] += done.busy
                        for error, n in done.errors.items():
                            errors[f"{name} {kind.label}: {error}"] += n
                print(f"round {round_no + 1} of {args.rounds} done", file=sys.stderr, flush=True)
            for name in list(servers):
                stop_server(servers.pop(name))
            if args.profile_calls > 0:
                folder = workdir / "profiles"
                folder.mkdir()
                server = start(
                    "profiled", "bench.floor_apps:counted()", BENCH_PROFILE_DIR=str(folder)
                )
                servers["profiled"] = server
                for kind in kinds:
                    tag = {"X-Bench-Kind": kind.label.replace(",", "").replace(" ", "-")}
                    warm = [fit() for _ in range(4 * args.clients)]
                    run_phase(server.url, kind, clients, warm, server.process.pid, extra=tag)
                    for profile in (False, True):
                        if kind.warm:
                            warm_lookups(server.url, kind, clients, fit)
                        if kind.fresh_fit:
                            fits = [fit() for _ in range(args.profile_calls)]
                        else:
                            fits = [fit() for _ in range(args.clients)] * (
                                args.profile_calls // args.clients
                            )
                        headers = dict(tag, **({"X-Bench-Profile": "1"} if profile else {}))
                        done = run_phase(
                            server.url,
                            kind,
                            clients,
                            fits,
                            server.process.pid,
                            extra=headers,
                            keep=not profile,
                        )
                        if not profile:
                            counted[kind.label] = done.replies
                stop_server(servers.pop("profiled"))
                for kind in kinds:
                    name = kind.label.replace(",", "").replace(" ", "-")
                    files = sorted(folder.glob(f"{name}.*.prof"))
                    if files:
                        profiled[kind.label] = profile_parts(files)
                        if args.keep_profiles:
                            args.keep_profiles.mkdir(parents=True, exist_ok=True)
                            stats = pstats.Stats(*(str(f) for f in files))
                            stats.dump_stats(args.keep_profiles / f"{name}.prof")
        finally:
            for server in servers.values():
                stop_server(server)
            stop_simulator()
        problems = common.warnings_in(workdir / "product.log")

    report(args, config, kinds, cpu, busy, errors, counted, profiled, problems)


def report(
    args: argparse.Namespace,
    config: dict[str, Any],
    kinds: list[Kind],
    cpu: dict[tuple[str, str], list[float]],
    busy: Counter[str],
    errors: Counter[str],
    counted: dict[str, list[requests.Response]],
    profiled: dict[str, tuple[float, int, list[tuple[str, float]]]],
    problems: list[str],
) -> None:
    def med(name: str, label: str) -> float:
        return statistics.median(cpu[(name, label)])

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:6.2f}"

    print(
        f"gunicorn        {config['workers']} workers x {config['threads']} threads "
        f"({config['worker_class']}, from {config['from']}) per server, 5 servers side by side; "
        "product: SQLite store, BACKGROUND_WORKER=false, LOG_LEVEL=INFO"
    )
    print(
        f"load            {args.clients} client threads, {args.calls} calls per kind, server and "
        f"round, {args.rounds} rounds; every call its own FIT (full RS256 verification) unless "
        "said; upstream: the simulator, no added latency, quota headers on every answer"
    )
    print("CPU per call    server processes' own CPU time (gunicorn master + workers) / calls, ms")
    print()
    header = f"{'call kind':40}" + "".join(f"{NAMES[a]:>9}" for a in APPS) + "   product/(c)"
    print(header)
    for kind in kinds:
        row = f"{kind.label:40}"
        for name in APPS:
            row += f"{ms(med(name, kind.label)):>9}" if (name, kind.label) in cpu else f"{'':>9}"
        if ("c", kind.label) in cpu:
            row += f"   {med('product', kind.label) / med('c', kind.label):5.2f}x"
        print(row)
    print()
    print("each round (ms per call, product / (c) ratio):")
    for kind in kinds:
        rounds = []
        for r, product in enumerate(cpu[("product", kind.label)]):
            floor = cpu.get(("c", kind.label))
            ratio = f" = {product / floor[r]:.2f}x (c)" if floor else ""
            rounds.append(f"{product * 1000:.2f}{ratio}")
        print(f"  {kind.label:40} " + "; ".join(rounds))
    query = [q - a for q, a in zip(cpu[("aq", "whoami")], cpu[("a", "whoami")], strict=True)]
    for label in ("lookupUsers, cold cache", "lookupUsers, warm cache", "checkAccess"):
        query += [q - a for q, a in zip(cpu[("aq", label)], cpu[("a", label)], strict=True)]
    one_query = statistics.median(query)
    print()
    print(
        f"one indexed query (floor (a)+q less (a), every kind and round): {one_query * 1000:.2f} ms"
    )
    print()
    print("targets:")
    for label in ("lookupUsers, cold cache", "checkAccess"):
        times = med("product", label) / med("c", label)
        verdict = "met" if times <= 1.25 else "NOT met"
        print(f"  {label:38} {times:5.2f}x floor (c)   (target <= 1.25x)  {verdict}")
    for label in ("lookupUsers, warm cache", "lookupUsers, warm cache, FIT repeated"):
        least = med("aq", "lookupUsers, warm cache")
        spent = med("product", label)
        verdict = "met" if spent <= least else "NOT met"
        print(
            f"  {label:38} {spent * 1000:5.2f} ms against floor (a) + one indexed query "
            f"{least * 1000:.2f} ms = {spent / least:.2f}x  (target <= 1x)  {verdict}"
        )
    print(f"  errors: {sum(errors.values())}" + (f" {dict(errors)}" if errors else ""))
    if sum(busy.values()):
        print(f"  429 busy answers sent again: {dict(busy)}")
    if problems:
        print(f"  product log warnings: {len(problems)}; first: {problems[0][:300]}")
    if counted:
        print()
        print("store work per call (product, counted by the profiled wrapper):")
        print(
            f"  {'call kind':40}{'stmts':>7}{'p99':>5}{'txns':>6}{'commits':>8}{'conns':>6}"
            f"{'in-app CPU':>12}"
        )
        for kind in kinds:
            replies = counted.get(kind.label) or []
            if not replies:
                continue
            statements = [int(r.headers["X-Bench-Statements"]) for r in replies]
            txns = [int(r.headers["X-Bench-Transactions"]) for r in replies]
            commits = [int(r.headers["X-Bench-Commits"]) for r in replies]
            conns = [int(r.headers["X-Bench-Connections"]) for r in replies]
            in_app = [int(r.headers["X-Bench-Cpu-Us"]) / 1e6 for r in replies]
            print(
                f"  {kind.label:40}{statistics.mean(statements):7.2f}"
                f"{percentile([float(s) for s in statements], 0.99):5.0f}"
                f"{statistics.mean(txns):6.2f}{statistics.mean(commits):8.2f}"
                f"{statistics.mean(conns):6.2f}{statistics.median(in_app) * 1000:9.2f} ms"
            )
            labels: Counter[str] = Counter()
            for reply in replies:
                for part in filter(None, reply.headers["X-Bench-Labels"].split(";")):
                    name, _, n = part.rpartition("=")
                    labels[name] += int(n)
            shown = ", ".join(f"{name} {n / len(replies):.2f}" for name, n in labels.most_common())
            print(f"      {shown}")
            late = behind_per_call(replies)
            if late != (0.0, 0.0):
                print(
                    f"      + written in batches off the calls' path: {late[0]:.2f} statements in "
                    f"{late[1]:.2f} transactions per call"
                )
    if profiled:
        print()
        print(
            "where a call's in-app CPU goes (cProfile on the thread's CPU clock; its overhead "
            "inflates many small calls, so read the shares):"
        )
        for kind in kinds:
            if kind.label not in profiled:
                continue
            total, calls, parts = profiled[kind.label]
            if not calls:
                continue
            print(f"  {kind.label}: {total / calls * 1000:.2f} ms profiled per call")
            rest = total
            for label, spent in parts:
                if spent <= 0:
                    continue
                rest -= spent
                print(f"      {label:52} {spent / total:6.1%} {spent / calls * 1000:7.3f} ms")
            print(
                f"      {'everything else (Flask, Werkzeug, resolver code)':52} {rest / total:6.1%}"
            )


if __name__ == "__main__":
    main()
