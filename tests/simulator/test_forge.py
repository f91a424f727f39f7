"""Simulated Forge: the JWKS, minted FITs, invocation headers, and the GraphQL token exchange."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
import requests

from simulator import Platform
from simulator.forge import b64url
from tests.conftest import APP_ID

SECRET = b"a-shared-secret-of-32-bytes-or-more!"
MUTATION = """mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) {
  offlineUserAuthToken(input: $input) { success errors { message } authToken { token ttl } }
}"""


@pytest.fixture()
def sim(platform: Platform) -> Platform:
    """The shared simulated platform (tests/conftest.py), served on 127.0.0.1."""
    return platform


def verify(p: Platform, token: str) -> dict[str, Any]:
    key = jwt.PyJWKClient(p.jwks_url).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=APP_ID,
        issuer="forge/invocation-token",
        options={"require": ["exp", "iat", "nbf"]},
    )


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def test_jwks_publishes_rsa_signing_keys(sim: Platform) -> None:
    (key,) = requests.get(sim.jwks_url, timeout=5).json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] and key["n"] and key["e"] == "AQAB"


def test_a_minted_fit_verifies_against_the_served_jwks_and_carries_the_claims(sim: Platform):
    inst = sim.installation
    claims = verify(sim, sim.mint_fit(inst, inst.site.admin_id))
    assert claims["exp"] - claims["iat"] == 25 and claims["nbf"] == claims["iat"] and claims["jti"]
    app = claims["app"]
    assert app["id"] == APP_ID and app["installationId"] == inst.id
    assert inst.id == f"ari:cloud:ecosystem::installation/{inst.uuid}"
    assert app["apiBaseUrl"] == inst.api_base_url == f"{sim.url}/ex/confluence/{inst.cloud_id}"
    assert app["apiBaseUrl"].startswith(sim.allowlist_prefix)
    (context,) = app["installation"]["contexts"]
    assert context["cloudId"] == inst.cloud_id and context["apiBaseUrl"] == inst.api_base_url
    assert app["environment"]["type"] and app["module"]["key"] == "admin-page"
    assert claims["context"]["cloudId"] == inst.cloud_id
    assert claims["context"]["siteUrl"] == inst.site.url
    assert claims["context"]["extension"]["type"] == "confluence:globalSettings"
    assert claims["principal"] == inst.site.admin_id
    trigger = verify(sim, sim.mint_fit(inst, module_key="scheduled", lifetime=60))
    assert "principal" not in trigger and "context" not in trigger
    assert trigger["app"]["module"]["key"] == "scheduled"


def test_claims_and_headers_can_be_overridden_to_forge_hostile_tokens(sim: Platform) -> None:
    inst = sim.installation
    forged = sim.mint_fit(
        inst,
        "someone",
        claims={
            "aud": "ari:cloud:ecosystem::app/other",
            "app": {"apiBaseUrl": "https://evil.example/ex/", "module": None},
            "exp": None,
        },
    )
    claims = jwt.decode(forged, options={"verify_signature": False})
    assert claims["aud"] == "ari:cloud:ecosystem::app/other" and "exp" not in claims
    assert claims["app"]["apiBaseUrl"] == "https://evil.example/ex/"
    assert "module" not in claims["app"] and claims["app"]["installationId"] == inst.id
    with pytest.raises(jwt.InvalidAudienceError):
        verify(sim, sim.mint_fit(inst, claims={"aud": "ari:cloud:ecosystem::app/other"}))
    with pytest.raises(jwt.PyJWKClientError):
        verify(sim, sim.mint_fit(inst, headers={"kid": "unknown-kid"}))
    stranger = sim.mint_fit(inst, key=sim.new_key())
    assert header_of(stranger)["kid"] == header_of(sim.mint_fit(inst))["kid"]
    with pytest.raises(jwt.InvalidSignatureError):
        verify(sim, stranger)
    unsigned = sim.mint_fit(inst, headers={"alg": "none"}, algorithm="none")
    assert header_of(unsigned)["alg"] == "none" and unsigned.endswith(".")
    hs = sim.mint_fit(inst, headers={"alg": "HS256"}, key=SECRET, algorithm="HS256")
    assert jwt.decode(hs, SECRET, algorithms=["HS256"], audience=APP_ID)["aud"] == APP_ID
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(sim, sim.mint_fit(inst, lifetime=-60))
    assert "kid" not in header_of(sim.mint_fit(inst, headers={"kid": None}))


def test_rotated_keys_are_published_and_used(sim: Platform) -> None:
    inst = sim.installation
    before = header_of(sim.mint_fit(inst))["kid"]
    kid = sim.rotate_key()
    token = sim.mint_fit(inst, inst.site.admin_id)
    assert header_of(token)["kid"] == kid != before
    kids = [k["kid"] for k in requests.get(sim.jwks_url, timeout=5).json()["keys"]]
    assert kids == [before, kid]
    assert verify(sim, token)["principal"] == inst.site.admin_id


def test_invocation_headers_carry_a_fit_tokens_and_trace_ids(sim: Platform) -> None:
    inst = sim.installation
    admin = inst.site.admin_id
    headers = sim.invocation_headers(inst, admin)
    assert set(headers) == {
        "authorization",
        "x-forge-oauth-user",
        "x-forge-oauth-system",
        "x-b3-traceid",
        "x-b3-spanid",
    }
    assert verify(sim, headers["authorization"].removeprefix("Bearer "))["principal"] == admin
    assert len(headers["x-b3-traceid"]) == 32 and len(headers["x-b3-spanid"]) == 16
    user, system = (sim.tokens.lookup(headers[f"x-forge-oauth-{k}"]) for k in ("user", "system"))
    assert user is not None and user.account_id == admin
    assert system is not None and system.is_system
    trigger = sim.invocation_headers(inst)
    assert "x-forge-oauth-user" not in trigger and "x-forge-oauth-system" in trigger
    assert "x-forge-oauth-system" not in sim.invocation_headers(inst, admin, system=False)
    long = sim.invocation_headers(inst, admin, lifetime=3600)["authorization"][7:]
    claims = verify(sim, long)
    assert claims["exp"] - claims["iat"] == 3600


def exchange(p: Platform, token: str, cloud_id: str, user: str) -> requests.Response:
    variables = {
        "input": {"contextIds": [f"ari:cloud:confluence::site/{cloud_id}"], "userId": user}
    }
    return requests.post(
        p.graphql_url,
        json={"query": MUTATION, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_graphql_exchanges_a_system_token_for_an_offline_user_token(sim: Platform) -> None:
    inst = sim.installation
    admin = inst.site.admin_id
    answer = exchange(sim, sim.system_token(inst), inst.cloud_id, admin)
    assert answer.status_code == 200
    result = answer.json()["data"]["offlineUserAuthToken"]
    assert result["success"] is True and result["errors"] is None
    token, ttl = result["authToken"]["token"], result["authToken"]["ttl"]
    assert isinstance(ttl, int) and ttl > 0
    me = requests.get(
        inst.api_base_url + "/wiki/rest/api/user/current",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert me.json()["accountId"] == admin


def test_graphql_refuses_bad_tokens_and_reports_wrong_sites_and_users(sim: Platform) -> None:
    inst, other = sim.installation, sim.add_installation()
    system = sim.system_token(inst)
    for token in ("nope", sim.user_token(inst, inst.site.admin_id), sim.system_token(inst, ttl=-1)):
        assert exchange(sim, token, inst.cloud_id, inst.site.admin_id).status_code == 401
    for cloud, user in (
        (other.cloud_id, inst.site.admin_id),
        (inst.cloud_id, other.site.admin_id),
        (inst.cloud_id, "no-such-user"),
        (inst.cloud_id, inst.site.closed_ids[0]),
    ):
        result = exchange(sim, system, cloud, user).json()["data"]["offlineUserAuthToken"]
        assert result["success"] is False and result["errors"][0]["message"]
        assert result["authToken"] is None
    bad = requests.post(
        sim.graphql_url,
        data=json.dumps({"query": "{ me { id } }"}),
        headers={"Authorization": f"Bearer {system}"},
        timeout=5,
    )
    assert bad.json()["errors"]


def test_b64url_has_no_padding() -> None:
    assert b64url(b"\xff\xfe") == "__4"
