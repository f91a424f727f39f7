"""Simulated Forge: RSA signing keys, the JWKS, and Forge Invocation Tokens (FITs).

``SigningKeys`` starts with one 2048-bit RSA key; ``rotate()`` adds a key to the JWKS and signs with
it from then on (old keys stay published). ``fit_claims`` builds the claims docs/platform.md lists;
``sign`` assembles a JWS by hand so tests can forge hostile tokens: the header is exactly what the
caller asks for (``alg`` in it does not change how the token is signed), and ``algorithm`` picks the
real signature: ``RS256`` (an RSA private key), ``HS256`` (a bytes secret) or ``none``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "forge/invocation-token"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kid": kid,
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "n": _int_b64(numbers.n),
        "e": _int_b64(numbers.e),
    }


class SigningKeys:
    """The published keys (JWKS) and the one currently used to sign. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate()

    def rotate(self) -> str:
        """Publish a new key and sign with it from now on; returns its ``kid``."""
        kid = f"forge-sim-{secrets.token_hex(8)}"
        key = new_rsa_key()
        with self._lock:
            self._keys.append((kid, key))
        return kid

    @property
    def current(self) -> tuple[str, rsa.RSAPrivateKey]:
        with self._lock:
            return self._keys[-1]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self._lock:
            return {"keys": [public_jwk(key, kid) for kid, key in self._keys]}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in: nested dicts merge, a value of None removes the key."""
    merged = dict(base)
    for name, value in override.items():
        if value is None:
            merged.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def fit_claims(
    *,
    app_id: str,
    installation_id: str,
    api_base_url: str,
    cloud_id: str,
    site_url: str,
    environment_id: str,
    account_id: str | None,
    module_key: str,
    lifetime: int,
    now: float | None = None,
    module_type: str | None = None,
) -> dict[str, Any]:
    """The claims of a FIT; ``context`` and ``principal`` only for UI calls (an account given).

    A trigger call names no principal and its module is the trigger (``module_key`` and
    ``module_type`` of the trigger module in the manifest).
    """
    issued = int(time.time() if now is None else now)
    context_ari = f"ari:cloud:confluence::site/{cloud_id}"
    if module_type is None:
        module_type = "confluence:globalSettings" if account_id else "core:endpoint"
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": app_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "app": {
            "id": app_id,
            "appVersion": "1.0.0",
            "installationId": installation_id,
            "apiBaseUrl": api_base_url,
            "installation": {
                "contexts": [{"name": context_ari, "apiBaseUrl": api_base_url, "cloudId": cloud_id}]
            },
            "environment": {"type": "DEVELOPMENT", "id": environment_id},
            "module": {"type": module_type, "key": module_key},
        },
    }
    if account_id:
        claims["context"] = {
            "cloudId": cloud_id,
            "siteUrl": site_url,
            "moduleKey": module_key,
            "localId": f"{module_key}-{cloud_id[:8]}",
            "extension": {"type": "confluence:globalSettings"},
        }
        claims["principal"] = account_id
    return claims


def sign(
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
    key: rsa.RSAPrivateKey | bytes | None,
    algorithm: str = "RS256",
) -> str:
    """A compact JWS of ``claims`` with exactly ``header``, signed per ``algorithm``."""
    head = b64url(json.dumps(dict(header), separators=(",", ":")).encode())
    body = b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    message = f"{head}.{body}".encode("ascii")
    if algorithm == "none":
        signature = b""
    elif algorithm == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    elif algorithm == "HS256" and isinstance(key, bytes):
        signature = hmac.new(key, message, hashlib.sha256).digest()
    else:
        raise ValueError(f"cannot sign {algorithm} with {type(key).__name__}")
    return f"{head}.{body}.{b64url(signature)}"


def trace_headers() -> dict[str, str]:
    """B3 trace ids as Forge sends them (32 and 16 hex digits)."""
    return {"x-b3-traceid": secrets.token_hex(16), "x-b3-spanid": secrets.token_hex(8)}
