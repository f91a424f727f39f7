"""A JWKS for the key tests: a requests transport that answers from a dict of RSA keys (no network),
and a loopback JWKS server that can be told to hang."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import BaseAdapter

from access_desk.forge.keys import KeySet

URL = "https://keys.invalid/.well-known/jwks.json"
APP_ID = "ari:cloud:ecosystem::app/" + str(uuid.UUID(int=1))
INSTALLATION = "ari:cloud:ecosystem::installation/" + str(uuid.UUID(int=2))
API_BASE = "https://api.atlassian.com/ex/confluence/c0ffee00-0000-0000-0000-000000000001"


def jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def document(keys: dict[str, rsa.RSAPrivateKey]) -> bytes:
    return json.dumps({"keys": [jwk(kid, key) for kid, key in keys.items()]}).encode()


class JWKSAdapter(BaseAdapter):
    """Answers every request with the JWKS of ``keys``, or ``status`` with no keys when it is not 200.

    ``body`` (when set) is sent instead of the JWKS. ``fetches`` counts requests."""

    def __init__(self, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        super().__init__()
        self.keys = keys
        self.status = 200
        self.body: bytes | None = None
        self.fetches = 0

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.fetches += 1
        response = requests.Response()
        response.status_code = self.status
        response.raw = io.BytesIO(self.body if self.body is not None else document(self.keys))
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


def run_now(work: Callable[[], None]) -> None:
    """A ``spawn`` for ``KeySet`` that runs the fetch in the caller's thread: deterministic tests."""
    work()


def local_keys(keys: dict[str, rsa.RSAPrivateKey], **options: Any) -> tuple[KeySet, JWKSAdapter]:
    """A ``KeySet`` over ``JWKSAdapter(keys)``; fetches run at once unless ``spawn`` is given."""
    adapter = JWKSAdapter(keys)
    session = requests.Session()
    session.mount("https://", adapter)
    options.setdefault("spawn", run_now)
    return KeySet(URL, session=session, **options), adapter


class HangingJWKS:
    """A JWKS server on 127.0.0.1 that answers the first request and holds every later one until
    ``release`` is set (or ``hold_seconds`` pass): a Forge CDN that has become slow."""

    def __init__(self, keys: dict[str, rsa.RSAPrivateKey], hold_seconds: float) -> None:
        self.keys = keys
        self.release = threading.Event()
        self.requests = 0
        self.holding = 0  # requests being held right now
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with outer._lock:
                    outer.requests += 1
                    first = outer.requests == 1
                    if not first:
                        outer.holding += 1
                if not first:
                    outer.release.wait(hold_seconds)
                    with outer._lock:
                        outer.holding -= 1
                body = document(outer.keys)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    @contextmanager
    def running(self) -> Iterator[HangingJWKS]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)


def claims(**overrides: Any) -> dict[str, Any]:
    """A UI call's FIT claims for ``APP_ID``, valid now; an override of None drops that claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "forge/invocation-token",
        "aud": APP_ID,
        "iat": now,
        "nbf": now,
        "exp": now + 25,
        "jti": str(uuid.uuid4()),
        "app": {
            "id": APP_ID,
            "installationId": INSTALLATION,
            "apiBaseUrl": API_BASE,
            "environment": {"type": "DEVELOPMENT", "id": "env-1"},
            "module": {"type": "xen:macro", "key": "admin-page"},
        },
        "context": {"cloudId": "c0ffee00-0000-0000-0000-000000000001", "siteUrl": "https://x"},
        "principal": "5b10a2844c20165700ede21g",
    }
    for k, v in overrides.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base
