"""FIT verification throughput with a warm key cache, and JWKS fetches per 10,000 requests.

Full checks (each token distinct: signature, claims, allowlist) and repeats of a token already
verified (Forge's bridge re-sends a FIT until it expires) are measured side by side.
Run: .venv/bin/python -m bench.verify [--requests 10000] [--distinct 2000]
Targets: >= 10,000 verifications/s on one core; 1 JWKS fetch for all requests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from access_desk.forge.invocation import Verifier
from access_desk.forge.keys import KeySet
from simulator import Platform

APP_ID = "ari:cloud:ecosystem::app/6a3e6c5e-0d4b-4a8e-9d54-3b2c1f0e7a11"


def _cpu(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument(
        "--distinct", type=int, default=2_000, help="distinct tokens, each checked fully"
    )
    args = parser.parse_args()
    platform = Platform(app_id=APP_ID, seed=True, seed_users=5)
    server = platform.serve("127.0.0.1", 0)
    try:
        inst = platform.installation
        fresh = [
            "Bearer " + platform.mint_fit(inst, inst.site.admin_id, lifetime=300)
            for _ in range(args.distinct)
        ]
        keys = KeySet(platform.jwks_url)
        verifier = Verifier(keys, APP_ID, (platform.allowlist_prefix,))
        verifier.verify(fresh[0])  # warm the key cache: one JWKS fetch
        cold_cpu = _cpu(lambda: [verifier.verify(t) for t in fresh[1:]]) / (len(fresh) - 1)
        started = time.perf_counter()
        warm_cpu = _cpu(lambda: [verifier.verify(fresh[i % 50]) for i in range(args.requests)])
        wall = time.perf_counter() - started
        print(
            f"full verifications      {len(fresh) - 1} distinct tokens (RS256 signature + claims)"
        )
        print(f"  per second (cpu)      {1 / cold_cpu:,.0f}   target >= 10,000 on one core")
        print(
            f"repeats of one token    {args.requests} (Forge's bridge re-sends a FIT until it expires)"
        )
        print(
            f"  per second (cpu)      {args.requests / warm_cpu:,.0f}   (wall {args.requests / wall:,.0f})"
        )
        print(f"JWKS fetches            {keys.fetches}   target 1")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
