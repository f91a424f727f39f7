"""Forge's key set kept in the store (keys.KeySet with the store as its shelf), on SQLite and
PostgreSQL: a process that never fetched verifies with the keys another one stored, a key once
seen never makes a FIT wait on the CDN, a fresh stored set spares the CDN a refresh, and the 24-hour
limit counts from the stored fetch."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from access_desk.forge.keys import KeySet, NoKeys, UnknownKid
from access_desk.store import Store
from tests.support.jwks import local_keys
from tests.support.stores import Clock

DAY = 24 * 3600.0


def process(keys: dict[str, rsa.RSAPrivateKey], store: Any, clock: Clock) -> Any:
    """One server process's key set over its own JWKS transport, sharing ``store``."""
    return local_keys(keys, clock=clock, fresh_seconds=600, wait_seconds=0.01, shelf=store)


def test_a_process_that_never_fetched_verifies_with_the_stored_keys(
    store: Store, clock: Clock, key: rsa.RSAPrivateKey
) -> None:
    first, first_cdn = process({"k1": key}, store, clock)
    assert first.get("k1").key_id == "k1" and first_cdn.fetches == 1
    second, second_cdn = process({"k1": key}, store, clock)
    second_cdn.status = 503  # the CDN is down when the second process starts
    clock.advance(60)
    assert second.get("k1").key_id == "k1"
    assert second_cdn.fetches == 0  # it never asked the CDN


def test_a_key_another_process_fetched_never_waits_on_the_cdn(
    store: Store, clock: Clock, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    first, first_cdn = process({"k1": key}, store, clock)
    second, second_cdn = process({"k1": key}, store, clock)
    first.get("k1"), second.get("k1")
    clock.advance(45)
    first_cdn.keys["k2"] = other_key  # Forge rotates; the first process sees a FIT with k2
    assert first.get("k2").key_id == "k2"
    second_cdn.status = 503  # for the second process the CDN is down
    assert second.get("k2").key_id == "k2"  # from the store, at once
    assert (first_cdn.fetches, second_cdn.fetches) == (2, 0)  # the second only read the store


def test_a_fresh_stored_set_spares_the_cdn_a_refresh(
    store: Store, clock: Clock, key: rsa.RSAPrivateKey
) -> None:
    first, first_cdn = process({"k1": key}, store, clock)
    second, second_cdn = process({"k1": key}, store, clock)
    first.get("k1"), second.get("k1")
    clock.advance(595)
    with pytest.raises(UnknownKid):  # an unknown kid makes the first process fetch again
        first.get("k9")
    assert first_cdn.fetches == 2
    clock.advance(10)  # the second process's set is past FORGE_JWKS_CACHE_SECONDS (600 s)
    assert second.get("k1").key_id == "k1"  # its refresh adopts the stored set, still fresh
    assert second.fetches == 1 and second_cdn.fetches == 0  # a refresh ran; the CDN was spared


def test_the_stored_set_verifies_for_24_hours_after_its_fetch(
    store: Store, clock: Clock, key: rsa.RSAPrivateKey
) -> None:
    first, _ = process({"k1": key}, store, clock)
    first.get("k1")
    clock.advance(DAY - 60)
    late, late_cdn = process({"k1": key}, store, clock)
    late_cdn.status = 503
    assert late.get("k1").key_id == "k1"
    clock.advance(60)
    too_late, too_late_cdn = process({"k1": key}, store, clock)
    too_late_cdn.status = 503
    with pytest.raises(NoKeys):
        too_late.get("k1")


def test_an_older_fetch_never_replaces_a_newer_stored_one(store: Store) -> None:
    store.save_signing_keys("https://keys/jwks", '{"keys": [1]}', 200.0)
    store.save_signing_keys("https://keys/jwks", '{"keys": [0]}', 100.0)
    assert store.signing_keys("https://keys/jwks") == ('{"keys": [1]}', 200.0)
    assert store.signing_keys("https://other/jwks") is None


def test_a_failing_store_never_stops_verification(clock: Clock, key: rsa.RSAPrivateKey) -> None:
    class Broken:
        def signing_keys(self, url: str) -> tuple[str, float] | None:
            raise RuntimeError("the database is down")

        def save_signing_keys(self, url: str, jwks: str, fetched_at: float) -> None:
            raise RuntimeError("the database is down")

    keys, cdn = local_keys({"k1": key}, clock=clock, shelf=Broken())
    assert isinstance(keys, KeySet)
    assert keys.get("k1").key_id == "k1" and cdn.fetches == 1
