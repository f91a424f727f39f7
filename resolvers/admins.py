"""The admin check: is the caller a Confluence site administrator, asked at most once a while.

``AdminCache.is_admin`` answers from the store's shared record (``store.admin_checks``) while it is
fresh (``ttl``: ``ADMIN_CACHE_SECONDS``), so every process and instance together makes at most one
upstream check per user per ``ttl``: a refused caller costs no points, however often they call.
When the record is stale one caller takes the check (an atomic claim) and asks Confluence
(``user/current``); the others wait up to ``wait_seconds`` for its answer, and fail closed if none
comes. A failed check is not recorded and counts as "no" (fail closed); nobody asks again for
``failed_pause`` seconds. One exception: while a rate-limit hold keeps the check from being made
(``rate_limited``), a "yes" confirmed at most ``held_ttl`` seconds ago (1 hour) stands, so a hold
does not lock administrators out; a "no" is never extended. The answer must be the FIT
principal's: when Confluence says the user token belongs to another account (or to none it names),
``NotAllowed`` is raised and nothing is recorded. The edge reads the record for every call
(``known``); a process keeps a known answer for a second (``MEMO_SECONDS``, never past the record's
``ttl``), so a busy caller costs about one read a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from access_desk.confluence.client import Client
from access_desk.confluence.errors import ConfluenceError, UpstreamError
from access_desk.store import Store
from access_desk.store.admin_checks import AdminRecord
from resolvers.errors import NotAllowed

CHECK_SECONDS = 10.0  # how long one caller may hold the check
MEMO_SECONDS = 1.0  # how long a process answers ``known`` from the record it last read
MEMO_MAX = 10_000  # records a process keeps so
POLL_SECONDS = 0.05


class AdminCache:
    """The shared admin check record's rules; see the module docstring. Thread-safe."""

    def __init__(
        self,
        store: Store,
        ttl: float = 60.0,
        *,
        held_ttl: float = 3600.0,
        wait_seconds: float = 5.0,
        failed_pause: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        memo_seconds: float = MEMO_SECONDS,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._held_ttl = max(ttl, held_ttl)
        self._wait = wait_seconds
        self._failed_pause = failed_pause
        self._sleep = sleep
        self._memo_seconds = memo_seconds
        self._memo: dict[tuple[str, str], tuple[float, AdminRecord]] = {}  # -> (until, record)
        self._lock = threading.Lock()

    def is_admin(self, installation_id: str, account_id: str, client: Client) -> bool:
        store = self._store
        record = store.admin_check(installation_id, account_id)
        answer = self._fresh(record, self._ttl)
        if answer is not None:
            return answer
        deadline = store.now() + self._wait
        while not store.claim_admin_check(installation_id, account_id, store.now() + CHECK_SECONDS):
            if store.now() >= deadline:
                return False  # someone else is checking and has not answered: fail closed
            self._sleep(POLL_SECONDS)
            record = store.admin_check(installation_id, account_id)
            answer = self._fresh(record, self._ttl)
            if answer is not None:
                return answer
        record = store.admin_check(installation_id, account_id)
        answer = self._fresh(record, self._ttl)
        if answer is not None:  # answered by another caller between our read and our claim
            store.record_admin_check(installation_id, account_id, None, hold_until=0.0)
            return answer
        return self._check(installation_id, account_id, client, record)

    def _check(
        self, installation_id: str, account_id: str, client: Client, record: AdminRecord | None
    ) -> bool:
        store = self._store
        try:
            status = client.admin_status()
        except UpstreamError as exc:
            held = exc.reason == "rate_limited"
            pause = 0.0 if held else self._failed_pause
            store.record_admin_check(
                installation_id, account_id, None, hold_until=store.now() + pause
            )
            return held and self._fresh(record, self._held_ttl) is True
        except ConfluenceError:
            store.record_admin_check(
                installation_id, account_id, None, hold_until=store.now() + self._failed_pause
            )
            return False
        with self._lock:  # this process's next ``known`` reads the new record
            self._memo.pop((installation_id, account_id), None)
        if status.account_id != account_id:
            store.record_admin_check(installation_id, account_id, None, hold_until=0.0)
            raise NotAllowed("The user token does not belong to the caller.")
        store.record_admin_check(
            installation_id,
            account_id,
            status.is_admin,
            hold_until=0.0,
            operations=", ".join(status.operations),
        )
        return status.is_admin

    def known(self, installation_id: str, account_id: str) -> bool | None:
        """The answer recorded in the last ``ttl`` seconds, without asking Confluence (None: not
        known); the edge reads it for every call (``handlers.resolvers``). A known answer is
        kept in this process for ``memo_seconds`` (at most until it is due again), so a busy
        caller's calls read the record about once a second, not once each."""
        key = (installation_id, account_id)
        now = time.monotonic()
        with self._lock:
            memo = self._memo.get(key)
        if memo is not None and now < memo[0]:
            return self._fresh(memo[1], self._ttl)
        record = self._store.admin_check(installation_id, account_id)
        answer = self._fresh(record, self._ttl)
        if answer is not None and record is not None and record.checked_at is not None:
            due_in = record.checked_at + self._ttl - self._store.now()
            with self._lock:
                if len(self._memo) >= MEMO_MAX:
                    self._memo.clear()
                self._memo[key] = (now + min(self._memo_seconds, due_in), record)
        return answer

    def recorded_refusal(self, installation_id: str, account_id: str) -> str | None:
        """The operations Confluence reported for a user it recently answered is not an admin
        (within ``ttl``), so a refusal can say why without asking again; None otherwise."""
        record = self._store.admin_check(installation_id, account_id)
        if self._fresh(record, self._ttl) is False and record is not None:
            return record.operations or "none"
        return None

    def _fresh(self, record: AdminRecord | None, max_age: float) -> bool | None:
        """The answer recorded less than ``max_age`` seconds ago, if any."""
        if record is None or record.is_admin is None or record.checked_at is None:
            return None
        return record.is_admin if self._store.now() < record.checked_at + max_age else None
