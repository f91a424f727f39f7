"""Simulated tokens: JWT-shaped with an ``exp`` claim (or opaque on request), looked up by the book."""

from __future__ import annotations

import jwt
import pytest

from access_desk.forge.tokens import FALLBACK_TOKEN_SECONDS, token_expiry
from simulator import Platform
from simulator.tokens import SYSTEM, TokenBook


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.5

    def __call__(self) -> float:
        return self.now


def claims_of(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def test_tokens_are_jwts_whose_exp_is_their_expiry():
    clock = Clock()
    book = TokenBook(clock)
    token = book.issue("inst-1", SYSTEM, 3600)
    claims = claims_of(token)
    assert claims["exp"] == 1_700_003_600 and claims["iat"] == 1_700_000_000
    assert claims["sub"] == SYSTEM
    grant = book.lookup(token)
    assert grant is not None and grant.is_system and grant.installation_id == "inst-1"
    assert token_expiry(token, clock.now) == 1_700_003_600
    clock.now += 3600
    assert book.lookup(token) is None  # expired
    assert book.owner(token) == grant


def test_a_token_with_the_same_claims_but_not_issued_is_refused():
    clock = Clock()
    book = TokenBook(clock)
    token = book.issue("inst-1", "acc-1", 60)
    forged = jwt.encode(claims_of(token), b"x" * 32, algorithm="HS256")
    assert forged != token
    assert book.lookup(forged) is None
    assert book.lookup(token) is not None


def test_two_tokens_issued_at_once_differ():
    book = TokenBook(Clock())
    assert book.issue("i", SYSTEM, 60) != book.issue("i", SYSTEM, 60)


def test_opaque_tokens_have_no_structure_and_fall_back_to_2_hours():
    clock = Clock()
    book = TokenBook(clock, opaque=True)
    token = book.issue("inst-1", SYSTEM, 3600)
    assert token.startswith("sys.") and token.count(".") == 1
    assert book.lookup(token) is not None
    assert token_expiry(token, clock.now) == clock.now + FALLBACK_TOKEN_SECONDS


@pytest.mark.parametrize("header", ["x-forge-oauth-system", "x-forge-oauth-user"])
def test_forge_sends_tokens_that_live_2_to_4_hours(platform: Platform, header: str):
    inst = platform.installation
    lifetimes = set()
    for _ in range(5):
        token = platform.invocation_headers(inst, inst.site.admin_id)[header]
        claims = claims_of(token)
        assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
        assert 2 * 3600 - 1 <= claims["exp"] - claims["iat"] <= 4 * 3600
        lifetimes.add(claims["exp"] - claims["iat"])
    assert len(lifetimes) > 1  # not one fixed lifetime: the range Atlassian documents
