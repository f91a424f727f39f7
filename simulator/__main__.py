"""``python -m simulator --host 127.0.0.1 --port 8001 --app-id <ari>``: serve the platform alone."""

from __future__ import annotations

import argparse
import json
import threading

from simulator.platform import Platform

DEFAULT_APP_ID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-00000000a11d"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID)
    parser.add_argument("--seed-users", type=int, default=40)
    parser.add_argument("--invite-delay", type=float, default=3.0, help="seconds")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--remote-url", default=None, help="the backend, for the admin page host")
    args = parser.parse_args(argv)
    app_id = (
        args.app_id if args.app_id.startswith("ari:") else f"ari:cloud:ecosystem::app/{args.app_id}"
    )
    platform = Platform(
        app_id,
        seed_users=args.seed_users,
        invite_delay=args.invite_delay,
        latency=args.latency_ms / 1000,
        remote_url=args.remote_url,
    )
    server = platform.serve(args.host, args.port)
    inst = platform.installation
    print(
        json.dumps(
            {
                "url": server.url,
                "FORGE_APP_ID": app_id,
                "FORGE_JWKS_URL": platform.jwks_url,
                "API_BASE_URL_ALLOWLIST": platform.allowlist_prefix,
                "GRAPHQL_URL": platform.graphql_url,
                "PERSONAL_DATA_URL": platform.personal_data_url,
                "ALLOW_HTTP": "1",
                "installationId": inst.id,
                "apiBaseUrl": inst.api_base_url,
                "adminAccountId": inst.site.admin_id,
                "control": f"{server.url}/_sim/state",
            },
            indent=2,
        ),
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
