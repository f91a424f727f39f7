"""The Confluence client: bulk user lookup, access check, invite and the admin check.

One ``Client`` serves one call (one token, one site, one deadline counted from its construction).
Inputs are chunked to the API limits (250 ids, 100 emails) and the chunks run on a small thread
pool (``Policy.concurrency``), one at a time while the site reports it is near its rate limit.
Results are merged in input order with exact accounting: every input lands in exactly one output
list; a chunk that fails for good puts its own entries in ``failed`` and the rest stands.

Retries follow Atlassian's rule: 429 and 503 are retried, honouring ``Retry-After`` (seconds) when
present, else exponential backoff with jitter (``backoff_start`` doubling up to ``backoff_cap``,
times 0.7-1.3), at most ``max_retries`` retries. Timeouts and connection errors are retried (with
backoff) for the reads only; ``invite`` is retried only when the answer carried ``Retry-After``. A
wait that would outlast the deadline is not slept: the chunk fails at once with ``retry_after`` set.
Every request has a timeout no longer than the time left.

Confluence's points quota (docs/contract.md §6): a ``ratelimit.Ledger`` (the ``gate``) shared by
threads, clients and (kept in the store) instances admits every request and learns every answer.
Before each request the client waits out its site's hold (or fails the chunk at once with
``retry_after`` when the hold outlasts the deadline: a held call is not sent), then asks the ledger
to admit it for its ``payer`` (installation and user: fair shares). A refused request is not sent:
the chunk fails at once with ``rate_limited`` and ``retry_after`` (a job waits that long). A
``background()`` client (job steps) is also refused rather than spend the reserve kept for panel
calls. A burst 429 (one site's per-second limit) pauses the site for its ``Retry-After`` and is
retried within the call like any 429. Each answer settles its admission with the objects it
involved (a lookup pays for the users it returned).

``Client.probe`` is the one-request form ``diagnose`` uses: no retries, the status, the error
detail and the rate-limit headers as Confluence sent them (``Probe``).

Failure reasons: ``rate_limited``, ``unavailable``, ``timeout``, ``connection_error``,
``api_disabled`` (a 503 WITHOUT ``Retry-After`` from the experimental email endpoints: Atlassian's
OpenAPI document says "Returned if API is disabled on site"; never retried, since waiting does not
help: ``API_DISABLED_HELP`` says what the site admin can do), ``not_permitted`` (401/403/404),
``rejected: <detail>`` (400 and other 4xx), ``upstream_error <status>`` (other statuses),
``bad_response`` (a 2xx body we cannot read).

An ``offline()`` client (the background worker's and diagnose's offline token) makes only the
operations ``scopes.OFFLINE`` lists: those whose scopes ``manifest.yml`` allows to impersonate
(``allowImpersonation``); any other raises ``OfflineOperation`` before a request is sent.

Errors::

    ConfluenceError
     +-- UntrustedHost    the api_base_url starts with none of the allowlisted prefixes
     +-- OfflineOperation an offline client asked for an operation no impersonated scope covers
     +-- UpstreamError    a request failed for good: .reason, .status (None: no answer),
                          .retry_after

The token is never logged nor put in a repr or an exception message.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

import metrics
import scopes
from ratelimit import NOBODY, Admission, Gate, MemoryGate, Payer

log = logging.getLogger(__name__)

T = TypeVar("T")
API_ID_LIMIT = 250
API_EMAIL_LIMIT = 100
V2 = "/wiki/api/v2"
API_DISABLED = "api_disabled"
API_DISABLED_HELP = (
    "api_disabled: Confluence answered 503 without Retry-After, which means its (experimental) "
    "email API is disabled on this site; a site admin can ask Atlassian support to enable it, "
    "then retry the job"
)
EMAIL_OPERATIONS = frozenset({"check_access", "invite"})


class ConfluenceError(Exception):
    """Base of every error this module raises."""


class UntrustedHost(ConfluenceError):
    """The api_base_url is not under an allowlisted prefix; no request was made."""


class OfflineOperation(ConfluenceError):
    """An offline client was asked for an operation outside ``scopes.OFFLINE``; nothing was sent."""


class UpstreamError(ConfluenceError):
    """A request failed for good; ``reason`` is the short code reported in ``Failure.error``."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason if status is None else f"{reason} (HTTP {status})")
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Policy:
    deadline_seconds: float = 20.0
    concurrency: int = 4
    timeout_seconds: float = 10.0
    max_retries: int = 4
    backoff_start: float = 5.0
    backoff_cap: float = 30.0
    ids_per_chunk: int = API_ID_LIMIT
    emails_per_chunk: int = API_EMAIL_LIMIT

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_seconds <= 0:
            raise ValueError("concurrency >= 1, max_retries >= 0 and timeout_seconds > 0")
        if not 1 <= self.ids_per_chunk <= API_ID_LIMIT:
            raise ValueError(f"ids_per_chunk must be 1..{API_ID_LIMIT}")
        if not 1 <= self.emails_per_chunk <= API_EMAIL_LIMIT:
            raise ValueError(f"emails_per_chunk must be 1..{API_EMAIL_LIMIT}")


@dataclass(frozen=True, slots=True)
class Failure:
    subject: str
    error: str
    retry_after: float | None = None
    status: int | None = field(default=None, compare=False)  # the HTTP status, when answered


@dataclass(frozen=True, slots=True)
class LookupResult:
    users: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AccessResult:
    without_access: list[str] = field(default_factory=list)
    with_access: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Probe:
    """One request as ``Client.probe`` saw it. ``status`` None: no answer (``reason`` says why:
    ``rate_limited`` while a hold is on, ``timeout``, ``connection_error``); ``body`` is the JSON
    answer (None when empty or not JSON); ``message`` the error detail of a non-2xx answer;
    ``rate_limit`` the rate-limit headers present (``RATE_LIMIT_HEADERS``)."""

    status: int | None
    body: Any = None
    reason: str | None = None
    message: str = ""
    rate_limit: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None


RATE_LIMIT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "Beta-RateLimit-Policy",
    "Beta-RateLimit",
    "RateLimit-Reason",
    "X-Beta-RateLimit-Reason",
    "X-RateLimit-NearLimit",
    "X-Beta-RateLimit-NearLimit",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
)


@dataclass(frozen=True, slots=True)
class InviteResult:
    invited: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AdminStatus:
    account_id: str | None
    is_admin: bool
    operations: tuple[str, ...] = ()  # as Confluence reported them: "administer/application", ...


class Client:
    """Confluence as one caller, for one call; see the module docstring for the rules."""

    def __init__(
        self,
        session: requests.Session,
        api_base_url: str,
        token: str,
        *,
        policy: Policy = Policy(),
        allowlist: tuple[str, ...],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        gate: Gate | None = None,
        rng: random.Random | None = None,
        payer: Payer = NOBODY,
    ) -> None:
        if not any(_under(api_base_url, prefix) for prefix in allowlist):
            raise UntrustedHost(f"{api_base_url!r} is not under an allowlisted API base URL")
        self._session = session
        self._key = api_base_url
        self._base = api_base_url.rstrip("/")
        self._token = token
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._gate: Gate = gate if gate is not None else MemoryGate(clock)
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._deadline = clock() + policy.deadline_seconds
        self._background = False
        self._offline = False
        self._payer = payer

    def __repr__(self) -> str:
        return f"Client(api_base_url={self._key!r}, policy={self._policy!r})"

    def within(self, seconds: float) -> Client:
        """This client with its deadline brought forward to at most ``seconds`` from now (a short
        step inside a longer call: a ``Retry-After`` past it fails the chunk instead of sleeping)."""
        clone = copy.copy(self)
        clone._deadline = min(self._deadline, self._clock() + seconds)
        return clone

    def background(self) -> Client:
        """This client for background work (job steps): it never spends the reserve of the
        quota kept for panel calls, and fails a chunk instead of waiting for the next window."""
        clone = copy.copy(self)
        clone._background = True
        return clone

    def offline(self) -> Client:
        """This client for an offline user token: only the operations ``scopes.OFFLINE`` lists,
        whose scopes the manifest lets the app impersonate users with (see the module doc)."""
        clone = copy.copy(self)
        clone._offline = True
        return clone

    def _allowed(self, operation: str | None) -> None:
        if self._offline and operation not in scopes.OFFLINE:
            raise OfflineOperation(
                f"{operation or 'this call'} is not made with an offline token: add it to "
                "scopes.OFFLINE and allowImpersonation to its scope in manifest.yml"
            )

    def paying(self, payer: Payer) -> Client:
        """This client with its requests counted to ``payer`` (an installation and user: their
        fair shares of the quota)."""
        clone = copy.copy(self)
        clone._payer = payer
        return clone

    def lookup_users(
        self,
        account_ids: Sequence[str],
        on_chunk: Callable[[LookupResult], None] | None = None,
    ) -> LookupResult:
        """Users by account id (POST users-bulk); unknown ids go to ``not_found``.

        ``on_chunk`` (optional) gets each chunk's own result as soon as that chunk is answered
        (in the order answers arrive), on the calling thread, while the other chunks' requests
        are still in flight: a caller can store answers during the upstream waits. An exception
        it raises ends the lookup: the requests already sent are awaited, no other is sent."""
        chunks = _chunks(account_ids, self._policy.ids_per_chunk)
        parts: list[LookupResult] = [LookupResult() for _ in chunks]

        def settle(index: int, answer: Any) -> None:
            chunk, part = chunks[index], parts[index]
            found = _users_by_id(answer) if not isinstance(answer, UpstreamError) else answer
            if isinstance(found, UpstreamError):
                part.failed.extend(_failures(chunk, found))
            else:
                for account_id in chunk:
                    user = found.get(account_id)
                    if user is None:
                        part.not_found.append(account_id)
                    else:
                        part.users.append(user)
            if on_chunk is not None:
                on_chunk(part)

        self._run(
            chunks,
            lambda c: self._post("/users-bulk", {"accountIds": c}, ("users_bulk", len(c))),
            settle,
        )
        result = LookupResult()
        for part in parts:  # merged in input order, whatever order the answers came in
            result.users.extend(part.users)
            result.not_found.extend(part.not_found)
            result.failed.extend(part.failed)
        return result

    def check_access(self, emails: Sequence[str]) -> AccessResult:
        """Which emails lack access (POST check-access-by-email); compared case-insensitively."""
        result = AccessResult()
        chunks = _chunks(emails, self._policy.emails_per_chunk)
        path = "/user/access/check-access-by-email"
        answers = self._run(
            chunks, lambda c: self._post(path, {"emails": c}, ("check_access", len(c)))
        )
        for chunk, answer in zip(chunks, answers, strict=True):
            sets = _access_sets(answer) if not isinstance(answer, UpstreamError) else answer
            if isinstance(sets, UpstreamError):
                result.failed.extend(_failures(chunk, sets))
                continue
            without, invalid = sets
            for email in chunk:
                folded = email.lower()
                target = (
                    result.invalid
                    if folded in invalid
                    else result.without_access
                    if folded in without
                    else result.with_access
                )
                target.append(email)
        return result

    def invite(self, emails: Sequence[str]) -> InviteResult:
        """Invite by email (POST invite-by-email; asynchronous; retried only on Retry-After)."""
        result = InviteResult()
        chunks = _chunks(emails, self._policy.emails_per_chunk)
        path = "/user/access/invite-by-email"
        answers = self._run(
            chunks, lambda c: self._post(path, {"emails": c}, ("invite", 0), idempotent=False)
        )
        for chunk, answer in zip(chunks, answers, strict=True):
            if isinstance(answer, UpstreamError):
                result.failed.extend(_failures(chunk, answer))
            else:
                result.invited.extend(chunk)
        return result

    def is_admin(self) -> bool:
        """True iff the caller holds Confluence's global administer permission (see
        ``admin_status``, which also says whose token this is)."""
        return self.admin_status().is_admin

    def admin_status(self) -> AdminStatus:
        """Who the token belongs to (``user/current``'s ``accountId``, None when absent) and
        whether they hold Confluence's global administer permission.

        Raises ``UpstreamError`` on any failure (also an unreadable answer): callers fail closed.
        """
        path = "/wiki/rest/api/user/current?expand=operations"
        body = self._request("GET", path, None, True, ("user_current", 1))
        operations = body.get("operations") if isinstance(body, dict) else None
        if not isinstance(operations, list):
            raise UpstreamError("bad_response", status=200)
        account_id = body.get("accountId")
        return AdminStatus(
            account_id=account_id if isinstance(account_id, str) and account_id else None,
            is_admin=any(
                isinstance(op, dict)
                and op.get("operation") == "administer"
                and op.get("targetType") == "application"
                for op in operations
            ),
            operations=tuple(
                f"{op.get('operation')}/{op.get('targetType')}"
                for op in operations
                if isinstance(op, dict)
            ),
        )

    def probe(
        self, method: str, path: str, body: Any = None, *, operation: str | None = None
    ) -> Probe:
        """One request to ``path`` (under the API base URL), without retries, for ``diagnose``;
        ``operation`` names it (``scopes.SCOPES``; an offline client needs it).

        A hold on the site is honoured (nothing is sent: ``reason`` ``rate_limited``), and the
        answer feeds the quota ledger as every call does (its headers, holds).
        """
        self._allowed(operation)
        held = self._gate.wait_seconds(self._key)
        if held > 0:
            return Probe(None, reason="rate_limited", retry_after=held)
        left = self._deadline - self._clock()
        if left <= 0:
            return Probe(None, reason="timeout")
        operation, objects = _operation_of(path, body)
        admission = self._gate.admit(
            self._key, operation, objects, background=self._background, payer=self._payer
        )
        if admission.wait > 0:
            return Probe(None, reason="rate_limited", retry_after=admission.wait)
        try:
            response = self._session.request(
                method,
                self._base + path,
                json=body,
                headers=self._headers,
                timeout=min(self._policy.timeout_seconds, left),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self._gate.settle(self._key, admission, None, {})
            reason = "timeout" if isinstance(exc, requests.Timeout) else "connection_error"
            return Probe(None, reason=reason)
        status = response.status_code
        retry_after = self._gate.settle(
            self._key, admission, status, response.headers, objects
        ).retry_after
        if status == 429:
            metrics.RATE_LIMITED.inc()
        try:
            parsed = response.json() if response.content.strip() else None
        except ValueError:
            parsed = None
        headers = {
            name: response.headers[name] for name in RATE_LIMIT_HEADERS if name in response.headers
        }
        message = "" if 200 <= status < 300 else self._detail(response)
        return Probe(status, parsed, None, message, headers, retry_after)

    # -- running chunks ---------------------------------------------------------------------------

    def _run(
        self,
        chunks: list[list[str]],
        call: Callable[[list[str]], T],
        on_done: Callable[[int, T | UpstreamError], None] | None = None,
    ) -> list[T | UpstreamError]:
        """``call`` on every chunk, at most ``concurrency`` in flight (1 while near the limit);
        the answers in chunk order. ``on_done(index, answer)`` runs on the calling thread as
        each chunk is answered, after the freed slots have been given to the next chunks, so
        its work overlaps the requests in flight."""

        def one(chunk: list[str]) -> T | UpstreamError:
            try:
                return call(chunk)
            except UpstreamError as exc:
                return exc

        def done(index: int, answer: T | UpstreamError) -> T | UpstreamError:
            if on_done is not None:
                on_done(index, answer)
            return answer

        if len(chunks) <= 1:
            return [done(i, one(chunk)) for i, chunk in enumerate(chunks)]
        futures: list[Future[T | UpstreamError]] = []
        index_of: dict[Future[T | UpstreamError], int] = {}
        with ThreadPoolExecutor(max_workers=min(self._policy.concurrency, len(chunks))) as pool:
            pending: set[Future[T | UpstreamError]] = set()

            def fill() -> None:
                while len(futures) < len(chunks):
                    near = self._gate.is_near_limit(self._key)
                    if len(pending) >= (1 if near else self._policy.concurrency):
                        return
                    future = pool.submit(one, chunks[len(futures)])
                    index_of[future] = len(futures)
                    futures.append(future)
                    pending.add(future)

            fill()
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                fill()
                for future in sorted(finished, key=index_of.__getitem__):
                    done(index_of[future], future.result())
        return [future.result() for future in futures]

    def _post(
        self, path: str, body: dict[str, Any], cost: tuple[str, int], *, idempotent: bool = True
    ) -> Any:
        return self._request("POST", V2 + path, body, idempotent, cost)

    # -- one request with retries -----------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Any, idempotent: bool, cost: tuple[str, int]
    ) -> Any:
        """The parsed JSON answer (None when empty) or ``UpstreamError`` once retries are spent.

        ``cost``: (operation, objects) for the points estimate (``costs.COSTS``)."""
        self._allowed(cost[0])
        url = self._base + path
        pause = 0.0
        last: UpstreamError | None = None
        for attempt in range(self._policy.max_retries + 1):
            pause = max(pause, self._gate.wait_seconds(self._key))
            if pause > 0:
                if self._clock() + pause >= self._deadline:
                    if last is None:
                        raise UpstreamError("rate_limited", retry_after=pause)
                    raise UpstreamError(last.reason, status=last.status, retry_after=pause)
                self._sleep(pause)
            left = self._deadline - self._clock()
            if left <= 0:
                raise UpstreamError("timeout")
            operation, objects = cost
            admission = self._gate.admit(
                self._key,
                operation,
                objects,
                background=self._background,
                payer=self._payer,
                waited=pause > 0,  # a hold (and a pool it said was spent) was just waited out
            )
            if admission.wait > 0:  # not sent: a hold, a spent pool, the reserve or a fair share
                if admission.why == "held" and attempt < self._policy.max_retries:
                    pause = admission.wait  # a hold that began meanwhile: wait it out, as above
                    continue
                raise UpstreamError("rate_limited", retry_after=admission.wait)
            try:
                response = self._session.request(
                    method,
                    url,
                    json=body,
                    headers=self._headers,
                    timeout=min(self._policy.timeout_seconds, left),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                self._gate.settle(self._key, admission, None, {})
                timed_out = isinstance(exc, requests.Timeout)
                last = UpstreamError("timeout" if timed_out else "connection_error")
            else:
                try:
                    return self._answer(response, admission, cost)
                except UpstreamError as exc:
                    last = exc
            retry = self._retry_pause(last, attempt, idempotent)
            log.info("confluence %s %s: %s; retry in %s s", method, path, last, retry)
            if retry is None:
                raise last
            pause = max(retry, 0.0)
        assert last is not None
        raise last

    def _answer(
        self, response: requests.Response, admission: Admission, cost: tuple[str, int]
    ) -> Any:
        status = response.status_code
        answer: Any = None
        unreadable = False
        if 200 <= status < 300 and response.content.strip():
            try:
                answer = response.json()
            except ValueError:
                unreadable = True
        objects = _objects(cost, answer)
        reading = self._gate.settle(self._key, admission, status, response.headers, objects)
        retry_after = reading.retry_after
        if 200 <= status < 300:
            if unreadable:
                raise UpstreamError("bad_response", status=status)
            metrics.POINTS.inc(self._gate.estimate(cost[0], objects))
            return answer
        if status == 503 and cost[0] in EMAIL_OPERATIONS and "Retry-After" not in response.headers:
            raise UpstreamError(API_DISABLED, status=status)
        if status in (429, 503):
            if status == 429:
                metrics.RATE_LIMITED.inc()
            reason = "rate_limited" if status == 429 else "unavailable"
            raise UpstreamError(reason, status=status, retry_after=retry_after)
        if status in (401, 403, 404):
            raise UpstreamError("not_permitted", status=status)
        if 400 <= status < 500:
            raise UpstreamError(f"rejected: {self._detail(response)}", status=status)
        raise UpstreamError(f"upstream_error {status}", status=status)

    def _retry_pause(self, error: UpstreamError, attempt: int, idempotent: bool) -> float | None:
        """Seconds to wait before retrying after ``error``, or None for no retry."""
        if attempt >= self._policy.max_retries or error.reason == API_DISABLED:
            return None
        if error.status in (429, 503) and error.retry_after is not None:
            return error.retry_after
        if not idempotent:
            return None
        if error.status in (429, 503) or error.reason in ("timeout", "connection_error"):
            base = min(self._policy.backoff_cap, self._policy.backoff_start * 2**attempt)
            with self._rng_lock:
                jitter = self._rng.uniform(0.7, 1.3)
            return float(base * jitter)
        return None

    def _detail(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        detail: Any = None
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                first = errors[0]
                detail = first.get("detail") or first.get("title") or first.get("code")
            detail = detail or body.get("message")
        text = str(detail or response.reason or response.status_code)
        return text.replace(self._token, "***")[:200] if self._token else text[:200]


def is_allowed(url: str, allowlist: Sequence[str]) -> bool:
    """``url`` is under one of the allowlisted prefixes (same scheme and host, no user info)."""
    return any(_under(url, prefix) for prefix in allowlist)


def _under(url: str, prefix: str) -> bool:
    """``url`` starts with ``prefix`` and has exactly its scheme and host."""
    if not prefix or not url.startswith(prefix):
        return False
    u, p = urlsplit(url), urlsplit(prefix)
    return (u.scheme, u.netloc) == (p.scheme, p.netloc) and not u.username and not u.password


def _objects(cost: tuple[str, int], answer: Any) -> int:
    """The objects a request involved: a lookup's are the users it returned (when it answered)."""
    operation, objects = cost
    if operation == "users_bulk" and isinstance(answer, dict):
        results = answer.get("results")
        if isinstance(results, list):
            return len(results)
    return objects


def _operation_of(path: str, body: Any) -> tuple[str, int]:
    """(operation, objects) of a probe's request, for the ledger's estimate."""
    listed = next((v for v in body.values() if isinstance(v, list)), []) if body else []
    if path.endswith("/users-bulk"):
        return "users_bulk", len(listed)
    if path.endswith("/check-access-by-email"):
        return "check_access", len(listed)
    if path.endswith("/invite-by-email"):
        return "invite", len(listed)
    return "user_current", 1


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _failures(chunk: list[str], error: UpstreamError) -> list[Failure]:
    return [Failure(subject, error.reason, error.retry_after, error.status) for subject in chunk]


def _users_by_id(body: Any) -> dict[str, dict[str, Any]] | UpstreamError:
    """users-bulk answer keyed by accountId (first wins; order and duplicates are unverified)."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not all(isinstance(u, dict) for u in results):
        return UpstreamError("bad_response", status=200)
    found: dict[str, dict[str, Any]] = {}
    for user in results:
        account_id = user.get("accountId")
        if isinstance(account_id, str):
            found.setdefault(account_id, user)
    return found


def _access_sets(body: Any) -> tuple[set[str], set[str]] | UpstreamError:
    """check-access answer as lower-cased (without access, invalid); a missing key is empty."""
    if not isinstance(body, dict):
        return UpstreamError("bad_response", status=200)
    sets: list[set[str]] = []
    for key in ("emailsWithoutAccess", "invalidEmails"):
        values = body.get(key)
        values = [] if values is None else values
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return UpstreamError("bad_response", status=200)
        sets.append({v.strip().lower() for v in values})
    return sets[0], sets[1]
