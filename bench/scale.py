"""The backend on a PostgreSQL store a busy Marketplace app would have after a year, against the
same work on an empty store, side by side in one run.

Two databases on one PostgreSQL cluster (a private one this script starts as scripts/postgres.sh
does, or ``TEST_POSTGRES_URL``'s): the year store, filled with bulk SQL (``bench/scale_fill.py``:
10,000 installations, 1,000,000 audit entries, 100,000 jobs of which 5,000 queued across 500
installations, the lookup cache as the last minutes left it), and the empty store (the same
10,000 installations, and 50 queued jobs across 5 installations for the claims). Each is served by
its own gunicorn (``gunicorn.conf.py``'s workers and threads; ``bench.floor_apps:counted()``, the
product counting the store statements of each request), against one simulated platform.

Measured on both, in turns:

- **panel calls** as the simulated site's admin (its installation is the year store's busiest):
  whoami, lookupUsers (5 ids never asked before; 5 ids from the cache), checkAccess, listAudit
  (no filter; by subject, action, source, actor and time), listJobs, getJob, webhookStatus, quota:
  CPU per call (the gunicorn processes' and the database's: every process of the cluster, to the
  nanosecond), store statements per call (mean, p99);
- **job claims** as the background worker makes them (``Store.claim_job``, then the job released)
  and its fair-turn check (``waiting_elsewhere``): time per claim (p50, p99) and statements;
- **sweeps**: the dormancy sweep, the personal data and erasure duty claims when none is due, the
  report's read of the busiest installation's account ids, and a ``/metrics`` scrape;
- **an hour of scheduled triggers**: one ``POST /forge/scheduled`` from each of the 10,000
  installations (an hour's worth, about 3 a second, sent as fast as 4 clients go), then the
  personal data duties they queued, run as the worker runs them (``PersonalData.run_due`` until
  none is due): about 1 installation in 24 is due for housekeeping and 1 in 168 for a report. Its
  CPU (servers, database, duties) as a share of one core over an hour.

Then: the database's size per installation, and every distinct statement the product sent
(captured in the servers and here) ``EXPLAIN``-ed on the year store: any sequential scan on a
table of 10,000 rows or more is listed.

Run: .venv/bin/python -m bench.scale [--calls 100] [--rounds 3] [--claims 300] [--small]
(``--small`` fills a tenth of everything, for a quick look.) Targets: per-call cost within 1.1x
of the empty store; claim p99 under 10 ms; an hour of triggers under 5% of one core; no
sequential scan on a big table.
"""

from __future__ import annotations

import argparse
import getpass
import glob
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from access_desk.duties.personal_data import PersonalData
from access_desk.store import Store
from bench import common, scale_fill
from bench.common import LiveServer, backend_env, free_port, stop_server
from bench.floor import Kind, run_phase
from bench.floor_apps import statement_label
from bench.scale_fill import Busy, Sizes
from simulator import Platform, forge
from simulator.quota import Quota
from simulator.site import account_id
from simulator.tokens import SYSTEM

STORES = ("empty", "year")
BIG_TABLE = 10_000  # rows: a sequential scan on a table this big is listed
HOUR = 3600.0
IDS = 5
SCHEDULED = ("access-desk-hourly", "core:scheduledTrigger")


# -- the PostgreSQL cluster ---------------------------------------------------------------------


@dataclass
class Cluster:
    """Where the databases live and how much CPU the cluster's processes used."""

    admin_url: str
    postmaster: int | None

    def cpu(self) -> float:
        """CPU seconds of the postmaster and every process it started (backends included, to
        the nanosecond; the ones that ended, in ticks), or 0.0 when it is not known."""
        if self.postmaster is None:
            return 0.0
        pids = [self.postmaster]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == self.postmaster:
                    pids.append(int(entry.name))
        total = common.task_cpu_seconds(pids)
        try:
            fields = Path(f"/proc/{self.postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return total
        return total + sum(int(v) for v in fields[13:15]) / os.sysconf("SC_CLK_TCK")

    @contextmanager
    def database(self, name: str) -> Iterator[str]:
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            yield sa.make_url(self.admin_url).set(database=name).render_as_string(False)
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


@contextmanager
def cluster() -> Iterator[Cluster]:
    """``TEST_POSTGRES_URL``'s cluster when set, else a private one (as scripts/postgres.sh)."""
    given = os.environ.get("TEST_POSTGRES_URL")
    if given:
        engine = sa.create_engine(given)
        try:
            with engine.connect() as conn:
                data = conn.execute(sa.text("SHOW data_directory")).scalar_one()
            postmaster: int | None = int(Path(data, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, sa.exc.SQLAlchemyError):
            postmaster = None  # not readable from here: the database's CPU is not counted
        finally:
            engine.dispose()
        yield Cluster(given, postmaster)
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit(
            "PostgreSQL is not installed: ./test installs it (scripts/postgres.sh), or set "
            "TEST_POSTGRES_URL to a cluster this script may create databases in."
        )
    bin_dir = Path(found[-1]).parent
    root = os.getuid() == 0
    user = "postgres" if root else getpass.getuser()
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-pg-"))
    if root:
        shutil.chown(folder, "postgres")

    def run(command: list[str]) -> None:
        line = shlex.join(command)
        args = ["su", "postgres", "-s", "/bin/sh", "-c", line] if root else ["/bin/sh", "-c", line]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

    data = folder / "data"
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
    run([str(bin_dir / "initdb"), "-D", str(data), "-U", user, "-A", "trust"])
    run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-o",
            options,
            "start",
        ]
    )
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        yield Cluster(f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres", postmaster)
    finally:
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


# -- statements made in this process ----------------------------------------------------------


class Recorder:
    """Counts a store's statements (while ``on``) and keeps every distinct one for EXPLAIN."""

    def __init__(self, engine: sa.Engine, seen: dict[str, Any]) -> None:
        self.on = False
        self.count = 0
        self.labels: Counter[str] = Counter()
        self._seen = seen

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _statement(conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
            if self.on:
                self.count += 1
                self.labels[statement_label(sql)] += 1
            if sql not in self._seen:
                self._seen[sql] = parameters

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.count, self.on = 0, True
        self.labels.clear()
        try:
            yield
        finally:
            self.on = False


@dataclass
class Timed:
    seconds: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)


def timed(recorder: Recorder, action: Callable[[], object], times: int) -> Timed:
    out = Timed()
    for _ in range(times):
        with recorder.counting():
            began = time.perf_counter()
            action()
            out.seconds.append(time.perf_counter() - began)
        out.statements.append(recorder.count)
        out.labels.update(recorder.labels)
    return out


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Store_:
    """One side of the comparison: its database, server, in-process store and figures."""

    name: str
    url: str
    store: Store
    sizes: Sizes
    recorder: Recorder | None = None
    server: LiveServer | None = None
    busy_job: str = ""
    calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    app_cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statements: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    claims: Timed = field(default_factory=Timed)
    elsewhere: Timed = field(default_factory=Timed)
    sweeps: dict[str, Timed] = field(default_factory=dict)
    triggers: tuple[float, float, int] = (0.0, 0.0, 0)  # server CPU, database CPU, triggers
    trigger_statements: list[int] = field(default_factory=list)
    duties: tuple[float, float, int] = (0.0, 0.0, 0)  # this process, database, duties run
    size: int = 0
    tables: list[tuple[str, int, int]] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per kind, store and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--small", action="store_true", help="a tenth of everything")
    args = parser.parse_args()
    sizes = Sizes()
    if args.small:
        sizes = Sizes(
            **{
                k: max(1, v // 10)
                for k, v in vars(sizes).items()
                if k not in ("items_per_job", "busy_cached_users")
            }
        )
    empty = scale_fill.empty_sizes(sizes.installations)
    started = time.perf_counter()

    platform = Platform(
        app_id=common.APP_ID, seed=True, seed_users=40, quota=Quota(points=10**9, seconds=60)
    )
    inst = platform.installation
    site = inst.site
    rng = random.Random("access-desk-bench-scale")
    templates = [site.users[u] for u in site.user_ids]
    pool: list[str] = []
    while len(pool) < (args.rounds * args.calls * 2 + 200 * args.clients) * IDS:
        uid = account_id(rng)
        if uid not in site.users:
            site.users[uid] = dict(templates[len(pool) % len(templates)], accountId=uid)
            pool.append(uid)
    # The synthetic installations' system tokens, issued before the simulator forks so that its
    # personal data API knows them (their reports are answered as the real site's are).
    system_tokens = {
        n: platform.tokens.issue(
            scale_fill.synthetic(n, "")[0] if n > 1 else inst.id, SYSTEM, 4 * HOUR
        )
        for n in range(1, sizes.installations + 1)
    }
    stop_simulator, _ = common.serve_in_child(platform)
    api_prefix = f"{platform.url}/ex/confluence/"
    busy = Busy(inst.id, inst.uuid, inst.cloud_id, inst.api_base_url, site.admin_id)
    secret_key = Fernet.generate_key().decode()
    seen: dict[str, Any] = {}
    sides: dict[str, Store_] = {}

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, cluster() as pg:
        workdir = Path(tmp)
        with (
            pg.database("bench_scale_empty") as empty_url,
            pg.database("bench_scale_year") as year_url,
        ):
            for name, url in (("empty", empty_url), ("year", year_url)):
                store = Store(url, secret_key)
                store.migrate()
                sides[name] = Store_(name, url, store, sizes if name == "year" else empty)
            now = time.time()
            filling = time.perf_counter()
            token_enc = Fernet(secret_key.encode()).encrypt(b"offline-token").decode()
            for side in sides.values():
                with side.store.engine.begin() as conn:
                    scale_fill.fill_installations(conn, now, sizes.installations, api_prefix, busy)
                    scale_fill.fill_year(conn, now, side.sizes, busy, token_enc)
                side.busy_job = _job_id(side.sizes.queued + 1)
                side.store.set_webhook_secret(busy.installation_id, "whsec_bench", busy.admin)
                _vacuum(side.url)
                side.recorder = Recorder(side.store.engine, seen)  # from here on: the product's
            print(f"filled in {time.perf_counter() - filling:.0f} s", file=sys.stderr, flush=True)
            try:
                _measure(
                    args,
                    platform,
                    sizes,
                    busy,
                    sides,
                    pg,
                    workdir,
                    pool,
                    secret_key,
                    system_tokens,
                    api_prefix,
                )
                explained = _explain(sides["year"].url, seen, workdir)
                for side in sides.values():
                    side.size, side.tables = _sizes(side.url)
            finally:
                for side in sides.values():
                    if side.server is not None:
                        stop_server(side.server)
                    side.store.close()
                stop_simulator()
    report(args, sizes, sides, explained, time.perf_counter() - started, pg.postmaster is not None)


def _job_id(n: int) -> str:
    import hashlib

    return "job-" + hashlib.md5(f"job-{n}".encode()).hexdigest()


def _vacuum(url: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def _both_cpu(side: Store_, pg: Cluster) -> tuple[float, float]:
    assert side.server is not None
    return common.group_cpu_seconds(side.server.process.pid), pg.cpu()


def _kinds(
    side: Store_,
    admin: str,
    pool_take: Callable[[], list[str]],
    warm_ids: list[list[str]],
    emails: list[list[str]],
) -> list[Kind]:
    """The panel calls, with this store's own job id for getJob."""
    recent = side.sizes.audit - side.sizes.audit % 10  # the busiest installation's latest entry
    month_ago = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    return [
        Kind("whoami", "whoami", lambda n: {}),
        Kind("lookupUsers, cold cache", "lookupUsers", lambda n: {"accountIds": pool_take()}),
        Kind(
            "lookupUsers, warm cache",
            "lookupUsers",
            lambda n: {"accountIds": warm_ids[n]},
            warm=True,
        ),
        Kind("checkAccess", "checkAccess", lambda n: {"emails": emails[n]}),
        Kind("listAudit", "listAudit", lambda n: {}),
        Kind("listAudit by subject", "listAudit", lambda n: {"subject": f"p{recent}@example.com"}),
        Kind("listAudit by action", "listAudit", lambda n: {"action": "inviteEmails"}),
        Kind("listAudit by source", "listAudit", lambda n: {"source": "webhook"}),
        Kind(
            "listAudit by actor, last 30 days",
            "listAudit",
            lambda n: {"actor": admin, "since": month_ago},
        ),
        Kind("listJobs", "listJobs", lambda n: {}),
        Kind("getJob", "getJob", lambda n: {"jobId": side.busy_job}),
        Kind("webhookStatus", "webhookStatus", lambda n: {}),
        Kind("quota", "quota", lambda n: {}),
    ]


def _measure(
    args: argparse.Namespace,
    platform: Platform,
    sizes: Sizes,
    busy: Busy,
    sides: dict[str, Store_],
    pg: Cluster,
    workdir: Path,
    pool: list[str],
    secret_key: str,
    system_tokens: dict[int, str],
    api_prefix: str,
) -> None:
    inst = platform.installation
    site = inst.site
    config = common.gunicorn_config(None, None)
    most = str(max(1, int(config["threads"]) - 1))
    for side in sides.values():
        settings = common.settings_for(
            platform, workdir, secret_key=secret_key, database_url=side.url
        )
        for folder in ("statements", "metrics"):
            (workdir / f"{folder}-{side.name}").mkdir()
        env = backend_env(
            settings,
            BACKGROUND_WORKER="false",
            LOG_LEVEL="INFO",
            LOOKUP_CACHE_SECONDS="7200",  # the filled cache stays fresh for the whole run
            MAX_CALLS_PER_INSTALLATION=most,
            MAX_CALLS_PER_USER=most,
            BENCH_STATEMENTS_DIR=str(workdir / f"statements-{side.name}"),
            PROMETHEUS_MULTIPROC_DIR=str(workdir / f"metrics-{side.name}"),
        )
        side.server = common.start_backend(
            env, workdir / f"{side.name}.log", app="bench.floor_apps:counted()"
        )
    clients = []
    for _ in range(args.clients):
        minted = common.mint_headers(platform.url, busy.admin, 300)
        clients.append({k: v for k, v in minted.items() if k.lower() != "authorization"})
    known = [site.emails[u] for u in site.user_ids if u in site.emails]
    rng = random.Random("access-desk-bench-scale-calls")
    emails = [
        rng.sample(known, 3) + [f"scale.new{n}@example.com", f"scale.other{n}@example.org"]
        for n in range(args.clients)
    ]
    warm_ids = [pool[n * IDS : (n + 1) * IDS] for n in range(args.clients)]
    taken = [args.clients * IDS]
    lock = threading.Lock()

    def take() -> list[str]:
        with lock:
            start = taken[0]
            taken[0] += IDS
        return [pool[(start + i) % len(pool)] for i in range(IDS)]

    def fit() -> str:
        return platform.mint_fit(inst, busy.admin, lifetime=300)

    kinds = {s.name: _kinds(s, busy.admin, take, warm_ids, emails) for s in sides.values()}
    labels = [k.label for k in kinds["empty"]]
    # warm-up: connections, keys, the admin check's record, imports
    for side in sides.values():
        assert side.server is not None
        for kind in kinds[side.name]:
            if kind.warm:
                warm_lookups_(side, kind, clients, fit)
            run_phase(
                side.server.url,
                kind,
                clients,
                [fit() for _ in range(2 * args.clients)],
                side.server.process.pid,
                cpu=lambda: 0.0,
            )
    for round_no in range(args.rounds):
        for index, label in enumerate(labels):
            fits = [fit() for _ in range(args.calls)]
            for side in sides.values():
                assert side.server is not None
                kind = kinds[side.name][index]
                if kind.warm:
                    warm_lookups_(side, kind, clients, fit)
                app0, db0 = _both_cpu(side, pg)
                done = run_phase(
                    side.server.url,
                    kind,
                    clients,
                    fits,
                    side.server.process.pid,
                    keep=True,
                    cpu=lambda: 0.0,
                )
                app1, db1 = _both_cpu(side, pg)
                ok = [r for r in done.replies if r.status_code == 200]
                if len(ok) != len(done.replies) or done.errors:
                    bad = Counter(r.status_code for r in done.replies if r.status_code != 200)
                    print(
                        f"{side.name} {label}: errors {dict(bad)} {dict(done.errors)}: "
                        f"{done.replies[0].text[:200] if bad else ''}",
                        file=sys.stderr,
                    )
                side.calls[label].append(((app1 - app0) + (db1 - db0)) / max(1, len(ok)))
                side.app_cpu[label].append((app1 - app0) / max(1, len(ok)))
                side.statements[label] += [int(r.headers["X-Bench-Statements"]) for r in ok]
        print(
            f"panel calls: round {round_no + 1} of {args.rounds} done", file=sys.stderr, flush=True
        )
    for side in sides.values():
        _claims_and_sweeps(args, side, busy)
    _triggers(args, platform, sizes, busy, sides, pg, system_tokens, api_prefix)


def warm_lookups_(
    side: Store_, kind: Kind, clients: list[dict[str, str]], fit: Callable[[], str]
) -> None:
    assert side.server is not None
    with requests.Session() as session:
        for n, headers in enumerate(clients):
            session.post(
                f"{side.server.url}/resolvers/{kind.key}",
                json=kind.body(n),
                headers=dict(headers, authorization=f"Bearer {fit()}"),
                timeout=30,
            ).raise_for_status()


def _claims_and_sweeps(args: argparse.Namespace, side: Store_, busy: Busy) -> None:
    store, recorder = side.store, side.recorder
    assert recorder is not None
    worker = f"bench-worker-{uuid.uuid4().hex[:8]}"
    for _ in range(args.claims):
        with recorder.counting():
            began = time.perf_counter()
            job = store.claim_job(worker, 60.0)
            side.claims.seconds.append(time.perf_counter() - began)
        side.claims.statements.append(recorder.count)
        side.claims.labels.update(recorder.labels)
        if job is not None:
            store.release_job(job.id, worker)
    side.elsewhere = timed(recorder, lambda: store.waiting_elsewhere(busy.installation_id), 50)
    assert side.server is not None
    url = side.server.url
    side.sweeps = {
        "dormancy sweep (mark quiet installations)": timed(
            recorder, lambda: store.mark_quiet_installations_dormant(72 * HOUR), 5
        ),
        "personal data duty claim, none due": timed(
            recorder, lambda: store.claim_privacy_duty(worker, 300.0), 5
        ),
        "erasure claim, none due": timed(recorder, lambda: store.claim_erasure(worker, 300.0), 5),
        "the report's account ids (busiest installation)": timed(
            recorder, lambda: store.personal_data_accounts(busy.installation_id), 3
        ),
    }
    scrape = Timed()
    with requests.Session() as session:
        for _ in range(5):
            began = time.perf_counter()
            reply = session.get(f"{url}/metrics", timeout=30)
            scrape.seconds.append(time.perf_counter() - began)
            scrape.statements.append(int(reply.headers.get("X-Bench-Statements", "0")))
            for part in filter(None, reply.headers.get("X-Bench-Labels", "").split(";")):
                name, _, n = part.rpartition("=")
                scrape.labels[name] += int(n)
    side.sweeps["/metrics scrape (wall time)"] = scrape


def _triggers(
    args: argparse.Namespace,
    platform: Platform,
    sizes: Sizes,
    busy: Busy,
    sides: dict[str, Store_],
    pg: Cluster,
    system_tokens: dict[int, str],
    api_prefix: str,
) -> None:
    """One scheduled trigger from every installation, then the duties they queued."""
    kid, key = platform.keys.current
    environment = str(uuid.uuid4())

    def trigger(n: int) -> dict[str, str]:
        if n == 1:
            iid, cloud, url = busy.installation_id, busy.cloud_id, busy.api_base_url
        else:
            iid, cloud, url = scale_fill.synthetic(n, api_prefix)
        claims = forge.fit_claims(
            app_id=common.APP_ID,
            installation_id=iid,
            api_base_url=url,
            cloud_id=cloud,
            site_url=f"https://site-{n}.example.net",
            environment_id=environment,
            account_id=None,
            module_key=SCHEDULED[0],
            lifetime=300,
            module_type=SCHEDULED[1],
        )
        token = forge.sign(claims, {"alg": "RS256", "kid": kid, "typ": "JWT"}, key)
        return {"authorization": f"Bearer {token}", "x-forge-oauth-system": system_tokens[n]}

    used = {name: [0.0, 0.0] for name in sides}
    numbers = list(range(1, sizes.installations + 1))
    for start in range(0, len(numbers), 1000):
        chunk = [trigger(n) for n in numbers[start : start + 1000]]
        for side in sides.values():
            assert side.server is not None
            app0, db0 = _both_cpu(side, pg)
            side.trigger_statements += _send_triggers(side.server.url, chunk, args.clients)
            app1, db1 = _both_cpu(side, pg)
            used[side.name][0] += app1 - app0
            used[side.name][1] += db1 - db0
    for side in sides.values():
        side.triggers = (used[side.name][0], used[side.name][1], len(numbers))
        duties = PersonalData(
            requests.Session(),
            platform.personal_data_url,
            side.store,
            allowlist=(platform.allowlist_prefix,),
            report_days=7,
            retention_days=90,
            timeout_seconds=10.0,
        )
        cpu0, db0 = time.process_time(), pg.cpu()
        done = 0
        while duties.run_due():
            done += 1
        side.duties = (time.process_time() - cpu0, pg.cpu() - db0, done)
    print("triggers done", file=sys.stderr, flush=True)


def _send_triggers(url: str, headers: list[dict[str, str]], clients: int) -> list[int]:
    statements: list[int] = []
    failed: Counter[int] = Counter()
    lock = threading.Lock()

    def client(k: int) -> None:
        with requests.Session() as session:
            for h in headers[k::clients]:
                reply = session.post(f"{url}/forge/scheduled", json={}, headers=h, timeout=30)
                with lock:
                    if reply.status_code != 200:
                        failed[reply.status_code] += 1
                    else:
                        statements.append(int(reply.headers.get("X-Bench-Statements", "0")))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        print(f"triggers refused: {dict(failed)}", file=sys.stderr)
    return statements


def _explain(url: str, seen: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Every distinct statement EXPLAINed on the year store: sequential scans on big tables."""
    statements = dict(seen)
    for path in workdir.glob("statements-*/*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            statements.setdefault(entry["sql"], entry["params"])
    engine = sa.create_engine(url)
    found: list[tuple[str, str, int]] = []
    failed: list[tuple[str, str]] = []
    explained = 0
    try:
        with engine.connect() as conn:
            rows: dict[str, int] = dict(
                conn.execute(
                    sa.text(
                        "SELECT relname, reltuples::bigint FROM pg_class "
                        "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                    )
                ).all()
            )
            for sql, params in sorted(statements.items()):
                verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
                if verb not in ("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"):
                    continue
                if "alembic_version" in sql or "pg_catalog" in sql or "pg_advisory" in sql:
                    continue
                if isinstance(params, list | tuple):
                    params = params[0] if params and isinstance(params[0], dict) else {}
                try:
                    with conn.begin_nested():
                        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params or {})
                        tree = plan.scalar_one()
                except sa.exc.SQLAlchemyError as exc:
                    failed.append((statement_label(sql), str(exc).splitlines()[0][:200]))
                    continue
                explained += 1
                for relation in _seq_scans(tree[0]["Plan"] if isinstance(tree, list) else tree):
                    if rows.get(relation, 0) >= BIG_TABLE:
                        found.append((_short(sql), relation, int(rows[relation])))
            conn.rollback()
    finally:
        engine.dispose()
    return {"explained": explained, "seq_scans": found, "failed": failed}


def _seq_scans(plan: dict[str, Any]) -> Iterator[str]:
    if plan.get("Node Type") == "Seq Scan":
        yield str(plan.get("Relation Name"))
    for child in plan.get("Plans", []):
        yield from _seq_scans(child)


def _short(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _sizes(url: str) -> tuple[int, list[tuple[str, int, int]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            size = int(
                conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
            )
            tables = [
                (str(name), int(total), int(n))
                for name, total, n in conn.execute(
                    sa.text(
                        "SELECT relname, pg_total_relation_size(oid), reltuples::bigint "
                        "FROM pg_class WHERE relkind = 'r' "
                        "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 6"
                    )
                )
            ]
    finally:
        engine.dispose()
    return size, tables


# -- the report ---------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    sizes: Sizes,
    sides: dict[str, Store_],
    explained: dict[str, Any],
    seconds: float,
    database_cpu: bool,
) -> None:
    empty, year = sides["empty"], sides["year"]
    ms = 1000.0
    print(
        f"stores          PostgreSQL; year: {sizes.installations:,} installations, "
        f"{sizes.audit:,} audit entries, {sizes.jobs:,} jobs ({sizes.queued:,} queued across "
        f"{sizes.queued_installations} installations), lookup cache {sizes.busy_cached_users:,} "
        f"rows of the caller + {sizes.other_callers * sizes.other_cached_users:,} of others"
    )
    print(
        f"                empty: the same {sizes.installations:,} installations (a token, turn, "
        "pool and admin records each), the busiest one's 1,000 audit entries and 100 jobs (a "
        "full page of every call), 50 queued jobs across 5 installations; no lookup cache"
    )
    print(
        f"load            {args.clients} clients, {args.calls} calls per kind, store and round, "
        f"{args.rounds} rounds, as the busiest installation's admin; every call its own FIT; "
        f"run took {seconds / 60:.1f} min"
    )
    where = "gunicorn + database" if database_cpu else "gunicorn only (database CPU not readable)"
    print(f"CPU per call    {where}, ms, median of rounds")
    print()
    print(
        f"{'panel call':36}{'empty':>8}{'year':>8}{'ratio':>7}   {'stmts empty':>11}"
        f"{'year':>6}{'p99 e/y':>9}"
    )
    worst = 0.0
    for label in empty.calls:
        e = statistics.median(empty.calls[label])
        y = statistics.median(year.calls[label])
        worst = max(worst, y / e)
        se, sy = empty.statements[label], year.statements[label]
        print(
            f"{label:36}{e * ms:8.2f}{y * ms:8.2f}{y / e:6.2f}x   {statistics.mean(se):11.2f}"
            f"{statistics.mean(sy):6.2f}{common.percentile([float(s) for s in se], 0.99):5.0f}/"
            f"{common.percentile([float(s) for s in sy], 0.99):<3.0f}"
        )
    print()
    print("each round (ms per call, year / empty):")
    for label in empty.calls:
        pairs = [
            f"{y * ms:.2f}/{e * ms:.2f}"
            for e, y in zip(empty.calls[label], year.calls[label], strict=True)
        ]
        print(f"  {label:36}" + "; ".join(pairs))
    print()
    for side in (empty, year):
        c = side.claims
        print(
            f"claims ({side.name}): p50 {common.percentile(c.seconds, 0.5) * ms:.2f} ms, p99 "
            f"{common.percentile(c.seconds, 0.99) * ms:.2f} ms, {statistics.mean(c.statements):.1f} "
            f"statements; fair-turn check p99 {common.percentile(side.elsewhere.seconds, 0.99) * ms:.2f} ms"
        )
    print()
    print(f"{'sweep':50}{'empty ms':>10}{'year ms':>10}{'stmts':>7}")
    for label in year.sweeps:
        we, wy = empty.sweeps[label], year.sweeps[label]
        print(
            f"{label:50}{statistics.median(we.seconds) * ms:10.2f}"
            f"{statistics.median(wy.seconds) * ms:10.2f}{statistics.mean(wy.statements):7.1f}"
        )
    print()
    hour_share = {}
    for side in (empty, year):
        app, db, n = side.triggers
        duty_cpu, duty_db, duties = side.duties
        total = app + db + duty_cpu + duty_db
        hour_share[side.name] = total / HOUR
        print(
            f"an hour of triggers ({side.name}): {n:,} triggers {app:.1f} s server + {db:.1f} s "
            f"database ({(app + db) / n * ms:.2f} ms each, {statistics.mean(side.trigger_statements):.1f} "
            f"statements, p99 {common.percentile([float(s) for s in side.trigger_statements], 0.99):.0f}); "
            f"{duties} duties {duty_cpu:.1f} s + {duty_db:.1f} s database; "
            f"{total:.1f} CPU s = {total / HOUR:.2%} of one core"
        )
    print()
    for side in (empty, year):
        print(
            f"database ({side.name}): {side.size / 1e6:,.0f} MB, "
            f"{side.size / sizes.installations / 1e3:,.1f} kB per installation; largest: "
            + ", ".join(f"{t} {b / 1e6:,.0f} MB ({n:,} rows)" for t, b, n in side.tables[:4])
        )
    print()
    scans = explained["seq_scans"]
    print(
        f"statements EXPLAINed on the year store: {explained['explained']}; "
        f"sequential scans on tables of {BIG_TABLE:,}+ rows: {len(scans)}"
    )
    for sql, relation, rows in scans:
        print(f"  Seq Scan on {relation} ({rows:,} rows): {sql}")
    for label, error in explained["failed"][:5]:
        print(f"  not explained: {label}: {error}")
    claim_p99 = common.percentile(year.claims.seconds, 0.99)
    print()
    print("targets:")
    print(
        f"  per-call cost, year / empty, worst kind: {worst:.2f}x (target <= 1.1x) "
        f"{'met' if worst <= 1.1 else 'NOT met'}"
    )
    print(
        f"  claim p99 (year): {claim_p99 * ms:.2f} ms (target < 10 ms) "
        f"{'met' if claim_p99 < 0.010 else 'NOT met'}"
    )
    print(
        f"  an hour of triggers (year): {hour_share['year']:.2%} of one core (target < 5%) "
        f"{'met' if hour_share['year'] < 0.05 else 'NOT met'}"
    )
    print(
        f"  sequential scans on big tables: {len(scans)} (target 0) {'met' if not scans else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
