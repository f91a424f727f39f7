"""ratelimit_headers: the ``Retry-After`` reading; ratelimit: the in-process gate, and the
store-backed gate shared by instances (on SQLite and, when ``TEST_POSTGRES_URL`` is set, on
PostgreSQL)."""

from __future__ import annotations

import pytest

from ratelimit import MemoryGate, StoreGate
from ratelimit_headers import retry_after_seconds
from store import Store
from tests.stores import Clock


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        ("-5", 0.0),
        ("1e999", 3600.0),
        ("inf", 3600.0),
        ("86400", 3600.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_read_as_bounded_seconds(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_gate_holds_are_per_site_and_only_extend() -> None:
    clock = Clock()
    gate = MemoryGate(clock)
    gate.hold("x", 10)
    gate.hold("x", 3)
    assert gate.wait_seconds("x") == 10 and gate.wait_seconds("y") == 0
    clock.advance(4)
    assert gate.wait_seconds("x") == 6
    assert not gate.is_near_limit("x")


def test_store_gate_shares_holds_between_instances(store: Store, clock: Clock) -> None:
    one = StoreGate(store, clock=clock, cache_seconds=0.5)
    two = StoreGate(store, clock=clock, cache_seconds=0.5)
    assert two.wait_seconds("site") == 0.0  # now cached for 0.5 s
    one.hold("site", 30)
    assert one.wait_seconds("site") == 30.0  # the holder knows at once
    assert two.wait_seconds("site") == 0.0  # still cached
    clock.advance(0.5)
    assert two.wait_seconds("site") == 29.5
    one.hold("site", 5)  # shorter holds never shorten
    assert one.wait_seconds("site") == 29.5
    one.near_limit("site", True)
    clock.advance(0.5)
    assert two.is_near_limit("site")
    clock.advance(30)
    assert two.wait_seconds("site") == 0.0
