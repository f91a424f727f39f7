"""The embedded default behind ``./dev`` (which runs ``python -m scripts.dev`` from the repository
root): simulated platform + the real backend under gunicorn.

The simulated Forge and Confluence listen on ``--port`` (default 8000: the admin panel's host page);
the backend runs as a real ``gunicorn 'access_desk.app:create_app()'`` on the next port, configured
only through the environment, exactly as in production. State lives in ``var/`` or ``--data-dir`` (SQLite
database and a dev ``SECRET_KEY`` kept so the database stays readable across restarts).

The terminal shows the welcome (URLs and curl commands) and little else: the backend's output and
the simulator's request lines go to ``dev.log`` in the data folder (the previous run's is kept as
``dev.log.1``); ``--verbose`` prints them on the terminal too. Each start forgets the tokens the
previous run's simulator issued (it knows none of them), so an old data folder keeps working.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from access_desk.forge.invocation import MAX_LIFETIME
from access_desk.store import tables
from simulator import Platform
from simulator.quota import quota_from_flags
from simulator.triggers import Ticker

ROOT = Path(__file__).resolve().parents[1]

DEV_APP_ID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-00000000a11d"
LOG_NAME = "dev.log"
HEADERS_RENEW_SECONDS = 60.0  # the curl header file's FIT lives MAX_LIFETIME (5 minutes)


def dev_secret_key(var: Path) -> str:
    path = var / "dev-secret-key"
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def forget_old_tokens(database: Path) -> None:
    """Drop the stored system token and offline user tokens of a previous run, if any.

    They came from that run's simulator, which this run's does not know: reusing them would fail
    with 401 until they expire. Forge's installed event at start brings a new system token, and
    offline tokens are minted again on demand. Nothing else in the database changes.
    """
    if not database.is_file():
        return
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            present = set(sa.inspect(conn).get_table_names())
            if tables.offline_tokens.name in present:
                conn.execute(sa.delete(tables.offline_tokens))
            if tables.installations.name in present:
                conn.execute(
                    sa.update(tables.installations).values(
                        system_token_enc=None, system_token_expires_at=None
                    )
                )
    finally:
        engine.dispose()


def port_error(host: str, port: int) -> OSError | None:
    """Why nothing can listen on ``host:port`` now (as the servers bind: address reuse on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None


def ports_problem(host: str, port: int) -> str | None:
    """A message for the terminal when ``port`` or ``port + 1`` cannot be used, else None."""
    roles = {
        port: "the admin panel and simulated platform: --port",
        port + 1: "the backend: --port + 1",
    }
    errors = {p: port_error(host, p) for p in roles}
    taken = [p for p, e in errors.items() if e is not None and e.errno == errno.EADDRINUSE]
    other = [(p, e) for p, e in errors.items() if e is not None and e.errno != errno.EADDRINUSE]
    if other:
        p, e = other[0]
        return (
            f"./dev cannot listen on {host}:{p} ({roles[p]}): {e.strerror or e}. "
            "Choose another --host or --port."
        )
    if not taken:
        return None
    which = " and ".join(f"{p} ({roles[p]})" for p in taken)
    ports, verb, them = ("ports", "are", "them") if len(taken) > 1 else ("port", "is", "it")
    lines = [
        f"./dev needs two ports in a row on {host}, and {ports} {which} {verb} already in use.",
        f"Stop what is using {them} (another ./dev?), or pick two other ports with --port:",
    ]
    spare = next(
        (
            p
            for p in range(port + 2, min(port + 200, 65534), 2)
            if not any(port_error(host, q) for q in (p, p + 1))
        ),
        None,
    )
    if spare is not None:
        lines.append(f"  ./dev --port {spare}    (uses {spare} and {spare + 1})")
    return "\n".join(lines)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65534:
        raise argparse.ArgumentTypeError("must be 1 to 65534 (the backend takes the next port)")
    return port


def open_log(var: Path) -> IO[str]:
    """``dev.log`` in the data folder, new for this run; the previous one becomes ``dev.log.1``."""
    path = var / LOG_NAME
    if path.exists():
        path.replace(var / f"{LOG_NAME}.1")
    return open(path, "a", buffering=1, encoding="utf-8")


def log_to(streams: list[IO[str]]) -> list[logging.Handler]:
    """Send this process's log records (the simulator's request lines among them) to ``streams``."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    for stream in streams:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("simulator %(message)s"))
        root.addHandler(handler)
        handlers.append(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    return handlers


def copy_lines(source: IO[str], targets: list[IO[str]]) -> None:
    for line in source:
        for target in targets:
            target.write(line)
            target.flush()


DESCRIPTION = """\
Runs Access Desk on this machine with no Atlassian account: a simulated Forge platform and
Confluence site (seeded with an admin, ordinary users, external collaborators, deactivated and
closed accounts) and the real backend under gunicorn. Open the printed URL; pick who is signed in
at the top of the page. "Try with sample data" beside each list fills it with the seeded site's ids
and emails. Ctrl-C stops everything."""

EPILOG = """\
Data (the database, its key, dev.log) stays in the data folder between runs; delete it to start
over. The backend's log and the simulator's request lines go to dev.log there. More in the README,
"Trying it locally"."""


def parser() -> argparse.ArgumentParser:
    """./dev's command line: every option says what it does (./dev --help)."""
    p = argparse.ArgumentParser(
        prog="./dev",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address both servers listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("PORT", "8000"),
        help="the admin panel and simulated platform (default 8000, or $PORT); the backend "
        "takes the next one",
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="make every answer of the simulated Confluence this many milliseconds slow "
        "(default 0)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "var",
        metavar="FOLDER",
        help="where the dev database (dev.sqlite3), its key, the curl header file and dev.log "
        "live (default var/); a DATABASE_URL in your shell is ignored, so ./dev never touches "
        "another database",
    )
    p.add_argument(
        "--quota",
        nargs="?",
        const="",
        metavar="POINTS/SECONDS",
        help="meter Confluence's points quota as Confluence does, e.g. 6500/60 (alone: "
        "65000/3600); off by default; see docs/quota.md",
    )
    p.add_argument(
        "--quota-mode",
        choices=("app", "site"),
        help="one points pool for the app (the default) or one per site; turns on --quota",
    )
    p.add_argument(
        "--quota-spelling",
        choices=("enforced", "beta"),
        help="which spelling of Confluence's quota headers the simulated site sends: the "
        "enforced RateLimit and RateLimit-Policy (the default) or the beta period's "
        "Beta-RateLimit and Beta-RateLimit-Policy; turns on --quota",
    )
    p.add_argument(
        "--quota-costs",
        choices=("reads", "writes"),
        help="how the simulated site charges a lookup or an access check: per person looked at, "
        "like a read (the default), or one point a request, like a write; turns on --quota",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print the backend's log and the simulator's requests here too, not only in dev.log",
    )
    return p


def main() -> int:
    cli = parser()
    args = cli.parse_args()
    try:
        quota = quota_from_flags(args.quota, args.quota_mode, args.quota_spelling, args.quota_costs)
    except ValueError as exc:
        cli.error(f"--quota: {exc}")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)  # the backend has its own session: this process stops it
    signal.signal(signal.SIGTERM, stop)

    problem = ports_problem(args.host, args.port)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    var = args.data_dir.resolve()
    var.mkdir(parents=True, exist_ok=True)
    log = open_log(var)
    handlers = log_to([log, sys.stderr] if args.verbose else [log])
    forget_old_tokens(var / "dev.sqlite3")
    platform = Platform(
        app_id=DEV_APP_ID,
        seed=True,
        invite_delay=3.0,
        latency=args.latency_ms / 1000,
        quota=quota,
        samples=True,  # "Try with sample data" on the panel's forms (simulator.host)
    )
    try:
        server = platform.serve(args.host, args.port, log_requests=True)
    except OSError as exc:  # taken since the check above
        print(
            f"./dev cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    backend_port = args.port + 1
    backend_url = f"http://{args.host}:{backend_port}"
    platform.remote_url = backend_url
    env = dict(os.environ)
    env.update(
        FORGE_APP_ID=DEV_APP_ID,
        SECRET_KEY=dev_secret_key(var),
        FORGE_JWKS_URL=platform.jwks_url,
        API_BASE_URL_ALLOWLIST=platform.allowlist_prefix,
        GRAPHQL_URL=platform.graphql_url,
        PERSONAL_DATA_URL=platform.personal_data_url,
        DATABASE_URL=f"sqlite:///{var / 'dev.sqlite3'}",
        PUBLIC_BASE_URL=backend_url,
        ALLOW_HTTP="1",  # the simulator on loopback speaks http; production refuses it
        PYTHONUNBUFFERED="1",
    )
    backend = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{args.host}:{backend_port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "access_desk.app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if args.verbose else log,
        stderr=subprocess.STDOUT,
        text=args.verbose,
        start_new_session=True,
    )
    copier = threading.Thread(
        target=copy_lines, args=(backend.stdout, [log, sys.stderr]), daemon=True
    )
    if backend.stdout is not None:  # --verbose: to the log and the terminal
        copier.start()
    try:
        if not wait_healthy(backend_url, backend, lambda: stopping):
            if not stopping:
                print(f"The backend did not start. {tail(var / LOG_NAME)}", file=sys.stderr)
            return 0 if stopping else 1
        ticker = Ticker(platform, interval=60.0)  # installed now, then a scheduled tick a minute
        ticker.start()
        print_welcome(platform, server.url, backend_url, var)
        if quota:
            print(
                f"Confluence meters {quota.points} points per {quota.seconds} s "
                f"({quota.mode} pool, {quota.spelling} headers, POSTs charged as {quota.costs}): "
                f"curl -sS {server.url}/_sim/quota\n",
                flush=True,
            )
        renewed = time.monotonic()
        while not stopping and backend.poll() is None:
            time.sleep(0.3)
            if time.monotonic() - renewed >= HEADERS_RENEW_SECONDS:
                write_headers(platform, var)
                renewed = time.monotonic()
        if not stopping:
            print(f"\nThe backend stopped. {tail(var / LOG_NAME)}", file=sys.stderr)
        return 0 if stopping else (backend.returncode or 1)
    finally:
        if backend.poll() is None:
            os.killpg(backend.pid, signal.SIGTERM)
            try:
                backend.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(backend.pid, signal.SIGKILL)
        server.stop()
        if copier.is_alive():
            copier.join(timeout=5)  # the backend's last lines
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
        log.close()
        print("\nAccess Desk dev stopped.")


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | subprocess.Popen[str], stopped: Callable[[], bool]
) -> bool:
    """True once ``/healthz`` answers; False when the backend exits, ``stopped()`` or after 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and not stopped():
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of the log, introduced, for a message on the terminal."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"The end of {shown_path(path)}:\n" + "\n".join(text)


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as the README's commands run)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_headers(platform: Platform, var: Path) -> Path:
    """The site admin's Forge headers for curl, in ``var/``: a FIT as long-lived as the backend
    accepts (auth.MAX_LIFETIME), so the main loop renews the file every minute."""
    inst = platform.installation
    headers = platform.invocation_headers(inst, inst.site.admin_id, lifetime=MAX_LIFETIME)
    header_file = var / "dev-admin-headers.txt"
    partial = header_file.with_suffix(".tmp")
    partial.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    partial.chmod(0o600)
    partial.replace(header_file)
    return header_file


def print_welcome(platform: Platform, platform_url: str, backend_url: str, var: Path) -> None:
    inst = platform.installation
    site = inst.site
    header_file = write_headers(platform, var)
    some_ids = list(site.user_ids)[:3]
    emails = [site.users[u]["email"] for u in some_ids if site.users[u]["email"]][:2]
    emails += list(site.sample_new_emails)[:2]
    calls = {
        "whoami": {},
        "lookupUsers": {"accountIds": [*some_ids, "unknown-account-id"]},
        "checkAccess": {"emails": [*emails, "not-an-email"]},
        "inviteEmails": {"emails": emails, "dryRun": True},
    }
    shown = shlex.quote(shown_path(header_file))
    lines = [
        "",
        "Access Desk is running (Ctrl-C stops everything).",
        "",
        f"  admin panel          {platform_url}/",
        f"  backend (gunicorn)   {backend_url}",
        f"  simulated platform   {platform_url}  (Forge JWKS, Confluence site {inst.cloud_id})",
        f"  request logs         {shown_path(var / LOG_NAME)}  (./dev --verbose prints them here)",
        '  sample data          "Try with sample data" beside each list in the panel',
        "",
        f"Call the resolvers as the site admin from another terminal in {ROOT}",
        f"({shown} holds a Forge Invocation Token and tokens, renewed every minute):",
        "",
    ]
    for key, payload in calls.items():
        body = shlex.quote(json.dumps(payload))
        lines.append(
            f"curl -sS -H @{shown} -H 'content-type: application/json' -d {body} "
            f"{backend_url}/resolvers/{key}"
        )
    lines += [
        "",
        "Forge's installed event was sent at start; a scheduled tick follows every minute. Fire them,",
        "or send a signed webhook (use the secret from the panel's Webhook tab), through the simulator:",
        "",
        f"curl -sS -X POST {platform_url}/_sim/triggers/scheduled",
        f"curl -sS {platform_url}/_sim/webhooks -H 'content-type: application/json' "
        f"""-d '{{"secret": "whsec_...", "emails": ["new.hire3@example.com"]}}'""",
    ]
    print("\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
