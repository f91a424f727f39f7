"""The Confluence client: bulk user lookup, access check, invite, the admin check, and the named
probes ``diagnose`` sends.

``Clients`` is the factory the composition root builds once (session, policy, allowlist, quota
ledger, clock and sleep); the HTTP edge and the worker ask it for a ``Client`` per call, passing the
site and the token (``Clients.for_site``). A ``Client`` serves one call: one token, one site, one
deadline counted from its construction (its ``transport.Transport`` holds retries, the deadline,
the ledger and the thread pool).

Inputs are chunked to the API limits (250 ids, 100 emails) and the chunks run on the transport's
thread pool. Results are merged in input order with exact accounting: every input lands in exactly
one output list; a chunk that fails for good puts its own entries in ``failed`` and the rest
stands. Failure reasons and errors: ``confluence.errors``.

The site must be under ``API_BASE_URL_ALLOWLIST`` (``confluence.allowlist.is_allowed``), else
``UntrustedHost`` before anything is sent.

The probes (``probe_admin``, ``probe_users``, ``probe_check_access``, ``probe_invite``) are one
request each, without retries: the status, the error detail and the rate-limit headers as
Confluence sent them (``results.Probe``).

An ``offline()`` client (the background worker's and diagnose's offline token) makes only the
operations ``scopes.OFFLINE`` lists: those whose scopes ``manifest.yml`` allows to impersonate
(``allowImpersonation``); any other raises ``OfflineOperation`` before a request is sent.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import requests

from access_desk.confluence.allowlist import is_allowed
from access_desk.confluence.errors import OfflineOperation, UntrustedHost, UpstreamError
from access_desk.confluence.results import (
    AccessResult,
    AdminStatus,
    Failure,
    InviteResult,
    LookupResult,
    Probe,
)
from access_desk.confluence.transport import DEFAULT_POLICY, Cost, Policy, Transport
from access_desk.forge import scopes
from access_desk.quota.ledger import NOBODY, Ledger, Payer

V2 = "/wiki/api/v2"
USERS_BULK = V2 + "/users-bulk"
CHECK_ACCESS = V2 + "/user/access/check-access-by-email"
INVITE = V2 + "/user/access/invite-by-email"
USER_CURRENT = "/wiki/rest/api/user/current?expand=operations"


class Client:
    """Confluence as one caller, for one call; see the module docstring for the rules."""

    def __init__(
        self,
        session: requests.Session,
        api_base_url: str,
        token: str,
        *,
        policy: Policy = DEFAULT_POLICY,
        allowlist: tuple[str, ...],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        ledger: Ledger | None = None,
        rng: random.Random | None = None,
        payer: Payer = NOBODY,
    ) -> None:
        if not is_allowed(api_base_url, allowlist):
            raise UntrustedHost(f"{api_base_url!r} is not under an allowlisted API base URL")
        self._transport = Transport(
            session,
            api_base_url,
            token,
            policy=policy,
            sleep=sleep,
            clock=clock,
            ledger=ledger,
            rng=rng,
            payer=payer,
        )
        self._offline = False

    def __repr__(self) -> str:
        return f"Client(api_base_url={self._transport.key!r}, policy={self._transport.policy!r})"

    def _with(self, transport: Transport, offline: bool | None = None) -> Client:
        clone = copy.copy(self)
        clone._transport = transport
        if offline is not None:
            clone._offline = offline
        return clone

    def within(self, seconds: float) -> Client:
        """This client with its deadline brought forward to at most ``seconds`` from now (a short
        step inside a longer call: a ``Retry-After`` past it fails the chunk instead of sleeping)."""
        return self._with(self._transport.within(seconds))

    def background(self) -> Client:
        """This client for background work (job steps): it never spends the reserve of the
        quota kept for panel calls, and fails a chunk instead of waiting for the next window."""
        return self._with(self._transport.background())

    def offline(self) -> Client:
        """This client for an offline user token: only the operations ``scopes.OFFLINE`` lists,
        whose scopes the manifest lets the app impersonate users with (see the module doc)."""
        return self._with(self._transport, offline=True)

    def paying(self, payer: Payer) -> Client:
        """This client with its requests counted to ``payer`` (an installation and user: their
        fair shares of the quota)."""
        return self._with(self._transport.paying(payer))

    def _allowed(self, operation: str) -> None:
        if self._offline and operation not in scopes.OFFLINE:
            raise OfflineOperation(
                f"{operation} is not made with an offline token: add it to "
                "scopes.OFFLINE and allowImpersonation to its scope in manifest.yml"
            )

    def _request(
        self, method: str, path: str, body: Any, cost: Cost, *, idempotent: bool = True
    ) -> Any:
        self._allowed(cost[0])
        return self._transport.request(method, path, body, idempotent, cost)

    # -- the endpoints ----------------------------------------------------------------------------

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
        chunks = _chunks(account_ids, self._transport.policy.ids_per_chunk)
        parts: list[LookupResult] = [LookupResult() for _ in chunks]

        def settle(index: int, answer: Any) -> None:
            chunk, part = chunks[index], parts[index]
            found = _users_by_id(answer) if not isinstance(answer, UpstreamError) else answer
            if isinstance(found, UpstreamError):
                part.failed.extend(Failure.of(chunk, found))
            else:
                for account_id in chunk:
                    user = found.get(account_id)
                    if user is None:
                        part.not_found.append(account_id)
                    else:
                        part.users.append(user)
            if on_chunk is not None:
                on_chunk(part)

        self._transport.run(
            chunks,
            lambda c: self._request("POST", USERS_BULK, {"accountIds": c}, ("users_bulk", len(c))),
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
        chunks = _chunks(emails, self._transport.policy.emails_per_chunk)
        answers = self._transport.run(
            chunks,
            lambda c: self._request("POST", CHECK_ACCESS, {"emails": c}, ("check_access", len(c))),
        )
        for chunk, answer in zip(chunks, answers, strict=True):
            sets = _access_sets(answer) if not isinstance(answer, UpstreamError) else answer
            if isinstance(sets, UpstreamError):
                result.failed.extend(Failure.of(chunk, sets))
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
        chunks = _chunks(emails, self._transport.policy.emails_per_chunk)
        answers = self._transport.run(
            chunks,
            lambda c: self._request("POST", INVITE, {"emails": c}, ("invite", 0), idempotent=False),
        )
        for chunk, answer in zip(chunks, answers, strict=True):
            if isinstance(answer, UpstreamError):
                result.failed.extend(Failure.of(chunk, answer))
            else:
                result.invited.extend(chunk)
        return result

    # -- the admin check --------------------------------------------------------------------------

    def is_admin(self) -> bool:
        """True iff the caller holds Confluence's global administer permission (see
        ``admin_status``, which also says whose token this is)."""
        return self.admin_status().is_admin

    def admin_status(self) -> AdminStatus:
        """Who the token belongs to (``user/current``'s ``accountId``, None when absent) and
        whether they hold Confluence's global administer permission.

        Raises ``UpstreamError`` on any failure (also an unreadable answer): callers fail closed.
        """
        body = self._request("GET", USER_CURRENT, None, ("user_current", 1))
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

    # -- the probes (diagnose) --------------------------------------------------------------------

    def probe_admin(self) -> Probe:
        """``user/current?expand=operations`` once, as the admin check asks it."""
        return self._probe("GET", USER_CURRENT, None, ("user_current", 1))

    def probe_users(self, account_ids: Sequence[str]) -> Probe:
        """``users-bulk`` once with ``account_ids``."""
        ids = list(account_ids)
        return self._probe("POST", USERS_BULK, {"accountIds": ids}, ("users_bulk", len(ids)))

    def probe_check_access(self, emails: Sequence[str]) -> Probe:
        """``check-access-by-email`` once with ``emails``."""
        listed = list(emails)
        return self._probe("POST", CHECK_ACCESS, {"emails": listed}, ("check_access", len(listed)))

    def probe_invite(self, emails: Sequence[str]) -> Probe:
        """``invite-by-email`` once with ``emails`` (diagnose sends an empty list: nobody)."""
        listed = list(emails)
        return self._probe("POST", INVITE, {"emails": listed}, ("invite", len(listed)))

    def _probe(self, method: str, path: str, body: Any, cost: Cost) -> Probe:
        self._allowed(cost[0])
        return self._transport.once(method, path, body, cost)


@dataclass(frozen=True, slots=True)
class Clients:
    """Builds a ``Client`` per call from what every call shares; built once at start-up."""

    session: requests.Session = field(repr=False)
    allowlist: tuple[str, ...]
    policy: Policy = DEFAULT_POLICY
    ledger: Ledger | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def for_site(self, api_base_url: str, token: str, payer: Payer = NOBODY) -> Client:
        """A client acting with ``token`` on ``api_base_url`` (``UntrustedHost`` when that is
        not allowlisted), its requests counted to ``payer``."""
        return Client(
            self.session,
            api_base_url,
            token,
            policy=self.policy,
            allowlist=self.allowlist,
            sleep=self.sleep,
            clock=self.clock,
            ledger=self.ledger,
            payer=payer,
        )

    def with_policy(self, policy: Policy) -> Clients:
        """These clients with another policy (the worker's longer deadline)."""
        return replace(self, policy=policy)


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


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
