"""The embedded default behind ``./dev``: simulated platform + the real backend under gunicorn.

The simulated Forge and Confluence listen on ``--port`` (default 8000: the admin panel's host page);
the backend runs as a real ``gunicorn 'app:create_app()'`` on the next port, configured only through
the environment, exactly as in production. State lives in ``var/`` or ``--data-dir`` (SQLite
database and a dev ``SECRET_KEY`` kept so the database stays readable across restarts).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auth import MAX_LIFETIME  # noqa: E402
from simulator import Platform  # noqa: E402
from simulator.quota import quota_from_flags  # noqa: E402
from simulator.triggers import Ticker  # noqa: E402

DEV_APP_ID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-00000000a11d"
HEADERS_RENEW_SECONDS = 60.0  # the curl header file's FIT lives MAX_LIFETIME (5 minutes)


def dev_secret_key(var: Path) -> str:
    path = var / "dev-secret-key"
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated upstream latency")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "var",
        help="where the dev store (dev.sqlite3), its key and the curl header file live "
        "(default: var/); DATABASE_URL from the environment is ignored, so ./dev never touches "
        "another database by accident",
    )
    parser.add_argument(
        "--quota",
        nargs="?",
        const="",
        metavar="POINTS/SECONDS",
        help="meter Confluence's points quota like Confluence does (e.g. 6500/60; alone: "
        "65000/3600); off by default; see docs/quota.md",
    )
    parser.add_argument(
        "--quota-mode",
        choices=("app", "site"),
        help="one pool for the app (default) or one per site; implies --quota",
    )
    args = parser.parse_args()
    try:
        quota = quota_from_flags(args.quota, args.quota_mode)
    except ValueError as exc:
        parser.error(f"--quota: {exc}")

    var = args.data_dir.resolve()
    var.mkdir(parents=True, exist_ok=True)
    platform = Platform(
        app_id=DEV_APP_ID,
        seed=True,
        invite_delay=3.0,
        latency=args.latency_ms / 1000,
        quota=quota,
    )
    server = platform.serve(args.host, args.port)
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
            "app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if not wait_healthy(backend_url, backend):
            print("The backend did not start; see its output above.", file=sys.stderr)
            return 1
        ticker = Ticker(platform, interval=60.0)  # installed now, then a scheduled tick a minute
        ticker.start()
        print_welcome(platform, server.url, backend_url, var)
        if quota:
            print(
                f"Confluence meters {quota.points} points per {quota.seconds} s "
                f"({quota.mode} pool): curl -sS {server.url}/_sim/quota\n",
                flush=True,
            )
        renewed = time.monotonic()
        while not stopping and backend.poll() is None:
            time.sleep(0.3)
            if time.monotonic() - renewed >= HEADERS_RENEW_SECONDS:
                write_headers(platform, var)
                renewed = time.monotonic()
        return 0 if stopping else (backend.returncode or 1)
    finally:
        if backend.poll() is None:
            os.killpg(backend.pid, signal.SIGTERM)
            try:
                backend.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(backend.pid, signal.SIGKILL)
        server.stop()
        print("\nAccess Desk dev stopped.")


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


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
    shown = shlex.quote(os.path.relpath(header_file, ROOT))
    lines = [
        "",
        "Access Desk is running (Ctrl-C stops everything).",
        "",
        f"  admin panel          {platform_url}/",
        f"  backend (gunicorn)   {backend_url}",
        f"  simulated platform   {platform_url}  (Forge JWKS, Confluence site {inst.cloud_id})",
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
