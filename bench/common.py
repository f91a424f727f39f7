"""Helpers shared by the benchmarks: the simulated platform, backend settings and environment,
gunicorn on loopback, percentiles, CPU accounting.

Every benchmark binds only 127.0.0.1, cleans up the servers it starts and keeps its files in a
temporary directory. The benchmarks run as modules from the repository root
(``.venv/bin/python -m bench.<name>``) and import the product and the simulator, never ``tests/``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from access_desk.forge.invocation import MAX_LIFETIME
from access_desk.settings import Settings
from simulator import Platform
from simulator.site import Site

ROOT = Path(__file__).resolve().parents[1]
APP_ID = "ari:cloud:ecosystem::app/6a3e6c5e-0d4b-4a8e-9d54-3b2c1f0e7a11"


def max_seed_users(limit: int) -> int:
    """The most ordinary users (<= ``limit``) the simulator can seed one site with."""
    try:
        Site.seeded(1, limit)
        return limit
    except IndexError:  # the seeded sites draw from a fixed list of first x last names
        pass
    low, high = 0, limit
    while high - low > 1:
        middle = (low + high) // 2
        try:
            Site.seeded(1, middle)
            low = middle
        except IndexError:
            high = middle
    return low


def serve_in_child(platform: Platform) -> tuple[Callable[[], None], int]:
    """Serve ``platform`` from a forked child process (its own GIL, so a load generator in this
    process does not slow the simulated upstream down); returns ``stop`` and the child's pid.
    Tokens issued in this process after the fork are unknown to the child: use ``mint_headers``."""
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()

    def run(conn: Connection) -> None:
        server = platform.serve("127.0.0.1", 0)
        conn.send(server.url)
        try:
            conn.recv()  # until told to stop, or the parent is gone (EOFError)
        except EOFError:
            pass
        server.stop()

    child = context.Process(target=run, args=(there,), name="simulator", daemon=True)
    child.start()
    there.close()
    url = here.recv()
    platform.url = url  # what Platform.serve sets, for the URL properties in this process
    for inst in platform.installations:
        inst.platform_url = url

    def stop() -> None:
        try:
            here.send(None)
        except OSError:
            pass
        child.join(10)
        if child.is_alive():
            child.terminate()
            child.join(5)

    assert child.pid is not None
    return stop, child.pid


def mint_headers(
    sim_url: str, account_id: str, lifetime: int, installation_id: str | None = None
) -> dict[str, str]:
    """Forge's invocation headers from the simulator's control API (works across processes); for
    the first installation unless ``installation_id`` names another."""
    body: dict[str, Any] = {"accountId": account_id, "lifetime": lifetime}
    if installation_id is not None:
        body["installationId"] = installation_id
    response = requests.post(f"{sim_url}/_sim/tokens", json=body, timeout=10)
    response.raise_for_status()
    headers = response.json()["headers"]
    assert isinstance(headers, dict)
    return {str(k): str(v) for k, v in headers.items()}


class Fit:
    """One caller's Forge headers, minted through the simulator's control API with the longest
    lifetime the backend accepts (``auth.MAX_LIFETIME``, 300 s) and minted again when less than
    ``renew_before`` seconds are left. Call ``headers()`` outside the timed part of a request."""

    def __init__(
        self,
        sim_url: str,
        account_id: str,
        installation_id: str | None = None,
        renew_before: float = 30.0,
    ) -> None:
        self._args = (sim_url, account_id, MAX_LIFETIME, installation_id)
        self._renew_after = MAX_LIFETIME - renew_before
        self._minted = -math.inf
        self._headers: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        if time.monotonic() - self._minted > self._renew_after:
            self._headers = mint_headers(*self._args)
            self._minted = time.monotonic()
        return self._headers


def sim_json(sim_url: str, path: str) -> Any:
    """GET one of the simulator's control endpoints (``/_sim/<path>``) and answer its JSON."""
    response = requests.get(f"{sim_url}/_sim/{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def upstream_counts(sim_url: str, *, clear: bool = False) -> Counter[str]:
    """Requests the simulator saw, by endpoint (through its control API)."""
    response = requests.get(f"{sim_url}/_sim/requests", timeout=30)
    response.raise_for_status()
    counts = Counter(str(r["endpoint"]) for r in response.json()["requests"])
    if clear:
        requests.delete(f"{sim_url}/_sim/requests", timeout=10).raise_for_status()
    return counts


def settings_for(platform: Platform, workdir: Path, **overrides: Any) -> Settings:
    """Backend settings pointing at ``platform`` (as the tests' ``settings`` fixture)."""
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "secret_key": Fernet.generate_key().decode(),
        "jwks_url": platform.jwks_url,
        "api_base_url_allowlist": (platform.allowlist_prefix,),
        "graphql_url": platform.graphql_url,
        "personal_data_url": platform.personal_data_url,
        "database_url": f"sqlite:///{workdir / 'access-desk.sqlite3'}",
        "background_worker": False,
        "upstream_timeout_seconds": 5.0,
        "allow_http": True,
    }
    values.update(overrides)
    return Settings(**values)


def backend_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment plus the variables that configure the backend as ``settings``
    say (the ones ``settings_for`` sets), then ``extra``."""
    env = dict(os.environ)
    env.update(
        FORGE_APP_ID=settings.app_id,
        SECRET_KEY=settings.secret_key,
        FORGE_JWKS_URL=settings.jwks_url,
        API_BASE_URL_ALLOWLIST=",".join(settings.api_base_url_allowlist),
        GRAPHQL_URL=settings.graphql_url,
        PERSONAL_DATA_URL=settings.personal_data_url,
        DATABASE_URL=settings.database_url,
        ALLOW_HTTP="1" if settings.allow_http else "0",
    )
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A server process started by ``start_backend``: its URL, process (group leader) and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def stop_server(server: LiveServer, sig: int | None = None) -> None:
    """Stop the server's process group (SIGTERM unless ``sig``; SIGKILL after 15 s)."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, sig or signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


def gunicorn_config(workers: int | None, threads: int | None) -> dict[str, Any]:
    """The worker settings gunicorn will use: gunicorn.conf.py's values unless overridden."""
    namespace: dict[str, Any] = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    return {
        "workers": workers if workers is not None else int(namespace["workers"]),
        "threads": threads if threads is not None else int(namespace["threads"]),
        "worker_class": str(namespace.get("worker_class", "sync")),
        "from": "gunicorn.conf.py" if workers is None and threads is None else "command line",
    }


def start_backend(
    env: dict[str, str],
    log: Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    app: str = "access_desk.app:create_app()",
) -> LiveServer:
    """gunicorn ``app`` (the product: 'access_desk.app:create_app()') on a free port of 127.0.0.1, in its own
    process group, once it answers ``/healthz``; workers/threads left as None keep
    gunicorn.conf.py's production values."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    if workers is not None:
        command += ["--workers", str(workers)]
    if threads is not None:
        command += ["--threads", str(threads)]
    command.append(app)
    out = log.open("ab")
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{log.read_text()}")
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    return LiveServer(url, proc, log)
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer in time:\n{log.read_text()}")
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        out.close()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes and their reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:13]) / tick  # utime, stime
    return total


def task_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds these processes' live threads have run, to the nanosecond (the first field of
    ``/proc/<pid>/task/<tid>/schedstat``; ``/proc/<pid>/stat`` counts in 10 ms ticks)."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by a process group (gunicorn's master and workers; a PostgreSQL
    cluster's postmaster and backends): its live threads to the nanosecond, plus the processes
    that exited and were reaped by the group's leader (``max_requests`` recycling, closed
    connections) in ticks."""
    tick = os.sysconf("SC_CLK_TCK")
    total = task_cpu_seconds(group_pids(pgid))
    try:
        fields = Path(f"/proc/{pgid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return total
    return total + sum(int(v) for v in fields[13:15]) / tick  # cutime, cstime


def group_pids(pgid: int) -> list[int]:
    """Processes of one process group (gunicorn's master and workers share it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def warnings_in(log: Path) -> list[str]:
    """Lines of the backend log at WARNING or worse (JSON lines or gunicorn's own)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if '"level": "WARNING"' in line or '"level": "ERROR"' in line or "Traceback" in line:
            found.append(line)
    return found
