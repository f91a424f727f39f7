"""One caller's requests to one Confluence site: retries, ``Retry-After``, backoff, the deadline,
the quota ledger, and the thread pool that runs a call's chunks.

A ``Transport`` serves one call (one token, one site, one deadline counted from its construction).

Retries follow Atlassian's rule: 429 and 503 are retried, honouring ``Retry-After`` (seconds) when
present, else exponential backoff with jitter (``backoff_start`` doubling up to ``backoff_cap``,
times 0.7-1.3), at most ``max_retries`` retries. Timeouts and connection errors are retried (with
backoff) for idempotent requests only; ``invite`` is retried only when the answer carried
``Retry-After``. A wait that would outlast the deadline is not slept: the request fails at once with
``retry_after`` set. Every request has a timeout no longer than the time left.

Confluence's points quota (docs/contract.md §6): a ``quota.ledger.Ledger`` shared by threads,
clients and (kept in the store) instances admits every request and learns every answer. Before
each request the transport waits out its site's hold (or fails at once with ``retry_after`` when
the hold outlasts the deadline: a held call is not sent), then asks the ledger to admit it for its
``payer`` (installation and user: fair shares). A refused request is not sent: it fails at once with
``rate_limited`` and ``retry_after`` (a job waits that long). A ``background`` transport (job steps)
is also refused rather than spend the reserve kept for panel calls. A burst 429 (one site's
per-second limit) pauses the site for its ``Retry-After`` and is retried within the call like any
429. Each answer settles its admission with the objects it involved (a lookup pays for the users it
returned).

``run`` sends a call's chunks on a small thread pool (``Policy.concurrency``), one at a time while
the site reports it is near its rate limit. ``once`` is one request without retries (``Probe``).

The token is never logged nor put in a repr or an exception message.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from access_desk import metrics
from access_desk.confluence.errors import API_DISABLED, UpstreamError
from access_desk.confluence.results import RATE_LIMIT_HEADERS, Probe
from access_desk.quota.ledger import NOBODY, Admission, Ledger, MemoryLedger, Payer

log = logging.getLogger(__name__)

T = TypeVar("T")
API_ID_LIMIT = 250
API_EMAIL_LIMIT = 100
EMAIL_OPERATIONS = frozenset({"check_access", "invite"})
Cost = tuple[str, int]  # (operation, objects) for the points estimate (``quota.costs.COSTS``)


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


DEFAULT_POLICY = Policy()


class Transport:
    """Requests to one site with one token, within one deadline; see the module docstring."""

    def __init__(
        self,
        session: requests.Session,
        api_base_url: str,
        token: str,
        *,
        policy: Policy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        ledger: Ledger | None = None,
        rng: random.Random | None = None,
        payer: Payer = NOBODY,
    ) -> None:
        self._session = session
        self.key = api_base_url
        self._base = api_base_url.rstrip("/")
        self._token = token
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._ledger: Ledger = ledger if ledger is not None else MemoryLedger(clock)
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._deadline = clock() + policy.deadline_seconds
        self._background = False
        self._payer = payer

    def __repr__(self) -> str:
        return f"Transport(api_base_url={self.key!r}, policy={self.policy!r})"

    def within(self, seconds: float) -> Transport:
        """This transport with its deadline brought forward to at most ``seconds`` from now."""
        clone = copy.copy(self)
        clone._deadline = min(self._deadline, self._clock() + seconds)
        return clone

    def background(self) -> Transport:
        """This transport for background work: never spends the reserve kept for panel calls."""
        clone = copy.copy(self)
        clone._background = True
        return clone

    def paying(self, payer: Payer) -> Transport:
        """This transport with its requests counted to ``payer``."""
        clone = copy.copy(self)
        clone._payer = payer
        return clone

    # -- a call's chunks on the thread pool -------------------------------------------------------

    def run(
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
        with ThreadPoolExecutor(max_workers=min(self.policy.concurrency, len(chunks))) as pool:
            pending: set[Future[T | UpstreamError]] = set()

            def fill() -> None:
                while len(futures) < len(chunks):
                    near = self._ledger.is_near_limit(self.key)
                    if len(pending) >= (1 if near else self.policy.concurrency):
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

    # -- one request with retries -----------------------------------------------------------------

    def request(self, method: str, path: str, body: Any, idempotent: bool, cost: Cost) -> Any:
        """The parsed JSON answer (None when empty) or ``UpstreamError`` once retries are spent."""
        url = self._base + path
        pause = 0.0
        last: UpstreamError | None = None
        for attempt in range(self.policy.max_retries + 1):
            pause = max(pause, self._ledger.wait_seconds(self.key))
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
            admission = self._ledger.admit(
                self.key,
                operation,
                objects,
                background=self._background,
                payer=self._payer,
                waited=pause > 0,  # a hold (and a pool it said was spent) was just waited out
            )
            if admission.wait > 0:  # not sent: a hold, a spent pool, the reserve or a fair share
                if admission.why == "held" and attempt < self.policy.max_retries:
                    pause = admission.wait  # a hold that began meanwhile: wait it out, as above
                    continue
                raise UpstreamError("rate_limited", retry_after=admission.wait)
            try:
                response = self._send(method, url, body, left)
            except requests.RequestException as exc:
                self._ledger.settle(self.key, admission, None, {})
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

    def once(self, method: str, path: str, body: Any, cost: Cost) -> Probe:
        """One request to ``path`` without retries: the answer as it came (``Probe``).

        A hold on the site is honoured (nothing is sent: ``reason`` ``rate_limited``), and the
        answer feeds the quota ledger as every request does (its headers, holds)."""
        held = self._ledger.wait_seconds(self.key)
        if held > 0:
            return Probe(None, reason="rate_limited", retry_after=held)
        left = self._deadline - self._clock()
        if left <= 0:
            return Probe(None, reason="timeout")
        operation, objects = cost
        admission = self._ledger.admit(
            self.key, operation, objects, background=self._background, payer=self._payer
        )
        if admission.wait > 0:
            return Probe(None, reason="rate_limited", retry_after=admission.wait)
        try:
            response = self._send(method, self._base + path, body, left)
        except requests.RequestException as exc:
            self._ledger.settle(self.key, admission, None, {})
            reason = "timeout" if isinstance(exc, requests.Timeout) else "connection_error"
            return Probe(None, reason=reason)
        status = response.status_code
        retry_after = self._ledger.settle(
            self.key, admission, status, response.headers, objects
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

    def _send(self, method: str, url: str, body: Any, left: float) -> requests.Response:
        return self._session.request(
            method,
            url,
            json=body,
            headers=self._headers,
            timeout=min(self.policy.timeout_seconds, left),
            allow_redirects=False,
        )

    def _answer(self, response: requests.Response, admission: Admission, cost: Cost) -> Any:
        status = response.status_code
        answer: Any = None
        unreadable = False
        if 200 <= status < 300 and response.content.strip():
            try:
                answer = response.json()
            except ValueError:
                unreadable = True
        objects = _objects(cost, answer)
        reading = self._ledger.settle(self.key, admission, status, response.headers, objects)
        retry_after = reading.retry_after
        if 200 <= status < 300:
            if unreadable:
                raise UpstreamError("bad_response", status=status)
            metrics.POINTS.inc(self._ledger.estimate(cost[0], objects))
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
        if attempt >= self.policy.max_retries or error.reason == API_DISABLED:
            return None
        if error.status in (429, 503) and error.retry_after is not None:
            return error.retry_after
        if not idempotent:
            return None
        if error.status in (429, 503) or error.reason in ("timeout", "connection_error"):
            base = min(self.policy.backoff_cap, self.policy.backoff_start * 2**attempt)
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


def _objects(cost: Cost, answer: Any) -> int:
    """The objects a request involved: a lookup's are the users it returned (when it answered)."""
    operation, objects = cost
    if operation == "users_bulk" and isinstance(answer, dict):
        results = answer.get("results")
        if isinstance(results, list):
            return len(results)
    return objects
