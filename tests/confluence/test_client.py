"""The Confluence client against a fake transport: a real Session with a mounted adapter whose
``send`` calls a plain function. Time is a fake clock whose sleep advances it: nothing waits."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from access_desk.confluence.client import Client
from access_desk.confluence.errors import ConfluenceError, UntrustedHost, UpstreamError
from access_desk.confluence.results import AccessResult, Failure, LookupResult
from access_desk.confluence.transport import Policy
from access_desk.quota.ledger import MemoryLedger

BASE = "https://api.atlassian.com/ex/confluence/c0ffee00-0000-0000-0000-000000000001"
ALLOW = ("https://api.atlassian.com/",)
TOKEN = "s3cr3t-user-token-xyz"
USERS = BASE + "/wiki/api/v2/users-bulk"
CHECK = BASE + "/wiki/api/v2/user/access/check-access-by-email"
INVITE = BASE + "/wiki/api/v2/user/access/invite-by-email"
CURRENT = BASE + "/wiki/rest/api/user/current?expand=operations"


@dataclass
class Call:
    method: str
    url: str
    body: Any
    headers: dict[str, str]
    timeout: Any
    at: float


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Handler = Callable[[Call], "Answer | Exception"]


class FakeClock:
    """``clock`` and ``sleep`` in one: sleeping records the wait and moves time forward."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class FakeAdapter(BaseAdapter):
    def __init__(self, handler: Handler, clock: FakeClock) -> None:
        super().__init__()
        self.handler = handler
        self.clock = clock
        self.calls: list[Call] = []
        self.lock = threading.Lock()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **_: Any
    ) -> requests.Response:
        raw = request.body
        body = json.loads(raw) if raw else None
        call = Call(
            request.method or "",
            request.url or "",
            body,
            dict(request.headers),
            timeout,
            self.clock(),
        )
        with self.lock:
            self.calls.append(call)
        answer = self.handler(call)
        if isinstance(answer, Exception):
            raise answer
        response = requests.Response()
        response.status_code = answer.status
        if answer.raw is not None:
            response._content = answer.raw
        else:
            response._content = b"" if answer.body is None else json.dumps(answer.body).encode()
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = "utf-8"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


@dataclass
class Rig:
    adapter: FakeAdapter
    clock: FakeClock
    session: requests.Session
    ledger: MemoryLedger

    @property
    def calls(self) -> list[Call]:
        return self.adapter.calls

    def client(self, policy: Policy | None = None, **kw: Any) -> Client:
        return Client(
            self.session,
            kw.pop("base", BASE),
            TOKEN,
            policy=policy or Policy(),
            allowlist=ALLOW,
            sleep=self.clock.sleep,
            clock=self.clock,
            ledger=kw.pop("ledger", self.ledger),
            rng=random.Random(7),
            **kw,
        )


def rig(handler: Handler) -> Rig:
    clock = FakeClock()
    adapter = FakeAdapter(handler, clock)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return Rig(adapter, clock, session, MemoryLedger(clock))


def site(known: set[str] | None = None, without: set[str] | None = None) -> Handler:
    """A well-behaved site: ``known`` account ids; ``without`` (lower-case) emails lack access;
    emails without '@' are invalid."""

    def handle(call: Call) -> Answer:
        if call.url == USERS:
            ids = call.body["accountIds"]
            found = [user(i) for i in ids if known is None or i in known]
            return Answer(body={"results": found[::-1], "_links": {"base": BASE}})
        if call.url == CHECK:
            emails = call.body["emails"]
            return Answer(
                body={
                    "emailsWithoutAccess": [
                        e.upper() for e in emails if e.lower() in (without or set())
                    ],
                    "invalidEmails": [e for e in emails if "@" not in e],
                }
            )
        if call.url == INVITE:
            return Answer(status=200)
        raise AssertionError(call.url)

    return handle


def user(account_id: str) -> dict[str, Any]:
    return {"accountId": account_id, "displayName": f"User {account_id}", "accountStatus": "active"}


def ids(n: int) -> list[str]:
    return [f"acc-{i:05d}" for i in range(n)]


def error_body(detail: str) -> dict[str, Any]:
    return {"errors": [{"status": 400, "code": "INVALID", "title": "Bad", "detail": detail}]}


# -- chunking, order, concurrency ------------------------------------------------------------------


def test_251_ids_make_two_calls_of_250_and_1_with_headers_and_timeouts() -> None:
    r = rig(site())
    result = r.client().lookup_users(ids(251))
    sizes = sorted(len(c.body["accountIds"]) for c in r.calls)
    assert sizes == [1, 250]
    assert [u["accountId"] for u in result.users] == ids(251)
    for call in r.calls:
        assert call.method == "POST" and call.url == USERS
        assert call.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.headers["Accept"] == "application/json"
        assert call.headers["Content-Type"] == "application/json"
        assert call.timeout is not None and 0 < call.timeout <= 10.0


def test_101_emails_make_two_calls_for_check_and_invite() -> None:
    emails = [f"u{i}@example.com" for i in range(101)]
    r = rig(site())
    r.client().check_access(emails)
    r.client().invite(emails)
    sizes = sorted((c.url, len(c.body["emails"])) for c in r.calls)
    assert sizes == [(CHECK, 1), (CHECK, 100), (INVITE, 1), (INVITE, 100)]


def test_timeout_is_never_longer_than_the_time_left() -> None:
    clock_box: list[FakeClock] = []

    def slow_then_ok(call: Call) -> Answer:
        clock_box[0].sleep(17.0)  # the request itself took 17 s of (fake) time
        return Answer(body={"results": []})

    r = rig(slow_then_ok)
    clock_box.append(r.clock)
    r.client(Policy(ids_per_chunk=1, concurrency=1)).lookup_users(["a", "b", "c"])
    assert [c.timeout for c in r.calls] == [10.0, 3.0]  # the third chunk had no time left


def test_concurrency_is_bounded_and_order_is_preserved() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    rng = random.Random(3)

    def handle(call: Call) -> Answer:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            latency = rng.uniform(0.005, 0.03)
        time.sleep(latency)  # transport latency so chunks overlap; the client never sleeps
        with lock:
            state["now"] -= 1
        chunk = call.body["accountIds"]
        return Answer(body={"results": [user(i) for i in random.sample(chunk, len(chunk))]})

    r = rig(handle)
    result = r.client(Policy(ids_per_chunk=10)).lookup_users(ids(200))
    assert len(r.calls) == 20
    assert 2 <= state["max"] <= 4
    assert [u["accountId"] for u in result.users] == ids(200)
    assert r.clock.sleeps == []


def test_each_chunk_is_handed_over_as_it_is_answered_while_the_others_are_in_flight() -> None:
    stored = threading.Event()
    seen: dict[str, Any] = {}

    def handle(call: Call) -> Answer:
        (account_id,) = call.body["accountIds"]
        if account_id == "b":  # still in flight when "a" is answered: waits for a's hand-over
            seen["stored_while_b_in_flight"] = stored.wait(timeout=10)
            return Answer(status=400, body=error_body("no"))
        return Answer(body={"results": [user(account_id)] if account_id == "a" else []})

    parts: list[LookupResult] = []
    threads: set[int] = set()

    def on_chunk(part: LookupResult) -> None:
        parts.append(part)
        threads.add(threading.get_ident())
        if part.users:
            stored.set()

    r = rig(handle)
    policy = Policy(ids_per_chunk=1, concurrency=2, max_retries=0)
    result = r.client(policy).lookup_users(["b", "a", "c"], on_chunk)
    assert seen["stored_while_b_in_flight"] is True
    assert threads == {threading.get_ident()}  # on the calling thread
    assert parts[0] == LookupResult(users=[user("a")])  # the first answered, not the first sent
    assert LookupResult(not_found=["c"]) in parts and len(parts) == 3
    assert [f.subject for p in parts for f in p.failed] == ["b"]
    assert result.users == [user("a")] and result.not_found == ["c"]
    assert [f.subject for f in result.failed] == ["b"]


def test_an_error_handing_over_a_chunk_ends_the_lookup() -> None:
    r = rig(lambda call: Answer(body={"results": []}))

    def on_chunk(part: LookupResult) -> None:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        r.client(Policy(ids_per_chunk=1, concurrency=1)).lookup_users(ids(5), on_chunk)
    assert len(r.calls) == 2  # the freed slot went to chunk 2 before chunk 1's hand-over; no more
    with pytest.raises(RuntimeError, match="store down"):
        r.client().lookup_users(ids(1), on_chunk)  # one chunk: no pool


def test_near_limit_runs_chunks_one_at_a_time_and_a_normal_answer_clears_it() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    near = {"flag": True}

    def handle(call: Call) -> Answer:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        headers = {"X-RateLimit-NearLimit": "true"} if near["flag"] else {}
        return Answer(body={"results": []}, headers=headers)

    r = rig(handle)
    r.ledger.observe(BASE, 200, {"X-RateLimit-NearLimit": "true"})
    r.client(Policy(ids_per_chunk=1)).lookup_users(ids(8))
    assert state["max"] == 1
    assert r.ledger.is_near_limit(BASE)
    near["flag"] = False
    r.client(Policy(ids_per_chunk=1)).lookup_users(ids(1))
    assert not r.ledger.is_near_limit(BASE)


# -- result shapes ---------------------------------------------------------------------------------


def test_unknown_ids_are_not_found_and_duplicates_or_strangers_upstream_are_ignored() -> None:
    def handle(call: Call) -> Answer:
        results = [user("b"), user("zzz"), user("b") | {"displayName": "dup"}, user("d")]
        return Answer(body={"results": results})

    result = rig(handle).client().lookup_users(["a", "b", "c", "d"])
    assert result == LookupResult(users=[user("b"), user("d")], not_found=["a", "c"], failed=[])


def test_emails_match_case_insensitively_and_keep_the_input_spelling() -> None:
    r = rig(site(without={"ann@example.com", "cy@example.com"}))
    result = r.client().check_access(
        ["Ann@Example.com", "bob@example.com", "nope", "cy@EXAMPLE.com"]
    )
    assert result == AccessResult(
        without_access=["Ann@Example.com", "cy@EXAMPLE.com"],
        with_access=["bob@example.com"],
        invalid=["nope"],
        failed=[],
    )


@pytest.mark.parametrize(
    "body, without, invalid",
    [
        ({}, [], []),
        ({"invalidEmails": ["B"]}, [], ["b"]),
        ({"emailsWithoutAccess": ["a"]}, ["a"], []),
        ({"emailsWithoutAccess": None, "invalidEmails": None}, [], []),
    ],
)
def test_missing_keys_count_as_empty(body: Any, without: list[str], invalid: list[str]) -> None:
    result = rig(lambda call: Answer(body=body)).client().check_access(["a", "b", "c"])
    assert result.without_access == without
    assert result.invalid == invalid
    assert result.with_access == [e for e in ["a", "b", "c"] if e not in without + invalid]


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"emailsWithoutAccess": "x"}'])
def test_unreadable_check_answer_fails_the_chunk(raw: bytes) -> None:
    result = rig(lambda call: Answer(raw=raw)).client().check_access(["a@x.io"])
    assert result.failed == [Failure("a@x.io", "bad_response")]
    assert result.with_access == []


def test_empty_input_makes_no_request() -> None:
    r = rig(site())
    assert r.client().lookup_users([]) == LookupResult()
    assert r.client().check_access([]) == AccessResult()
    assert r.client().invite([]).invited == []
    assert r.calls == []


# -- retries, backoff, deadline ------------------------------------------------------------------


def scripted(*answers: Answer | Exception, then: Answer | None = None) -> Handler:
    """Answers in turn, then ``then`` (a 200 with no users by default) forever."""
    queue = list(answers)
    lock = threading.Lock()

    def handle(call: Call) -> Answer | Exception:
        with lock:
            if queue:
                return queue.pop(0)
        return then or Answer(body={"results": []})

    return handle


def test_retry_after_is_honoured_exactly() -> None:
    r = rig(
        scripted(
            Answer(429, headers={"Retry-After": "7"}), Answer(503, headers={"Retry-After": "2.5"})
        )
    )
    result = r.client().lookup_users(["a"])
    assert result.not_found == ["a"]
    assert r.clock.sleeps == [7.0, 2.5]
    assert [c.at for c in r.calls] == [1000.0, 1007.0, 1009.5]


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = Policy(deadline_seconds=1000.0, max_retries=4, timeout_seconds=1.0)
    r = rig(scripted(*[Answer(429)] * 4))
    assert r.client(policy).lookup_users(["a"]).not_found == ["a"]
    assert len(r.calls) == 5
    bases = [5.0, 10.0, 20.0, 30.0]
    assert len(r.clock.sleeps) == 4
    for waited, base in zip(r.clock.sleeps, bases, strict=True):
        assert 0.7 * base <= waited <= 1.3 * base
    assert all(w != base for w, base in zip(r.clock.sleeps, bases, strict=True))  # jittered
    assert all(3.5 <= w <= 30 * 1.3 for w in r.clock.sleeps)


def test_max_retries_then_the_chunk_fails() -> None:
    policy = Policy(deadline_seconds=1000.0, max_retries=2)
    r = rig(scripted(then=Answer(503)))
    result = r.client(policy).lookup_users(["a", "b"])
    assert len(r.calls) == 3
    assert result.failed == [Failure("a", "unavailable"), Failure("b", "unavailable")]


def test_retry_budget_spent_on_429_keeps_retry_after() -> None:
    policy = Policy(deadline_seconds=1000.0, max_retries=1)
    r = rig(scripted(then=Answer(429, headers={"Retry-After": "3"})))
    result = r.client(policy).lookup_users(["a"])
    assert result.failed == [Failure("a", "rate_limited", 3.0)]
    assert r.clock.sleeps == [3.0]


def test_invite_is_not_retried_without_retry_after() -> None:
    for failure in (Answer(503), Answer(429), Answer(500), requests.ConnectionError("reset")):
        r = rig(scripted(failure, then=Answer(200)))
        result = r.client().invite(["a@x.io"])
        assert len(r.calls) == 1, failure
        assert result.invited == [] and len(result.failed) == 1
    r = rig(scripted(requests.ReadTimeout("slow"), then=Answer(200)))
    assert r.client().invite(["a@x.io"]).failed == [Failure("a@x.io", "timeout")]
    assert len(r.calls) == 1


def test_invite_is_retried_with_retry_after() -> None:
    r = rig(
        scripted(
            Answer(429, headers={"Retry-After": "4"}),
            Answer(503, headers={"Retry-After": "1"}),
            then=Answer(202),
        )
    )
    result = r.client().invite(["a@x.io", "B@x.io"])
    assert result.invited == ["a@x.io", "B@x.io"] and result.failed == []
    assert r.clock.sleeps == [4.0, 1.0]
    assert len(r.calls) == 3


def test_a_retry_after_past_the_deadline_is_not_slept() -> None:
    r = rig(scripted(Answer(429, headers={"Retry-After": "1847"})))
    result = r.client().lookup_users(["a", "b"])
    assert result.failed == [
        Failure("a", "rate_limited", 1847.0),
        Failure("b", "rate_limited", 1847.0),
    ]
    assert r.clock.sleeps == []
    assert len(r.calls) == 1


def test_an_unreadable_retry_after_holds_nothing_for_long() -> None:
    """``Retry-After: 1e999`` is not a number of seconds: the 429 (no quota reason) is a burst,
    paused for about a second and retried, never an hour's hold."""
    r = rig(scripted(Answer(429, headers={"Retry-After": "1e999"}), Answer(body={"results": []})))
    result = r.client().lookup_users(["a"])
    assert result.failed == [] and result.not_found == ["a"]
    assert len(r.calls) == 2 and max(r.clock.sleeps) < 60
    assert r.ledger.wait_seconds(BASE) <= 1.0


def test_a_short_step_does_not_sleep_a_retry_after_the_whole_call_could() -> None:
    r = rig(scripted(Answer(429, headers={"Retry-After": "12"})))
    result = r.client().within(5).lookup_users(["a"])
    assert result.failed == [Failure("a", "rate_limited", 12.0)] and r.clock.sleeps == []
    whole = rig(scripted(Answer(429, headers={"Retry-After": "12"})))
    assert whole.client().lookup_users(["a"]).not_found == ["a"]  # 20 s deadline: it waits
    assert whole.clock.sleeps == [12.0]


def test_a_503_retry_after_past_the_deadline_is_unavailable() -> None:
    r = rig(scripted(Answer(503, headers={"Retry-After": "60"}), then=Answer(200)))
    result = r.client().invite(["a@x.io"])
    assert result.failed == [Failure("a@x.io", "unavailable", 60.0)]
    assert r.clock.sleeps == []


def test_reads_retry_timeouts_and_connection_errors() -> None:
    r = rig(scripted(requests.ConnectTimeout("x"), requests.ConnectionError("y")))
    assert r.client().lookup_users(["a"]).not_found == ["a"]
    assert len(r.calls) == 3 and len(r.clock.sleeps) == 2


@pytest.mark.parametrize(
    "answer, error",
    [
        (
            Answer(400, error_body("accountIds must not be empty")),
            "rejected: accountIds must not be empty",
        ),
        (Answer(400, raw=b"<html>"), "rejected: 400"),
        (Answer(401), "not_permitted"),
        (Answer(403), "not_permitted"),
        (Answer(404, error_body("nope")), "not_permitted"),
        (Answer(500), "upstream_error 500"),
        (Answer(502), "upstream_error 502"),
        (Answer(302, headers={"Location": "https://evil.example/"}), "upstream_error 302"),
        (requests.ReadTimeout("slow"), "timeout"),
        (requests.ConnectionError("refused"), "connection_error"),
        (Answer(200, raw=b"{oops"), "bad_response"),
        (Answer(200, body={"results": "x"}), "bad_response"),
    ],
)
def test_error_mapping(answer: Answer | Exception, error: str) -> None:
    policy = Policy(max_retries=0)
    r = rig(scripted(answer))
    result = r.client(policy).lookup_users(["a", "b"])
    assert result.failed == [Failure("a", error), Failure("b", error)]
    assert result.users == [] and result.not_found == []
    assert len(r.calls) == 1


def test_persistent_timeouts_end_at_the_deadline() -> None:
    r = rig(scripted(then=requests.ReadTimeout("slow")))  # type: ignore[arg-type]
    result = r.client(Policy(max_retries=10)).lookup_users(["a"])
    assert result.failed[0].error == "timeout" and result.failed[0].retry_after is not None
    assert sum(r.clock.sleeps) < 20.0


def test_one_failed_chunk_leaves_the_rest_standing() -> None:
    def handle(call: Call) -> Answer:
        if "acc-00002" in call.body["accountIds"]:
            return Answer(404)
        return Answer(body={"results": [user(i) for i in call.body["accountIds"]]})

    result = rig(handle).client(Policy(ids_per_chunk=2)).lookup_users(ids(6))
    assert [u["accountId"] for u in result.users] == [
        "acc-00000",
        "acc-00001",
        "acc-00004",
        "acc-00005",
    ]
    assert result.failed == [
        Failure("acc-00002", "not_permitted"),
        Failure("acc-00003", "not_permitted"),
    ]


# -- the ledger --------------------------------------------------------------------------------------


def test_a_429_seen_by_one_client_holds_the_other() -> None:
    r = rig(scripted(Answer(429, headers={"Retry-After": "7"})))
    first = r.client(Policy(max_retries=0)).lookup_users(["a"])
    assert first.failed == [Failure("a", "rate_limited", 7.0)]
    second = r.client().lookup_users(["b"])
    assert second.not_found == ["b"]
    assert r.clock.sleeps == [7.0]
    assert r.calls[1].at == r.calls[0].at + 7.0


def test_a_ledger_hold_past_the_deadline_fails_without_a_request() -> None:
    r = rig(site())
    r.ledger.hold(BASE, 600)
    result = r.client().check_access(["a@x.io"])
    assert result.failed == [Failure("a@x.io", "rate_limited", 600.0)]
    assert r.calls == [] and r.clock.sleeps == []


# -- trust and secrecy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    [
        "https://evil.example/ex/confluence/1",
        "http://api.atlassian.com/ex/confluence/1",
        "https://api.atlassian.com.evil.example/ex",
    ],
)
def test_untrusted_host_is_refused_before_any_request(base: str) -> None:
    r = rig(site())
    with pytest.raises(UntrustedHost) as info:
        r.client(base=base)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert r.calls == []


def test_prefix_without_a_trailing_slash_still_pins_the_host() -> None:
    r = rig(site())
    with pytest.raises(UntrustedHost):
        Client(
            r.session,
            "https://api.atlassian.com.evil.example/x",
            TOKEN,
            allowlist=("https://api.atlassian.com",),
        )
    Client(r.session, BASE, TOKEN, allowlist=("https://api.atlassian.com",))


def test_token_is_never_in_repr_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    r = rig(
        scripted(
            Answer(400, error_body(f"bad token {TOKEN}")), then=Answer(500, raw=TOKEN.encode())
        )
    )
    client = r.client(Policy(max_retries=0))
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    failed = client.lookup_users(["a"]).failed
    assert failed and TOKEN not in repr(failed)
    with pytest.raises(UpstreamError) as info:
        client.is_admin()
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert TOKEN not in caplog.text


# -- the admin check -------------------------------------------------------------------------------


def test_is_admin_true_and_false() -> None:
    admin = {
        "operations": [
            {"operation": "use", "targetType": "application"},
            {"operation": "administer", "targetType": "application"},
        ]
    }
    space_admin = {"operations": [{"operation": "administer", "targetType": "space"}]}
    for body, expected in ((admin, True), (space_admin, False), ({"operations": []}, False)):
        r = rig(scripted(then=Answer(body=body)))
        assert r.client().is_admin() is expected
        assert [(c.method, c.url) for c in r.calls] == [("GET", CURRENT)]
        assert r.calls[0].timeout is not None


@pytest.mark.parametrize(
    "answer",
    [
        Answer(401),
        Answer(403),
        Answer(500),
        Answer(200, body={"accountId": "x"}),
        Answer(200, raw=b"nope"),
        requests.ConnectionError("x"),
    ],
)
def test_is_admin_raises_on_any_failure(answer: Answer | Exception) -> None:
    r = rig(scripted(answer))
    with pytest.raises(ConfluenceError):
        r.client(Policy(max_retries=0)).is_admin()


def test_is_admin_retries_a_429() -> None:
    r = rig(
        scripted(Answer(429, headers={"Retry-After": "1"}), then=Answer(body={"operations": []}))
    )
    assert r.client().is_admin() is False
    assert r.clock.sleeps == [1.0]


# -- exact accounting, as a property ---------------------------------------------------------------

FAULTS: list[Answer | Exception] = [
    Answer(429),
    Answer(429, headers={"Retry-After": "1"}),
    Answer(429, headers={"Retry-After": "5000"}),
    Answer(503),
    Answer(503, headers={"Retry-After": "2"}),
    Answer(500),
    Answer(400, error_body("no")),
    Answer(404),
    Answer(200, raw=b"{broken"),
    requests.ReadTimeout("slow"),
    requests.ConnectionError("reset"),
]


def faulty_site(schedule: dict[str, list[int]], known: set[str], without: set[str]) -> Handler:
    """Per chunk (keyed by its first entry): the faults of its attempts in turn, then ``site``."""
    good = site(known, without)
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def handle(call: Call) -> Answer | Exception:
        entries = call.body.get("accountIds") or call.body.get("emails")
        with lock:
            n = attempts.get(entries[0], 0)
            attempts[entries[0]] = n + 1
        plan = schedule.get(entries[0].lower(), [])
        return FAULTS[plan[n]] if n < len(plan) else good(call)

    return handle


schedules = st.lists(st.lists(st.integers(0, len(FAULTS) - 1), max_size=6), max_size=40)
POLICY = Policy(concurrency=3, ids_per_chunk=3, emails_per_chunk=2, max_retries=3)


def plan(items: list[str], size: int, faults: list[list[int]]) -> dict[str, list[int]]:
    firsts = [items[i].lower() for i in range(0, len(items), size)]
    return {first: faults[i] for i, first in enumerate(firsts) if i < len(faults)}


def assert_partition(inputs: list[str], parts: list[list[str]]) -> None:
    seen = [x for part in parts for x in part]
    assert sorted(seen) == sorted(inputs)
    for part in parts:
        positions = [inputs.index(x) for x in part]
        assert positions == sorted(positions)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 10_000), unique=True, max_size=40),
    st.sets(st.integers(0, 10_000)),
    schedules,
)
def test_lookup_accounts_for_every_id(
    numbers: list[int], known_numbers: set[int], faults: list[list[int]]
) -> None:
    account_ids = [f"id{n}" for n in numbers]
    known = {f"id{n}" for n in known_numbers}
    r = rig(faulty_site(plan(account_ids, 3, faults), known, set()))
    result = r.client(POLICY).lookup_users(account_ids)
    users = [u["accountId"] for u in result.users]
    failed = [f.subject for f in result.failed]
    assert_partition(account_ids, [users, result.not_found, failed])
    assert set(users) <= known and not set(result.not_found) & known
    chunks = [account_ids[i : i + 3] for i in range(0, len(account_ids), 3)]
    for chunk in chunks:  # a chunk fails whole or not at all
        assert set(chunk) <= set(failed) or not set(chunk) & set(failed)
    assert all(len(c.body["accountIds"]) <= 3 for c in r.calls)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10_000), st.booleans(), st.sampled_from(["ok", "without", "invalid"])
        ),
        unique_by=lambda t: t[0],
        max_size=30,
    ),
    schedules,
    st.booleans(),
)
def test_check_and_invite_account_for_every_email(
    entries: list[tuple[int, bool, str]], faults: list[list[int]], do_invite: bool
) -> None:
    emails = [
        (f"U{n}@Example.com" if upper else f"u{n}@example.com")
        if kind != "invalid"
        else f"U{n}-bad"
        for n, upper, kind in entries
    ]
    without = {
        e.lower() for e, (_, _, kind) in zip(emails, entries, strict=True) if kind == "without"
    }
    r = rig(faulty_site(plan(emails, 2, faults), set(), without))
    client = r.client(POLICY)
    if do_invite:
        invited = client.invite(emails)
        assert_partition(emails, [invited.invited, [f.subject for f in invited.failed]])
        return
    result = client.check_access(emails)
    failed = [f.subject for f in result.failed]
    assert_partition(emails, [result.without_access, result.with_access, result.invalid, failed])
    assert {e.lower() for e in result.without_access} <= without
    assert all("@" not in e for e in result.invalid)


# -- probe (diagnose) --------------------------------------------------------------------------------


def test_probe_is_one_request_with_status_detail_and_rate_limit_headers() -> None:
    headers = {"X-RateLimit-Limit": "65000", "X-RateLimit-Remaining": "64990", "Other": "x"}
    r = rig(scripted(Answer(400, body=error_body("emails must not be empty"), headers=headers)))
    probe = r.client().probe_invite([])
    assert (probe.status, probe.message) == (400, "emails must not be empty")
    assert probe.rate_limit == {"X-RateLimit-Limit": "65000", "X-RateLimit-Remaining": "64990"}
    assert [(c.url, c.body) for c in r.calls] == [(INVITE, {"emails": []})]
    assert r.clock.sleeps == []


def test_probe_feeds_the_ledger_and_sends_nothing_while_held() -> None:
    r = rig(scripted(Answer(429, headers={"Retry-After": "30"})))
    first = r.client().probe_admin()
    assert first.status == 429 and first.retry_after == 30.0
    second = r.client().probe_admin()
    assert (second.status, second.reason, second.retry_after) == (None, "rate_limited", 30.0)
    assert len(r.calls) == 1


def test_probe_reports_no_answer_without_raising() -> None:
    r = rig(scripted(requests.ConnectionError("refused"), requests.Timeout("slow")))
    assert r.client().probe_admin().reason == "connection_error"
    assert r.client().probe_admin().reason == "timeout"
    gateway = rig(
        scripted(Answer(401, body={"code": 401, "message": "Unauthorized; scope does not match"}))
    )
    refused = gateway.client().probe_admin()
    assert (refused.status, refused.message) == (401, "Unauthorized; scope does not match")
    assert TOKEN not in repr(refused)
