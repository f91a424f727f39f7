"""FIT verification: every hostile class of token gets 401 invalid_token with a JSON body; the
apiBaseUrl is checked in canonical form; token_expiry reads when Forge's tokens expire."""

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

from access_desk.app import create_app
from access_desk.forge.invocation import _JWS, InvalidToken, Invocation, UntrustedSite, Verifier
from access_desk.forge.keys import KeySet
from access_desk.forge.tokens import FALLBACK_TOKEN_SECONDS, MAX_TOKEN_SECONDS, token_expiry
from access_desk.settings import Settings
from simulator.triggers import SCHEDULED_TRIGGER
from tests.support.jwks import API_BASE, APP_ID, INSTALLATION, claims, local_keys

ALLOW = ("https://api.atlassian.com/",)
OTHER_APP = "ari:cloud:ecosystem::app/" + str(uuid.UUID(int=9))


def verifier_for(
    key: rsa.RSAPrivateKey, allowlist: tuple[str, ...] = ALLOW, **options: Any
) -> Verifier:
    keys, _ = local_keys({"k1": key})
    return Verifier(keys, APP_ID, allowlist, **options)


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
def client(key: rsa.RSAPrivateKey, tmp_path):
    settings = Settings(
        app_id=APP_ID,
        secret_key=Fernet.generate_key().decode(),
        database_url=f"sqlite:///{tmp_path / 'auth.sqlite3'}",
        background_worker=False,
    )
    keys, _ = local_keys({"k1": key})
    app = create_app(settings, keys=keys)
    yield app.test_client()
    app.extensions["access_desk"].close()


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
    # aud must be the app ARI itself (PyJWT strict_aud): never an array, not even [app]
    "aud array with the app and another": lambda k, o: (
        "Bearer " + sign(k, claims(aud=[APP_ID, "ari:cloud:ecosystem::app/other"]))
    ),
    "aud array of the app alone": lambda k, o: "Bearer " + sign(k, claims(aud=[APP_ID])),
    "empty aud array": lambda k, o: "Bearer " + sign(k, claims(aud=[])),
    "lifetime over 5 minutes": lambda k, o: "Bearer " + sign(k, claims(exp=int(time.time()) + 301)),
    "issued long ago, not yet expired": lambda k, o: (
        "Bearer " + sign(k, claims(iat=int(time.time()) - 3600, nbf=int(time.time()) - 3600))
    ),
    "another app.id": lambda k, o: (
        "Bearer " + sign(k, claims(app={**claims()["app"], "id": OTHER_APP}))
    ),
    "no app.id": lambda k, o: "Bearer " + sign(k, claims(app={**claims()["app"], "id": None})),
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
    verifier = verifier_for(key)
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
    verifier = verifier_for(key)
    now = int(time.time())
    verifier.verify("Bearer " + sign(key, claims(nbf=now + 3, iat=now + 3)))
    with pytest.raises(InvalidToken):
        verifier.verify("Bearer " + sign(key, claims(nbf=now + 30, iat=now + 30)))


def test_a_lifetime_of_five_minutes_and_a_bare_uuid_app_id_are_accepted(key):
    verifier = verifier_for(key)
    now = int(time.time())
    verifier.verify("Bearer " + sign(key, claims(iat=now - 250, nbf=now - 250, exp=now + 50)))
    bare = {**claims()["app"], "id": APP_ID.rsplit("/", 1)[1]}
    assert verifier.verify("Bearer " + sign(key, claims(app=bare))).app_id == bare["id"]


def with_base(api_base_url: str) -> dict[str, Any]:
    return claims(app={**claims()["app"], "apiBaseUrl": api_base_url})


@pytest.mark.parametrize(
    "api_base_url",
    [
        "https://api.atlassian.com@evil.example/",
        "https://api.atlassian.com:443@evil.example/ex/confluence/1",
        "https://user@api.atlassian.com/ex/confluence/1",
        "https://api.atlassian.com/../evil",
        "https://api.atlassian.com/ex/../../evil.example/x",
        "https://api.atlassian.com/%2e%2e/evil",
        "https://api.atlassian.com\\@evil.example/",
        "https://api.atlassian.com/ex/confluence/1?x=@evil.example",
        "https://api.atlassian.com:8443/ex/confluence/1",
        "https://api.atlassian.com:notaport/ex/confluence/1",
        "ftp://api.atlassian.com/ex/confluence/1",
        "https://api.atlassian.com\nevil/",
        "https://xn--pi-6ka.atlassian.com/ex/confluence/1",
        "https://\u0430pi.atlassian.com/ex/confluence/1",
    ],
)
def test_api_base_urls_that_could_fool_a_prefix_check_are_refused(key, api_base_url):
    with pytest.raises(UntrustedSite):
        verifier_for(key).verify("Bearer " + sign(key, with_base(api_base_url)))


@pytest.mark.parametrize(
    ("api_base_url", "canonical"),
    [
        (
            "HTTPS://API.Atlassian.COM/ex/confluence/c1",
            "https://api.atlassian.com/ex/confluence/c1",
        ),
        (
            "https://api.atlassian.com:443/ex/confluence/c1/",
            "https://api.atlassian.com/ex/confluence/c1",
        ),
        (
            "https://api.atlassian.com/ex/jira/../confluence/./c1",
            "https://api.atlassian.com/ex/confluence/c1",
        ),
    ],
)
def test_the_invocation_carries_the_canonical_api_base_url(key, api_base_url, canonical):
    invocation = verifier_for(key).verify("Bearer " + sign(key, with_base(api_base_url)))
    assert invocation.api_base_url == canonical


def test_dot_segments_cannot_climb_out_of_a_narrow_prefix(key):
    verifier = verifier_for(key, ("https://api.atlassian.com/ex/confluence/",))
    verifier.verify("Bearer " + sign(key, with_base("https://api.atlassian.com/ex/confluence/c1")))
    for sneaky in (
        "https://api.atlassian.com/ex/confluence/../../evil",
        "https://api.atlassian.com/ex/confluence/../jira/c1",
    ):
        with pytest.raises(UntrustedSite):
            verifier.verify("Bearer " + sign(key, with_base(sneaky)))


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
    verifier = verifier_for(key)
    sneaky = {
        **claims()["app"],
        "apiBaseUrl": "https://api.atlassian.com.evil.example/ex/confluence/1",
    }
    with pytest.raises(UntrustedSite):
        verifier.verify("Bearer " + sign(key, claims(app=sneaky)))


def test_keys_are_fetched_once_and_refetched_for_a_new_kid(key, other_key):
    keys_clock = Clock()
    keys, jwks = local_keys({"k1": key}, clock=keys_clock)
    verifier = Verifier(keys, APP_ID, ALLOW)
    for _ in range(50):
        verifier.verify("Bearer " + sign(key, claims()))
    assert jwks.fetches == 1
    jwks.keys["k2"] = other_key
    keys_clock.now += 30  # the cooldown after a fetch
    verifier.verify("Bearer " + sign(other_key, claims(), kid="k2"))
    assert jwks.fetches == 2


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_only_until_it_expires(key, monkeypatch):
    clock = Clock()
    verifier = verifier_for(key, clock=clock)
    lookups: list[str] = []
    original = KeySet.get

    def counting(self: KeySet, kid: str) -> Any:
        lookups.append(kid)
        return original(self, kid)

    monkeypatch.setattr(KeySet, "get", counting)
    token = "Bearer " + sign(key, claims())
    first = verifier.verify(token)
    for _ in range(5):
        assert verifier.verify(token) == first
    assert lookups == ["k1"]  # repeats skipped the signature check
    clock.now += 25 + 6  # past exp and the leeway: checked in full again
    verifier.verify(token)
    assert lookups == ["k1", "k1"]


def test_a_refused_token_is_never_remembered(key):
    verifier = verifier_for(key)
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
    verifier = verifier_for(key)
    verifier.verify(f"Bearer {token}")
    assert seen and set(seen) <= set(token.encode().split(b"."))


# -- token_expiry --------------------------------------------------------------------------------


def test_a_jwt_token_expires_at_its_exp_claim():
    received = 1_700_000_000.0
    token = jwt.encode({"exp": 1_700_003_000, "sub": "system"}, "k" * 32, algorithm="HS256")
    assert token_expiry(token, received) == 1_700_003_000
    expired = jwt.encode({"exp": 1_600_000_000}, "k" * 32, algorithm="HS256")
    assert token_expiry(expired, received) == 1_600_000_000  # read as it is, even when past
    far = jwt.encode({"exp": 4_000_000_000}, "k" * 32, algorithm="HS256")
    assert token_expiry(far, received) == received + MAX_TOKEN_SECONDS


@pytest.mark.parametrize(
    "token",
    [
        "sys.opaque-random-string",
        "a.b.c",
        jwt.encode({"sub": "no exp"}, "k" * 32, algorithm="HS256"),
        jwt.encode({"exp": "tomorrow"}, "k" * 32, algorithm="HS256"),
        jwt.encode({"exp": True}, "k" * 32, algorithm="HS256"),
        _b64(b'{"alg":"none"}') + "." + _b64(b"[1]") + ".",
        _b64(b'{"alg":"none"}') + "." + _b64(b"[" * 5000) + ".",
    ],
    ids=["opaque", "three junk segments", "no exp", "string exp", "bool exp", "array", "nested"],
)
def test_a_token_without_a_readable_exp_lasts_2_hours_from_receipt(token):
    assert FALLBACK_TOKEN_SECONDS == 2 * 3600  # Atlassian's documented minimum lifetime
    assert token_expiry(token, 1_000.0) == 1_000.0 + 2 * 3600


def test_no_token_has_no_expiry():
    assert token_expiry(None, 1_000.0) is None
    assert token_expiry("", 1_000.0) is None


def stored_expiry(backend: Any, installation_id: str) -> float | None:
    store = backend.client.application.extensions["access_desk"].store
    installation = store.installation(installation_id)
    assert installation is not None
    expires: float | None = installation.system_token_expires_at
    return expires


@pytest.mark.parametrize("path", ["/forge/scheduled", "/resolvers/whoami"])
def test_the_backend_stores_the_system_tokens_own_expiry(backend, platform, path):
    inst = platform.installation
    if path.startswith("/resolvers"):
        headers = platform.invocation_headers(inst, inst.site.admin_id)
    else:
        headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER)
    assert backend.client.post(path, json={}, headers=headers).status_code == 200
    exp = jwt.decode(headers["x-forge-oauth-system"], options={"verify_signature": False})["exp"]
    grant = platform.tokens.lookup(headers["x-forge-oauth-system"])
    assert grant is not None and exp == int(grant.expires_at)  # the simulator's 2 to 4 hours
    assert stored_expiry(backend, inst.id) == exp


def test_an_opaque_system_token_is_assumed_to_last_2_hours(backend, platform):
    platform.tokens.opaque = True
    inst = platform.installation
    headers = platform.trigger_headers(inst, *SCHEDULED_TRIGGER)
    assert headers["x-forge-oauth-system"].count(".") == 1  # "sys.<random>": not a JWT
    before = time.time()
    assert backend.client.post("/forge/scheduled", json={}, headers=headers).status_code == 200
    after = time.time()
    stored = stored_expiry(backend, inst.id)
    assert stored is not None and before + 2 * 3600 <= stored <= after + 2 * 3600
