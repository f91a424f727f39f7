"""ratelimit_headers: what an answer's rate-limit headers say, read with an RFC 9651 parser.

Entries by policy name, in either spelling, any number and order, every parameter optional;
garbage, out-of-range and non-finite values are not said (never an exception); burst apart from
the quota; ``Retry-After`` as bounded seconds."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from access_desk.quota.headers import MAX_RETRY_AFTER, QuotaEntry, read_headers, retry_after_seconds
from access_desk.quota.pools import APP, SITE


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        ("86400", MAX_RETRY_AFTER),
        ("-5", None),
        ("1e999", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("9" * 400, MAX_RETRY_AFTER),
    ],
)
def test_retry_after_is_plain_bounded_seconds(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_the_quota_comes_by_policy_name_in_either_spelling() -> None:
    enforced = read_headers(
        200,
        {
            "RateLimit-Policy": '"global-app-quota";q=65000;w=3600',
            "RateLimit": '"global-app-quota";r=1200;t=600',
            "X-RateLimit-Limit": "350",
            "X-RateLimit-Remaining": "349",
        },
    )
    assert enforced.entries == (
        QuotaEntry("global-app-quota", APP, 65000, 3600, 1200, 600.0, stated=True),
    )
    assert (enforced.burst_limit, enforced.burst_remaining) == (350, 349)  # never the quota
    beta = read_headers(
        200,
        {
            "Beta-RateLimit-Policy": '"tenant-app-quota";q=100100;w=3600',
            "Beta-RateLimit": '"tenant-app-quota";t=2107',
            "X-Beta-RateLimit-NearLimit": "true",
        },
    )
    assert beta.entry(SITE) == QuotaEntry(
        "tenant-app-quota", SITE, 100100, 3600, None, 2107.0, stated=True
    )
    assert beta.near_limit is True and beta.entry(APP) is None


def test_several_entries_in_any_order_and_the_enforced_spelling_wins() -> None:
    reading = read_headers(
        200,
        {
            "RateLimit": '"confluence-burst-based";r=90;t=1, "global-app-quota";t=200',
            "RateLimit-Policy": '"confluence-burst-based";q=100;w=1,"global-app-quota";q=65000',
            "Beta-RateLimit-Policy": '"global-app-quota";q=1;w=3600',
            "Beta-RateLimit": '"global-app-quota";r=5;t=9',
        },
    )
    assert reading.entries == (
        QuotaEntry("global-app-quota", APP, 65000, 3600, 5, 200.0, stated=True),
    )


@pytest.mark.parametrize(
    "state",
    [
        '"global-app-quota";r=-1;t=600',
        '"global-app-quota";r=1e999;t=600',
        '"global-app-quota";r="lots";t=600',
        '"global-app-quota";r=99999999999999;t=600',
        '"global-app-quota";r=?1;t=600',
        "global-app-quota;r=12;;;t=600",
        '"global-app-quota";r=12.5.1;t=600',
    ],
)
def test_garbage_values_are_not_said(state: str) -> None:
    entry = read_headers(200, {"RateLimit": state}).entry(APP)
    assert entry is None or entry.remaining is None


def test_a_field_that_does_not_parse_is_read_entry_by_entry() -> None:
    reading = read_headers(
        429, {"RateLimit": '"tenant-app-quota";r=0;t=50, "broken;r=,,', "Retry-After": "50"}
    )
    assert reading.entry(SITE) == QuotaEntry(
        "tenant-app-quota", SITE, None, None, 0, 50.0, stated=True
    )
    assert reading.quota_429 and reading.refused_scope == SITE


@pytest.mark.parametrize(
    ("headers", "scope"),
    [
        ({"RateLimit-Reason": "confluence-quota-global-based"}, APP),
        ({"X-Beta-RateLimit-Reason": "confluence-quota-tenant-based"}, SITE),
        ({"RateLimit-Reason": "conf-global-based"}, APP),  # a value vendors reported
        ({"RateLimit": '"global-app-quota";r=0;t=50'}, APP),  # no reason: r=0 says it
        ({"X-RateLimit-Limit": "350", "X-RateLimit-Remaining": "0"}, None),  # burst
        ({"RateLimit-Reason": "confluence-burst-based"}, None),
        ({}, None),  # a bare 429: one site's pause
    ],
)
def test_a_429_is_the_quota_only_when_it_says_so(
    headers: dict[str, str], scope: str | None
) -> None:
    reading = read_headers(429, headers)
    assert reading.refused_scope == scope
    assert reading.burst_429 is (scope is None)


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")), deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "RateLimit",
                "RateLimit-Policy",
                "Beta-RateLimit",
                "Beta-RateLimit-Policy",
                "Retry-After",
                "RateLimit-Reason",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-NearLimit",
            ]
        ),
        st.text(max_size=60),
    ),
    st.sampled_from([200, 429, 503]),
)
def test_any_header_text_reads_without_an_exception(headers: dict[str, str], status: int) -> None:
    reading = read_headers(status, headers)
    for entry in reading.entries:
        assert entry.limit is None or 1 <= entry.limit <= 10**9
        assert entry.remaining is None or 0 <= entry.remaining <= 10**9
        assert entry.reset_in is None or 0 <= entry.reset_in <= 7 * 86400
    assert reading.retry_after is None or 0 <= reading.retry_after <= MAX_RETRY_AFTER
