"""FIT verification throughput with a warm key cache, and JWKS fetches per 10,000 requests.

Run: .venv/bin/python bench/verify.py [--requests 10000]
Targets: >= 10,000 verifications/s on one core; 1 JWKS fetch for 10,000 requests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auth import Verifier  # noqa: E402
from simulator import Platform  # noqa: E402

APP_ID = "ari:cloud:ecosystem::app/6a3e6c5e-0d4b-4a8e-9d54-3b2c1f0e7a11"


class CountingJWKClient(jwt.PyJWKClient):
    fetches = 0

    def fetch_data(self) -> Any:
        CountingJWKClient.fetches += 1
        return super().fetch_data()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    platform = Platform(app_id=APP_ID, seed=True, seed_users=5)
    server = platform.serve("127.0.0.1", 0)
    try:
        inst = platform.installation
        tokens = [
            "Bearer " + platform.mint_fit(inst, inst.site.admin_id, lifetime=600)
            for _ in range(200)
        ]
        verifier = Verifier(
            platform.jwks_url,
            APP_ID,
            (platform.allowlist_prefix,),
            jwk_client=CountingJWKClient(platform.jwks_url, lifespan=600, timeout=5),
        )
        started = time.perf_counter()
        cpu_started = time.process_time()
        for i in range(args.requests):
            verifier.verify(tokens[i % len(tokens)])
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        print(f"requests verified      {args.requests}")
        print(f"wall time              {wall:.3f} s")
        print(f"verifications/s (wall) {args.requests / wall:,.0f}")
        print(f"verifications/s (cpu)  {args.requests / cpu:,.0f}   target >= 10,000 on one core")
        print(f"JWKS fetches           {CountingJWKClient.fetches}   target 1")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
