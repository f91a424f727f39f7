"""FIT verification: every hostile class of token gets 401 invalid_token with a JSON body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import hypothesis
import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import strategies as st

from app import create_app
from auth import _JWS, InvalidToken, Invocation, UntrustedSite, Verifier
from settings import Settings

APP_ID = "ari:cloud:ecosystem::app/" + str(uuid.UUID(int=1))
INSTALLATION = "ari:cloud:ecosystem::installation/" + str(uuid.UUID(int=2))
API_BASE = "https://api.atlassian.com/ex/confluence/c0ffee00-0000-0000-0000-000000000001"


class LocalJWKS(jwt.PyJWKClient):
    """A real PyJWKClient whose key set comes from a plain function instead of the network."""

    def __init__(self, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        super().__init__("https://keys.invalid/jwks.json")
        self.keys = keys
        self.fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        data = {"keys": [_jwk(kid, key) for kid, key in self.keys.items()]}
        assert self.jwk_set_cache is not None
        self.jwk_set_cache.put(data)
        self._last_successful_fetch = time.monotonic()
        return data


def _jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**overrides: Any) -> dict[str, Any]:
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


def sign(key: rsa.RSAPrivateKey, payload: dict[str, Any], kid: str = "k1", **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid, **headers})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(key: rsa.RSAPrivateKey) -> str:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(claims()).encode())
    sig = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def alg_none() -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    return f"{head}.{_b64(json.dumps(claims()).encode())}."


def tampered(key: rsa.RSAPrivateKey) -> str:
    head, _, sig = sign(key, claims()).split(".")
    evil = claims(app={**claims()["app"], "installationId": "ari:cloud:ecosystem::installation/x"})
    return f"{head}.{_b64(json.dumps(evil).encode())}.{sig}"


@pytest.fixture()
def client(key: rsa.RSAPrivateKey):
    settings = Settings(app_id=APP_ID, secret_key=Fernet.generate_key().decode())
    app = create_app(settings, jwk_client=LocalJWKS({"k1": key}))
    return app.test_client()


HOSTILE = {
    "no header": lambda k, o: None,
    "wrong scheme": lambda k, o: "Basic " + sign(k, claims()),
    "garbage": lambda k, o: "Bearer not.a.jwt",
    "alg none": lambda k, o: "Bearer " + alg_none(),
    "HS256 signed with the public key": lambda k, o: "Bearer " + hs256_with_public_key(k),
    "expired": lambda k, o: (
        "Bearer " + sign(k, claims(exp=int(time.time()) - 60, iat=int(time.time()) - 90))
    ),
    "not yet valid": lambda k, o: "Bearer " + sign(k, claims(nbf=int(time.time()) + 60)),
    "wrong aud": lambda k, o: "Bearer " + sign(k, claims(aud="ari:cloud:ecosystem::app/other")),
    "wrong iss": lambda k, o: "Bearer " + sign(k, claims(iss="someone-else")),
    "unknown kid": lambda k, o: "Bearer " + sign(k, claims(), kid="nope"),
    "another key's signature": lambda k, o: "Bearer " + sign(o, claims()),
    "tampered payload": lambda k, o: "Bearer " + tampered(k),
    "deeply nested header": lambda k, o: "Bearer " + _b64(b"[" * 2000) + ".e30.c2ln",
    "oversized header": lambda k, o: (
        "Bearer "
        + _b64(b'{"alg":"RS256","x":"' + b"a" * 2000 + b'"}')
        + "."
        + sign(k, claims()).split(".", 1)[1]
    ),
    "junk in the signature": lambda k, o: "Bearer " + sign(k, claims())[:-2] + "!!",
    "padding in the signature": lambda k, o: "Bearer " + sign(k, claims()) + "===",
    "missing exp": lambda k, o: "Bearer " + sign(k, claims(exp=None)),
    "missing iat": lambda k, o: "Bearer " + sign(k, claims(iat=None)),
    "missing nbf": lambda k, o: "Bearer " + sign(k, claims(nbf=None)),
    "no installation": lambda k, o: "Bearer " + sign(k, claims(app={"apiBaseUrl": API_BASE})),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tokens_get_401_invalid_token(client, key, other_key, case):
    header = HOSTILE[case](key, other_key)
    headers = {"Authorization": header} if header else {}
    response = client.post("/resolvers/whoami", json={}, headers=headers)
    assert response.status_code == 401, response.get_json()
    assert response.content_type == "application/json"
    body = response.get_json()
    assert body["error"] == "invalid_token"
    assert body["message"]


def test_valid_token_is_accepted_and_typed(key):
    verifier = Verifier(
        "https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=LocalJWKS({"k1": key})
    )
    inv = verifier.verify("Bearer " + sign(key, claims()))
    assert inv == Invocation(
        installation_id=INSTALLATION,
        api_base_url=API_BASE,
        cloud_id="c0ffee00-0000-0000-0000-000000000001",
        principal="5b10a2844c20165700ede21g",
        app_id=APP_ID,
        environment_id="env-1",
        module_key="admin-page",
        site_url="https://x",
    )


def test_small_clock_skew_is_tolerated(key):
    verifier = Verifier(
        "https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=LocalJWKS({"k1": key})
    )
    now = int(time.time())
    verifier.verify("Bearer " + sign(key, claims(nbf=now + 3, iat=now + 3)))
    with pytest.raises(InvalidToken):
        verifier.verify("Bearer " + sign(key, claims(nbf=now + 30, iat=now + 30)))


def test_site_outside_allowlist_is_refused_with_403(client, key):
    token = sign(
        key, claims(app={**claims()["app"], "apiBaseUrl": "https://evil.example/ex/confluence/1"})
    )
    response = client.post(
        "/resolvers/whoami", json={}, headers={"Authorization": "Bearer " + token}
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "untrusted_site"


def test_allowlist_prefix_cannot_be_stretched_to_another_host(key):
    verifier = Verifier(
        "https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=LocalJWKS({"k1": key})
    )
    sneaky = {
        **claims()["app"],
        "apiBaseUrl": "https://api.atlassian.com.evil.example/ex/confluence/1",
    }
    with pytest.raises(UntrustedSite):
        verifier.verify("Bearer " + sign(key, claims(app=sneaky)))


def test_keys_are_fetched_once_and_refetched_for_a_new_kid(key, other_key):
    jwks = LocalJWKS({"k1": key})
    verifier = Verifier("https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=jwks)
    for _ in range(50):
        verifier.verify("Bearer " + sign(key, claims()))
    assert jwks.fetches == 1
    jwks.keys["k2"] = other_key
    jwks.cooldown_duration = 0
    verifier.verify("Bearer " + sign(other_key, claims(), kid="k2"))
    assert jwks.fetches == 2


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class CountingJWKS(LocalJWKS):
    lookups = 0

    def get_signing_key(self, kid: str) -> Any:
        self.lookups += 1
        return super().get_signing_key(kid)


def test_a_verified_token_is_remembered_only_until_it_expires(key):
    clock = Clock()
    jwks = CountingJWKS({"k1": key})
    verifier = Verifier(
        "https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=jwks, clock=clock
    )
    token = "Bearer " + sign(key, claims())
    first = verifier.verify(token)
    for _ in range(5):
        assert verifier.verify(token) == first
    assert jwks.lookups == 1  # repeats skipped the signature check
    clock.now += 25 + 6  # past exp and the leeway: checked in full again
    verifier.verify(token)
    assert jwks.lookups == 2


def test_a_refused_token_is_never_remembered(key):
    verifier = Verifier(
        "https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=LocalJWKS({"k1": key})
    )
    token = "Bearer " + sign(key, claims(aud="ari:cloud:ecosystem::app/other"))
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.verify(token)
    evil = {**claims()["app"], "apiBaseUrl": "https://evil.example/ex/confluence/1"}
    untrusted = "Bearer " + sign(key, claims(app=evil))
    for _ in range(2):
        with pytest.raises(UntrustedSite):
            verifier.verify(untrusted)


# PyJWT's own segment decoder is the reference; ours must accept and refuse exactly the same bytes.
SEGMENT_BYTES = st.binary(max_size=40) | st.text(
    alphabet="ABCXYZabcxyz0189-_=+/.! \n\u00e9", max_size=40
).map(str.encode)


@hypothesis.settings(max_examples=2000, deadline=None, database=None)
@hypothesis.given(segment=SEGMENT_BYTES | st.binary(max_size=30).map(base64.urlsafe_b64encode))
def test_fast_segment_decoder_agrees_with_pyjwt(segment):
    def outcome(decode: Any) -> Any:
        try:
            return decode(segment, "payload")
        except jwt.DecodeError as exc:
            return ("refused", str(exc))

    assert outcome(_JWS._decode_base64url_segment) == outcome(jwt.PyJWS._decode_base64url_segment)


def test_verifier_decodes_through_the_fast_segment_decoder(key, monkeypatch):
    seen: list[bytes] = []
    original = _JWS._decode_base64url_segment

    def counting(segment: bytes, name: str) -> bytes:
        seen.append(segment)
        return original(segment, name)

    monkeypatch.setattr(_JWS, "_decode_base64url_segment", staticmethod(counting))
    token = sign(key, claims())
    verifier = Verifier(
        "https://unused", APP_ID, ("https://api.atlassian.com/",), jwk_client=LocalJWKS({"k1": key})
    )
    verifier.verify(f"Bearer {token}")
    assert seen and set(seen) <= set(token.encode().split(b"."))
