"""The JWKS cache (keys.KeySet): known kids never wait, one fetch in flight, a 30 s cooldown that
failed fetches start too, refreshes past FORGE_JWKS_CACHE_SECONDS, and stale keys for up to 24 h."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from access_desk.forge.invocation import InvalidToken, KeysUnavailable, Verifier
from access_desk.forge.keys import KeySet, NoKeys, UnknownKid, parse_jwks
from tests.support.jwks import APP_ID, HangingJWKS, claims, document, jwk, local_keys

DAY = 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Deferred(list[Callable[[], None]]):
    """A ``spawn`` that keeps the fetch for later: proves the caller did not wait for it."""

    def __call__(self, work: Callable[[], None]) -> None:
        self.append(work)

    def run(self) -> None:
        while self:
            self.pop(0)()


def fit(key: rsa.RSAPrivateKey, kid: str = "k1") -> str:
    return "Bearer " + jwt.encode(claims(), key, algorithm="RS256", headers={"kid": kid})


def test_a_known_kid_is_answered_from_the_cache(key):
    keys, jwks = local_keys({"k1": key}, clock=Clock())
    assert keys.get("k1").key_id == "k1"
    for _ in range(20):
        keys.get("k1")
    assert jwks.fetches == 1


def test_an_unknown_kid_fetches_at_most_once_per_cooldown(key, other_key):
    clock = Clock()
    keys, jwks = local_keys({"k1": key}, clock=clock)
    keys.get("k1")
    jwks.keys["k2"] = other_key  # Forge rotates
    clock.now += 10
    with pytest.raises(UnknownKid):
        keys.get("k2")  # the cooldown of the first fetch still runs: refused at once
    for _ in range(50):
        with pytest.raises(UnknownKid):
            keys.get(secrets.token_hex(8))
    assert jwks.fetches == 1
    clock.now += 20  # 30 s after the first fetch
    assert keys.get("k2").key_id == "k2"
    assert jwks.fetches == 2
    clock.now += 29
    with pytest.raises(UnknownKid):
        keys.get("nope")
    assert jwks.fetches == 2
    clock.now += 1
    with pytest.raises(UnknownKid):
        keys.get("nope")
    assert jwks.fetches == 3


def test_failed_fetches_start_the_cooldown_too(key):
    clock = Clock()
    keys, jwks = local_keys({"k1": key}, clock=clock)
    jwks.status = 503
    for _ in range(10):
        with pytest.raises(NoKeys):
            keys.get("k1")
    assert (jwks.fetches, keys.failures) == (1, 1)
    clock.now += 29.9
    with pytest.raises(NoKeys):
        keys.get("k1")
    assert jwks.fetches == 1
    jwks.status = 200
    clock.now += 0.1
    assert keys.get("k1").key_id == "k1"
    assert jwks.fetches == 2


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[" * 100_000, b'{"keys": []}', b'{"keys": [{"kty": "EC", "kid": "k1"}]}'],
    ids=["not json", "deeply nested", "no keys", "no RSA key"],
)
def test_a_useless_answer_is_a_failed_fetch_and_keeps_the_good_keys(key, body):
    clock = Clock()
    keys, jwks = local_keys({"k1": key}, clock=clock)
    keys.get("k1")
    jwks.body = body
    clock.now += 30
    with pytest.raises(UnknownKid):
        keys.get("k2")
    assert (jwks.fetches, keys.failures) == (2, 1)
    assert keys.get("k1").key_id == "k1"


def test_an_oversized_jwks_is_refused(key):
    keys, jwks = local_keys({"k1": key}, clock=Clock())
    jwks.body = document({"k1": key})[:-1] + b", " + b" " * 300_000 + b"}"
    with pytest.raises(NoKeys):
        keys.get("k1")
    assert keys.failures == 1


def test_parse_jwks_keeps_only_rs256_signing_keys(key, other_key):
    parsed = parse_jwks(
        {
            "keys": [
                jwk("sig", key),
                {**jwk("enc", other_key), "use": "enc"},
                {**jwk("ps", other_key), "alg": "PS256"},
                {**jwk("", other_key)},
                {"kty": "RSA", "kid": "broken", "n": "AQAB"},
                "junk",
            ]
        }
    )
    assert list(parsed) == ["sig"]


def test_past_the_cache_lifespan_keys_are_refreshed_in_the_background(key, other_key):
    clock, spawn = Clock(), Deferred()
    keys, jwks = local_keys(
        {"k1": key},
        clock=clock,
        fresh_seconds=600,
        spawn=spawn,
        timeout_seconds=0.01,
        wait_seconds=0.01,
    )
    with pytest.raises(NoKeys):
        keys.get("k1")  # the first fetch has not run (nor will it within the wait): no keys yet
    spawn.run()
    assert keys.get("k1").key_id == "k1" and jwks.fetches == 1
    clock.now += 599
    keys.get("k1")
    assert not spawn  # still fresh
    clock.now += 1
    jwks.keys = {"k2": other_key}  # Forge retired k1
    assert keys.get("k1").key_id == "k1"  # answered at once; the refresh waits in `spawn`
    assert len(spawn) == 1
    keys.get("k1")
    assert len(spawn) == 1  # one fetch in flight at a time
    spawn.run()
    assert keys.get("k2").key_id == "k2"
    with pytest.raises(UnknownKid):
        keys.get("k1")
    assert jwks.fetches == 2


def test_an_outage_keeps_the_last_good_keys_for_24_hours(key):
    clock = Clock()
    keys, jwks = local_keys({"k1": key}, clock=clock, fresh_seconds=600)
    verifier = Verifier(keys, APP_ID, ("https://api.atlassian.com/",))
    verifier.verify(fit(key))
    jwks.status = 500  # Forge's CDN goes down
    for hours in (1, 6, 12, 23):
        clock.now = 1_000 + hours * 3600
        assert verifier.verify(fit(key)).app_id == APP_ID
    assert (
        keys.failures == 4
    )  # each refresh past the lifespan was tried, failed, and did not matter
    clock.now = 1_000 + DAY - 1
    verifier.verify(fit(key))
    clock.now = 1_000 + DAY
    with pytest.raises(KeysUnavailable):
        verifier.verify(fit(key))
    jwks.status = 200  # back: the next fetch after the cooldown restores service
    clock.now += 30
    verifier.verify(fit(key))


def test_a_flood_of_unknown_kids_while_the_jwks_hangs_delays_no_known_kid(key):
    """Forge's JWKS stops answering while anyone sends FITs with random kids: FITs signed with a
    known key keep verifying while the fetch is still held, the flood is refused, and the server
    sees one fetch per cooldown at most."""
    legit_tokens, flood_tokens = 40, 200
    clock = Clock()
    server = HangingJWKS({"k1": key}, hold_seconds=30)
    with server.running():
        keys = KeySet(
            server.url, clock=clock, timeout_seconds=30, wait_seconds=0.02, fresh_seconds=600
        )
        verifier = Verifier(keys, APP_ID, ("https://api.atlassian.com/",))
        verifier.verify(fit(key))  # the first fetch is answered
        assert server.requests == 1
        clock.now += 30  # the cooldown is over: the first unknown kid starts a fetch, which hangs

        legit = [fit(key) for _ in range(legit_tokens)]
        flood = [fit(key, kid=secrets.token_hex(8)) for _ in range(flood_tokens)]
        verified_while_held: list[bool] = []
        refused: list[str] = []
        lock = threading.Lock()

        def send_legit(token: str) -> None:
            verifier.verify(token)
            with lock:
                verified_while_held.append(server.holding == 1 and not server.release.is_set())

        def send_flood(token: str) -> None:
            try:
                verifier.verify(token)
            except InvalidToken as exc:
                with lock:
                    refused.append(str(exc))

        with ThreadPoolExecutor(max_workers=8) as pool:
            first = pool.submit(send_flood, flood[0])
            deadline = time.monotonic() + 10
            while server.holding == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # until the fetch the flood started is being held
            assert server.holding == 1
            clock.now += 31  # even past another cooldown, the held fetch stays the only one
            work = []
            for i, token in enumerate(flood[1:]):
                work.append(pool.submit(send_flood, token))
                if i % 5 == 0 and i // 5 < legit_tokens:
                    work.append(pool.submit(send_legit, legit[i // 5]))
            for done in [first, *work]:
                done.result(timeout=60)
            held_after_all = server.holding == 1
        server.release.set()

    assert held_after_all
    assert verified_while_held == [True] * legit_tokens
    assert len(refused) == flood_tokens
    assert set(refused) == {"the token's signing key is not one of Forge's"}
    assert server.requests == 2  # the first fetch and the one held; none for the flood
    assert keys.fetches == 2


def test_the_fetch_has_a_timeout_and_a_failed_one_keeps_the_keys(key):
    server = HangingJWKS({"k1": key}, hold_seconds=30)
    clock = Clock()
    done = threading.Event()

    def spawn(work: Callable[[], None]) -> None:
        def run() -> None:
            work()
            done.set()

        threading.Thread(target=run, daemon=True).start()

    with server.running():
        keys = KeySet(server.url, clock=clock, timeout_seconds=0.2, wait_seconds=0.01, spawn=spawn)
        try:
            keys.get("k1")
        except NoKeys:
            pass  # the first fetch may take longer than the wait; it is answered all the same
        assert done.wait(10)
        done.clear()
        assert keys.get("k1").key_id == "k1"
        clock.now += 30
        with pytest.raises(UnknownKid):
            keys.get("k2")  # starts a fetch that times out
        assert done.wait(10)
        assert keys.failures == 1
        assert keys.get("k1").key_id == "k1"


def test_keyset_uses_the_given_session(key):
    class Recording(requests.Session):
        urls: list[str] = []

        def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
            self.urls.append(str(url))
            raise requests.ConnectionError("offline")

    keys = KeySet("https://keys.example/jwks.json", session=Recording(), spawn=lambda w: w())
    with pytest.raises(NoKeys):
        keys.get("k1")
    assert Recording.urls == ["https://keys.example/jwks.json"]


def test_a_fetch_that_cannot_start_is_tried_again_after_the_cooldown():
    def no_threads(work: Callable[[], None]) -> None:
        raise RuntimeError("can't start new thread")

    clock = Clock()
    keys = KeySet("https://keys.invalid/jwks.json", clock=clock, spawn=no_threads)
    with pytest.raises(NoKeys):
        keys.get("k1")  # refused at once: nothing is left waiting for a fetch that never runs
    assert keys.fetches == 1
    clock.now += 30
    with pytest.raises(NoKeys):
        keys.get("k1")
    assert keys.fetches == 2  # nothing was left "in flight"
