"""Properties of ``lookupUsers`` and ``checkAccess`` (and of ``inviteEmails``' input handling) under
random input and random upstream fault schedules, through the in-process app (hypothesis).

Input lists mix real and unknown entries, duplicates, case variants, surrounding whitespace, unicode,
invalid emails, blanks and now and then a non-string; bulk fillers cross the chunk sizes (250 ids,
100 emails). The fault schedule (429 with and without Retry-After, 503, 500, dropped connections,
latency) is queued on users-bulk / check-access before each call and cleared after it, with the
shared rate-limit state. Every time:

- the answer is 200 with exact accounting (each distinct normalised input in exactly one output list,
  emails de-duplicated case-insensitively keeping the first spelling, read by the pasted-list
  rules of ``entries``), or 400/413 with a JSON error body for bad input; never a 5xx;
- entries not reported failed are classified correctly; failed entries come in whole chunks; an id
  the rules refuse (a space inside, not an account id's form) is ``notFound`` and never sent;
- a schedule the retry rules can absorb loses no entry at all, and nothing is slept past the
  call's deadline (the ``backend`` fixture records sleeps instead of sleeping).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import strategies as st

from access_desk import entries
from access_desk.app import create_app
from access_desk.confluence.transport import API_EMAIL_LIMIT, API_ID_LIMIT
from simulator.site import is_valid_email
from tests.conftest import Backend
from tests.support.stores import fresh_database

PROPERTIES = hypothesis.settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

WHITESPACE = ["", "", "", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", " \t "]
CASES: list[Callable[[str], str]] = [str, str, str.upper, str.lower, str.swapcase, str.title]
TRICKY = "aAbBzZ09._-+@ßẞKkİıσςΣéÉ"
UNSTORABLE = ["nul\x00inside", "\x00", "lone\ud800surrogate"]  # refused as "not valid text"
# api_disabled: a 503 without Retry-After from the email endpoints (the API is off on the site).
FAILURE_REASONS = {
    "rate_limited",
    "unavailable",
    "upstream_error 500",
    "connection_error",
    "api_disabled",
}
NON_STRINGS = st.one_of(
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)
FAULT = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["429", "429", "503", "500", "drop", "latency"]),
        "times": st.one_of(st.integers(1, 3), st.integers(1, 3), st.none()),
        "retry_after": st.sampled_from([None, None, 0, 1, 3, 25, 1847]),
    }
)
SCHEDULE = st.lists(FAULT, max_size=4)


# -- oracle ----------------------------------------------------------------------------------------


def normalise(values: list[str], kind: entries.Kind) -> list[str]:
    """The contract's rule: the distinct entries the pasted-list rules read from the strings, in
    order (``entries.parse``, itself checked against tests/entry_cases.json in test_entries.py):
    trimmed, blanks dropped, the first spelling kept (emails compared with ASCII letters folded)."""
    return entries.parse("\n".join(values), kind).written


def survivable(schedule: list[dict[str, Any]], deadline: float) -> bool:
    """Faults the retry rules absorb: no 500, all finite, at most two in all (so backoff stays
    under the deadline), and no Retry-After (or spent pool's Reset) the call cannot wait for."""
    total = 0
    for fault in schedule:
        if fault["kind"] == "latency":
            continue
        if fault["kind"] == "500" or fault["times"] is None:
            return False
        ra = fault["retry_after"]
        if fault["kind"] == "429" and ra is None:
            ra = 60  # the simulated 429 says Remaining 0 until a Reset 60 s on: a held pool
        if fault["kind"] in ("429", "503") and ra is not None and ra >= deadline / 2:
            return False
        total += fault["times"]
    return total <= 2


def whole_chunks(expected: list[str], failed: set[str], size: int) -> bool:
    chunks = [set(expected[i : i + size]) for i in range(0, len(expected), size)]
    return all(chunk <= failed or not (chunk & failed) for chunk in chunks)


# -- input strategies ------------------------------------------------------------------------------


def padded(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(WHITESPACE), inner, st.sampled_from(WHITESPACE)).map(
        lambda t: t[0] + t[1] + t[2]
    )


def case_variant(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(inner, st.sampled_from(CASES)).map(lambda t: t[1](t[0]))


def entry_list(
    data: st.DataObject, entry: st.SearchStrategy[str], filler: Callable[[int], str]
) -> list[Any]:
    """Random entries, some repeated (re-padded, re-cased), a bulk filler crossing the chunk sizes,
    shuffled; now and then a few non-strings."""
    base = data.draw(st.lists(entry, max_size=25), label="base")
    dups = []
    if base:
        dups = data.draw(st.lists(case_variant(padded(st.sampled_from(base))), max_size=10))
    n = data.draw(st.sampled_from([0, 0, 0, 0, 99, 101, 249, 251, 520]), label="filler")
    values: list[Any] = base + dups + [filler(i) for i in range(n)]
    rng = data.draw(st.randoms(use_true_random=False), label="shuffle")
    rng.shuffle(values)
    if data.draw(st.integers(0, 9), label="non-strings?") == 0:
        for junk in data.draw(st.lists(NON_STRINGS, min_size=1, max_size=3)):
            values.insert(rng.randrange(len(values) + 1), junk)
    return values


def id_entries(site: Any) -> st.SearchStrategy[str]:
    known = sorted(site.users)
    return padded(
        st.one_of(
            st.sampled_from(known),
            st.sampled_from(known).map(str.upper),  # ids are case-sensitive: not found
            st.text(max_size=14),
            st.text(alphabet=TRICKY, max_size=8),
            st.from_regex(r"[0-9a-f]{24}", fullmatch=True),
            st.sampled_from(UNSTORABLE),
        )
    )


def email_entries(site: Any) -> st.SearchStrategy[str]:
    real = sorted(site.emails.values())  # active (access) and inactive (no access) users
    return padded(
        case_variant(
            st.one_of(
                st.sampled_from(real),
                st.sampled_from(site.sample_new_emails),
                st.from_regex(r"[a-z0-9.+-]{1,12}@[a-z]{1,8}\.(com|org|example)", fullmatch=True),
                st.sampled_from(
                    ["no-at-sign", "two@@example.com", "spaces in@example.com", "a@b", "@x.com"]
                ),
                st.sampled_from(["ünï.côdé@example.com", "名前@example.jp", "straße@example.com"]),
                st.text(alphabet=TRICKY, max_size=10),
                st.text(max_size=14),
                st.sampled_from(UNSTORABLE),
            )
        )
    )


def id_filler(i: int) -> str:
    return f"ghost-{i:04d}"


def email_filler(i: int) -> str:
    return CASES[i % len(CASES)](f"bulk.{i}@newcomers.example")


# -- running one example ---------------------------------------------------------------------------


def reset(backend: Backend, platform: Any, sleeps: list[float]) -> None:
    """Nothing carries over between examples: faults, request log, sleeps, the quota ledger (pools
    and the spend of the fair shares), the admin check record, the lookup cache."""
    platform.faults.clear()
    platform.near_limit = False
    platform.clear_requests()
    sleeps.clear()
    svc = backend.client.application.extensions["access_desk"]
    assert svc.ledger.flush() and svc.lookups.flush()
    with svc.store.engine.begin() as conn:
        for table in ("quota_pools", "quota_spend", "admin_checks"):
            conn.execute(sa.delete(sa.table(table)))
        conn.execute(sa.delete(sa.table("lookup_cache")))
        conn.execute(sa.delete(sa.table("lookup_misses")))
    svc.ledger.forget()


def queue(platform: Any, endpoint: str, schedule: list[dict[str, Any]], near: bool) -> None:
    for fault in schedule:
        platform.faults.add(
            endpoint,
            fault["kind"],
            times=fault["times"],
            retry_after=fault["retry_after"],
            delay=0.02 if fault["kind"] == "latency" else 0.0,
        )
    platform.near_limit = near


def check_bad_input(response: Any, field: str, values: list[Any], expected: list[str]) -> bool:
    """True when the input is bad and the answer says so properly; False for good input."""
    # The rules in the order the contract applies them: non-strings, then text a database cannot
    # hold (NUL, lone surrogates), then nothing left after normalising.
    bad = {f"{field}[{i}]" for i, v in enumerate(values) if not isinstance(v, str)}
    broken = {
        f"{field}[{i}]"
        for i, v in enumerate(values)
        if isinstance(v, str) and ("\x00" in v or not is_utf8(v))
    }
    if not bad and not broken and expected:
        return False
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True))
    assert response.is_json
    body = response.get_json()
    assert body["error"] == "bad_input" and isinstance(body["message"], str)
    if bad:
        assert set(body["details"]) == bad
    elif broken:
        assert body["details"] == dict.fromkeys(broken, "is not valid text")
    else:
        assert body["details"] == {field: "empty"}
    return True


def is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_sent(platform: Any, endpoint: str, field: str, expected: list[str], limit: int) -> None:
    """Every upstream request carried 1..limit distinct entries, all of them normalised inputs."""
    allowed = set(expected)
    for record in platform.requests:
        if record.endpoint != endpoint:
            continue
        sent = record.body[field]
        assert 1 <= len(sent) <= limit and len(set(sent)) == len(sent)
        assert set(sent) <= allowed


def check_failures(
    failed: list[dict[str, Any]],
    subject: str,
    expected: list[str],
    size: int,
    schedule: list[dict[str, Any]],
    deadline: float,
) -> None:
    for f in failed:
        assert set(f) <= {subject, "error", "retryAfter"}
        assert f["error"] in FAILURE_REASONS, f
        if "retryAfter" in f:
            assert isinstance(f["retryAfter"], int | float) and f["retryAfter"] >= 0
    names = {f[subject] for f in failed}
    assert whole_chunks(expected, names, size), "a failure spilled outside its chunk"
    if survivable(schedule, deadline):
        assert failed == [], f"entries lost to a survivable schedule {schedule}"


# -- properties ------------------------------------------------------------------------------------


@PROPERTIES
@hypothesis.given(data=st.data(), schedule=SCHEDULE, near=st.booleans())
def test_lookup_accounts_for_every_id_under_any_fault_schedule(
    backend, platform, sleeps, settings, data, schedule, near
):
    site = platform.installation.site
    reset(backend, platform, sleeps)
    values = entry_list(data, id_entries(site), id_filler)
    queue(platform, "users-bulk", schedule, near)
    try:
        response = backend.call("lookupUsers", {"accountIds": values})
    finally:
        platform.faults.clear()
    expected = normalise([v for v in values if isinstance(v, str)], "accountId")

    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if check_bad_input(response, "accountIds", values, expected):
        assert not [r for r in platform.requests if r.endpoint == "users-bulk"]
        return
    body = response.get_json()
    assert set(body) == {"users", "notFound", "failed"}
    users = [u["accountId"] for u in body["users"]]
    failed = [f["accountId"] for f in body["failed"]]
    assert Counter(users + body["notFound"] + failed) == Counter(expected)
    assert users == [i for i in expected if i in set(users)], "users not in input order"
    assert body["notFound"] == [i for i in expected if i in set(body["notFound"])]
    for user in body["users"]:
        assert user == site.users[user["accountId"]]
    assert not set(body["notFound"]) & set(site.users)
    # an id the pasted-list rules refuse (no account id's form) is not found, and never sent
    sendable = [i for i in expected if entries.accepted(i, "accountId")]
    assert set(expected) - set(sendable) <= set(body["notFound"])
    deadline = settings.call_deadline_seconds
    check_failures(body["failed"], "accountId", sendable, API_ID_LIMIT, schedule, deadline)
    check_sent(platform, "users-bulk", "accountIds", sendable, API_ID_LIMIT)
    assert all(0 <= s < deadline for s in sleeps), sleeps


@PROPERTIES
@hypothesis.given(data=st.data(), schedule=SCHEDULE, near=st.booleans())
def test_check_access_accounts_for_every_email_under_any_fault_schedule(
    backend, platform, sleeps, settings, data, schedule, near
):
    site = platform.installation.site
    reset(backend, platform, sleeps)
    values = entry_list(data, email_entries(site), email_filler)
    queue(platform, "check-access", schedule, near)
    try:
        response = backend.call("checkAccess", {"emails": values})
    finally:
        platform.faults.clear()
    expected = normalise([v for v in values if isinstance(v, str)], "email")

    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if check_bad_input(response, "emails", values, expected):
        assert not [r for r in platform.requests if r.endpoint == "check-access"]
        return
    body = response.get_json()
    assert set(body) == {"withoutAccess", "withAccess", "invalid", "failed"}
    failed = [f["email"] for f in body["failed"]]
    lists = body["withoutAccess"] + body["withAccess"] + body["invalid"] + failed
    assert Counter(lists) == Counter(expected), "not exactly one list per distinct email"
    for name in ("withoutAccess", "withAccess", "invalid"):
        assert body[name] == [e for e in expected if e in set(body[name])], f"{name} out of order"
    assert all(not is_valid_email(e) for e in body["invalid"])
    assert all(is_valid_email(e) and site.has_access(e) for e in body["withAccess"])
    assert all(is_valid_email(e) and not site.has_access(e) for e in body["withoutAccess"])
    deadline = settings.call_deadline_seconds
    sent = [e for e in expected if entries.accepted(e, "email")]  # the rest never go out
    check_failures(body["failed"], "email", sent, API_EMAIL_LIMIT, schedule, deadline)
    check_sent(platform, "check-access", "emails", expected, API_EMAIL_LIMIT)
    assert all(0 <= s < deadline for s in sleeps), sleeps


# -- inviteEmails stores whatever strings it accepts (SQLite and PostgreSQL) -----------------------

BACKENDS: list[Any] = ["sqlite"]
if os.environ.get("TEST_POSTGRES_URL"):
    BACKENDS.append(pytest.param("postgres", marks=pytest.mark.postgres))

ODD_TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),  # incl. surrogates
    st.text(alphabet="a\x00\x01\u2028\ufeff\U0001f600@.", max_size=12),
    st.sampled_from(["lone\ud800@example.com", "\udfff", "nul\x00@example.com"]),
    st.integers(250, 700).map(lambda n: "x" * n + "@example.com"),
    st.sampled_from(["new.person@example.com", "NEW.Person@example.com", "a@b.co"]),
)


@pytest.fixture(params=BACKENDS)
def db_backend(request, settings, platform, sleeps, tmp_path: Path) -> Iterator[Backend]:
    with fresh_database(request.param, tmp_path) as url:
        app = create_app(replace(settings, database_url=url), sleep=sleeps)
        try:
            yield Backend(app.test_client(), platform)
        finally:
            app.extensions["access_desk"].close()


@hypothesis.settings(PROPERTIES, max_examples=25)
@hypothesis.given(values=st.lists(padded(ODD_TEXT), min_size=1, max_size=8), dry=st.booleans())
@hypothesis.example(values=["lone\ud800@example.com"], dry=True)  # 500 on both databases
@hypothesis.example(values=["nul\x00@example.com"], dry=True)  # 500 on PostgreSQL
@hypothesis.example(values=["x" * 600 + "@example.com"], dry=True)  # 500 on PostgreSQL
def test_invite_emails_never_answers_5xx_and_keeps_what_it_accepts(db_backend, values, dry):
    """Any list of strings: 200 with a job holding exactly the normalised emails, or 400/413."""
    response = db_backend.call("inviteEmails", {"emails": values, "dryRun": dry})
    assert response.status_code in (200, 400, 413), response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    expected = normalise(values, "email")
    if response.status_code != 200:
        assert isinstance(body["message"], str)
        assert body["error"] == ("bad_input" if response.status_code == 400 else "too_many")
        assert "details" in body
        return
    job = body["job"]
    assert job["total"] == len(expected) and job["dryRun"] is dry
    assert [item["email"] for item in job["items"]] == expected
    svc = db_backend.client.application.extensions["access_desk"]
    stored = svc.store.job(db_backend.platform.installation.id, job["id"])
    assert [item.email for item in stored.items] == expected
